"""Background training jobs: a real separate process, progress in SQLite, kill -9 leaves nothing behind."""

import os
import signal
import time

import pytest

from core.adapters import active_adapter, list_adapters
from core.jobs import get_job, reap_dead_jobs, request_cancel, submit_training
from core.train_config import TrainConfig
from tests.conftest import QUICK_TRAINING, SAMPLE


@pytest.fixture
def job_settings(lab, tmp_path):
    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    return lab.settings.model_copy(update={"data_dir": tmp_path})


def _wait(settings, job_id, until, limit_s=300):
    """Polls the job until `until(job)` holds; the bound only stops a broken run from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job = get_job(settings, job_id)
        if until(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job never reached the expected state: {job}")


def test_job_trains_in_a_separate_process_and_publishes(job_settings):
    job_id = submit_training(job_settings, SAMPLE, TrainConfig(**QUICK_TRAINING))
    job = _wait(job_settings, job_id, lambda j: j["status"] not in ("queued", "running"))
    assert job["status"] == "succeeded", job["message"]
    assert job["pid"] != os.getpid() and job["step"] == job["total_steps"] == 3
    assert len(job["history"]) == 3
    assert active_adapter(job_settings.data_dir, "lumen_support").name == job["adapter"]


def test_kill_9_marks_the_job_failed_and_keeps_the_old_adapter(job_settings):
    first = submit_training(job_settings, SAMPLE, TrainConfig(**QUICK_TRAINING))
    _wait(job_settings, first, lambda j: j["status"] == "succeeded")
    before = active_adapter(job_settings.data_dir, "lumen_support")

    job_id = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    job = _wait(job_settings, job_id, lambda j: j["status"] == "running" and j["step"] >= 1)
    os.kill(job["pid"], signal.SIGKILL)
    job = _wait(
        job_settings, job_id, lambda j: (reap_dead_jobs(job_settings) or True) and j["status"] == "failed", limit_s=60
    )
    assert "stopped unexpectedly" in job["message"]
    assert active_adapter(job_settings.data_dir, "lumen_support") == before
    assert [a.name for a in list_adapters(job_settings.data_dir, "lumen_support")] == [before.name]
    leftovers = [
        p.name
        for p in (job_settings.data_dir / "adapters" / "lumen_support").iterdir()
        if p.name.startswith(".staging")
    ]
    assert leftovers == []


def test_cancel_stops_the_job_and_publishes_nothing(job_settings):
    job_id = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    _wait(job_settings, job_id, lambda j: j["status"] == "running" and j["step"] >= 1)
    request_cancel(job_settings, job_id)
    job = _wait(job_settings, job_id, lambda j: j["status"] not in ("queued", "running"))
    assert job["status"] == "cancelled" and job["step"] < 500
    assert active_adapter(job_settings.data_dir, "lumen_support") is None
    assert list_adapters(job_settings.data_dir, "lumen_support") == []


def test_jobs_queue_and_run_one_at_a_time_oldest_first(job_settings):
    long = submit_training(job_settings, SAMPLE, TrainConfig(**{**QUICK_TRAINING, "max_steps": 500}))
    short = submit_training(job_settings, SAMPLE, TrainConfig(**QUICK_TRAINING))
    _wait(job_settings, long, lambda j: j["status"] == "running" and j["step"] >= 2)
    waiting = get_job(job_settings, short)
    assert waiting["status"] == "queued" and waiting["step"] == 0 and waiting["phase"] == "Waiting for its turn"
    request_cancel(job_settings, long)
    assert _wait(job_settings, long, lambda j: j["status"] not in ("queued", "running"))["status"] == "cancelled"
    done = _wait(job_settings, short, lambda j: j["status"] not in ("queued", "running"))
    assert done["status"] == "succeeded" and done["started_at"] >= get_job(job_settings, long)["finished_at"]
    assert active_adapter(job_settings.data_dir, "lumen_support").name == done["adapter"]
