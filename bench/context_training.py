"""Context-aware training, on and off: hybrid freshness and refusal on the sample scenario's eval set.

Trains two adapters on the same set and settings, one with `context_aware` and one without, then
answers every eval question in base, RAG, and fine-tuned and hybrid with each adapter (one batch per
question). Scores: accuracy (every must_include pattern; answerable, fresh and style questions),
freshness (fresh questions), refusal (unanswerable questions declined), style (style_regex).
Prints a table and adds a "context_training" section to bench/results.json. Takes ~15 minutes on 2 cores.
"""

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.run_info import run_info
from core.answers.compare import Column
from core.common.scenario import load_eval_questions, load_scenario
from core.common.settings import Settings
from core.evaluation.metrics import score_answer, share
from core.lab import Lab
from core.training.finetune import train_adapter
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"


def score(rows: list[dict], scenario) -> dict:
    """The evaluation lab's own metrics (core.evaluation.metrics), without the retrieval-only ones."""
    scores = [score_answer(row, row["answer"], None, scenario.style_regex, None) for row in rows]
    return {metric: share(scores, metric) for metric in ("accuracy", "freshness", "refusal", "style")}


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir, max_new_tokens=96)
    lab = Lab(settings)
    scenario = load_scenario(SCENARIO)
    lab.ensure_ingested(scenario)

    trained = {}
    for label, aware in (("with", True), ("without", False)):
        config = replace(TrainConfig(), context_aware=aware, check_forgetting=False)
        path, report = lab.prepare_training(scenario, config)
        started = time.perf_counter()
        adapter = train_adapter(settings, scenario, config, dataset_path=path, name=f"context-{label}")
        trained[label] = {
            "adapter": adapter.name,
            "wall_s": round(time.perf_counter() - started, 1),
            "train_tokens": adapter.metadata["train_tokens"],
            "grounding": report.summary() if report else "off",
        }
        print(f"trained {label}: {trained[label]}", file=sys.stderr, flush=True)

    columns = [
        ("base", Column("base")),
        ("rag", Column("rag")),
        ("finetuned (context-aware)", Column("finetuned", "context-with")),
        ("hybrid (context-aware)", Column("hybrid", "context-with")),
        ("finetuned (plain)", Column("finetuned", "context-without")),
        ("hybrid (plain)", Column("hybrid", "context-without")),
    ]
    answers: dict[str, list[dict]] = {label: [] for label, _ in columns}
    questions = load_eval_questions(scenario)
    for number, question in enumerate(questions, 1):
        stream = lab.compare(scenario, [c for _, c in columns], question["question"])
        for _ in stream:
            pass
        for (label, _), answer in zip(columns, stream.answers, strict=True):
            answers[label].append({**question, "answer": answer.text})
        print(f"  [{number}/{len(questions)}] {question['id']}", file=sys.stderr, flush=True)

    scores = {label: score(rows, scenario) for label, rows in answers.items()}
    results = {**run_info(), "training": trained, "scores": scores, "answers": answers}
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "context_training": results}, indent=2) + "\n")

    print(f"{'mode':<26} {'accuracy':>8} {'fresh':>6} {'refusal':>7} {'style':>6}")
    for label, s in scores.items():
        print(f"{label:<26} {s['accuracy']:>8} {s['freshness']:>6} {s['refusal']:>7} {s['style']:>6}")
    for label, t in trained.items():
        print(f"{label} context: {t['wall_s']} s, {t['train_tokens']} tokens; {t['grounding']}")


if __name__ == "__main__":
    main()
