"""The app and its jobs share the cores (core/cpu_budget.py): the app's engine leaves a core to a running
job, and a job keeps one core while the app answers; stale markers free the cores again.
A real job process announcing itself: test_jobs."""

import os
import time

import pytest
import torch

from core.cpu_budget import ANSWERING_MARKER, FRESH_S, JOB_MARKER, CpuBudget


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """apply() sets this thread's torch threads; the rest of the suite keeps its own."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_app_leaves_a_core_to_a_running_job(tmp_path):
    app = CpuBudget(tmp_path, "app", cores=2)
    assert app.threads() == 2
    with CpuBudget(tmp_path, "job", cores=2):
        assert (tmp_path / JOB_MARKER).exists()
        assert app.threads() == 1


def test_a_job_keeps_one_core_while_the_app_answers(tmp_path):
    job = CpuBudget(tmp_path, "job", cores=4)
    assert job.threads() == 4
    CpuBudget(tmp_path, "app", cores=4).apply()  # what the engine calls between decoding steps
    assert (tmp_path / ANSWERING_MARKER).exists()
    assert job.threads() == 1


def test_a_stale_marker_gives_the_cores_back(tmp_path):
    CpuBudget(tmp_path, "app", cores=2).apply()
    old = time.time() - FRESH_S - 1
    os.utime(tmp_path / ANSWERING_MARKER, (old, old))
    assert CpuBudget(tmp_path, "job", cores=2).threads() == 2


def test_apply_sets_the_calling_threads_torch_threads_and_a_jobs_exit_restores_them(tmp_path):
    before = torch.get_num_threads()
    with CpuBudget(tmp_path, "job", fixed=1, cores=2) as job:
        assert job.apply() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
