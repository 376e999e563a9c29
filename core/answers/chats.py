"""Saved chats in SQLite: each mode page's conversation under a chat id, so a restart loses no turn.

The chat id is a random token the browser keeps in its address (`?chat=...`): reloading the page, or
reconnecting after the server restarted, finds the conversation again. Whoever has the address can
read that chat, as with any shared link; the ids are long enough not to be guessed.
"""

import json
import re
import secrets
import time
from pathlib import Path

from core.common.db import connect
from core.common.vocabulary import Answer

_CHAT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_chat_id() -> str:
    return secrets.token_urlsafe(16)


def is_chat_id(value: object) -> bool:
    """True for an id new_chat_id could have made: anything else in an address is ignored."""
    return isinstance(value, str) and bool(_CHAT_ID.fullmatch(value))


def load_turns(data_dir: Path, chat_id: str, scenario: str, page: str) -> list[dict]:
    """The conversation, oldest first: {"role", "content"}, and "answer" (an Answer) on the model's turns."""
    with connect(data_dir) as db:
        rows = db.execute(
            "SELECT role, content, answer FROM chat_turns WHERE chat_id = ? AND scenario = ? AND page = ? ORDER BY id",
            (chat_id, scenario, page),
        ).fetchall()
    turns = []
    for role, content, answer in rows:
        turn = {"role": role, "content": content}
        if answer:
            turn["answer"] = Answer.from_dict(json.loads(answer))
        turns.append(turn)
    return turns


def save_exchange(data_dir: Path, chat_id: str, scenario: str, page: str, question: str, answer: Answer) -> None:
    """The question and its answer, in one transaction: a chat never holds a question without its answer."""
    now = time.time()
    with connect(data_dir) as db:
        db.executemany(
            "INSERT INTO chat_turns (chat_id, scenario, page, role, content, answer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (chat_id, scenario, page, "user", question, None, now),
                (chat_id, scenario, page, "assistant", answer.text, json.dumps(answer.to_dict()), now),
            ],
        )


def clear_chat(data_dir: Path, chat_id: str, scenario: str, page: str) -> None:
    with connect(data_dir) as db:
        db.execute("DELETE FROM chat_turns WHERE chat_id = ? AND scenario = ? AND page = ?", (chat_id, scenario, page))
