"""The app and its jobs share the cores (core/engine/cpu_budget.py): the app announces that it is answering,
a job waits while it does; the model's thread count never changes with the load (the same answer
whenever it is asked), and other threads use one thread. A real job process pausing: test_jobs."""

import os
import threading
import time

import pytest
import torch

from core.engine.cpu_budget import ANSWERING_MARKER, FRESH_S, CpuBudget


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """apply() sets this thread's torch threads; the rest of the suite keeps its own."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_apps_engine_announces_that_it_is_answering(tmp_path):
    app = CpuBudget(tmp_path, "app", cores=2)
    assert not app.app_is_answering()
    app.apply()
    assert (tmp_path / ANSWERING_MARKER).exists() and app.app_is_answering()


def test_the_apps_engine_keeps_its_thread_count(tmp_path):
    CpuBudget(tmp_path, "app", cores=2).apply()
    assert torch.get_num_threads() == 2
    assert CpuBudget(tmp_path, "app", fixed=1, cores=2).threads == 1  # LAB_THREADS


def test_a_job_pauses_until_the_app_stops_answering(tmp_path):
    CpuBudget(tmp_path, "app", cores=2).apply()
    job = CpuBudget(tmp_path, "job", cores=2)
    pauses, waited = [], []
    worker = threading.Thread(target=lambda: waited.append(job.apply(on_pause=lambda: pauses.append(1))))
    worker.start()
    worker.join(timeout=FRESH_S + 10)  # the marker goes stale: the app stopped answering
    assert not worker.is_alive()
    assert pauses == [1] and waited[0] > 0


def test_a_stale_marker_does_not_pause_a_job(tmp_path):
    CpuBudget(tmp_path, "app", cores=2).apply()
    old = time.time() - FRESH_S - 1
    os.utime(tmp_path / ANSWERING_MARKER, (old, old))
    assert CpuBudget(tmp_path, "job", cores=2).apply() == 0.0


@pytest.mark.model
def test_embedding_in_another_thread_runs_torch_on_one_thread(lab):
    """What the app's page threads do: embedding a question leaves that thread on one torch thread."""
    result = []

    def embed() -> None:
        torch.set_num_threads(2)
        lab.embeddings.embed_query("Where is my order?")
        result.append(torch.get_num_threads())

    thread = threading.Thread(target=embed)
    thread.start()
    thread.join()
    assert result == [1]
