"""What a knowledge base holds, outside Chroma: its documents (SQLite rows, the commit point of every
ingest), their texts (content-addressed files), and its retrieval settings.

Chroma holds the chunks; a chunk counts only if the manifest names its document's current text, so
a crash between writing chunks and committing the row leaves nothing visible (`KnowledgeBase`
removes such strays when it opens).
"""

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

from core.common import db

SEARCH_TYPES = ("similarity", "mmr")


@dataclass(frozen=True)
class RetrievalSettings:
    """How a knowledge base is chunked and searched; RAG, hybrid and the playground all use these."""

    search_type: Literal["similarity", "mmr"] = "similarity"
    k: int = 3
    min_score: float = 0.2  # chunks scoring below this are not used; none left means "cannot answer"
    fetch_k: int = 20  # MMR and the fusion pick k from this many candidates of each ranking
    mmr_lambda: float = 0.5  # 1 = pure relevance, 0 = pure diversity
    lexical: bool = True  # fuse BM25 (exact words, identifiers) with the dense ranking
    lexical_weight: float = 1.0  # BM25's weight in the fusion; the dense ranking's is 1
    chunk_size: int = 500
    chunk_overlap: int = 80

    def __post_init__(self):
        if self.search_type not in SEARCH_TYPES:
            raise ValueError(f"search type must be one of {', '.join(SEARCH_TYPES)}")
        if not 1 <= self.k <= 50 or not self.k <= self.fetch_k <= 500:
            raise ValueError("k must be 1-50 and fetch_k between k and 500")
        if not -1.0 <= self.min_score <= 1.0 or not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError("min score must be -1 to 1 and the MMR lambda 0 to 1")
        if not 0.0 <= self.lexical_weight <= 5.0:
            raise ValueError("the lexical weight must be 0 to 5")
        if not 100 <= self.chunk_size <= 8000 or not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError("chunk size must be 100-8000 characters and the overlap smaller than it")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RetrievalSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class DocumentInfo:
    name: str
    text_sha: str | None  # None: a scenario document the user deleted (kept so it is not re-imported)
    origin: str
    origin_sha: str | None
    chunks: int
    chars: int
    added_at: float
    updated_at: float
    notes: list[str] = field(default_factory=list)


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    def __init__(self, data_dir: Path, scenario: str, defaults: RetrievalSettings):
        self.data_dir = Path(data_dir)
        self.scenario = scenario
        self.defaults = defaults
        self.texts_dir = self.data_dir / "kb" / scenario / "texts"

    # --- texts ---------------------------------------------------------------------------------
    def save_text(self, text: str) -> str:
        sha = text_sha(text)
        path = self.texts_dir / f"{sha}.txt"
        if not path.exists():
            self.texts_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)  # atomic: a text file is whole or absent
        return sha

    def read_text(self, sha: str) -> str:
        return (self.texts_dir / f"{sha}.txt").read_text(encoding="utf-8")

    # --- documents -----------------------------------------------------------------------------
    def documents(self, include_deleted: bool = False) -> list[DocumentInfo]:
        with db.connect(self.data_dir) as connection:
            rows = connection.execute(
                "SELECT * FROM kb_documents WHERE scenario = ? ORDER BY name", (self.scenario,)
            ).fetchall()
        found = [_info(row) for row in rows]
        return found if include_deleted else [d for d in found if d.text_sha]

    def current_shas(self) -> dict[str, str]:
        """Document name -> its current text; what a search checks every chunk against."""
        with db.connect(self.data_dir) as connection:
            rows = connection.execute(
                "SELECT name, text_sha FROM kb_documents WHERE scenario = ? AND text_sha IS NOT NULL", (self.scenario,)
            ).fetchall()
        return dict(rows)

    def document(self, name: str) -> DocumentInfo | None:
        with db.connect(self.data_dir) as connection:
            row = connection.execute(
                "SELECT * FROM kb_documents WHERE scenario = ? AND name = ?", (self.scenario, name)
            ).fetchone()
        return _info(row) if row else None

    def commit(
        self, name: str, sha: str, origin: str, origin_sha: str | None, chunks: int, chars: int, notes: list[str]
    ):
        now = time.time()
        with db.connect(self.data_dir) as connection:
            connection.execute(
                """INSERT INTO kb_documents (scenario, name, text_sha, origin, origin_sha, chunks, chars, notes, added_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (scenario, name) DO UPDATE SET text_sha = excluded.text_sha, origin = excluded.origin,
                     origin_sha = excluded.origin_sha, chunks = excluded.chunks, chars = excluded.chars,
                     notes = excluded.notes, updated_at = excluded.updated_at""",
                (self.scenario, name, sha, origin, origin_sha, chunks, chars, json.dumps(notes), now, now),
            )

    def mark_deleted(self, name: str) -> None:
        """Scenario documents leave a tombstone, so the next sync does not bring them back; uploads go."""
        with db.connect(self.data_dir) as connection:
            connection.execute(
                "DELETE FROM kb_documents WHERE scenario = ? AND name = ? AND origin = 'upload'", (self.scenario, name)
            )
            connection.execute(
                "UPDATE kb_documents SET text_sha = NULL, chunks = 0, updated_at = ? WHERE scenario = ? AND name = ?",
                (time.time(), self.scenario, name),
            )

    # --- settings and the live collection -------------------------------------------------------
    def settings(self) -> RetrievalSettings:
        row = self._settings_row()
        return (
            RetrievalSettings.from_dict({**self.defaults.to_dict(), **json.loads(row["settings"])})
            if row
            else self.defaults
        )

    def save_settings(self, settings: RetrievalSettings) -> None:
        with db.connect(self.data_dir) as connection:
            connection.execute(
                """INSERT INTO kb_settings (scenario, settings) VALUES (?, ?)
                   ON CONFLICT (scenario) DO UPDATE SET settings = excluded.settings""",
                (self.scenario, json.dumps(settings.to_dict())),
            )

    def switch_generation(self, settings: RetrievalSettings, generation: int, chunk_counts: dict[str, int]) -> None:
        """Makes a re-indexed collection live, with its settings and chunk counts, in one transaction."""
        with db.connect(self.data_dir) as connection:
            connection.execute(
                """INSERT INTO kb_settings (scenario, settings, generation) VALUES (?, ?, ?)
                   ON CONFLICT (scenario) DO UPDATE SET settings = excluded.settings, generation = excluded.generation""",
                (self.scenario, json.dumps(settings.to_dict()), generation),
            )
            connection.executemany(
                "UPDATE kb_documents SET chunks = ? WHERE scenario = ? AND name = ?",
                [(count, self.scenario, name) for name, count in chunk_counts.items()],
            )

    def generation(self) -> int:
        row = self._settings_row()
        return row["generation"] if row else 0

    def _settings_row(self):
        with db.connect(self.data_dir) as connection:
            return connection.execute("SELECT * FROM kb_settings WHERE scenario = ?", (self.scenario,)).fetchone()


def _info(row) -> DocumentInfo:
    return DocumentInfo(
        name=row["name"],
        text_sha=row["text_sha"],
        origin=row["origin"],
        origin_sha=row["origin_sha"],
        chunks=row["chunks"],
        chars=row["chars"],
        added_at=row["added_at"],
        updated_at=row["updated_at"],
        notes=json.loads(row["notes"]),
    )
