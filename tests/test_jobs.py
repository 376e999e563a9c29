"""Background training and evaluation jobs: a real separate process, progress in SQLite, kill -9 leaves nothing behind."""

import os
import signal

import pytest

from core.common.db import connect
from core.common.model_catalog import SMOLLM2
from core.common.scenario import load_eval_questions, load_scenario
from core.engine.cpu_budget import CpuBudget
from core.evaluation.eval_store import list_runs, load_run
from core.evaluation.runs import EvalConfig
from core.jobs import get_job, reap_dead_jobs, request_cancel, submit_evaluation, submit_training
from core.training.adapters import active_adapter, list_adapters
from core.training.train_config import TrainConfig
from tests.conftest import QUICK_TRAINING, SAMPLE
from tests.support.waiting import ended, wait_for_job

pytestmark = [pytest.mark.model, pytest.mark.process]


@pytest.fixture
def job_settings(lab, tmp_path):
    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    return lab.settings.model_copy(update={"data_dir": tmp_path})


def test_a_training_job_killed_with_sigkill_leaves_the_adapters_as_they_were(job_settings):
    """On the way there: a job trains in a process of its own, and pauses while the app answers."""
    first = submit_training(job_settings, SAMPLE, TrainConfig(**QUICK_TRAINING))
    job = wait_for_job(job_settings, first, ended)
    assert job.status == "succeeded", job.message
    assert job.pid != os.getpid() and job.step == job.total_steps == 3
    assert len(job.history) == 3
    before = active_adapter(job_settings.data_dir, "lumen_support", SMOLLM2.name)
    assert before.name == job.adapter

    job_id = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    job = wait_for_job(job_settings, job_id, lambda j: j.status == "running" and j.step >= 1)
    app = CpuBudget(job_settings.data_dir, "app")  # the app answering: the job pauses
    job = wait_for_job(job_settings, job_id, lambda j: app.apply() == 0.0 and "paused" in (j.phase or ""))
    os.kill(job.pid, signal.SIGKILL)
    job = wait_for_job(
        job_settings, job_id, lambda j: (reap_dead_jobs(job_settings) or True) and j.status == "failed", timeout_s=60
    )
    assert "stopped unexpectedly" in job.message
    assert active_adapter(job_settings.data_dir, "lumen_support", SMOLLM2.name) == before
    assert [a.name for a in list_adapters(job_settings.data_dir, "lumen_support")] == [before.name]
    leftovers = [
        p.name
        for p in (job_settings.data_dir / "adapters" / "lumen_support").iterdir()
        if p.name.startswith(".staging")
    ]
    assert leftovers == []


def test_queued_jobs_run_one_at_a_time_oldest_first(job_settings):
    """The first job is cancelled while the second waits: it publishes nothing, and the second then runs."""
    long = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    short = submit_training(job_settings, SAMPLE, TrainConfig(**QUICK_TRAINING))
    wait_for_job(job_settings, long, lambda j: j.status == "running" and j.step >= 2)
    waiting = get_job(job_settings, short)
    assert waiting.status == "queued" and waiting.step == 0 and waiting.phase == "Waiting for its turn"
    request_cancel(job_settings, long)
    cancelled = wait_for_job(job_settings, long, ended)
    assert cancelled.status == "cancelled" and cancelled.step < 500 and cancelled.adapter is None
    done = wait_for_job(job_settings, short, ended)
    assert done.status == "succeeded" and done.started_at >= cancelled.finished_at
    assert active_adapter(job_settings.data_dir, "lumen_support", SMOLLM2.name).name == done.adapter
    # The cancelled job published nothing: the queued job's adapter is the only one.
    assert [a.name for a in list_adapters(job_settings.data_dir, "lumen_support")] == [done.adapter]


def test_an_evaluation_queued_behind_training_runs_after_it(job_settings):
    """Evaluation and training share the queue (base mode needs neither an adapter nor a knowledge base);
    an evaluation cancelled while it waits never starts and saves nothing."""
    train = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    dropped = submit_evaluation(job_settings, SAMPLE, EvalConfig(modes=("base",), limit=1))
    kept = submit_evaluation(job_settings, SAMPLE, EvalConfig(modes=("base",), limit=2, label="from a job"))
    wait_for_job(job_settings, train, lambda j: j.status == "running" and j.step >= 1)
    for job_id in (dropped, kept):
        waiting = get_job(job_settings, job_id)
        assert waiting.kind == "eval" and waiting.status == "queued" and waiting.eval_run is None
    request_cancel(job_settings, dropped)
    request_cancel(job_settings, train)

    done = wait_for_job(job_settings, kept, ended)
    assert done.status == "succeeded", done.message
    assert done.started_at >= get_job(job_settings, train).finished_at
    assert done.step == done.total_steps == 2 and done.message == f"Saved as run #{done.eval_run}."
    run = load_run(job_settings.data_dir, done.eval_run)
    assert run["label"] == "from a job" and list(run["modes"]) == ["base"]
    assert [q["id"] for q in run["questions"]] == ["q01", "q02"] and run["modes"]["base"]["answers"] == 2
    with connect(job_settings.data_dir) as db:
        row = db.execute("SELECT job_id FROM eval_runs WHERE id = ?", (done.eval_run,)).fetchone()
    assert row["job_id"] == kept

    cancelled = get_job(job_settings, dropped)
    assert cancelled.status == "cancelled" and cancelled.eval_run is None
    assert cancelled.started_at is None and cancelled.message == "Cancelled before it started."
    assert [r.id for r in list_runs(job_settings.data_dir, "lumen_support")] == [done.eval_run]


def test_cancelling_a_running_eval_job_saves_nothing(job_settings):
    questions = len(load_eval_questions(load_scenario(SAMPLE)))
    job_id = submit_evaluation(job_settings, SAMPLE, EvalConfig(modes=("base",)))  # every question
    running = wait_for_job(job_settings, job_id, lambda j: j.status == "running" and j.step >= 1)
    assert running.total_steps == questions and running.phase.startswith("Question ")
    request_cancel(job_settings, job_id)
    job = wait_for_job(job_settings, job_id, ended)
    assert job.status == "cancelled" and job.message == "Cancelled; no run was saved."
    assert job.step < questions and job.eval_run is None
    assert list_runs(job_settings.data_dir, "lumen_support") == []
