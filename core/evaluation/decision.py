"""The decision card: from a run's numbers and the user's priorities, which mode to use and why.

Each criterion gives every mode a score from 0 to 1: the measured share for accuracy, freshness,
refusal and style; fastest ÷ this mode's median latency; cheapest ÷ this mode's cost per 1,000
questions (tokens × the prices given); and a fixed judgement for the effort of updating knowledge
(stated in EFFORT). The recommendation is the mode with the highest priority-weighted mean; ties go
to the simpler mode. Sensitivity: for each priority, the nearest weight that changes the answer.
"""

from dataclasses import dataclass, field

from core.common.vocabulary import MODE_LABELS, MODES

CRITERIA = {
    "accuracy": "Accuracy",
    "freshness": "Freshness",
    "refusal": "Refusing when unsure",
    "style": "House style",
    "latency": "Latency",
    "cost": "Cost per 1,000 questions",
    "effort": "Effort to update knowledge",
}
DEFAULT_WEIGHTS = {"accuracy": 5, "freshness": 3, "refusal": 3, "style": 2, "latency": 2, "cost": 1, "effort": 2}
MAX_WEIGHT = 10
WEIGHT_STEP = 0.5
MEASURED_SHARES = ("accuracy", "freshness", "refusal", "style")

# How easily each mode takes in new or changed knowledge: a judgement, not a measurement.
EFFORT = {
    "base": (0.0, "cannot take in new knowledge at all"),
    "rag": (1.0, "takes new knowledge as soon as a document is added or edited"),
    "hybrid": (0.8, "takes new knowledge from documents; only a change of style needs retraining"),
    "finetuned": (0.2, "needs new training examples and a retraining run for every change"),
}


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens; the defaults are a nominal figure for a small self-hosted model."""

    prompt_per_million: float = 0.05
    completion_per_million: float = 0.20

    def per_thousand_questions(self, prompt_tokens: float, completion_tokens: float) -> float:
        return 1000 * (prompt_tokens * self.prompt_per_million + completion_tokens * self.completion_per_million) / 1e6


@dataclass
class Decision:
    mode: str | None  # None when the run has no mode to recommend
    utilities: dict[str, float]  # mode -> weighted score, 0 to 1
    scores: dict[str, dict[str, float]]  # criterion -> mode -> score, 0 to 1
    values: dict[str, dict[str, str]]  # criterion -> mode -> the measured figure, in words
    reasons: list[str] = field(default_factory=list)
    flips: list[str] = field(default_factory=list)


def criterion_scores(metrics: dict[str, dict], prices: Prices) -> tuple[dict, dict]:
    """(criterion -> mode -> score, criterion -> mode -> figure in words) for the modes the run measured.
    A criterion the run cannot score for every mode (e.g. no fresh questions) is left out."""
    modes = [m for m in MODES if m in metrics]
    scores: dict[str, dict[str, float]] = {}
    values: dict[str, dict[str, str]] = {}
    for criterion in MEASURED_SHARES:
        shares = {m: metrics[m].get(criterion) for m in modes}
        if modes and all(v is not None for v in shares.values()):
            scores[criterion] = shares
            values[criterion] = {m: f"{v:.0%}" for m, v in shares.items()}
    latency = {m: metrics[m].get("latency_p50_s") for m in modes}
    if modes and all(v for v in latency.values()):
        scores["latency"] = {m: min(latency.values()) / v for m, v in latency.items()}
        values["latency"] = {m: f"{v:.1f} s" for m, v in latency.items()}
    costs = {
        m: prices.per_thousand_questions(metrics[m].get("prompt_tokens") or 0, metrics[m].get("completion_tokens") or 0)
        for m in modes
    }
    if modes:
        cheapest = min(costs.values())
        scores["cost"] = {m: (cheapest / v if v else 1.0) for m, v in costs.items()}
        values["cost"] = {m: f"${v:.3f}" for m, v in costs.items()}
        scores["effort"] = {m: EFFORT[m][0] for m in modes}
        values["effort"] = {m: EFFORT[m][1] for m in modes}
    return scores, values


def _utilities(scores: dict, weights: dict[str, float]) -> dict[str, float]:
    used = {c: weights.get(c, 0) for c in scores if weights.get(c, 0) > 0}
    total = sum(used.values())
    modes = next(iter(scores.values())).keys() if scores else []
    return {m: (sum(w * scores[c][m] for c, w in used.items()) / total if total else 0.0) for m in modes}


def _winner(utilities: dict[str, float]) -> str | None:
    # highest first; among equals the simpler mode (MODES order) wins
    return max(utilities, key=lambda m: (round(utilities[m], 9), -MODES.index(m)), default=None)


def recommend(metrics: dict[str, dict], weights: dict[str, float], prices: Prices = Prices()) -> Decision:
    scores, values = criterion_scores(metrics, prices)
    utilities = _utilities(scores, weights)
    mode = _winner(utilities)
    decision = Decision(mode, {m: round(u, 4) for m, u in utilities.items()}, scores, values)
    if mode is None or not any(weights.get(c, 0) > 0 for c in scores):
        decision.mode = None
        decision.reasons = ["Give at least one priority a weight above zero."] if mode else []
        return decision
    decision.reasons = _reasons(mode, utilities, scores, values, weights)
    decision.flips = _flips(mode, scores, weights)
    return decision


def _reasons(mode, utilities, scores, values, weights) -> list[str]:
    """Plain words from the numbers: what puts the winner ahead of the runner-up, and what it costs."""
    label = MODE_LABELS[mode]
    others = [m for m in utilities if m != mode]
    if not others:
        return [f"{label} is the only mode in this run."]
    runner_up = max(others, key=lambda m: utilities[m])
    other = MODE_LABELS[runner_up]
    gaps = sorted(
        ((weights.get(c, 0) * (scores[c][mode] - scores[c][runner_up]), c) for c in scores if weights.get(c, 0) > 0),
        reverse=True,
    )
    reasons = [
        f"{label} scores {utilities[mode]:.0%} on your priorities, ahead of {other} at {utilities[runner_up]:.0%}."
    ]
    for gap, criterion in gaps:
        if gap > 0:
            reasons.append(
                f"{CRITERIA[criterion]}: {label} {values[criterion][mode]} against {other} {values[criterion][runner_up]}."
            )
    for gap, criterion in reversed(gaps):
        if gap < 0:
            reasons.append(
                f"It gives up {CRITERIA[criterion].lower()}: {values[criterion][mode]} against "
                f"{other} {values[criterion][runner_up]}."
            )
    return reasons


def _flips(mode: str, scores: dict, weights: dict[str, float]) -> list[str]:
    """For each priority: the nearest weight (others unchanged) at which another mode wins."""
    flips = []
    steps = [i * WEIGHT_STEP for i in range(int(MAX_WEIGHT / WEIGHT_STEP) + 1)]
    for criterion in scores:
        current = weights.get(criterion, 0)
        for weight in sorted(steps, key=lambda w: abs(w - current)):
            if weight == current or not any({**weights, criterion: weight}.get(c, 0) > 0 for c in scores):
                continue
            winner = _winner(_utilities(scores, {**weights, criterion: weight}))
            if winner is not None and winner != mode:
                direction = "Raising" if weight > current else "Lowering"
                flips.append(
                    f"{direction} {CRITERIA[criterion].lower()} from {current:g} to {weight:g} "
                    f"would recommend {MODE_LABELS[winner]}."
                )
                break
        else:
            flips.append(f"No weight of {CRITERIA[criterion].lower()} alone changes the recommendation.")
    return flips
