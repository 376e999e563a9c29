"""Background jobs (training, evaluation): queued in SQLite, run one at a time in a separate process.

The app never trains or evaluates in its own process. `submit_training` and `submit_evaluation`
record a job and start `python -m core run-job ID`, which waits for the jobs lock (one job at a
time, oldest first: both kinds want every core), does the work, and writes progress back through
a heartbeat. A job whose process died is marked failed, and nothing it was making is kept.
"""

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from core.cpu_budget import CpuBudget
from core.db import connect
from core.eval_store import save_run
from core.evaluation import EvalConfig, EvalProgress, Stopped, run_evaluation
from core.finetune import Cancelled, Progress, train_adapter
from core.grounding import source_metadata
from core.model_catalog import SMOLLM2, model_label
from core.scenario import Scenario, load_scenario
from core.settings import Settings
from core.train_config import TrainConfig

ACTIVE_STATES = ("queued", "running")
HEARTBEAT_S = 5.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _now() -> float:
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
    job_id = _queue(settings, "train", scenario, asdict(config), dataset, Path(source_dataset or dataset).resolve())
    _spawn_worker(settings, job_id)
    return job_id


def submit_evaluation(settings: Settings, scenario_path: Path, config: EvalConfig) -> int:
    """Queues an evaluation run and starts its process; the finished run is saved (core.eval_store)."""
    scenario = load_scenario(scenario_path)
    job_id = _queue(settings, "eval", scenario, config.to_dict())
    _spawn_worker(settings, job_id)
    return job_id


def _queue(
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
                _now(),
                _now(),
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
        db.execute("UPDATE jobs SET pid = ?, heartbeat_at = ? WHERE id = ?", (process.pid, _now(), job_id))


def get_job(settings: Settings, job_id: int) -> dict | None:
    reap_dead_jobs(settings)
    with connect(settings.data_dir) as db:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return _as_dict(row) if row else None


def list_jobs(
    settings: Settings,
    scenario: str | None = None,
    limit: int = 50,
    kind: str | None = None,
    model: str | None = None,
) -> list[dict]:
    """Newest first: the job history the fine-tuning and evaluation pages show (of one base model's
    name, when given; jobs from before models were recorded ran on SmolLM2)."""
    reap_dead_jobs(settings)
    with connect(settings.data_dir) as db:
        rows = db.execute(
            "SELECT * FROM jobs WHERE (? IS NULL OR scenario = ?) AND (? IS NULL OR kind = ?) "
            "AND (? IS NULL OR COALESCE(model, ?) = ?) ORDER BY id DESC LIMIT ?",
            (scenario, scenario, kind, kind, model, SMOLLM2.name, model, limit),
        ).fetchall()
    return [_as_dict(row) for row in rows]


def latest_job(settings: Settings, scenario: str, kind: str = "train", model: str | None = None) -> dict | None:
    jobs = list_jobs(settings, scenario, limit=1, kind=kind, model=model)
    return jobs[0] if jobs else None


def request_cancel(settings: Settings, job_id: int) -> None:
    with connect(settings.data_dir) as db:
        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status IN ('queued','running')", (job_id,))


def _as_dict(row) -> dict:
    job = dict(row)
    job["config"] = json.loads(job["config"])
    job["history"] = json.loads(job["history"] or "[]")
    return job


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
            stale = (row["heartbeat_at"] or 0) < _now() - 3 * HEARTBEAT_S
            if stale and not _alive(row["pid"]):
                db.execute(
                    "UPDATE jobs SET status = 'failed', finished_at = ?, message = ? WHERE id = ?",
                    (_now(), _DIED[row["kind"]], row["id"]),
                )


_DIED = {
    "train": "The training process stopped unexpectedly (killed or crashed); nothing was published.",
    "eval": "The evaluation process stopped unexpectedly (killed or crashed); no run was saved.",
}


def run_job(settings: Settings, job_id: int) -> None:
    """Body of the job process: wait for the lock, do the job, record the outcome."""
    with connect(settings.data_dir) as db:
        job = _as_dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    if job.get("model"):  # the model the job was submitted for, even if the app has switched since
        settings = settings.model_copy(update={"model": job["model"]})
    stop_heartbeat = threading.Event()
    threading.Thread(target=_heartbeat, args=(settings, job_id, stop_heartbeat), daemon=True).start()
    with open(Path(settings.data_dir) / "jobs.lock", "w") as lock:
        _wait_for_turn(settings, job_id, lock)  # the lock is released by the OS even on kill -9
        try:
            if _cancel_requested(settings, job_id):
                _finish(settings, job_id, "cancelled", "Cancelled before it started.")
                return
            with connect(settings.data_dir) as db:
                db.execute(
                    "UPDATE jobs SET status = 'running', started_at = ?, pid = ? WHERE id = ?",
                    (_now(), os.getpid(), job_id),
                )
            (_run_training if job["kind"] == "train" else _run_evaluation)(settings, job)
        finally:
            stop_heartbeat.set()


def _run_training(settings: Settings, job: dict) -> None:
    job_id = job["id"]
    try:
        info = train_adapter(
            settings,
            load_scenario(job["scenario_path"]),
            TrainConfig(**job["config"]),
            dataset_path=Path(job["dataset"]),
            on_progress=lambda p: _record_progress(settings, job_id, p),
            on_phase=lambda phase: _set_phase(settings, job_id, phase),
            source=source_metadata(Path(job["source_dataset"] or job["dataset"]), Path(job["dataset"])),
        )
    except Cancelled:
        _finish(settings, job_id, "cancelled", "Cancelled; the previous adapter keeps serving.")
    except Exception as error:  # recorded for the UI; the process then exits
        _finish(settings, job_id, "failed", f"{type(error).__name__}: {error}")
    else:
        _finish(settings, job_id, "succeeded", f"Adapter {info.name} is now active.", adapter=info.name)


def _run_evaluation(settings: Settings, job: dict) -> None:
    from core.judge import configured_judge
    from core.lab import Lab

    job_id, config = job["id"], EvalConfig.from_dict(job["config"])
    _set_phase(settings, job_id, "Loading the model and the knowledge base")
    try:
        budget = CpuBudget(settings.data_dir, "job", settings.threads)  # pauses while the app answers
        lab, scenario = Lab(settings, budget), load_scenario(job["scenario_path"])
        lab.ensure_ingested(scenario)  # new and changed documents only; usually nothing to do
        result = run_evaluation(
            lab,
            scenario,
            config,
            on_progress=lambda p: _record_eval_progress(settings, job_id, p),
            should_stop=lambda: _cancel_requested(settings, job_id),
            judge=configured_judge(settings) if config.use_judge else None,
        )
        run_id = save_run(settings.data_dir, result, config.label, job_id)
    except Stopped:
        _finish(settings, job_id, "cancelled", "Cancelled; no run was saved.")
    except Exception as error:  # recorded for the UI; the process then exits
        _finish(settings, job_id, "failed", f"{type(error).__name__}: {error}")
    else:
        with connect(settings.data_dir) as db:
            db.execute("UPDATE jobs SET eval_run = ? WHERE id = ?", (run_id, job_id))
        _finish(settings, job_id, "succeeded", f"Saved as run #{run_id}.")


def _record_eval_progress(settings: Settings, job_id: int, progress: EvalProgress) -> None:
    with connect(settings.data_dir) as db:
        db.execute(
            "UPDATE jobs SET step = ?, total_steps = ?, eta_s = ?, phase = ?, heartbeat_at = ? WHERE id = ?",
            (
                progress.done,
                progress.total,
                progress.eta_s,
                f"Question {progress.done} of {progress.total} ({progress.question_id}) answered",
                _now(),
                job_id,
            ),
        )


def _wait_for_turn(settings: Settings, job_id: int, lock) -> None:
    """Takes the jobs lock when no older job is waiting: one job at a time, oldest first."""
    while True:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reap_dead_jobs(settings)
        with connect(settings.data_dir) as db:
            older = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE id < ? AND status IN ('queued','running')",
                (job_id,),
            ).fetchone()[0]
        if not older or _cancel_requested(settings, job_id):
            return
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(1.0)


def _set_phase(settings: Settings, job_id: int, phase: str) -> None:
    with connect(settings.data_dir) as db:
        db.execute("UPDATE jobs SET phase = ?, heartbeat_at = ? WHERE id = ?", (phase, _now(), job_id))


def _heartbeat(settings: Settings, job_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with connect(settings.data_dir) as db:
            db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", (_now(), job_id))


def _cancel_requested(settings: Settings, job_id: int) -> bool:
    with connect(settings.data_dir) as db:
        return bool(db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


def _record_progress(settings: Settings, job_id: int, progress: Progress) -> None:
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
                _now(),
                job_id,
            ),
        )
        cancel = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    if cancel:
        raise Cancelled()


def _finish(settings: Settings, job_id: int, status: str, message: str, adapter: str | None = None) -> None:
    with connect(settings.data_dir) as db:
        db.execute(
            "UPDATE jobs SET status = ?, message = ?, adapter = ?, finished_at = ?, phase = NULL WHERE id = ?",
            (status, message, adapter, _now(), job_id),
        )
