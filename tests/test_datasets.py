"""Fine-tuning sets: accepted formats, conversions and errors with line numbers."""

import json

import pytest

from core.training.datasets import load_chat_dataset


def _write(tmp_path, rows):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


EVERY_FORMAT = [
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    {"prompt": "c", "completion": "d"},
    {"question": "e", "answer": "f"},
    {
        "messages": [
            {"role": "system", "content": "own"},
            {"role": "user", "content": "g"},
            {"role": "assistant", "content": "h"},
        ]
    },
]


def test_every_format_becomes_a_conversation(tmp_path):
    dataset = load_chat_dataset(_write(tmp_path, EVERY_FORMAT), "SYS")
    assert dataset.errors == []
    assert [e.line for e in dataset.examples] == [1, 2, 3, 4]
    assert dataset.examples[1].messages[1:] == [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    assert len(dataset.sha256) == 64


def test_the_system_prompt_is_added_unless_an_example_has_its_own(tmp_path):
    dataset = load_chat_dataset(_write(tmp_path, EVERY_FORMAT), "SYS")
    assert [e.messages[0]["content"] for e in dataset.examples] == ["SYS", "SYS", "SYS", "own"]


def test_every_error_has_its_line(tmp_path):
    path = _write(
        tmp_path,
        [
            "{not json",
            {"messages": [{"role": "user", "content": "only a question"}]},
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
            {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "x"}]},
            {"text": "no known keys"},
        ],
    )
    errors = load_chat_dataset(path).errors
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in errors] == ["1", "2", "3", "4", "5"]
    assert "bad JSON" in errors[0] and "no assistant turn" in errors[1]
    assert "empty content" in errors[2] and "unknown role 'robot'" in errors[3]


@pytest.mark.model
def test_the_report_counts_the_set_as_the_models_tokenizer_sees_it(tmp_path, lab):
    from core.training.datasets import inspect_dataset

    pair = {"question": "Hi?", "answer": "Hello."}
    long = {"question": "Tell me everything. " * 60, "answer": "No."}
    path = _write(tmp_path, [pair, long, "{bad", pair, {"prompt": "Other?", "completion": "Yes."}])
    report = inspect_dataset(load_chat_dataset(path, "SYS"), lab.engine.tokenizer, max_seq_len=64)
    assert report.examples == 4 and len(report.lengths) == 4
    assert report.truncated == [2] and report.lengths[1] > 64
    assert report.duplicates == [[1, 4]]
    assert report.errors and report.errors[0].endswith(
        ":3: bad JSON (Expecting property name enclosed in double quotes)"
    )
    assert report.tokens == sum(min(n, 64) for n in report.lengths)
