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
    dataset TEXT,                      -- the file trained on (with generated context, when context-aware)
    source_dataset TEXT,               -- the file the user chose
    phase TEXT,                        -- what a running job is doing now, in words
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
CREATE TABLE IF NOT EXISTS chat_turns (  -- the mode pages' conversations (core.answers.chats)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL,               -- the random token in the browser's address (?chat=...)
    scenario TEXT NOT NULL,
    page TEXT NOT NULL,                  -- the mode
    role TEXT NOT NULL,                  -- user or assistant
    content TEXT NOT NULL,
    answer TEXT,                         -- JSON Answer, on the assistant's turns
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_turns_by_chat ON chat_turns (chat_id, scenario, page, id);
CREATE TABLE IF NOT EXISTS compare_turns (  -- the Compare page's comparisons (core.answers.comparisons)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    comparison_id TEXT NOT NULL UNIQUE,  -- its vote, if any, is the votes row with this comparison_id
    chat_id TEXT NOT NULL,               -- the random token in the browser's address (?chat=...)
    scenario TEXT NOT NULL,
    turn TEXT NOT NULL,                  -- JSON ComparisonTurn: question, columns, answers, order, blind...
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS compare_turns_by_chat ON compare_turns (chat_id, scenario, id);
CREATE TABLE IF NOT EXISTS kb_documents (  -- the knowledge base's manifest: the commit point of an ingest
    scenario TEXT NOT NULL,
    name TEXT NOT NULL,                  -- display name, never used as a path
    text_sha TEXT,                       -- the current text (kb/<scenario>/texts/<sha>.txt); NULL when deleted
    origin TEXT NOT NULL,                -- 'scenario' (from the scenario's docs/) or 'upload'
    origin_sha TEXT,                     -- for 'scenario': the docs/ file's text when it was imported
    chunks INTEGER NOT NULL DEFAULT 0,
    chars INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',    -- JSON list: what parsing changed or could not read
    added_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (scenario, name)
);
CREATE TABLE IF NOT EXISTS kb_settings (
    scenario TEXT PRIMARY KEY,
    settings TEXT NOT NULL,              -- JSON RetrievalSettings
    generation INTEGER NOT NULL DEFAULT 0  -- which Chroma collection is live (re-index builds the next one)
);
CREATE TABLE IF NOT EXISTS eval_runs (  -- finished evaluation runs; a failed or cancelled run saves nothing
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    label TEXT NOT NULL,                 -- what the user calls it ("after re-index", ...)
    settings TEXT NOT NULL,              -- JSON: modes, adapter, model, decoding, retrieval, fingerprints
    result TEXT NOT NULL,                -- JSON: the whole run (core.evaluation.runs)
    job_id INTEGER,                      -- the job that ran it; NULL when run from the command line
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_runs_by_scenario ON eval_runs (scenario, created_at);
CREATE TABLE IF NOT EXISTS kb_edits (    -- freshness edits, so Undo survives a reload
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    name TEXT NOT NULL,
    original_sha TEXT NOT NULL,
    edited_sha TEXT NOT NULL,
    old_sentence TEXT NOT NULL,
    new_sentence TEXT NOT NULL,
    reindex_s REAL NOT NULL,
    created_at REAL NOT NULL,
    undone_at REAL
);
"""

# Columns added after a table first shipped: (table, column, declaration), added to older files.
ADDED_COLUMNS = (
    ("jobs", "source_dataset", "TEXT"),
    ("jobs", "phase", "TEXT"),
    ("jobs", "eval_run", "INTEGER"),
    ("jobs", "model", "TEXT"),  # the base model's name (core.common.model_catalog.model_label); NULL: SmolLM2
)

_prepared: set[str] = set()


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            try:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as error:  # another process added it a moment ago
                if "duplicate column" not in str(error):
                    raise


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / "lab.sqlite"


@contextmanager
def connect(data_dir: Path):
    """A short-lived connection; commits on success, rolls back on error."""
    path = database_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The schema and WAL mode live in the file: set them once per process and file, not per query
    # (retrieval reads the manifest on every question).
    key = str(path.resolve())
    fresh = key not in _prepared or not path.exists()
    connection = sqlite3.connect(path, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        if fresh:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)
            _add_missing_columns(connection)
            _prepared.add(key)
        yield connection
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
