"""Speed of each dtype on this CPU: the numbers behind LAB_DTYPE=auto (core/engine/model_store.resolve_dtype).

For float32 and bfloat16, each with the engine's batch-invariant kernels (core/engine/row_products.py,
core/engine/row_attention.py), this measures: decode tok/s for one row, the prefill of a RAG prompt
(its first token, retrieval excluded) and the four compare rows' wall time, all with a fixed answer
length. The model is LAB_MODEL's. Medians of RUNS runs. Prints a table and writes the "dtypes" section
of bench/results.json, per model ("dtypes_avx2_kernels" when ISA_VARIABLES are set).
`python -m bench.dtype_speed` (~5 min on 2 cores; bfloat16 without native bf16 takes longer). With
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2` it measures the kernels
a CPU without AVX-512 or native bf16 runs.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.run_info import run_info
from core.answers.prompts import grounded_messages
from core.common.model_catalog import model_label
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.common.vocabulary import Decoding
from core.engine.cpu_budget import cpu_has_native_bf16
from core.engine.engine import Row, TextEvent
from core.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTION = "How long is the warranty on the frame?"
RUNS = 3
NEW_TOKENS = 64
FIXED = Decoding(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
# Set all three to run the kernels of a CPU without AVX-512 or native bf16 on one that has them.
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def timed_rows(lab: Lab, rows: list[Row]) -> tuple[float, float]:
    """(seconds to the first token of the first row, seconds for all rows to finish)."""
    started, first = time.perf_counter(), None
    for event in lab.engine.stream_rows(rows, FIXED):
        if isinstance(event, TextEvent) and first is None:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


def measure(lab: Lab, scenario, adapter: str) -> dict:
    plain = [{"role": "system", "content": scenario.system_prompt}, {"role": "user", "content": QUESTION}]
    grounded = grounded_messages(scenario.system_prompt, QUESTION, lab.knowledge_base(scenario).search(QUESTION))
    four = [Row(plain), Row(grounded), Row(plain, adapter), Row(grounded, adapter)]
    timed_rows(lab, four)  # warm-up: caches the system prompt's keys and values per adapter
    one = statistics.median(timed_rows(lab, [Row(plain)])[1] for _ in range(RUNS))
    first_rag = statistics.median(timed_rows(lab, [Row(grounded)])[0] for _ in range(RUNS))
    compare = statistics.median(timed_rows(lab, four)[1] for _ in range(RUNS))
    return {
        "decode_tok_s": round(NEW_TOKENS / one, 1),
        "rag_prompt_tokens": len(lab.engine.encode(grounded, NEW_TOKENS)[0]),
        "rag_first_token_s": round(first_rag, 2),
        "one_row_wall_s": round(one, 2),
        "compare_four_wall_s": round(compare, 2),
        "compare_four_over_one": round(compare / one, 2),
    }


def measure_dtype(data_dir: Path, dtype: str) -> dict:
    """One dtype, in this process."""
    scenario = load_scenario(SCENARIO)
    lab = Lab(Settings(data_dir=data_dir, dtype=dtype))
    lab.ensure_ingested(scenario)
    return measure(lab, scenario, lab.load_adapter(scenario).engine_name)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":  # a child: one dtype
        print("RESULT", json.dumps(measure_dtype(Path(sys.argv[2]), sys.argv[3])), flush=True)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    env = {**os.environ, "LAB_DATA_DIR": str(data_dir)}
    # In its own process, as the app does; so is each dtype: a process that has run one engine keeps
    # that engine's threads, which slow the next (core/engine/cpu_budget.py).
    subprocess.run(
        [sys.executable, "-m", "core", "train", str(SCENARIO), "--max-steps", "2", "--batch-size", "2"]
        + ["--val-fraction", "0", "--no-check-forgetting", "--no-context-aware"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    rows = []
    for dtype in ("float32", "bfloat16"):
        child = subprocess.run(
            [sys.executable, "-m", "bench.dtype_speed", "--one", str(data_dir), dtype],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))
        rows.append({"dtype": dtype, **json.loads(line.removeprefix("RESULT "))})
    results = {
        **run_info(),
        "model": model_label(Settings().model),
        "native_bf16": cpu_has_native_bf16(),
        "isa_override": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
        "torch_threads": torch.get_num_threads(),
        "new_tokens": NEW_TOKENS,
        "rows": rows,
    }
    section = "dtypes_avx2_kernels" if results["isa_override"] else "dtypes"
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    by_model = existing.get(section, {}) if "rows" not in existing.get(section, {}) else {}  # one entry per model
    by_model[results["model"]] = results
    out.write_text(json.dumps({**existing, section: by_model}, indent=2) + "\n")
    print(render_table(results))


def render_table(r: dict) -> str:
    lines = [
        f"{r['model']}: run {r['date']}, commit {r['commit']}, {r['machine']}, {r['cpu']}, "
        f"kernel overrides: {r['isa_override'] or 'none'}, "
        f"{r['torch_threads']} threads; medians of {RUNS}, {r['new_tokens']}-token answers.",
        "",
        "| dtype | decode tok/s (1 row) | RAG prompt | RAG first token | compare four ÷ one |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['dtype']} | {row['decode_tok_s']} | {row['rag_prompt_tokens']} tokens | "
            f"{row['rag_first_token_s']} s | {row['compare_four_wall_s']} ÷ {row['one_row_wall_s']} s = "
            f"{row['compare_four_over_one']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
