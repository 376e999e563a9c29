"""Evaluation runs on the real model: the run's JSON shape, its summaries, refusals to start, cancelling,
and saved runs in SQLite. One short run (four questions, one per kind, base and RAG) serves most tests."""

import hashlib
import json
import subprocess
import sys

import pytest

from core.answers.chat_model import LocalChatModel
from core.common.scenario import EVAL_KINDS, load_scenario
from core.common.vocabulary import Decoding
from core.evaluation.eval_store import delete_run, list_runs, load_run, rename_run, save_run
from core.evaluation.judge import Judge
from core.evaluation.metrics import SHARE_METRICS
from core.evaluation.runs import (
    FAILURE_CELLS,
    EvalConfig,
    EvaluationError,
    Stopped,
    flat_rows,
    run_evaluation,
    summarise,
)
from core.training.adapters import AdapterNotReady
from tests.conftest import ROOT, SAMPLE

pytestmark = pytest.mark.model

QUESTION_IDS = ("q05", "q15", "q27", "q36")  # answerable, fresh, unanswerable, style
MODE_KEYS = {
    *SHARE_METRICS,
    "latency_p50_s",
    "latency_p95_s",
    "prompt_tokens",
    "completion_tokens",
    "answers",
    "by_kind",
}
ANSWER_KEYS = {
    "text",
    "withheld_draft",
    "adapter",
    "sources",
    "passed",
    "correct",
    "declined",
    "styled",
    "groundedness",
    "retrieval_hit",
    "judge_correct",
    "latency_s",
    "ttft_s",
    "prompt_tokens",
    "completion_tokens",
    "notes",
    "score",
}


def scenario_copy(parent, name="lumen_support", question_ids=QUESTION_IDS):
    """The sample scenario with a few of its eval questions. Under the same name it shares the sample's
    indexed knowledge base and adapters."""
    path = parent / name
    path.mkdir()
    manifest = (SAMPLE / "scenario.toml").read_text().replace('name = "lumen_support"', f'name = "{name}"')
    (path / "scenario.toml").write_text(manifest)
    (path / "docs").symlink_to(SAMPLE / "docs")
    lines = [
        line for line in (SAMPLE / "eval.jsonl").read_text().splitlines() if json.loads(line)["id"] in question_ids
    ]
    if lines:
        (path / "eval.jsonl").write_text("\n".join(lines) + "\n")
    return load_scenario(path)


@pytest.fixture(scope="module")
def small(lab, tmp_path_factory):
    lab.ensure_ingested(load_scenario(SAMPLE))
    return scenario_copy(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def evaluated(lab, small):
    """(run, progress reports) of base and RAG on the four questions, judged by the local model."""
    progress = []
    judge = Judge("local-judge", LocalChatModel(engine=lab.engine, decoding=Decoding(max_new_tokens=4)))
    run = run_evaluation(lab, small, EvalConfig(modes=("base", "rag")), on_progress=progress.append, judge=judge)
    return run, progress


def test_run_has_the_stable_shape(evaluated, small, lab):
    run, _ = evaluated
    assert set(run) == {"scenario", "created_at", "settings", "modes", "questions", "failures", "wall_s"}
    assert run["scenario"] == "lumen_support" and run["wall_s"] > 0
    assert json.loads(json.dumps(run)) == run  # JSON-ready as it is

    assert list(run["modes"]) == ["base", "rag"]
    for metrics in run["modes"].values():
        assert set(metrics) == MODE_KEYS
        assert metrics["answers"] == 4
        assert list(metrics["by_kind"]) == list(EVAL_KINDS)  # one of each kind was asked
        for shares in [metrics, *metrics["by_kind"].values()]:
            for metric in SHARE_METRICS:
                assert shares[metric] is None or 0 <= shares[metric] <= 1, (metric, shares[metric])
        assert 0 < metrics["latency_p50_s"] <= metrics["latency_p95_s"]
        assert metrics["completion_tokens"] > 0

    assert [q["id"] for q in run["questions"]] == list(QUESTION_IDS)
    for question in run["questions"]:
        assert {"id", "question", "kind", "reference", "must_include", "answers"} <= set(question)
        assert list(question["answers"]) == ["base", "rag"]
        for record in question["answers"].values():
            assert set(record) == ANSWER_KEYS and record["text"]

    settings = run["settings"]
    assert settings["modes"] == ["base", "rag"] and settings["questions"] == 4
    assert settings["adapter"] is None and settings["judge"] == "local-judge"
    assert settings["model"] and settings["decoding"]["max_new_tokens"] == 24
    assert settings["precision"] == str(lab.engine.dtype).removeprefix("torch.")  # float32 or bfloat16, by CPU
    assert settings["documents"] == 9 and settings["retrieval"]["k"] >= 1
    assert settings["questions_sha256"] == hashlib.sha256(small.eval_path.read_bytes()).hexdigest()


def test_only_retrieval_modes_get_sources_with_retrieval_checks(evaluated):
    run, _ = evaluated
    base, rag = run["modes"]["base"], run["modes"]["rag"]
    assert base["groundedness"] is None and base["retrieval_hit_rate"] is None
    assert rag["retrieval_hit_rate"] is not None
    assert rag["prompt_tokens"] > base["prompt_tokens"]  # the retrieved text is in RAG's prompt
    for question in run["questions"]:
        assert question["answers"]["base"]["sources"] == [] and question["answers"]["base"]["retrieval_hit"] is None
        assert question["answers"]["rag"]["sources"]
    # the unanswerable question is never a retrieval check
    assert run["questions"][2]["answers"]["rag"]["retrieval_hit"] is None


def test_only_retrieval_modes_get_a_failure_breakdown(evaluated):
    run, _ = evaluated
    assert list(run["failures"]) == ["rag"]
    cells = run["failures"]["rag"]
    assert list(cells) == list(FAILURE_CELLS)
    checked = [q["answers"]["rag"] for q in run["questions"] if q["answers"]["rag"]["retrieval_hit"] is not None]
    assert sum(cells.values()) == len(checked) == 3
    hits_and_right = sum(1 for r in checked if r["retrieval_hit"] and r["correct"])
    assert cells["retrieved_and_correct"] == hits_and_right


def test_each_answer_mark_agrees_with_its_score(evaluated):
    run, _ = evaluated
    for question in run["questions"]:
        for record in question["answers"].values():
            score = record["score"]
            if question["kind"] == "unanswerable":
                assert record["correct"] is None and record["passed"] == record["declined"]
                assert score["unanswerable"] == 1 and record["judge_correct"] is None  # the judge grades content
            else:
                assert record["passed"] == record["correct"] == bool(score["correct"])
            assert record["styled"] == bool(score["styled"])  # the scenario has a style regex: always checked
            assert score["fresh"] == (question["kind"] == "fresh")
    # per-kind figures come from that kind's questions alone
    fresh_question = run["questions"][1]
    for mode, metrics in run["modes"].items():
        expected = float(fresh_question["answers"][mode]["correct"])
        assert metrics["freshness"] == metrics["by_kind"]["fresh"]["freshness"] == expected
        assert metrics["by_kind"]["unanswerable"]["accuracy"] is None
        assert metrics["by_kind"]["answerable"]["refusal"] is None


def test_the_judge_scores_only_what_it_gave_a_verdict_on(evaluated):
    run, _ = evaluated
    for mode, metrics in run["modes"].items():
        verdicts = [q["answers"][mode]["judge_correct"] for q in run["questions"]]
        given = [v for v in verdicts if v is not None]
        # a garbled reply counts as no verdict, never as a pass or a fail
        assert metrics["judge_accuracy"] == (round(sum(given) / len(given), 4) if given else None)


def test_progress_is_reported_after_every_question(evaluated):
    _, progress = evaluated
    assert [p.done for p in progress] == [1, 2, 3, 4]
    assert {p.total for p in progress} == {4}
    assert [p.question_id for p in progress] == list(QUESTION_IDS)
    assert progress[-1].eta_s == 0 and all(p.elapsed_s >= 0 for p in progress)


def test_summaries_can_be_recomputed_from_the_questions(evaluated):
    run, _ = evaluated
    stored = json.loads(json.dumps(run))
    for mode in ("base", "rag"):
        assert summarise(stored["questions"], mode) == stored["modes"][mode]
    assert summarise(stored["questions"], "hybrid")["answers"] == 0


def test_flat_rows_put_every_mode_side_by_side(evaluated):
    run, _ = evaluated
    rows = flat_rows(run)
    assert [r["id"] for r in rows] == list(QUESTION_IDS)
    assert {"base pass", "base answer", "rag pass", "rag answer", "rag grounded", "rag sources"} <= set(rows[0])
    assert "base sources" not in rows[0]
    assert rows[0]["rag answer"] == run["questions"][0]["answers"]["rag"]["text"]


# --- refusing to start, stopping ---------------------------------------------------------------------


def test_unknown_or_no_modes_are_refused_before_any_work(lab, small):
    progress = []
    with pytest.raises(EvaluationError, match="magic"):
        run_evaluation(lab, small, EvalConfig(modes=("base", "magic")), on_progress=progress.append)
    with pytest.raises(EvaluationError, match="Choose modes among base, rag, finetuned, hybrid"):
        run_evaluation(lab, small, EvalConfig(modes=()), on_progress=progress.append)
    assert progress == []


def test_no_questions_is_refused(lab, small, tmp_path):
    with pytest.raises(EvaluationError, match="no questions of the chosen kinds"):
        run_evaluation(lab, small, EvalConfig(modes=("base",), kinds=()))
    without = scenario_copy(tmp_path, "no_eval_file", question_ids=())
    assert not without.eval_path.exists()
    with pytest.raises(EvaluationError, match="eval.jsonl"):
        run_evaluation(lab, without, EvalConfig(modes=("base",)))


def test_adapter_modes_need_an_adapter(lab, tmp_path):
    untrained = scenario_copy(tmp_path, "never_trained")
    with pytest.raises(AdapterNotReady, match="no fine-tuned adapter"):
        run_evaluation(lab, untrained, EvalConfig(modes=("base", "hybrid")))


def test_should_stop_ends_the_run_between_questions(lab, small):
    progress = []
    with pytest.raises(Stopped):
        run_evaluation(
            lab,
            small,
            EvalConfig(modes=("base",)),
            on_progress=progress.append,
            should_stop=lambda: len(progress) >= 1,
        )
    assert [p.question_id for p in progress] == ["q05"]  # one answered, then stopped before the second


@pytest.fixture(scope="module")
def fresh_hybrid(lab, sample, small):
    """Hybrid on the first fresh or style question, with the sample's trained adapter."""
    return run_evaluation(lab, small, EvalConfig(modes=("hybrid",), kinds=("fresh", "style"), limit=1))


def test_kinds_with_a_limit_choose_the_questions(fresh_hybrid):
    assert [q["id"] for q in fresh_hybrid["questions"]] == ["q15"]
    assert list(fresh_hybrid["modes"]["hybrid"]["by_kind"]) == ["fresh"]
    assert fresh_hybrid["settings"]["kinds"] == ["fresh", "style"] and fresh_hybrid["settings"]["limit"] == 1
    assert list(fresh_hybrid["failures"]) == ["hybrid"]


def test_a_run_records_the_adapter_it_answered_with(lab, sample, fresh_hybrid):
    adapter = lab.active_adapter(sample)
    assert fresh_hybrid["settings"]["adapter"] == adapter.name and fresh_hybrid["settings"]["adapter_created_at"]
    assert fresh_hybrid["questions"][0]["answers"]["hybrid"]["adapter"] == adapter.name


def test_an_adapter_that_does_not_exist_is_refused_by_name(lab, small):
    with pytest.raises(AdapterNotReady, match="no adapter named 'nope'"):
        run_evaluation(lab, small, EvalConfig(modes=("finetuned",), adapter="nope"))


# --- saved runs -----------------------------------------------------------------------------------


def test_saved_runs_round_trip(evaluated, tmp_path):
    run, _ = evaluated
    first = save_run(tmp_path, run, "  before re-index  ")
    second = save_run(tmp_path, run)

    listed = list_runs(tmp_path, "lumen_support")
    assert [r.id for r in listed] == [second, first]  # newest first
    assert [r.label for r in listed] == ["2 modes × 4 questions", "before re-index"]
    assert listed[1].settings == run["settings"] and listed[1].title.startswith(f"#{first} · before re-index · ")
    assert list_runs(tmp_path, "other_scenario") == []

    loaded = load_run(tmp_path, first)
    assert loaded == {**run, "run_id": first, "label": "before re-index"}
    for mode in ("base", "rag"):
        assert summarise(loaded["questions"], mode) == loaded["modes"][mode]

    rename_run(tmp_path, first, "x" * 100)
    assert load_run(tmp_path, first)["label"] == "x" * 80
    with pytest.raises(ValueError, match="needs a name"):
        rename_run(tmp_path, first, "   ")

    delete_run(tmp_path, second)
    assert load_run(tmp_path, second) is None
    assert [r.id for r in list_runs(tmp_path, "lumen_support")] == [first]


@pytest.mark.process
def test_a_saved_run_is_read_back_by_another_process(evaluated, tmp_path):
    run, _ = evaluated
    run_id = save_run(tmp_path, run, "kept")
    script = (
        "import json, sys; from pathlib import Path; from core.evaluation.eval_store import load_run; "
        "r = load_run(Path(sys.argv[1]), int(sys.argv[2])); "
        "print(json.dumps([r['label'], [q['id'] for q in r['questions']], r['modes']['rag']]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(run_id)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["kept", list(QUESTION_IDS), run["modes"]["rag"]]


def test_an_empty_label_is_made_from_the_settings(evaluated, tmp_path):
    run, _ = evaluated
    settings = {**run["settings"], "modes": ["rag", "hybrid"], "adapter": "quick", "questions": 7}
    run_id = save_run(tmp_path, {**run, "settings": settings}, "")
    assert load_run(tmp_path, run_id)["label"] == "2 modes × 7 questions · adapter quick"
