"""The fine-tuning page under AppTest with the real model, store and a real training process: the
validation report, an uploaded set with errors, the estimate and the example counts, a job seen from a
fresh session (a reload) and cancelled from the page, and no second start while a job is queued."""

import fcntl
import json
import re

import pytest

from core.jobs import request_cancel
from core.training.train_config import TrainConfig
from tests.conftest import QUICK_TRAINING
from tests.support.apptest import open_page, page_texts
from tests.support.waiting import ended, wait_for_job

pytestmark = pytest.mark.model

PAGE = "pages/finetuning.py"


def test_the_scenario_set_shows_its_report_with_an_estimate(sample):
    at = open_page(PAGE)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Examples in the file"] == "165" and metrics["Errors"] == "0"
    text = page_texts(at)
    assert "Context-aware:" in text and "grounded examples" in text
    assert "About" in text and "tokens per epoch" in text
    start = next(b for b in at.button if b.label == "Start training")
    assert not start.disabled


def test_an_uploaded_set_with_errors_lists_them_by_line_instead_of_starting(sample):
    at = open_page(PAGE)
    at.radio[0].set_value("Upload a JSONL file").run()
    rows = [
        json.dumps({"prompt": "Hi", "completion": "Hello"}),
        "{broken",
        json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
        json.dumps({"question": "Hi", "answer": "Hello"}),
    ]
    at.file_uploader[0].set_value([("mine.jsonl", ("\n".join(rows) + "\n").encode(), "application/json")]).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Examples in the file"] == "2" and metrics["Errors"] == "2" and metrics["Duplicate groups"] == "1"
    problems = list(at.dataframe[0].value["Problem"])
    assert problems[0].startswith("2: bad JSON") and problems[1].startswith("3: no assistant turn")
    assert next(b for b in at.button if b.label == "Start training").disabled


@pytest.mark.process
def test_a_running_job_is_cancelled_from_a_reloaded_page(sample, lab):
    config = TrainConfig(**{**QUICK_TRAINING, "max_steps": 500, "context_aware": False})
    job_id = lab.submit_training(sample, config)
    wait_for_job(lab.settings, job_id, lambda job: job.step >= 1)
    at = open_page(PAGE)  # a fresh session: what a reload gives
    assert f"Job {job_id}" in page_texts(at)
    next(b for b in at.button if b.key == f"cancel-{job_id}").click().run()
    job = wait_for_job(lab.settings, job_id, ended)
    assert job.status == "cancelled" and job.adapter is None
    assert lab.active_adapter(sample).name == "quick"


def test_the_example_counts_add_up_from_the_file_to_the_split(sample):
    at = open_page(PAGE)
    [counts] = [m.value for m in at.markdown if "examples in the file" in m.value]
    in_file, to_train, trained, held_out = map(int, re.findall(r"\*\*(\d+)\*\*", counts))
    assert in_file == 165 and to_train > in_file  # context-aware training adds examples with sources
    assert (trained + held_out, held_out) == (to_train, TrainConfig().held_out(to_train))


def test_the_length_histogram_counts_examples_in_round_bins(sample):
    at = open_page(PAGE)
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["encoding"]["y"]["title"] == "Examples" and spec["encoding"]["x"]["bin"]["step"] in (5, 10, 20, 25)
    assert "layer" not in spec  # no cut-off line far to the right of examples that all fit
    assert any("none is cut" in c.value for c in at.caption)


@pytest.mark.process
def test_start_training_is_disabled_while_a_job_is_queued(sample, lab):
    with open(lab.settings.data_dir / "jobs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the job waits for its turn behind this, as behind another job
        job_id = lab.submit_training(sample, TrainConfig(**{**QUICK_TRAINING, "context_aware": False}))
        try:
            at = open_page(PAGE)
            assert next(b for b in at.button if b.label == "Start training").disabled
            assert f"Job {job_id} is queued" in page_texts(at)
        finally:
            request_cancel(lab.settings, job_id)
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert wait_for_job(lab.settings, job_id, ended).status == "cancelled"
