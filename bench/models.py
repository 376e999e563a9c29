"""What each bundled model costs a user: cold start to a first answer, memory, and answer times.

For every bundled model, in its own process (so memory and caches start clean): the time from an
empty process to the first base answer (imports, model load, the answer), peak RSS after every mode
has answered, a RAG answer's first token and total time, decode tokens/s, and the four modes of
Compare in one batch. Answers are fixed at NEW_TOKENS tokens so the models' times compare. The
models must be converted first (`python -m core prepare --model NAME`); the sample adapter's
training time comes from `make bench-eval` (bench.eval_claims), which trains it as first launch does.

`python -m bench.models` (~4 min on 2 cores). Prints a table and writes the "models" section of
bench/results.json.
"""

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run_info import run_info

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTIONS = ("How long is the warranty on the frame?", "What does Lumen Shield cost?", "How do I book a service?")
NEW_TOKENS = 48


def prepare(model: str, data_dir: str) -> None:
    """First child: indexes the sample and trains a one-step adapter (its memory is not the answers')."""
    from core.common.scenario import load_scenario
    from core.common.settings import Settings
    from core.lab import Lab
    from core.training.finetune import train_adapter
    from core.training.train_config import TrainConfig

    lab = Lab(Settings(data_dir=Path(data_dir), model=model))
    scenario = load_scenario(SCENARIO)
    lab.ensure_ingested(scenario)
    config = TrainConfig(max_steps=1, batch_size=1, check_forgetting=False, context_aware=False)
    train_adapter(lab.settings, scenario, config, name="one")


def measure(model: str, data_dir: str) -> dict:
    """Second child: everything from the first import on is timed."""
    started = time.perf_counter()
    from core.answers.compare import Column
    from core.common.scenario import load_scenario
    from core.common.settings import Settings
    from core.common.vocabulary import MODES, Decoding
    from core.lab import Lab

    lab = Lab(Settings(data_dir=Path(data_dir), model=model))
    scenario = load_scenario(SCENARIO)
    fixed = Decoding(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    lab.decoding = lambda: fixed  # every answer exactly NEW_TOKENS long
    lab.ask(scenario, "base", QUESTIONS[0]).collect()
    cold_start_s = time.perf_counter() - started
    rag = [lab.ask(scenario, "rag", q).collect() for q in QUESTIONS]
    compare_s = []
    for question in QUESTIONS:
        stream = lab.compare(scenario, [Column(mode) for mode in MODES], question, decoding=fixed)
        stream.collect()
        compare_s.append(stream.wall_s)
    base_s = [lab.ask(scenario, "base", q).collect().total_s for q in QUESTIONS]
    return {
        "model": lab.model_label,
        "cold_start_s": round(cold_start_s, 2),
        "rag_first_token_s": round(statistics.median(a.ttft_s for a in rag), 3),
        "rag_answer_s": round(statistics.median(a.total_s for a in rag), 2),
        "decode_tok_s": round(statistics.median(a.tokens_per_s for a in rag), 1),
        "base_answer_s": round(statistics.median(base_s), 2),
        "compare_four_s": round(statistics.median(compare_s), 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] in ("--prepare", "--measure"):
        if sys.argv[1] == "--prepare":
            prepare(sys.argv[2], sys.argv[3])
        else:
            print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        return
    from core.common.model_catalog import BUNDLED_MODELS

    rows = []
    for key in BUNDLED_MODELS:
        data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-models-"))
        (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
        for step in ("--prepare", "--measure"):
            child = subprocess.run(
                [sys.executable, "-m", "bench.models", step, key, str(data_dir)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if child.returncode:
                sys.exit(f"{key} {step} failed:\n{child.stderr[-3000:]}")
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "models": {**run_info(), "rows": rows}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
