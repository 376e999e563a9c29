"""SQLite in the data dir: WAL mode and a busy timeout, so app threads and the training process can share it."""

import sqlite3
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    scenario TEXT NOT NULL,
    scenario_path TEXT NOT NULL,
    status TEXT NOT NULL,              -- queued, running, succeeded, failed, cancelled
    config TEXT NOT NULL,              -- JSON TrainConfig
    dataset TEXT,
    pid INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    step INTEGER DEFAULT 0,
    total_steps INTEGER DEFAULT 0,
    loss REAL,
    val_loss REAL,
    tokens_per_s REAL,
    eta_s REAL,
    history TEXT DEFAULT '[]',         -- JSON list of {step, loss, val_loss}
    cancel_requested INTEGER DEFAULT 0,
    adapter TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    comparison_id TEXT NOT NULL UNIQUE,  -- one vote per comparison
    scenario TEXT NOT NULL,
    question TEXT NOT NULL,
    model TEXT NOT NULL,
    decoding TEXT NOT NULL,              -- JSON Decoding
    entries TEXT NOT NULL,               -- JSON list, in the order shown: label, column, mode, adapter, text...
    choice TEXT NOT NULL,                -- a label ("A", "B", ...), "tie" or "all_bad"
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS votes_by_scenario ON votes (scenario, created_at);
"""


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / "lab.sqlite"


@contextmanager
def connect(data_dir: Path):
    """A short-lived connection; commits on success, rolls back on error."""
    path = database_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=30000")
        connection.executescript(SCHEMA)
        yield connection
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
