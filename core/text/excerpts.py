"""Sources as a reader sees them: Markdown headings and list marks turned into plain lines, and the
sentences that back an answer picked out, so a stakeholder sees which passage the answer came from."""

import re
from dataclasses import dataclass

from core.text.facts import extract_facts
from core.text.sentences import split_sentences

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_WORD = re.compile(r"[A-Za-z][\w'-]{3,}")
BACKING_SHARE = 0.5  # a sentence backs the answer when it states one of its figures or half its words


@dataclass(frozen=True)
class ExcerptLine:
    text: str
    heading: bool = False
    backs_answer: bool = False


def readable_excerpt(source: str, answer: str = "") -> list[ExcerptLine]:
    """The source's lines without Markdown marks; a heading is flagged as one, and each other sentence
    says whether it backs the answer (states one of its figures, or most of its longer words)."""
    figures = {fact.key for fact in extract_facts(answer)}
    answer_words = {w.lower() for w in _WORD.findall(answer)}
    lines = []
    for raw in source.splitlines():
        if not raw.strip():
            continue
        if _HEADING.match(raw):
            lines.append(ExcerptLine(_HEADING.sub("", raw).strip(), heading=True))
            continue
        for sentence in split_sentences(_LIST_MARK.sub("", raw)):
            lines.append(ExcerptLine(sentence, backs_answer=_backs(sentence, figures, answer_words)))
    return lines


def _backs(sentence: str, figures: set[str], answer_words: set[str]) -> bool:
    if figures & {fact.key for fact in extract_facts(sentence)}:
        return True
    words = {w.lower() for w in _WORD.findall(sentence)}
    return bool(words) and len(words & answer_words) >= BACKING_SHARE * len(words) and len(words & answer_words) >= 3
