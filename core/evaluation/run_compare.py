"""Two evaluation runs compared: every metric's change per mode, with a bootstrap 95% interval.

Questions are resampled with replacement (percentile bootstrap). When both runs asked the same
questions, they are resampled together (paired), which is much tighter than resampling each run
on its own; otherwise each run is resampled separately. A difference is called real when its
interval leaves out zero. Latency is not bootstrapped here: it depends on the machine's load.
"""

from dataclasses import dataclass

import numpy as np

from core.evaluation.metrics import SHARE_METRICS, Score

BOOTSTRAP_SAMPLES = 2000


@dataclass
class MetricChange:
    mode: str
    metric: str
    before: float
    after: float
    low: float  # 95% interval of after - before
    high: float
    paired: bool
    questions: int  # questions the "after" figure counts

    @property
    def difference(self) -> float:
        return round(self.after - self.before, 4)

    @property
    def real(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "metric": self.metric,
            "before": self.before,
            "after": self.after,
            "difference": self.difference,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "real": self.real,
            "paired": self.paired,
            "questions": self.questions,
        }


def _scores(run: dict, mode: str) -> dict[str, Score]:
    return {row["id"]: Score(**row["answers"][mode]["score"]) for row in run["questions"] if mode in row["answers"]}


def _parts(scores: list[Score], metric: str) -> tuple[np.ndarray, np.ndarray]:
    numerator, denominator = SHARE_METRICS[metric]
    return (
        np.array([getattr(s, numerator) for s in scores], dtype=float),
        np.array([getattr(s, denominator) for s in scores], dtype=float),
    )


def _resampled_share(numerators: np.ndarray, denominators: np.ndarray, picks: np.ndarray) -> np.ndarray:
    totals = denominators[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, numerators[picks].sum(axis=1) / totals, np.nan)


def compare_runs(before: dict, after: dict, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> list[MetricChange]:
    """Every (mode, metric) both runs measured, in mode then metric order."""
    rng = np.random.default_rng(seed)
    changes = []
    for mode in [m for m in after["modes"] if m in before["modes"]]:
        scores_before, scores_after = _scores(before, mode), _scores(after, mode)
        common = [qid for qid in scores_after if qid in scores_before]
        paired = len(common) == len(scores_after) == len(scores_before)
        ids_before = common if paired else list(scores_before)
        ids_after = common if paired else list(scores_after)
        picks_after = rng.integers(0, len(ids_after), (samples, len(ids_after)))
        picks_before = picks_after if paired else rng.integers(0, len(ids_before), (samples, len(ids_before)))
        for metric in SHARE_METRICS:
            num_b, den_b = _parts([scores_before[q] for q in ids_before], metric)
            num_a, den_a = _parts([scores_after[q] for q in ids_after], metric)
            if not den_b.sum() or not den_a.sum():
                continue
            differences = _resampled_share(num_a, den_a, picks_after) - _resampled_share(num_b, den_b, picks_before)
            low, high = np.nanpercentile(differences, [2.5, 97.5])
            changes.append(
                MetricChange(
                    mode=mode,
                    metric=metric,
                    before=round(num_b.sum() / den_b.sum(), 4),
                    after=round(num_a.sum() / den_a.sum(), 4),
                    low=round(float(low), 4),
                    high=round(float(high), 4),
                    paired=paired,
                    questions=int((den_a > 0).sum()),
                )
            )
    return changes
