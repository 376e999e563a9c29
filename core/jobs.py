"""Background jobs (training, evaluation): queued in SQLite, run one at a time in a separate process.

The app never trains or evaluates in its own process. `submit_training` and `submit_evaluation`
record a job and start `python -m core run-job ID` (core/job_runner.py), which waits for the jobs lock (one job at a
time, oldest first: both kinds want every core), does the work, and writes progress back through
a heartbeat. A job whose process died is marked failed, and nothing it was making is kept.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.common.db import connect
from core.common.model_catalog import SMOLLM2, model_label
from core.common.scenario import Scenario, load_scenario
from core.common.settings import Settings
from core.evaluation.runs import EvalConfig, EvalProgress
from core.training.finetune import Cancelled, Progress
from core.training.train_config import TrainConfig

ACTIVE_STATES = ("queued", "running")
HEARTBEAT_S = 5.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One row of the jobs table: a training or evaluation run in its own process, and its progress."""

    id: int
    kind: str  # train or eval
    scenario: str
    scenario_path: str
    status: str  # queued, running, succeeded, failed, cancelled
    config: dict  # TrainConfig or EvalConfig fields
    created_at: float
    dataset: str | None = None  # the file trained on (with generated context, when context-aware)
    source_dataset: str | None = None  # the file the user chose
    phase: str | None = None  # what a running job is doing now, in words
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    history: list[dict] = field(default_factory=list)  # {step, loss, val_loss} per logged step
    cancel_requested: bool = False
    adapter: str | None = None  # the adapter a training job published
    message: str | None = None  # the outcome, in words
    eval_run: int | None = None  # the run an evaluation job saved
    model: str | None = None  # the base model's name; None: recorded before models were (SmolLM2)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    def to_dict(self) -> dict:
        return asdict(self)


def now() -> float:
    return time.time()


def submit_training(
    settings: Settings,
    scenario_path: Path,
    config: TrainConfig | None = None,
    dataset: Path | None = None,
    source_dataset: Path | None = None,
) -> int:
    """Queues a training job on `dataset` (default: the scenario's train.jsonl) and starts its process.
    Jobs run one at a time, oldest first; `source_dataset` is what the user chose, when `dataset` was
    derived from it."""
    scenario = load_scenario(scenario_path)
    config = config or TrainConfig()
    dataset = Path(dataset or scenario.train_path).resolve()
    job_id = record_queued_job(
        settings, "train", scenario, asdict(config), dataset, Path(source_dataset or dataset).resolve()
    )
    _spawn_worker(settings, job_id)
    return job_id


def submit_evaluation(settings: Settings, scenario_path: Path, config: EvalConfig) -> int:
    """Queues an evaluation run and starts its process; the finished run is saved (core.evaluation.eval_store)."""
    scenario = load_scenario(scenario_path)
    job_id = record_queued_job(settings, "eval", scenario, config.to_dict())
    _spawn_worker(settings, job_id)
    return job_id


def record_queued_job(
    settings: Settings,
    kind: str,
    scenario: Scenario,
    config: dict,
    dataset: Path | None = None,
    source: Path | None = None,
) -> int:
    """Records a queued job; the caller starts its process."""
    with connect(settings.data_dir) as db:
        return db.execute(
            "INSERT INTO jobs (kind, scenario, scenario_path, status, config, dataset, source_dataset, phase, "
            "created_at, heartbeat_at, model) VALUES (?, ?, ?, 'queued', ?, ?, ?, 'Waiting for its turn', ?, ?, ?)",
            (
                kind,
                scenario.name,
                str(scenario.path),
                json.dumps(config),
                dataset and str(dataset),
                source and str(source),
                now(),
                now(),
                model_label(settings.model),
            ),
        ).lastrowid


def _spawn_worker(settings: Settings, job_id: int) -> None:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LAB_DATA_DIR": str(Path(settings.data_dir).resolve())}
    with open(logs / f"job-{job_id}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "run-job", str(job_id)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the app's restarts and page reloads
        )
    with connect(settings.data_dir) as db:
        db.execute("UPDATE jobs SET pid = ?, heartbeat_at = ? WHERE id = ?", (process.pid, now(), job_id))


def get_job(settings: Settings, job_id: int) -> Job | None:
    reap_dead_jobs(settings)
    with connect(settings.data_dir) as db:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return job_from_row(row) if row else None


def list_jobs(
    settings: Settings,
    scenario: str | None = None,
    limit: int = 50,
    kind: str | None = None,
    model: str | None = None,
) -> list[Job]:
    """Newest first: the job history the fine-tuning and evaluation pages show (of one base model's
    name, when given; jobs from before models were recorded ran on SmolLM2)."""
    reap_dead_jobs(settings)
    with connect(settings.data_dir) as db:
        rows = db.execute(
            "SELECT * FROM jobs WHERE (? IS NULL OR scenario = ?) AND (? IS NULL OR kind = ?) "
            "AND (? IS NULL OR COALESCE(model, ?) = ?) ORDER BY id DESC LIMIT ?",
            (scenario, scenario, kind, kind, model, SMOLLM2.name, model, limit),
        ).fetchall()
    return [job_from_row(row) for row in rows]


def latest_job(settings: Settings, scenario: str, kind: str = "train", model: str | None = None) -> Job | None:
    jobs = list_jobs(settings, scenario, limit=1, kind=kind, model=model)
    return jobs[0] if jobs else None


def request_cancel(settings: Settings, job_id: int) -> None:
    with connect(settings.data_dir) as db:
        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status IN ('queued','running')", (job_id,))


def job_from_row(row) -> Job:
    values = {key: row[key] for key in row.keys() if key in Job.__dataclass_fields__}  # noqa: SIM118 (sqlite3.Row iterates values)
    values["config"] = json.loads(values["config"])
    values["history"] = json.loads(values["history"] or "[]")
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (finished child not yet reaped) counts as dead
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def reap_dead_jobs(settings: Settings) -> None:
    """Marks as failed every queued or running job whose process is gone."""
    with connect(settings.data_dir) as db:
        rows = db.execute(
            "SELECT id, kind, pid, heartbeat_at FROM jobs WHERE status IN ('queued','running')"
        ).fetchall()
        for row in rows:
            stale = (row["heartbeat_at"] or 0) < now() - 3 * HEARTBEAT_S
            if stale and not _alive(row["pid"]):
                db.execute(
                    "UPDATE jobs SET status = 'failed', finished_at = ?, message = ? WHERE id = ?",
                    (now(), _DIED[row["kind"]], row["id"]),
                )


_DIED = {
    "train": "The training process stopped unexpectedly (killed or crashed); nothing was published.",
    "eval": "The evaluation process stopped unexpectedly (killed or crashed); no run was saved.",
}


def record_eval_progress(settings: Settings, job_id: int, progress: EvalProgress) -> None:
    with connect(settings.data_dir) as db:
        db.execute(
            "UPDATE jobs SET step = ?, total_steps = ?, eta_s = ?, phase = ?, heartbeat_at = ? WHERE id = ?",
            (
                progress.done,
                progress.total,
                progress.eta_s,
                f"Question {progress.done} of {progress.total} ({progress.question_id}) answered",
                now(),
                job_id,
            ),
        )


def set_phase(settings: Settings, job_id: int, phase: str) -> None:
    with connect(settings.data_dir) as db:
        db.execute("UPDATE jobs SET phase = ?, heartbeat_at = ? WHERE id = ?", (phase, now(), job_id))


def cancel_requested(settings: Settings, job_id: int) -> bool:
    with connect(settings.data_dir) as db:
        return bool(db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


def record_progress(settings: Settings, job_id: int, progress: Progress) -> None:
    with connect(settings.data_dir) as db:
        history = json.loads(db.execute("SELECT history FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
        history.append({"step": progress.step, "loss": round(progress.loss, 4), "val_loss": progress.val_loss})
        db.execute(
            "UPDATE jobs SET step = ?, total_steps = ?, loss = ?, val_loss = ?, tokens_per_s = ?, eta_s = ?, "
            "history = ?, heartbeat_at = ? WHERE id = ?",
            (
                progress.step,
                progress.total_steps,
                progress.loss,
                progress.val_loss,
                progress.tokens_per_s,
                progress.eta_s,
                json.dumps(history),
                now(),
                job_id,
            ),
        )
        cancel = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    if cancel:
        raise Cancelled()


def finish(settings: Settings, job_id: int, status: str, message: str, adapter: str | None = None) -> None:
    with connect(settings.data_dir) as db:
        db.execute(
            "UPDATE jobs SET status = ?, message = ?, adapter = ?, finished_at = ?, phase = NULL WHERE id = ?",
            (status, message, adapter, now(), job_id),
        )
