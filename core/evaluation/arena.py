"""The blind arena: answers shown under letters in a shuffled order, one vote per comparison, kept in SQLite.

A vote stores everything needed to audit it later: the question, every answer as shown (letter,
mode, adapter and its version, text), the scenario, the model, the decoding setup and the time.
"""

import json
import random
import sqlite3
import string
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.common.db import connect

TIE = "tie"
ALL_BAD = "all_bad"
CHOICE_LABELS = {TIE: "Tie", ALL_BAD: "All bad"}


class AlreadyVoted(ValueError):
    """This comparison already has its vote."""


def new_comparison_id() -> str:
    return uuid.uuid4().hex


def blind_order(comparison_id: str, count: int) -> list[int]:
    """The column indices in the order they are shown: shuffled, but the same on every rerun of a page."""
    order = list(range(count))
    random.Random(comparison_id).shuffle(order)
    return order


def letters(count: int) -> list[str]:
    return list(string.ascii_uppercase[:count])


@dataclass
class Vote:
    comparison_id: str
    scenario: str
    question: str
    model: str
    decoding: dict
    entries: list[dict]  # in the order shown; each has label, column, mode, adapter, adapter_version, text
    choice: str  # an entry's label, TIE or ALL_BAD
    created_at: float = field(default_factory=time.time)

    @property
    def winner(self) -> dict | None:
        return next((e for e in self.entries if e["label"] == self.choice), None)

    def to_dict(self) -> dict:
        return asdict(self)


def record_vote(data_dir: Path, vote: Vote) -> None:
    labels = {entry["label"] for entry in vote.entries}
    if len(vote.entries) < 2:
        raise ValueError("A vote needs at least two answers.")
    if vote.choice not in labels | {TIE, ALL_BAD}:
        raise ValueError(f"Unknown choice {vote.choice!r}.")
    try:
        with connect(data_dir) as db:
            db.execute(
                "INSERT INTO votes (comparison_id, scenario, question, model, decoding, entries, choice, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vote.comparison_id,
                    vote.scenario,
                    vote.question,
                    vote.model,
                    json.dumps(vote.decoding),
                    json.dumps(vote.entries),
                    vote.choice,
                    vote.created_at,
                ),
            )
    except sqlite3.IntegrityError as error:
        raise AlreadyVoted("This comparison already has a vote.") from error


def list_votes(data_dir: Path, scenario: str | None = None) -> list[Vote]:
    query = "SELECT * FROM votes" + (" WHERE scenario = ?" if scenario else "") + " ORDER BY created_at, id"
    with connect(data_dir) as db:
        rows = db.execute(query, (scenario,) if scenario else ()).fetchall()
    return [
        Vote(
            comparison_id=row["comparison_id"],
            scenario=row["scenario"],
            question=row["question"],
            model=row["model"],
            decoding=json.loads(row["decoding"]),
            entries=json.loads(row["entries"]),
            choice=row["choice"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


def vote_rows(votes: list[Vote]) -> list[dict]:
    """One flat row per shown answer, for CSV export."""
    rows = []
    for vote in votes:
        for entry in vote.entries:
            rows.append(
                {
                    "comparison_id": vote.comparison_id,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(vote.created_at)),
                    "scenario": vote.scenario,
                    "model": vote.model,
                    "decoding": json.dumps(vote.decoding),
                    "question": vote.question,
                    "label": entry["label"],
                    "mode": entry["mode"],
                    "adapter": entry.get("adapter") or "",
                    "adapter_version": entry.get("adapter_version") or "",
                    "answer": entry["text"],
                    "choice": vote.choice,
                    "chosen": vote.choice == entry["label"],
                }
            )
    return rows
