"""Declines: telling an answer that refuses ("I don't know", "that isn't in the sources") from one that answers.

Used to score refusal on unanswerable questions and to build the decline examples that context-aware
training teaches. A decline is recognised by any of several phrasings, not by one fixed sentence, and
only in the answer's own voice and before it states a figure: "I can't find" declines, "you can't
return a bike after 45 days" does not.
"""

import re

from core.text.facts import extract_facts

_DECLINE_PATTERNS = (
    r"\bi (?:do not|don't|dont) (?:know|have (?:any |enough |that |the |specific )?(?:information|info|details|data|an answer))",
    r"\bi (?:can ?not|can't|cant|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:answer|find|say|tell|help with|provide|confirm|see|locate)",
    r"\bi (?:could ?not|couldn't|did not|didn't) find\b",
    r"\bi(?: am|'m) (?:not sure|unsure|afraid i)",
    r"\bi(?: am|'m) sorry,? (?:but )?(?:i|that|this|there)",
    r"\bno (?:information|details|mention|answer)\b.{0,40}\b(?:sources?|documents?|knowledge base|handbook|provided)",
    r"\b(?:sources?|documents?|knowledge base|handbook|context)\b.{0,40}\b(?:do(?:es)? not|don't|doesn't) "
    r"(?:contain|mention|say|include|cover|answer|provide|state)",
    r"\b(?:is|are) not (?:in|covered by|mentioned in) (?:the|my|our) (?:sources?|documents?|knowledge base|handbook)",
    r"\bnot (?:able|possible) (?:for me )?to answer\b",
    r"\bcan't answer that from\b",
)
_DECLINE = re.compile("|".join(f"(?:{p})" for p in _DECLINE_PATTERNS), re.IGNORECASE | re.DOTALL)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FIGURES = ("money", "quantity", "time")


def is_decline(text: str) -> bool:
    """True when the answer declines in its first three sentences (a greeting may come first) before
    stating any figure of its own: "It covers 800 cycles. I don't know of exceptions" answers."""
    opening = " ".join(_SENTENCE.split(text.translate(_QUOTES).strip())[:3])
    found = _DECLINE.search(opening)
    return bool(found) and not any(f.kind in _FIGURES for f in extract_facts(opening[: found.start()]))


def house_style(answers: list[str]) -> tuple[str, str]:
    """The opening and closing sentences most answers share ("Hello from Lumen Care!", "Ride on!"), or ""."""

    def common(pick) -> str:
        counts: dict[str, int] = {}
        for answer in answers:
            parts = _SENTENCE.split(answer.strip())
            if len(parts) > 1:
                counts[pick(parts)] = counts.get(pick(parts), 0) + 1
        best = max(counts, key=counts.get, default="")
        return best if answers and counts.get(best, 0) >= len(answers) / 2 else ""

    return common(lambda parts: parts[0]), common(lambda parts: parts[-1])


def decline_reply(answers: list[str]) -> str:
    """How this dataset declines: its most frequent decline, else a plain one in its house style."""
    declines = [a.strip() for a in answers if is_decline(a)]
    if declines:
        return max(set(declines), key=lambda a: (declines.count(a), a))
    opening, closing = house_style(answers)
    middle = "I don't know: the sources I have don't answer that."
    return " ".join(part for part in (opening, middle, closing) if part)
