"""Leaderboard from arena votes: pairwise win rates and Bradley-Terry ratings with 95% bootstrap intervals.

Each vote becomes pairwise battles between the answers shown: the chosen answer beats every other
one; "tie" and "all bad" count as a draw between every pair. Bradley-Terry strengths are fitted
by maximum likelihood, with draws as half a win each and one virtual draw per contestant against
a fixed reference (a weak prior that keeps a mode that won every vote finite). Ratings are
on the Elo scale: 1000 is the average, +400 means ten-to-one odds. Intervals resample whole votes.
"""

import math
import random
from dataclasses import asdict, dataclass

import numpy as np

from core.common.vocabulary import ADAPTER_MODES, MODE_LABELS
from core.evaluation.arena import Vote


def contestant(entry: dict, split_adapters: bool) -> str:
    """Who an answer counts for: its mode, or its mode and adapter when adapters are told apart."""
    label = MODE_LABELS.get(entry["mode"], entry["mode"])
    if split_adapters and entry["mode"] in ADAPTER_MODES and entry.get("adapter"):
        return f"{label} · {entry['adapter']}"
    return label


def battles(votes: list[Vote], split_adapters: bool = False) -> list[tuple[str, str, float]]:
    """(a, b, a's score): 1 for a win, 0.5 for a draw. Pairs of the same contestant are left out."""
    found = []
    for vote in votes:
        names = [contestant(entry, split_adapters) for entry in vote.entries]
        winner = next((i for i, entry in enumerate(vote.entries) if entry["label"] == vote.choice), None)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if names[i] == names[j]:
                    continue
                if winner is None:
                    found.append((names[i], names[j], 0.5))
                elif winner in (i, j):
                    found.append((names[winner], names[j if winner == i else i], 1.0))
    return found


def bradley_terry(games: list[tuple[str, str, float]]) -> dict[str, float]:
    """Ratings on the Elo scale, mean 1000: the maximum-likelihood fit, by Newton's method on log-strengths."""
    names = sorted({name for a, b, _ in games for name in (a, b)})
    if not names:
        return {}
    index = {name: i for i, name in enumerate(names)}
    score = np.zeros((len(names), len(names)))  # score[i, j]: points i took from j
    played = np.zeros((len(names), len(names)))
    for a, b, points in games:
        score[index[a], index[b]] += points
        score[index[b], index[a]] += 1.0 - points
        played[index[a], index[b]] += 1
        played[index[b], index[a]] += 1
    theta = np.zeros(len(names))
    for _ in range(100):
        expected = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        versus_reference = 1.0 / (1.0 + np.exp(-theta))  # the virtual draw against strength 1
        gradient = (score - played * expected).sum(axis=1) + 0.5 - versus_reference
        curvature = played * expected * (1.0 - expected)
        hessian = curvature - np.diag(curvature.sum(axis=1) + versus_reference * (1.0 - versus_reference))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    elo = 400.0 * theta / np.log(10.0)
    return {name: float(1000.0 + elo[i] - elo.mean()) for name, i in index.items()}


def win_rates(games: list[tuple[str, str, float]]) -> dict[str, float]:
    """Share of a contestant's battles won, draws counting half."""
    points: dict[str, float] = {}
    played: dict[str, int] = {}
    for a, b, score in games:
        points[a] = points.get(a, 0.0) + score
        points[b] = points.get(b, 0.0) + 1.0 - score
        played[a] = played.get(a, 0) + 1
        played[b] = played.get(b, 0) + 1
    return {name: points[name] / played[name] for name in played}


@dataclass
class Standing:
    contestant: str
    rating: float
    rating_low: float
    rating_high: float
    win_rate: float
    win_rate_low: float
    win_rate_high: float
    battles: int
    votes: int  # comparisons it appeared in
    chosen: int  # times its answer was voted best

    def to_dict(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items()}


def leaderboard(votes: list[Vote], split_adapters: bool = False, rounds: int = 500, seed: int = 0) -> list[Standing]:
    """Standings, best rating first."""
    games = battles(votes, split_adapters)
    ratings = bradley_terry(games)
    rates = win_rates(games)
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in ratings}
    generator = random.Random(seed)
    for _ in range(rounds if votes else 0):
        resampled = [votes[generator.randrange(len(votes))] for _ in votes]
        round_games = battles(resampled, split_adapters)
        round_rates = win_rates(round_games)
        for name, rating in bradley_terry(round_games).items():
            samples[name][0].append(rating)
            samples[name][1].append(round_rates[name])
    standings = []
    for name, rating in ratings.items():
        rating_samples, rate_samples = samples[name]
        appeared = [v for v in votes if any(contestant(e, split_adapters) == name for e in v.entries)]
        chosen = sum(1 for v in votes if v.winner and contestant(v.winner, split_adapters) == name)
        standings.append(
            Standing(
                contestant=name,
                rating=rating,
                rating_low=_percentile(rating_samples, 2.5, rating),
                rating_high=_percentile(rating_samples, 97.5, rating),
                win_rate=rates[name],
                win_rate_low=_percentile(rate_samples, 2.5, rates[name]),
                win_rate_high=_percentile(rate_samples, 97.5, rates[name]),
                battles=sum(1 for a, b, _ in games if name in (a, b)),
                votes=len(appeared),
                chosen=chosen,
            )
        )
    return sorted(standings, key=lambda s: s.rating, reverse=True)


def _percentile(values: list[float], percent: float, fallback: float) -> float:
    if not values:
        return fallback
    ordered = sorted(values)
    position = (len(ordered) - 1) * percent / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


FEW_VOTES = 10  # below this, the intervals say little: the summary says it is too early to tell


def plain_summary(standings: list[Standing], votes: int) -> str:
    """Which mode people preferred, and how sure the votes make it: the sentence the leaderboard opens with."""
    if len(standings) < 2:
        return "Not enough different modes have been compared yet to say which one people prefer."
    leader, runner = standings[0], standings[1]
    record = f"chosen best in {leader.chosen} of {_count(leader.votes, 'comparison')}"
    if votes < FEW_VOTES:
        return (
            f"After {_count(votes, 'vote')}, people have preferred {leader.contestant} so far ({record}), but it is "
            f"too early to tell: with fewer than {FEW_VOTES} votes any mode could still come out on top."
        )
    if leader.rating_low > runner.rating_high:
        return (
            f"People clearly preferred {leader.contestant} ({record}): even the low end of its likely range is "
            f"above every other mode's high end, {runner.contestant} next."
        )
    return (
        f"{leader.contestant} leads ({record}), but not clearly: its likely range overlaps "
        f"{runner.contestant}'s, so more votes are needed to tell them apart."
    )


def rating_domain(standings: list[Standing], margin: float = 50.0) -> tuple[int, int]:
    """The chart's rating axis: every interval, padded and rounded out to fifties, never a single point
    (one vote used to give a zero-width axis ticked at "1,000.000000")."""
    low = min((s.rating_low for s in standings), default=1000.0) - margin
    high = max((s.rating_high for s in standings), default=1000.0) + margin
    return int(math.floor(low / 50) * 50), int(math.ceil(high / 50) * 50)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
