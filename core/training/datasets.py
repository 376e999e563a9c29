"""Reads fine-tuning sets: OpenAI chat lines ({"messages": [...]}), or prompt/completion and question/answer pairs,
and reports on a set before training (errors by line, token lengths, truncation, duplicates).

A line may also carry "context": a list of source texts (or {"name", "text"} objects). Such an
example is rendered with the grounded prompt that RAG and hybrid use, its last user turn as the
question, so the adapter also learns to answer from sources in the house style.
"""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from core.answers.prompts import ContextSource, grounded_messages
from core.common.scenario import Report, read_jsonl

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    line: int
    messages: list[dict]  # {"role", "content"}, the system prompt included, rendered as training sees it
    has_context: bool = False  # came with its own "context" (already in the grounded prompt)


@dataclass
class ChatDataset:
    examples: list[Example] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "FILE:LINE: what is wrong"
    sha256: str = ""


def _as_messages(row: dict) -> list[dict] | str:
    """The row as chat messages, or a message saying why it cannot be one."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            return "messages must be a non-empty list"
        return messages
    for ask, reply in (("prompt", "completion"), ("question", "answer")):
        if ask in row or reply in row:
            return [{"role": "user", "content": row.get(ask)}, {"role": "assistant", "content": row.get(reply)}]
    return "expected 'messages', 'prompt'/'completion' or 'question'/'answer'"


def _problem(messages: list) -> str | None:
    for message in messages:
        if not isinstance(message, dict):
            return "each message must be an object with role and content"
        if message.get("role") not in ROLES:
            return f"unknown role {message.get('role')!r}"
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            return f"empty content in a {message['role']} message"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant turn to learn from"
    return None


def _context(row: dict) -> list[ContextSource] | str | None:
    if "context" not in row:
        return None
    items = row["context"]
    if not isinstance(items, list) or not items:
        return "context must be a non-empty list of source texts"
    sources = []
    for number, item in enumerate(items, 1):
        if isinstance(item, str) and item.strip():
            sources.append(ContextSource(name=f"source {number}", text=item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
            sources.append(ContextSource(name=str(item.get("name") or f"source {number}"), text=item["text"]))
        else:
            return f"context item {number} must be a non-empty string or {{name, text}}"
    return sources


def _grounded(messages: list[dict], sources: list[ContextSource], system_prompt: str | None) -> list[dict] | str:
    """Renders a [system?, user, assistant] example through the grounded prompt."""
    turns = [m for m in messages if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"]:
        return "an example with context must be one user turn and one assistant turn"
    system = next((m["content"] for m in messages if m["role"] == "system"), system_prompt or "")
    return grounded_messages(system, turns[0]["content"], sources) + [turns[1]]


def load_chat_dataset(path: Path, system_prompt: str | None = None) -> ChatDataset:
    """Parses every line; the system prompt is added where an example has none, as at answer time."""
    report = Report()
    dataset = ChatDataset(sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest())
    for number, row in read_jsonl(Path(path), report):
        messages = _as_messages(row)
        problem = messages if isinstance(messages, str) else _problem(messages)
        if problem:
            report.add(f"{path}:{number}", problem)
            continue
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        sources = _context(row)
        if isinstance(sources, str):
            report.add(f"{path}:{number}", sources)
            continue
        if sources:
            messages = _grounded(messages, sources, system_prompt)
            if isinstance(messages, str):
                report.add(f"{path}:{number}", messages)
                continue
        elif system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system_prompt})
        dataset.examples.append(Example(number, messages, has_context=bool(sources)))
    if not dataset.examples and not report.problems:
        report.add(str(path), "no examples")
    dataset.errors = report.problems
    return dataset


@dataclass
class DatasetReport:
    """What the fine-tuning page shows before a run: enough to fix a set before spending minutes on it."""

    examples: int
    lengths: list[int]  # tokens per example, as trained
    max_seq_len: int
    truncated: list[int]  # line numbers of examples longer than max_seq_len
    duplicates: list[list[int]]  # groups of line numbers with identical examples
    errors: list[str]

    @property
    def tokens(self) -> int:
        return sum(min(length, self.max_seq_len) for length in self.lengths)


def inspect_dataset(dataset: ChatDataset, tokenizer, max_seq_len: int) -> DatasetReport:
    from core.training.finetune import tokenize_example  # the exact token count training will see

    lengths = [len(tokenize_example(tokenizer, e.messages, 10**6)[0]) for e in dataset.examples]
    same: dict[str, list[int]] = defaultdict(list)
    for example in dataset.examples:
        same[json.dumps(example.messages, sort_keys=True)].append(example.line)
    return DatasetReport(
        examples=len(dataset.examples),
        lengths=lengths,
        max_seq_len=max_seq_len,
        truncated=[e.line for e, n in zip(dataset.examples, lengths, strict=True) if n > max_seq_len],
        duplicates=[lines for lines in same.values() if len(lines) > 1],
        errors=dataset.errors,
    )


def save_upload(data: bytes, data_dir: Path) -> Path:
    """Keeps an uploaded set under DATA/datasets/SHA.jsonl (content-addressed) for the job that trains on it."""
    folder = Path(data_dir) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
    if not path.exists():
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.replace(path)
    return path
