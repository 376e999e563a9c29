"""Scores one answer to one eval question: correct, declined, in the house style, grounded, retrieval hit.

Every metric of a run is a share: a sum of numerators over a sum of denominators across questions
(`Score.parts`), so the same arithmetic serves the run's summary and the bootstrap that compares two
runs. The shortcuts, stated: correctness is "every must_include pattern matches and the answer does
not decline"; groundedness compares each claim sentence with the retrieved text by embedding
similarity and requires its figures to appear there too; a retrieval hit means the retrieved text
matches every content pattern (patterns anchored with ^ constrain the answer's form, not its facts).
"""

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from core.text.facts import extract_facts
from core.text.refusals import is_decline
from core.text.sentences import split_sentences

CONTENT_KINDS = ("answerable", "fresh", "style")  # questions with an answer to get right
GROUNDED_SIMILARITY = 0.6  # cosine of all-MiniLM-L6-v2 above which a sentence restates its source
MIN_CLAIM_WORDS = 5  # shorter sentences without a figure are greetings and sign-offs, not claims

_LEADING_FLAGS = re.compile(r"^(?:\(\?[a-zA-Z]+\)|\(\?[a-zA-Z]+:)+")  # (?i)(?s) and (?i:

# metric name -> the Score fields (numerator, denominator) it is the share of
SHARE_METRICS = {
    "accuracy": ("correct", "gradable"),
    "freshness": ("fresh_correct", "fresh"),
    "refusal": ("declined_unanswerable", "unanswerable"),
    "wrongly_declined": ("declined_answerable", "gradable"),  # a mode that declines everything scores 1.0 here
    "style": ("styled", "style_checked"),
    "groundedness": ("supported_claims", "claims"),
    "retrieval_hit_rate": ("retrieval_hit", "retrieval_checked"),
    "judge_accuracy": ("judge_correct", "judged"),
}


def matches_all(text: str, patterns: list[str]) -> bool:
    return all(re.search(pattern, text, re.IGNORECASE) for pattern in patterns)


def is_correct(text: str, patterns: list[str]) -> bool:
    """Every pattern matches and the answer does not decline: "I don't know; write to support@..." is
    not a correct answer to "what is the support address?" even though it contains it."""
    return matches_all(text, patterns) and not is_decline(text)


def content_patterns(patterns: list[str]) -> list[str]:
    """The patterns about facts: those not anchored to the start of the answer."""
    return [p for p in patterns if not _LEADING_FLAGS.sub("", p).lstrip().startswith(("^", r"\A"))]


def claim_sentences(text: str) -> list[str]:
    """The sentences that assert something: not declines, and a figure or at least MIN_CLAIM_WORDS words."""
    return [
        sentence
        for sentence in split_sentences(text)
        if not is_decline(sentence) and (extract_facts(sentence) or len(sentence.split()) >= MIN_CLAIM_WORDS)
    ]


def supported_claims(claims: list[str], sources: list[str], embed: Callable[[list[str]], list[list[float]]]) -> int:
    """How many claims a source sentence restates (cosine ≥ GROUNDED_SIMILARITY) with every figure of the
    claim present in the sources. `embed` returns unit-length vectors."""
    source_sentences = [s for text in sources for s in split_sentences(text)]
    if not claims or not source_sentences:
        return 0
    source_facts = {fact.key for text in sources for fact in extract_facts(text)}
    vectors = embed(claims + source_sentences)
    claim_vectors, source_vectors = vectors[: len(claims)], vectors[len(claims) :]
    supported = 0
    for claim, vector in zip(claims, claim_vectors, strict=True):
        similarity = max(sum(a * b for a, b in zip(vector, other, strict=True)) for other in source_vectors)
        figures_found = all(fact.key in source_facts for fact in extract_facts(claim))
        supported += similarity >= GROUNDED_SIMILARITY and figures_found
    return supported


@dataclass
class Score:
    """One answer's marks, as counts (0 or 1, or sentence counts) so that runs add up."""

    correct: int = 0
    gradable: int = 0
    fresh_correct: int = 0
    fresh: int = 0
    declined: int = 0
    declined_unanswerable: int = 0
    unanswerable: int = 0
    styled: int = 0
    style_checked: int = 0
    supported_claims: int = 0
    claims: int = 0
    retrieval_hit: int = 0
    retrieval_checked: int = 0
    judge_correct: int = 0
    judged: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def declined_answerable(self) -> int:
        """Declined a question that has an answer (derived, so runs saved before it count too)."""
        return self.declined if self.gradable else 0

    def passed(self) -> bool | None:
        """The pass/fail mark of the question: correct, or declined when it has no answer; None if ungraded."""
        if self.gradable:
            return bool(self.correct)
        if self.unanswerable:
            return bool(self.declined)
        return None


def score_answer(
    question: dict,
    text: str,
    sources: list[str] | None,
    style_regex: str | None,
    embed: Callable[[list[str]], list[list[float]]] | None,
) -> Score:
    """`sources`: the retrieved texts for RAG and hybrid, None for modes that do not retrieve."""
    kind, patterns = question["kind"], question.get("must_include") or []
    score = Score(declined=int(is_decline(text)))
    if kind in CONTENT_KINDS:
        score.gradable, score.correct = 1, int(is_correct(text, patterns))
        if kind == "fresh":
            score.fresh, score.fresh_correct = 1, score.correct
    elif kind == "unanswerable":
        score.unanswerable, score.declined_unanswerable = 1, score.declined
    if style_regex:
        score.style_checked, score.styled = 1, int(bool(re.search(style_regex, text)))
    if sources is not None:
        facts = content_patterns(patterns)
        if kind in CONTENT_KINDS and facts:
            score.retrieval_checked = 1
            score.retrieval_hit = int(matches_all("\n".join(sources), facts))
        if embed is not None:
            claims = claim_sentences(text)
            score.claims, score.supported_claims = len(claims), supported_claims(claims, sources, embed)
    return score


def share(scores: list[Score], metric: str) -> float | None:
    numerator, denominator = SHARE_METRICS[metric]
    total = sum(getattr(s, denominator) for s in scores)
    return round(sum(getattr(s, numerator) for s in scores) / total, 4) if total else None
