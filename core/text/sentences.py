"""Sentences: the one splitter the checks, metrics and training rules share (end punctuation or a line break)."""

import re

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """The text's sentences, stripped, without empty ones. A line break ends a sentence too, so list items
    and headings count as their own sentences."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s.strip()]
