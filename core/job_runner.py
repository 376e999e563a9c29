"""The body of a job's process (`python -m core run-job ID`): waits for its turn, trains or evaluates,
and records progress and the outcome in the jobs table (core/jobs.py). It builds its own Lab for an
evaluation, which is why it sits above the Lab while the queue sits below it."""

import fcntl
import os
import threading
import time
from pathlib import Path

from core.common.db import connect
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.engine.cpu_budget import CpuBudget
from core.evaluation.eval_store import save_run
from core.evaluation.judge import configured_judge
from core.evaluation.runs import EvalConfig, Stopped, run_evaluation
from core.jobs import (
    HEARTBEAT_S,
    Job,
    cancel_requested,
    finish,
    job_from_row,
    now,
    reap_dead_jobs,
    record_eval_progress,
    record_progress,
    set_phase,
)
from core.lab import Lab
from core.training.finetune import Cancelled, train_adapter
from core.training.grounding import source_metadata
from core.training.train_config import TrainConfig


def run_job(settings: Settings, job_id: int) -> None:
    """Body of the job process: wait for the lock, do the job, record the outcome."""
    with connect(settings.data_dir) as db:
        job = job_from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    if job.model:  # the model the job was submitted for, even if the app has switched since
        settings = settings.model_copy(update={"model": job.model})
    stop_heartbeat = threading.Event()
    threading.Thread(target=_heartbeat, args=(settings, job_id, stop_heartbeat), daemon=True).start()
    with open(Path(settings.data_dir) / "jobs.lock", "w") as lock:
        _wait_for_turn(settings, job_id, lock)  # the lock is released by the OS even on kill -9
        try:
            if cancel_requested(settings, job_id):
                finish(settings, job_id, "cancelled", "Cancelled before it started.")
                return
            with connect(settings.data_dir) as db:
                db.execute(
                    "UPDATE jobs SET status = 'running', started_at = ?, pid = ? WHERE id = ?",
                    (now(), os.getpid(), job_id),
                )
            (_run_training if job.kind == "train" else _run_evaluation)(settings, job)
        finally:
            stop_heartbeat.set()


def _run_training(settings: Settings, job: Job) -> None:
    job_id = job.id
    try:
        info = train_adapter(
            settings,
            load_scenario(job.scenario_path),
            TrainConfig(**job.config),
            dataset_path=Path(job.dataset),
            on_progress=lambda p: record_progress(settings, job_id, p),
            on_phase=lambda phase: set_phase(settings, job_id, phase),
            source=source_metadata(Path(job.source_dataset or job.dataset), Path(job.dataset)),
        )
    except Cancelled:
        finish(settings, job_id, "cancelled", "Cancelled; the previous adapter keeps serving.")
    except Exception as error:  # recorded for the UI; the process then exits
        finish(settings, job_id, "failed", f"{type(error).__name__}: {error}")
    else:
        finish(settings, job_id, "succeeded", f"Adapter {info.name} is now active.", adapter=info.name)


def _run_evaluation(settings: Settings, job: Job) -> None:
    job_id, config = job.id, EvalConfig.from_dict(job.config)
    set_phase(settings, job_id, "Loading the model and the knowledge base")
    try:
        budget = CpuBudget(settings.data_dir, "job", settings.threads)  # pauses while the app answers
        lab, scenario = Lab(settings, budget), load_scenario(job.scenario_path)
        lab.ensure_ingested(scenario)  # new and changed documents only; usually nothing to do
        result = run_evaluation(
            lab,
            scenario,
            config,
            on_progress=lambda p: record_eval_progress(settings, job_id, p),
            should_stop=lambda: cancel_requested(settings, job_id),
            judge=configured_judge(settings) if config.use_judge else None,
        )
        run_id = save_run(settings.data_dir, result, config.label, job_id)
    except Stopped:
        finish(settings, job_id, "cancelled", "Cancelled; no run was saved.")
    except Exception as error:  # recorded for the UI; the process then exits
        finish(settings, job_id, "failed", f"{type(error).__name__}: {error}")
    else:
        with connect(settings.data_dir) as db:
            db.execute("UPDATE jobs SET eval_run = ? WHERE id = ?", (run_id, job_id))
        finish(settings, job_id, "succeeded", f"Saved as run #{run_id}.")


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
        if not older or cancel_requested(settings, job_id):
            return
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(1.0)


def _heartbeat(settings: Settings, job_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with connect(settings.data_dir) as db:
            db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", (now(), job_id))
