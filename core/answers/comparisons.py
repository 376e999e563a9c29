"""Saved comparisons: the Compare page's turns in SQLite under the browser's chat id, and the
conversation each column continues when a question follows up.

A turn is one question asked in every chosen column: its answers, the order they were shown in
(shuffled when blind), whether it followed up on the turn before, its decoding setup and its time.
It is saved once its last column has ended (a reload while it streams loses it, as on the mode
pages) and read back under the chat id in the page's address (core.answers.chats explains the ids).
Its vote is not copied here: it lives in the votes table (core.evaluation.arena), the one place the
leaderboard reads, and loading a turn reads it from there. So a blind turn reloads with its labels
hidden until it has a vote, and revealed after, and clearing the comparisons keeps the votes.

A question starts fresh unless it follows up; a follow-up continues the turn before it, and that
turn's own thread if it was a follow-up too (`thread`). A column's conversation is its exchanges in
that thread (`conversation`): what the page shows above the column's answer, and exactly what the
column was given. A blind question never follows up, and nothing follows up on a blind turn that
has no vote yet: either would show one column's earlier answers under a label and give it away.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.common.db import connect
from core.common.vocabulary import Answer


@dataclass
class ComparisonTurn:
    id: str  # the comparison id, which its vote is kept under
    question: str
    columns: list[str]  # column keys (core.answers.compare.Column.key), in the order asked
    answers: list[Answer]  # one per column, same order
    order: list[int]  # the column indices in the order shown: shuffled when blind
    blind: bool = False
    follow_up: bool = False  # it continued the conversation of the turn before it
    decoding: dict = field(default_factory=dict)  # the Decoding's fields
    wall_s: float = 0.0  # from the question to the end of the last column
    vote: str | None = None  # read from the votes table: a label ("A", ...), "tie" or "all_bad"

    @property
    def hidden(self) -> bool:
        """Its labels (and what gives them away) stay hidden: a blind turn without its vote."""
        return self.blind and self.vote is None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["answers"] = [answer.to_dict() for answer in self.answers]
        del data["vote"]  # the votes table holds it
        return data

    @classmethod
    def from_dict(cls, data: dict, vote: str | None = None) -> "ComparisonTurn":
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**{**known, "answers": [Answer.from_dict(a) for a in known["answers"]], "vote": vote})


def save_comparison(data_dir: Path, chat_id: str, scenario: str, turn: ComparisonTurn) -> None:
    """Saves a finished turn; saving the same turn again changes nothing."""
    with connect(data_dir) as db:
        db.execute(
            "INSERT OR IGNORE INTO compare_turns (comparison_id, chat_id, scenario, turn, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (turn.id, chat_id, scenario, json.dumps(turn.to_dict()), time.time()),
        )


def load_comparisons(data_dir: Path, chat_id: str, scenario: str) -> list[ComparisonTurn]:
    """The chat's turns on the Compare page of `scenario`, oldest first, each with its vote if it has one."""
    with connect(data_dir) as db:
        rows = db.execute(
            "SELECT compare_turns.turn, votes.choice FROM compare_turns"
            " LEFT JOIN votes ON votes.comparison_id = compare_turns.comparison_id"
            " WHERE compare_turns.chat_id = ? AND compare_turns.scenario = ? ORDER BY compare_turns.id",
            (chat_id, scenario),
        ).fetchall()
    return [ComparisonTurn.from_dict(json.loads(turn), vote) for turn, vote in rows]


def clear_comparisons(data_dir: Path, chat_id: str, scenario: str) -> None:
    """Deletes the chat's turns on the Compare page of `scenario`; their votes stay on the leaderboard."""
    with connect(data_dir) as db:
        db.execute("DELETE FROM compare_turns WHERE chat_id = ? AND scenario = ?", (chat_id, scenario))


def thread(turns: list[ComparisonTurn]) -> list[ComparisonTurn]:
    """The turns a question following up on `turns[-1]` continues: back to the last fresh question."""
    start = len(turns)
    while start > 0:
        start -= 1
        if not turns[start].follow_up:
            break
    return turns[start:]


def conversation(turns: list[ComparisonTurn], column: str) -> list[dict]:
    """The column's exchanges in `turns` ({"role", "content"} dicts), oldest first; turns it was not
    asked in are skipped."""
    messages = []
    for turn in turns:
        if column in turn.columns:
            answer = turn.answers[turn.columns.index(column)]
            messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": answer.text}]
    return messages


def follow_up_refusal(turns: list[ComparisonTurn], blind: bool) -> str | None:
    """Why the next question cannot follow up on the turns above, in words; None when it can."""
    if not turns:
        return "There is nothing above to follow up on yet."
    if blind:
        return "A blind question starts fresh: a conversation shown in a column would tell which answer is which."
    if turns[-1].hidden:
        return "Vote on the blind answers above first: following up would show which answer is which."
    return None
