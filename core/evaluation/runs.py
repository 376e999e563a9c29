"""Evaluation runs: every eval question through the chosen modes (one batch per question), scored.

`run_evaluation` returns the run as a JSON-ready dict of stable shape:
{"scenario", "created_at", "settings": {...}, "modes": {mode: metrics}, "questions": [...],
 "failures": {mode: RAG failure breakdown}}. Summaries are computed from the per-question scores
alone (`summarise`), so a stored run can be re-summarised or bootstrapped without the model.
Latency is as measured in the shared batch: a mode asked alone answers somewhat faster.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from core.answers.compare import Column
from core.common.scenario import EVAL_KINDS, Scenario, load_eval_questions
from core.common.vocabulary import ADAPTER_MODES, MODES, RETRIEVAL_MODES
from core.evaluation.metrics import CONTENT_KINDS, SHARE_METRICS, Score, score_answer, share

FAILURE_CELLS = ("retrieved_and_correct", "retrieved_but_wrong", "missed_but_correct", "missed_and_wrong")
_FAILURE_CELL = dict(zip(((True, True), (True, False), (False, True), (False, False)), FAILURE_CELLS, strict=True))


class EvaluationError(ValueError):
    """The run cannot start (no questions, unknown mode, no adapter); the message says what to do."""


class Stopped(Exception):
    """The run was cancelled between questions; nothing is saved."""


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = MODES
    adapter: str | None = None  # registry name for finetuned and hybrid; None: the active adapter
    kinds: tuple[str, ...] = EVAL_KINDS  # which kinds of question to ask
    limit: int | None = None  # the first N questions (after the kind filter), for a quick look
    label: str = ""  # the saved run's name; empty: one is made from the settings
    use_judge: bool = True  # grade with the LLM judge too, when one is configured

    def to_dict(self) -> dict:
        return {**asdict(self), "modes": list(self.modes), "kinds": list(self.kinds)}

    @classmethod
    def from_dict(cls, data: dict) -> "EvalConfig":
        return cls(
            modes=tuple(data.get("modes", MODES)),
            adapter=data.get("adapter"),
            kinds=tuple(data.get("kinds", EVAL_KINDS)),
            limit=data.get("limit"),
            label=data.get("label", ""),
            use_judge=data.get("use_judge", True),
        )


@dataclass
class EvalProgress:
    done: int
    total: int
    question_id: str
    elapsed_s: float
    eta_s: float | None = field(default=None)


def select_questions(scenario: Scenario, config: EvalConfig) -> list[dict]:
    questions = [q for q in load_eval_questions(scenario) if q["kind"] in config.kinds]
    return questions[: config.limit] if config.limit else questions


def run_evaluation(
    lab,
    scenario: Scenario,
    config: EvalConfig,
    on_progress: Callable[[EvalProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    judge=None,
) -> dict:
    """Asks every selected question in every chosen mode; `judge` (a core.evaluation.judge.Judge) adds judge scores.
    Raises EvaluationError before any work when the run cannot be done, Stopped when cancelled."""
    unknown = [m for m in config.modes if m not in MODES]
    if unknown or not config.modes:
        raise EvaluationError(f"Choose modes among {', '.join(MODES)} (got {', '.join(unknown) or 'none'}).")
    questions = select_questions(scenario, config)
    if not questions:
        raise EvaluationError(f"{scenario.eval_path} has no questions of the chosen kinds.")
    adapter = None
    if any(m in ADAPTER_MODES for m in config.modes):
        adapter = lab.load_adapter(scenario, config.adapter)  # raises AdapterNotReady with a clear message
    columns = [Column(mode, adapter.name if mode in ADAPTER_MODES else None) for mode in config.modes]
    embed = lab.embeddings.embed_documents
    started = time.perf_counter()
    rows = []
    for number, question in enumerate(questions, 1):
        if should_stop and should_stop():
            raise Stopped()
        answers = lab.compare(scenario, columns, question["question"]).collect()
        row = {key: question.get(key) for key in ("id", "question", "kind", "reference", "must_include")}
        row["answers"] = {}
        for mode, answer in zip(config.modes, answers, strict=True):
            sources = [s.text for s in answer.sources] if mode in RETRIEVAL_MODES else None
            score = score_answer(question, answer.text, sources, scenario.style_regex, embed)
            if judge is not None and question["kind"] in CONTENT_KINDS:
                verdict = judge.grade(question["question"], question.get("reference") or "", answer.text)
                score.judged, score.judge_correct = int(verdict is not None), int(bool(verdict))
            row["answers"][mode] = _answer_record(answer, score)
        rows.append(row)
        if on_progress:
            elapsed = time.perf_counter() - started
            eta = elapsed / number * (len(questions) - number)
            on_progress(EvalProgress(number, len(questions), question["id"], round(elapsed, 1), round(eta, 1)))
    return {
        "scenario": scenario.name,
        "created_at": time.time(),
        "settings": _run_settings(lab, scenario, config, adapter, questions, judge),
        "modes": {mode: summarise(rows, mode) for mode in config.modes},
        "questions": rows,
        "failures": {mode: failure_breakdown(rows, mode) for mode in config.modes if mode in RETRIEVAL_MODES},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _answer_record(answer, score: Score) -> dict:
    return {
        "text": answer.text,
        "withheld_draft": answer.withheld_draft,
        "adapter": answer.adapter,
        "sources": [{"name": s.name, "chunk": s.chunk, "score": round(s.score, 3)} for s in answer.sources],
        "passed": score.passed(),
        "correct": bool(score.correct) if score.gradable else None,
        "declined": bool(score.declined),
        "styled": bool(score.styled) if score.style_checked else None,
        "groundedness": round(score.supported_claims / score.claims, 3) if score.claims else None,
        "retrieval_hit": bool(score.retrieval_hit) if score.retrieval_checked else None,
        "judge_correct": bool(score.judge_correct) if score.judged else None,
        "latency_s": answer.total_s,
        "ttft_s": answer.ttft_s,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "notes": answer.notes,
        "score": score.to_dict(),
    }


def scores_of(rows: list[dict], mode: str) -> list[Score]:
    return [Score(**row["answers"][mode]["score"]) for row in rows if mode in row["answers"]]


def summarise(rows: list[dict], mode: str) -> dict:
    """A mode's metrics from per-question records: every share metric, overall and per kind, plus
    latency percentiles and mean tokens per answer."""
    answered = [row for row in rows if mode in row["answers"]]
    scores = scores_of(answered, mode)
    latencies = [row["answers"][mode]["latency_s"] for row in answered]
    summary = {metric: share(scores, metric) for metric in SHARE_METRICS}
    summary.update(
        latency_p50_s=_percentile(latencies, 50),
        latency_p95_s=_percentile(latencies, 95),
        prompt_tokens=_mean([row["answers"][mode]["prompt_tokens"] for row in answered]),
        completion_tokens=_mean([row["answers"][mode]["completion_tokens"] for row in answered]),
        answers=len(answered),
        by_kind={
            kind: {metric: share(scores_of(subset, mode), metric) for metric in SHARE_METRICS}
            for kind in EVAL_KINDS
            if (subset := [row for row in answered if row["kind"] == kind])
        },
    )
    return summary


def failure_breakdown(rows: list[dict], mode: str) -> dict:
    """Where a retrieval mode went wrong: did retrieval find the answer, and was the answer correct?"""
    cells = dict.fromkeys(FAILURE_CELLS, 0)
    for row in rows:
        record = row["answers"].get(mode)
        if record is None or record["retrieval_hit"] is None or record["correct"] is None:
            continue
        cells[_FAILURE_CELL[(record["retrieval_hit"], record["correct"])]] += 1
    return cells


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 1) if values else None


def _run_settings(lab, scenario: Scenario, config: EvalConfig, adapter, questions: list[dict], judge) -> dict:
    """What the numbers depend on, so that two runs can be told apart."""
    knowledge_base = lab.knowledge_base(scenario)
    documents = knowledge_base.documents()
    return {
        **config.to_dict(),
        "adapter": adapter.name if adapter else None,
        "adapter_created_at": adapter.metadata.get("created_at") if adapter else None,
        "adapter_dataset_sha256": adapter.metadata.get("dataset_sha256") if adapter else None,
        "backend": lab.settings.backend,
        "model": lab.model_name(),
        # answers differ by precision, and `auto` picks it by CPU (core.engine.model_store.resolve_dtype)
        "precision": lab.backend.describe_model().get("dtype"),
        "decoding": asdict(lab.decoding()),
        "retrieval": knowledge_base.settings.to_dict(),
        "figure_check": lab.settings.figure_check,
        "topic_check": lab.settings.topic_check,
        "documents": len(documents),
        "knowledge_base_sha256": hashlib.sha256("".join(sorted(d.text_sha for d in documents)).encode()).hexdigest(),
        "questions": len(questions),
        "questions_sha256": hashlib.sha256(scenario.eval_path.read_bytes()).hexdigest(),
        "judge": judge.name if judge else None,
    }


def flat_rows(run: dict) -> list[dict]:
    """One row per question with every mode's mark and answer side by side: the table and the CSV export."""
    rows = []
    for question in run["questions"]:
        row = {key: question.get(key) for key in ("id", "kind", "question", "reference")}
        for mode, record in question["answers"].items():
            row[f"{mode} pass"] = record["passed"]
            row[f"{mode} answer"] = record["text"]
            if mode in RETRIEVAL_MODES:
                row[f"{mode} grounded"] = record["groundedness"]
                row[f"{mode} withheld draft"] = record.get("withheld_draft", "")  # runs before the figure check lack it
                row[f"{mode} sources"] = ", ".join(f"{s['name']}#{s['chunk']}" for s in record["sources"])
        rows.append(row)
    return rows


# Each mode added to a question's batch costs about 0.47 of the first mode's time: the four modes of
# one question take ~2.4× one mode (batched decoding; make bench's "compare ÷ one mode", 2.3–2.4).
EXTRA_MODE_COST = 0.47


def estimated_run_seconds(per_question_s: float, measured_modes: int, questions: int, modes: int) -> float:
    """How long `questions` questions in `modes` modes take, from a run that took `per_question_s` per
    question in `measured_modes` modes on this machine."""
    scale = (1 + EXTRA_MODE_COST * (modes - 1)) / (1 + EXTRA_MODE_COST * (measured_modes - 1))
    return per_question_s * scale * questions
