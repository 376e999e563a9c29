"""The evaluation page under AppTest with the real model, store and a real evaluation process: a run
started from the form is saved and shown (chart, question table, failures, exports), the decision
card recommends from it, and two runs are compared with bootstrap intervals."""

import pytest

from core.evaluation.eval_store import list_runs, save_run
from core.evaluation.runs import EvalConfig, run_evaluation
from core.jobs import list_jobs
from tests.support.apptest import open_page, page_texts
from tests.support.waiting import ended, wait_for_job

pytestmark = pytest.mark.model

PAGE = "pages/evaluation.py"


def _start_from_the_form(at, limit: int) -> None:
    form_limit = next(n for n in at.number_input if n.label.startswith("Only the first"))
    form_limit.set_value(limit)
    next(b for b in at.button if b.label == "Start evaluation").click().run()
    assert not at.exception


@pytest.mark.process
def test_a_run_started_from_the_page_is_shown_once_saved(sample, lab):
    runs_before = len(list_runs(lab.settings.data_dir, sample.name))
    at = open_page(PAGE)
    modes = next(m for m in at.multiselect if m.label == "Modes")
    assert set(modes.value) == {"base", "rag", "finetuned", "hybrid"}  # the sample has an adapter
    modes.set_value(["base", "rag"])
    _start_from_the_form(at, limit=2)
    job = list_jobs(lab.settings, sample.name, limit=1, kind="eval")[0]
    assert f"Evaluation job {job.id}" in page_texts(at)
    job = wait_for_job(lab.settings, job.id, ended)
    assert job.status == "succeeded", job.message
    runs = list_runs(lab.settings.data_dir, sample.name)
    assert len(runs) == runs_before + 1 and runs[0].id == job.eval_run

    at = open_page(PAGE)  # a fresh session shows the newest run
    assert at.selectbox(key=f"eval_run:{sample.name}").value.id == job.eval_run
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the grouped bar chart
    metrics = at.dataframe[0].value
    assert list(metrics.columns) == ["Base", "RAG"] and "Accuracy" in metrics.index
    questions = next(d.value for d in at.dataframe if "Question" in d.value.columns)
    assert len(questions) == 2 and {"Base", "RAG"} <= set(questions.columns)
    assert all(cell[0] in "✓✗–" for cell in questions["RAG"])
    assert "Where retrieval-augmented answers went wrong" in [h.value for h in at.subheader]
    assert len(at.get("download_button")) == 2

    # the decision card recommends one of the run's modes, with reasons and what would change it
    text = page_texts(at)
    assert "Recommended:" in text and ("would recommend" in text or "alone changes the recommendation" in text)


def test_two_runs_are_compared_with_intervals(sample, lab):
    config = EvalConfig(modes=("base", "rag"), kinds=("answerable", "unanswerable"), limit=3)
    for label in ("first", "second"):
        save_run(lab.settings.data_dir, run_evaluation(lab, sample, config), label)
    at = open_page(PAGE)
    table = next(d.value for d in at.dataframe if "95% interval" in d.value.columns)
    assert set(table["Mode"]) == {"Base", "RAG"}
    # same questions, same greedy decoding: no change, and the page must not call it real
    assert set(table["Change"]) == {"+0 pts"} and set(table["Real?"]) == {"not sure"}
    assert "paired" in page_texts(at)


@pytest.mark.process
def test_a_failed_run_changes_nothing(sample, lab):
    """An evaluation job that cannot run (an adapter that no longer exists) fails with a message and
    leaves the saved runs exactly as they were."""
    from core.jobs import submit_evaluation

    before = [r.id for r in list_runs(lab.settings.data_dir, sample.name)]
    job_id = submit_evaluation(lab.settings, sample.path, EvalConfig(modes=("finetuned",), adapter="gone", limit=1))
    job = wait_for_job(lab.settings, job_id, ended)
    assert job.status == "failed" and "gone" in job.message
    assert [r.id for r in list_runs(lab.settings.data_dir, sample.name)] == before
    at = open_page(PAGE)
    assert f"Evaluation job {job_id} failed" in page_texts(at)
