"""Saved evaluation runs in SQLite: save, list, load, rename, delete. Only finished runs are saved."""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from core.common.db import connect


@dataclass
class RunInfo:
    id: int
    scenario: str
    label: str
    settings: dict
    created_at: float

    @property
    def model(self) -> str:
        return self.settings.get("model") or ""

    @property
    def title(self) -> str:
        """What the run pickers show: runs of different base models side by side, told apart by name."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created_at))
        return f"#{self.id} · {self.label} · {self.model} · {when}"


def save_run(data_dir: Path, result: dict, label: str = "", job_id: int | None = None) -> int:
    label = label.strip()[:80] or _default_label(result["settings"])
    with connect(data_dir) as db:
        return db.execute(
            "INSERT INTO eval_runs (scenario, label, settings, result, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (result["scenario"], label, json.dumps(result["settings"]), json.dumps(result), job_id, time.time()),
        ).lastrowid


def _default_label(settings: dict) -> str:
    adapter = f" · adapter {settings['adapter']}" if settings.get("adapter") else ""
    modes = len(settings["modes"])
    return f"{modes} mode{'s' if modes != 1 else ''} × {settings['questions']} questions{adapter}"


def list_runs(data_dir: Path, scenario: str) -> list[RunInfo]:
    """Newest first."""
    with connect(data_dir) as db:
        rows = db.execute(
            "SELECT id, scenario, label, settings, created_at FROM eval_runs WHERE scenario = ? ORDER BY id DESC",
            (scenario,),
        ).fetchall()
    return [RunInfo(r["id"], r["scenario"], r["label"], json.loads(r["settings"]), r["created_at"]) for r in rows]


def load_run(data_dir: Path, run_id: int) -> dict | None:
    with connect(data_dir) as db:
        row = db.execute("SELECT result, label FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
    return {**json.loads(row["result"]), "run_id": run_id, "label": row["label"]} if row else None


def rename_run(data_dir: Path, run_id: int, label: str) -> None:
    if not label.strip():
        raise ValueError("A run needs a name.")
    with connect(data_dir) as db:
        db.execute("UPDATE eval_runs SET label = ? WHERE id = ?", (label.strip()[:80], run_id))


def delete_run(data_dir: Path, run_id: int) -> None:
    with connect(data_dir) as db:
        db.execute("DELETE FROM eval_runs WHERE id = ?", (run_id,))
