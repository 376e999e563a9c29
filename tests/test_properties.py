"""Property tests (hypothesis) of what reads outside input: the fine-tuning set parser, the scenario loader
and the chunker. Arbitrary bytes give a result or the module's own clear error, never another exception;
valid input round-trips; chunks cover the text within their size and overlap, the same every time."""

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.common.scenario import (
    EVAL_KINDS,
    ScenarioError,
    _toml_string,
    create_scenario,
    load_eval_questions,
    load_scenario,
)
from core.knowledge.knowledge_base import split_text
from core.training.datasets import ROLES, load_chat_dataset

# tmp_path is one folder for all of a test's examples; each example overwrites its files.
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = ["messages", "role", "content", "prompt", "completion", "question", "answer", "context", "name", "text"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(ROLES),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Lines that get past json.loads but make no sense (wrong types, missing keys), and lines that do not.
jsonl_lines = st.lists(json_values.map(json.dumps) | st.text(max_size=40), max_size=8).map("\n".join)
HOSTILE_JSONL = [
    "[" * 100_000,  # nested too deeply for the json module: RecursionError
    '{"a": ' + "1" * 5000 + "}",  # an integer over Python's 4,300-digit limit: ValueError
    "\ufeff\x00\r\n\r\n{}",
]


def _problems_name_the_file(problems: list[str], path) -> bool:
    return all(p.startswith(f"{path}:") for p in problems)


@PROPERTY
@given(data=st.binary(max_size=2000) | jsonl_lines.map(str.encode))
@example(data=b"\xff\xfe\x00garbage")
def test_any_bytes_give_examples_or_errors_by_line_never_an_exception(tmp_path, data):
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    dataset = load_chat_dataset(path, "SYS")
    assert dataset.errors or dataset.examples
    assert _problems_name_the_file(dataset.errors, path)
    for example_ in dataset.examples:
        assert any(m["role"] == "assistant" for m in example_.messages)
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in example_.messages)


@pytest.mark.parametrize("line", HOSTILE_JSONL)
def test_hostile_lines_are_reported_by_line(tmp_path, line):
    path = tmp_path / "train.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    dataset = load_chat_dataset(path)
    assert _problems_name_the_file(dataset.errors, path)


contents = st.text(min_size=1, max_size=40).filter(str.strip)
chat_rows = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": contents}), min_size=1, max_size=5
).filter(lambda messages: any(m["role"] == "assistant" for m in messages))
valid_rows = (
    chat_rows.map(lambda messages: ({"messages": messages}, messages))
    | st.tuples(contents, contents).map(
        lambda qa: (
            {"prompt": qa[0], "completion": qa[1]},
            [{"role": "user", "content": qa[0]}, {"role": "assistant", "content": qa[1]}],
        )
    )
    | st.tuples(contents, contents).map(
        lambda qa: (
            {"question": qa[0], "answer": qa[1]},
            [{"role": "user", "content": qa[0]}, {"role": "assistant", "content": qa[1]}],
        )
    )
)


RAW_SEPARATORS = [{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "c\x85d\x1ce"}]


@PROPERTY
@given(rows=st.lists(st.tuples(valid_rows, st.booleans(), st.booleans()), min_size=1, max_size=6))
@example(rows=[(({"messages": RAW_SEPARATORS}, RAW_SEPARATORS), False, False)])  # str.splitlines() splits these
def test_valid_rows_round_trip_with_their_line_numbers(tmp_path, rows):
    """Any mix of the three formats, escaped or raw UTF-8 (U+2028 included), blank lines between."""
    lines, expected = [], []
    for (row, messages), ascii_only, blank_before in rows:
        if blank_before:
            lines.append("")
        lines.append(json.dumps(row, ensure_ascii=ascii_only))
        expected.append((len(lines), messages))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = load_chat_dataset(path)
    assert dataset.errors == []
    assert [(e.line, e.messages) for e in dataset.examples] == expected


# --- scenario.toml and eval.jsonl -----------------------------------------------------------------
def _toml(value) -> str:
    """A TOML value, strings written as the app writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return _toml_string(value)


regexes = st.text(alphabet="()[]{}*+?.|^$\\ab0,9-", max_size=12)
toml_scalars = st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "name": st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True) | toml_values,
        "title": st.text(max_size=30) | toml_values,
        "description": st.text(max_size=30),
        "system_prompt": st.text(max_size=30) | toml_values,
        "style_regex": regexes | toml_values,
        "extra": toml_values,
    },
)


def _well_formed(meta: dict, folder_name: str) -> bool:
    name = meta.get("name", folder_name)
    strings = all(
        isinstance(meta[k], str) for k in ("title", "description", "system_prompt", "style_regex") if k in meta
    )
    if not (isinstance(name, str) and re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name) and strings):
        return False
    try:
        re.compile(meta.get("style_regex") or "")
    except Exception:  # noqa: BLE001 - any failure to compile counts as not well formed
        return False
    return True


@PROPERTY
@given(meta=manifests)
@example(meta={"name": "x", "style_regex": "a{99999999999999}"})  # OverflowError from re
@example(meta={"name": "x", "style_regex": "(" * 2000 + ")" * 2000})  # RecursionError from re
def test_any_manifest_loads_or_gets_a_scenario_error(tmp_path, meta):
    folder = tmp_path / "scenario"
    folder.mkdir(exist_ok=True)
    (folder / "scenario.toml").write_text("".join(f"{_toml_string(k)} = {_toml(v)}\n" for k, v in meta.items()))
    try:
        scenario = load_scenario(folder)
    except ScenarioError as error:
        assert str(error) and not _well_formed(meta, folder.name)
    else:
        assert _well_formed(meta, folder.name) and scenario.name == meta.get("name", folder.name)
        assert scenario.title == (meta.get("title") or scenario.name)


@PROPERTY
@given(title=st.text(max_size=80), description=st.text(max_size=100), prompt=st.text(max_size=100))
@example(title="Acme\x7f HR", description="", prompt="")  # DEL is not allowed raw in TOML
def test_a_created_scenario_loads_back_as_written(tmp_path, title, description, prompt):
    try:
        scenario = create_scenario(tmp_path, title, description, set(), prompt)
    except ScenarioError:
        assert not title.strip()
    else:
        assert (scenario.title, scenario.description) == (title.strip(), description.strip())
        assert scenario.system_prompt == (prompt.strip() or "You are a helpful assistant.")


@PROPERTY
@given(data=st.binary(max_size=500) | st.text(max_size=200).map(str.encode))
@example(data=b"a = " + b"[" * 100_000)  # RecursionError from tomllib
@example(data=b"name = 'ok'\nstyle_regex = 'x{4294967296}'")
def test_any_manifest_bytes_load_or_get_a_scenario_error(tmp_path, data):
    folder = tmp_path / "scenario"
    folder.mkdir(exist_ok=True)
    (folder / "scenario.toml").write_bytes(data)
    try:
        load_scenario(folder)
    except ScenarioError as error:
        assert str(folder / "scenario.toml") in str(error)


eval_rows = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=3) | json_values,
        "question": st.text(max_size=10) | json_values,
        "kind": st.sampled_from(["answerable", "fresh", "unanswerable", "style", "other"]) | json_values,
        "must_include": st.lists(regexes | json_values, max_size=3) | json_values,
    },
)


@PROPERTY
@given(lines=st.lists(eval_rows.map(json.dumps) | st.text(max_size=20), max_size=6))
@example(lines=[json.dumps({"id": [1], "question": "q", "kind": "answerable"})])  # an unhashable id
@example(lines=[json.dumps({"id": "a", "question": "q", "kind": "style", "must_include": ["(" * 2000]})])
def test_any_eval_set_loads_or_gets_a_scenario_error(tmp_path, lines):
    folder = tmp_path / "scenario"
    folder.mkdir(exist_ok=True)
    (folder / "scenario.toml").write_text('name = "t"\n')
    (folder / "eval.jsonl").write_text("\n".join(lines), encoding="utf-8")
    try:
        questions = load_eval_questions(load_scenario(folder))
    except ScenarioError as error:
        assert all(line.startswith(str(folder / "eval.jsonl")) for line in str(error).splitlines())
    else:
        assert all(isinstance(q["question"], str) and q["kind"] in EVAL_KINDS for q in questions)


# --- the chunker ----------------------------------------------------------------------------------
def _placement(text: str, chunks: list[str], overlap: int) -> bool:
    """Whether the chunks can be placed in the text, in order (each a substring starting and ending no
    earlier than the one before), neighbours sharing at most `overlap` characters, and only whitespace
    left uncovered."""
    starts = {p for p in range(len(text) + 1) if not text[:p].strip()}  # where the first chunk may start
    previous: set[tuple[int, int]] | None = None
    for chunk in chunks:
        if previous is None:
            candidates = {p for p in starts if text.startswith(chunk, p)}
        else:
            candidates = set()
            for start, end in previous:
                gap_end = end
                while gap_end < len(text) and not text[gap_end].strip():
                    gap_end += 1
                for p in range(max(start, end - overlap), gap_end + 1):
                    if p + len(chunk) >= end and text.startswith(chunk, p):
                        candidates.add(p)
        previous = {(p, p + len(chunk)) for p in candidates}
        if not previous:
            return False
    return previous is None or any(not text[end:].strip() for _, end in previous)


words = st.lists(
    st.sampled_from(["Lumen", "bike", "e-bike", "42", " ", " ", "\n", "\n\n", ".", "Ünïcode", "\t"]), max_size=200
)
texts = words.map("".join) | st.text(max_size=400)


@PROPERTY
@given(text=texts, size=st.integers(10, 120), share=st.floats(0.0, 0.9))
@example(text="a" * 300, size=50, share=0.5)  # periodic text: many places each chunk could sit
@example(text="word " * 80, size=23, share=0.3)
# LangChain's splitter may emit a chunk wholly inside its neighbour (all of it overlap): a harmless duplicate.
@example(text="  Lumen e-bike42", size=15, share=0.5)
@example(text="e-bike  e-bike ", size=14, share=0.5)
def test_chunks_cover_the_text_deterministically_within_their_size_with_overlap(text, size, share):
    overlap = int(size * share)
    chunks = split_text(text, size, overlap)
    assert chunks == split_text(text, size, overlap)
    assert all(0 < len(c) <= size and c == c.strip() for c in chunks)
    assert _placement(text, chunks, overlap), chunks
    assert bool(chunks) == bool(text.strip())
