"""'What changed' between answers: the checkable facts each answer states, and which answers state them.

A fact here is something a reader can verify against a policy: an amount of money, a number with
its unit ("30 days", "15%"), a time of day, an e-mail address, a web address or a phone number.
Spelling variants are folded together ("30-day" = "30 days", "$25.00" = "$25"), so two answers
only differ when what they claim differs. Free prose is not compared: that is what reading is for.
"""

import re
from dataclasses import dataclass

_UNIT_WORDS = (
    "percent|per cent|%|days?|business days?|working days?|weeks?|months?|years?|hours?|hrs?|minutes?|mins?|"
    "seconds?|km|kilometers?|kilometres?|miles?|mi|kg|kilograms?|lbs?|pounds?|watts?|w|wh|kwh|volts?|v|"
    "mph|km/h|times|euros?|dollars?|cents?|items?|orders?|bikes?|batteries|battery|cycles?|charges?"
)
_PATTERNS = (
    ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("web", r"(?:https?://|www\.)[^\s<>()\"']+"),
    ("phone", r"\+?\d[\d ()-]{7,}\d"),
    ("money", r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP)\b)"),
    ("time", r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)"),
    ("quantity", rf"\b\d[\d,]*(?:\.\d+)?(?:\s?-\s?|\s)?(?:{_UNIT_WORDS})(?![\w])"),
)
_FACT = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _PATTERNS), re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    kind: str
    key: str  # normalised, used to match the same fact across answers
    text: str  # as first written


def extract_facts(text: str) -> list[Fact]:
    """Facts in the order they first appear, each once."""
    found: dict[str, Fact] = {}
    for match in _FACT.finditer(text):
        kind = match.lastgroup
        written = match.group().strip().rstrip(".,;:")
        key = f"{kind}:{_normalise(kind, written)}"
        found.setdefault(key, Fact(kind, key, written))
    return list(found.values())


def _normalise(kind: str, written: str) -> str:
    value = written.lower()
    if kind == "phone":
        return re.sub(r"\D", "", value)
    if kind == "web":
        return value.removeprefix("https://").removeprefix("http://").removeprefix("www.").rstrip("/")
    if kind == "money":
        number = re.sub(r"[^\d.]", "", value)
        return _plain_number(number) + ("" if value[0] in "$€£" else re.sub(r"[\d.,\s]", "", value))
    if kind == "quantity":
        number, unit = re.match(r"([\d,.]+)[\s-]*(.*)", value).groups()
        unit = {"percent": "%", "per cent": "%"}.get(unit.strip(), unit.strip())
        unit = re.sub(r"^(business|working) ", r"\1-", unit).removesuffix("s") if unit != "%" else unit
        return f"{_plain_number(number)} {unit}"
    return re.sub(r"\s+", "", value)


def _plain_number(number: str) -> str:
    number = number.replace(",", "")
    return number.removesuffix(".00") if "." in number else number


@dataclass
class FactRow:
    fact: Fact
    present: list[bool]  # one per answer

    @property
    def shared_by_all(self) -> bool:
        return all(self.present)


def compare_facts(texts: list[str]) -> list[FactRow]:
    """Every fact stated by any answer, with which answers state it: the rarest first, facts in every answer last."""
    per_answer = [{fact.key for fact in extract_facts(text)} for text in texts]
    seen: dict[str, Fact] = {}
    for text in texts:
        for fact in extract_facts(text):
            seen.setdefault(fact.key, fact)
    rows = [FactRow(fact, [fact.key in keys for keys in per_answer]) for fact in seen.values()]
    return sorted(rows, key=lambda row: sum(row.present))  # stable: first-seen order among equals
