"""Derailment: telling, while an answer streams, that it has clearly gone off the rails, and why in plain words.

A small model sometimes stops answering and loops: the same sentence again and again, a phrase
repeated without end, or a list that repeats its own items. Left alone it runs to the token limit,
and in Compare the slowest column sets the pace for all of them. The pages stop such an answer early
and say why (core.answers.modes.AnswerStream, core.answers.compare.ComparisonStream), by this one rule
for every mode, so columns stay comparable.

Only what is clearly a loop stops an answer; a long answer is not wrong for being long. What stops it:
- a passage of 12 words or more written a second time (a paragraph said again, a list item's text
  under a new heading, "the battery the battery the battery…");
- a shorter sentence, of four words or more, written a third time;
- a list that has given two of its items a second time;
- one character 40 times in a row ("!!!!…").
What does not: a list of distinct steps, however long (a list that rambles on with new items is for
the presenter's Stop button: no rule tells it from a long list that is right); sentences that share
their opening ("The Lumen Drift costs… The Lumen Drift weighs…"); a closing sentence that restates
the answer in other words; a short detail under each of several items ("- Warranty: 2 years" under
every bike: each item's own list is a list of its own); Markdown rules and tables. Words are compared
without case and the punctuation around them; numbers count, so "RC-4031: …" and "RC-4032: …" differ.
"""

import re
from collections import Counter

REPEATING = "Stopped: it was repeating itself."
LIST_REPEATING = "Stopped: its list kept going, repeating items it had already given."

PASSAGE_WORDS = 12  # a run of this many words, written a second time
SENTENCE_REPEATS = 3  # the third time the same sentence is written
MIN_SENTENCE_WORDS = 4  # shorter ones ("Battery: 500 Wh") repeat in answers that are right
CHAR_RUN = 40  # one character this many times in a row ("!!!!…"); not those Markdown draws rules with
LIST_REPEATED_ITEMS = 2  # items a list gives a second time

_LIST_ITEM = re.compile(r"^(\s*)(?:\d+[.)]|[-*•+])\s+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")
_CHAR_RUN = re.compile(rf"([^\s\-=_*#~.|])\1{{{CHAR_RUN - 1},}}")


def derailment(text: str) -> str | None:
    """Why the text (an answer so far) has derailed, as a note for the reader; None while it has not."""
    lines = text.split("\n")  # the last one may still be being written
    if _repeats_a_passage(text.split()) or _repeats_a_sentence(lines) or _CHAR_RUN.search(text):
        return REPEATING
    if _repeated_list_items(lines[:-1]) >= LIST_REPEATED_ITEMS:
        return LIST_REPEATING
    return None


def _normal(piece: str) -> str:
    """A sentence or item as compared: no list marker, no edge punctuation, one case, single spaces."""
    piece = _LIST_ITEM.sub("", piece)
    return " ".join(_EDGE_PUNCTUATION.sub("", piece).lower().split())


def _repeats_a_sentence(lines: list[str]) -> bool:
    """A complete sentence of the prose (list items are the list rule's) written SENTENCE_REPEATS times."""
    counts: Counter = Counter()
    for number, line in enumerate(lines, 1):
        if _LIST_ITEM.match(line):
            continue
        sentences = _SENTENCE_BREAK.split(line)
        if number == len(lines):  # the text's last sentence may still be being written
            sentences = sentences[:-1]
        counts.update(_normal(sentence) for sentence in sentences)
    return any(count >= SENTENCE_REPEATS and len(s.split()) >= MIN_SENTENCE_WORDS for s, count in counts.items())


def _repeats_a_passage(words: list[str]) -> bool:
    """Some PASSAGE_WORDS words in a row appear twice (the words with a letter or digit, as compared)."""
    words = [_normal(word) for word in words[:-1] if any(c.isalnum() for c in word)]  # the last may be cut
    seen = set()
    for start in range(len(words) - PASSAGE_WORDS + 1):
        passage = tuple(words[start : start + PASSAGE_WORDS])
        if passage in seen:
            return True
        seen.add(passage)
    return False


def _repeated_list_items(lines: list[str]) -> int:
    """How many items repeat an earlier item of the same list. A list is a run of item lines at one
    indentation; a line of prose ends every list, and an item ends the lists nested deeper."""
    lists: dict[int, Counter] = {}  # indentation -> the items of the list open there
    repeats = 0
    for line in lines:
        item = _LIST_ITEM.match(line)
        if not item:
            if line.strip():
                lists.clear()
            continue
        indent = len(item.group(1).expandtabs(4))
        for deeper in [depth for depth in lists if depth > indent]:
            del lists[deeper]
        seen = lists.setdefault(indent, Counter())
        text = _normal(line)
        repeats += bool(text) and seen[text] > 0
        seen[text] += 1
    return repeats
