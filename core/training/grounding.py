"""Context-aware training data: part of a plain question-answer set rewritten into the hybrid prompt.

An adapter trained only on plain question -> answer pairs learns the answers by heart and then
overrides the sources in hybrid mode. So, for a share of the examples, the question is sent to the
scenario's knowledge base exactly as hybrid would send it, and the example is rewritten according to
what came back:

- a retrieved passage states the answer (every fact, name and most words of it): the example is kept
  with those sources (the adapter learns to copy from them in the house style); every other one of
  these has one number changed in both passage and answer, so the sources, not memory, decide;
- for every other one, passages that clearly don't answer it (other documents, none of the answer's
  figures, few of its words): a decline in the house style (the adapter learns to say so when the
  sources don't answer);
- the answer is itself a decline: kept with the sources retrieved;
- a passage says the same thing with other figures (the set is older than the documents: "free over
  $50" where the handbook now says $75): the answer is updated to the passage's figures and kept with
  the sources, so the adapter learns that the sources overrule what it memorised;
- nothing retrieved supports the answer otherwise (retrieval missed, or it changed beyond figures):
  left plain, since training it against the sources would teach the adapter to ignore them.

The result is a JSONL set in the Lab's own format (lines with "context"), which `core.training.datasets`
renders through the grounded prompt. It is built in the app's process, which owns the knowledge base.
"""

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.text.facts import extract_facts
from core.text.refusals import decline_reply, house_style, is_decline
from core.text.sentences import split_sentences
from core.training.datasets import Example, load_chat_dataset

_WORD = re.compile(r"[A-Za-z][\w'-]+")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w-]+")  # capitalised, not at a sentence start
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_STOP = set(
    [
        "about",
        "after",
        "again",
        "also",
        "been",
        "before",
        "being",
        "both",
        "could",
        "does",
        "doing",
        "from",
        "have",
        "having",
        "here",
        "into",
        "just",
        "more",
        "most",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "you're",
        "we're",
        "our",
        "ours",
    ]
)


@dataclass
class GroundingReport:
    selected: int = 0  # examples the share picked
    supported: int = 0  # kept with their sources (including changed-number copies)
    changed_number: int = 0
    updated: int = 0  # stale answers brought up to the sources' figures
    declines: int = 0  # new decline examples (sources without the answer)
    kept_declines: int = 0  # examples that already declined
    left_plain: list[str] = field(default_factory=list)  # questions whose sources don't support the answer
    no_sources: int = 0  # nothing retrieved above the minimum score: hybrid would not ask the model

    @property
    def grounded(self) -> int:
        return self.supported + self.updated + self.declines + self.kept_declines

    def to_dict(self) -> dict:
        return {**asdict(self), "grounded": self.grounded}

    def summary(self) -> str:
        return (
            f"{self.grounded} grounded examples from {self.selected} picked: {self.supported} answered from their "
            f"sources ({self.changed_number} with a changed number), {self.updated} updated to the sources' figures, "
            f"{self.declines} new declines, "
            f"{self.kept_declines} declines kept; {len(self.left_plain)} left plain (sources don't state the answer), "
            f"{self.no_sources} with no source above the minimum score."
        )


def _content_words(text: str, ignore: set[str]) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) > 3 and w.lower() not in _STOP | ignore}


def supports(passage: str, answer: str, ignore: set[str] = frozenset()) -> bool:
    """Does the passage state the answer? Every fact and proper name in it, and most of its words.
    `ignore` holds house-style words (greeting, sign-off) that no passage needs to contain."""
    facts = {f.key for f in extract_facts(answer)}
    if facts - {f.key for f in extract_facts(passage)} or _plain_numbers(answer) - _plain_numbers(passage):
        return False  # every figure, and every bare number ("500 full charge cycles"), must be in the passage
    lowered = passage.lower()
    names = {n.lower() for n in _NAME.findall(answer)} - ignore
    if any(not re.search(rf"\b{re.escape(n)}\b", lowered) for n in names):
        return False
    words = _content_words(answer, ignore)
    return not words or len(words & _content_words(passage, set())) / len(words) >= 0.6


def updated_to_passage(passage: str, answer: str, ignore: set[str] = frozenset()) -> str | None:
    """The answer with its figures replaced by the passage's, when one passage sentence says the same
    thing with other figures ("free on orders over $50" -> "over $75"), else None. Each figure the
    passage lacks takes the number of the next figure of the same kind and unit in that sentence; a
    bare number ("500 full charge cycles") takes the sentence's next number the answer doesn't use."""
    known = {f.key for f in extract_facts(passage)}
    answer_facts = extract_facts(answer)
    stale = [f for f in answer_facts if f.kind in ("money", "quantity") and f.key not in known]
    if len(stale) < len([f for f in answer_facts if f.key not in known]):
        return None  # only money and quantities are updated; any other unknown figure rules the passage out
    passage_numbers = _plain_numbers(passage)
    for sentence in split_sentences(passage):
        fresh = [f for f in extract_facts(sentence) if f.key not in {g.key for g in answer_facts}]
        updated = answer
        for fact in stale:
            same = next((f for f in fresh if f.kind == fact.kind and _unit(f) == _unit(fact)), None)
            if same is None:
                break
            fresh.remove(same)
            updated = updated.replace(fact.text, fact.text.replace(_number(fact), _number(same)), 1)
        else:
            used = _plain_numbers(updated)
            missing = [n for n in _NUMBER.findall(updated) if _plain(n) not in passage_numbers]
            spare = [n for n in _NUMBER.findall(sentence) if _plain(n) not in used]
            if updated == answer and not missing or len(spare) < len(missing):
                continue
            for old, new in zip(missing, spare, strict=False):
                updated = re.sub(rf"(?<![\d,.]){re.escape(old)}(?!\d|,\d)", new, updated, count=1)
            # The sentence states the updated answer, and is mostly about what the answer is about.
            sentence_words = _content_words(sentence, ignore)
            about_same = 3 * len(sentence_words & _content_words(updated, ignore)) >= 2 * len(sentence_words)
            if about_same and supports(sentence, updated, ignore):
                return updated
    return None


def _plain(number: str) -> str:
    plain = number.replace(",", "")
    return plain.removesuffix(".00") if "." in plain else plain


def _plain_numbers(text: str) -> set[str]:
    return {_plain(n) for n in _NUMBER.findall(text)}


def _number(fact) -> str:
    return _NUMBER.search(fact.text).group()


def _unit(fact) -> str:
    return fact.key.split(" ", 1)[1] if fact.kind == "quantity" else fact.kind


def _changed_number(written: str, rng: random.Random) -> str:
    """Another plausible value in the same format: 1,499 -> 1,799; 30 -> 41; 2.5 -> 3.1."""
    value = float(written.replace(",", ""))
    factor = rng.choice([rng.uniform(0.55, 0.85), rng.uniform(1.2, 1.6)])
    if "." in written:
        decimals = len(written.split(".")[1])
        new = f"{value * factor:.{decimals}f}"
    else:
        new = str(max(1, round(value * factor)))
        new = new if new != written.replace(",", "") else str(int(new) + 1)
        if "," in written:
            new = f"{int(new):,}"
    return new


def with_changed_number(passage: str, answer: str, rng: random.Random) -> tuple[str, str] | None:
    """The passage and answer with one number of the answer's facts changed in both, or None."""
    for fact in extract_facts(answer):
        if fact.kind not in ("money", "quantity"):
            continue
        number = _NUMBER.search(fact.text)
        pattern = re.compile(rf"(?<![\d,.]){re.escape(number.group())}(?![\d]|,\d)")
        if number and pattern.search(passage):
            new = _changed_number(number.group(), rng)
            return pattern.sub(new, passage), pattern.sub(new, answer)
    return None


def _question_and_answer(example: Example) -> tuple[str, str] | None:
    if example.has_context:
        return None  # already in the grounded prompt
    turns = [m for m in example.messages if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"]:
        return None  # multi-turn examples stay plain: hybrid retrieves for one question
    return turns[0]["content"], turns[1]["content"]


def add_context(
    examples: list[Example],
    search: Callable[[str, int], list],
    k: int,
    share: float,
    seed: int,
) -> tuple[list[dict], GroundingReport]:
    """Training rows ({"messages"}, plus "context" where rewritten) for the examples. `search(question, n)`
    returns the n best passages (with .name and .text) as hybrid retrieves them; hybrid shows k."""
    rng = random.Random(seed)
    report = GroundingReport()
    pairs = [_question_and_answer(e) for e in examples]
    answers = [pair[1] for pair in pairs if pair]
    opening, closing = house_style(answers)
    style_words = {w.lower() for w in _WORD.findall(f"{opening} {closing}")}
    decline = decline_reply(answers)
    candidates = [i for i, pair in enumerate(pairs) if pair]
    picked = set(rng.sample(candidates, round(len(candidates) * share)))
    report.selected = len(picked)

    def stale_update(example: Example, answer: str, found: list) -> dict | None:
        """The example updated to the sources' figures, when the answer is stale (no passage backs it)."""
        if any(supports(s.text, answer, style_words) for s in found):
            return None
        shown = found[:k]
        updated = next((u for s in shown if (u := updated_to_passage(s.text, answer, style_words))), None)
        if updated is None:
            return None
        report.updated += 1
        return _grounded(example, updated, shown)

    rows: list[dict] = []
    for index, example in enumerate(examples):
        plain = {"messages": example.messages}
        if index not in picked:
            rows.append(plain)
            # Every stale example also gets its updated copy, picked or not: as many grounded rows as
            # plain ones state the old figure, so the sources can overrule what those make it memorise.
            if pairs[index] and not is_decline(pairs[index][1]):
                question, answer = pairs[index]
                if extract_facts(answer) and (update := stale_update(example, answer, search(question, k + 4))):
                    rows.append(update)
            continue
        question, answer = pairs[index]
        found = search(question, k + 4)
        shown = found[:k]
        if not shown:
            report.no_sources += 1
            rows.append(plain)
        elif is_decline(answer):
            report.kept_declines += 1
            rows.append(_grounded(example, answer, shown))
        elif not (backing := [s for s in shown if supports(s.text, answer, style_words)]):
            if update := stale_update(example, answer, found):
                rows.append(update)
            else:
                report.left_plain.append(question)
            rows.append(plain)
        else:
            report.supported += 1
            context, target = [_Passage(s.name, s.text) for s in shown], answer
            if report.supported % 2 == 0 and (changed := with_changed_number(backing[0].text, answer, rng)):
                context[shown.index(backing[0])] = _Passage(backing[0].name, changed[0])
                target = changed[1]
                report.changed_number += 1
            rows.append(_grounded(example, target, context))
            without = _unrelated(search(question, 3 * k + 4), backing, answer, style_words)[:k]
            if without and report.supported % 2 == 1:
                report.declines += 1
                rows.append(_grounded(example, decline, without))
    return rows, report


def _unrelated(found: list, backing: list, answer: str, style_words: set[str]) -> list:
    """The retrieved passages that clearly don't answer: from other documents than the backing ones,
    sharing no figure and few words with the answer. A decline taught on a near miss (another chunk of
    the same page, a passage that words the answer differently) teaches the adapter to decline
    answerable questions, so only clear cases become decline examples."""
    documents = {s.name for s in backing}
    figures = {f.key for f in extract_facts(answer)} | _plain_numbers(answer)
    words = _content_words(answer, style_words)
    return [
        s
        for s in found
        if s.name not in documents
        and not figures & ({f.key for f in extract_facts(s.text)} | _plain_numbers(s.text))
        and 4 * len(words & _content_words(s.text, set())) <= len(words)
    ]


@dataclass(frozen=True)
class _Passage:
    name: str
    text: str


def _grounded(example: Example, answer: str, sources: list) -> dict:
    messages = [m for m in example.messages if m["role"] != "assistant"] + [{"role": "assistant", "content": answer}]
    return {"messages": messages, "context": [{"name": s.name, "text": s.text} for s in sources]}


def prepare_training_set(
    dataset_path: Path, system_prompt: str, search, k: int, share: float, seed: int, out_dir: Path
) -> tuple[Path, GroundingReport]:
    """Writes the context-aware version of a training set under out_dir (named by its content) and
    says what was rewritten. Raises ValueError when the set has errors."""
    dataset = load_chat_dataset(Path(dataset_path), system_prompt)
    if dataset.errors:
        raise ValueError("The training set has errors:\n" + "\n".join(dataset.errors[:20]))
    rows, report = add_context(dataset.examples, search, k, share, seed)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path = Path(out_dir) / f"context-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path, report


def source_metadata(source: Path, trained_on: Path) -> dict:
    """What an adapter records about its data: the set the user chose (path and SHA-256) and, when the
    set trained on was derived from it, that file and what context-aware training rewrote."""
    source, trained_on = Path(source), Path(trained_on)
    meta = {"dataset": str(source), "dataset_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    if trained_on.resolve() != source.resolve():
        meta["trained_on"] = str(trained_on)
        sidecar = trained_on.with_suffix(".json")
        if sidecar.exists():
            meta["context"] = json.loads(sidecar.read_text())
    return meta
