"""Sentences: the one splitter the checks, metrics, training rules and the streaming release share (end
punctuation or a line break)."""

import re

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """The text's sentences, stripped, without empty ones. A line break ends a sentence too, so list items
    and headings count as their own sentences."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s.strip()]


def complete_sentence_ends(text: str) -> list[int]:
    """For a text still being written: where each sentence known to be complete ends (an index into
    `text`, before the break that follows it). The last sentence is complete only once a break follows."""
    return [match.start() for match in _SENTENCE_BREAK.finditer(text) if text[: match.start()].strip()]
