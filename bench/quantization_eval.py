"""Do int8 weights answer as well as full precision? One fresh data dir, the default adapter trained
once as on first launch, then the whole sample evaluation twice with that adapter: quantization
"none" and "int8" (core/engine/int8_weights.py). Prints each metric per mode for both runs with the
paired bootstrap 95% interval of the difference (core.evaluation.run_compare, as `Compare runs` shows
it), and writes a "quantization" section (per model) to bench/results.json.

Usage: python -m bench.quantization_eval [SCENARIO_DIR]   (model: LAB_MODEL's, default the Lab's)
The rule (issue 22): int8 becomes the default only if accuracy, freshness, refusal and style each
stay within 0.03 of full precision in every mode.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.run_info import run_info
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.evaluation.eval_store import save_run
from core.evaluation.run_compare import compare_runs
from core.evaluation.runs import EvalConfig, run_evaluation
from core.lab import Lab
from core.training.finetune import train_adapter
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
RULE_METRICS = ("accuracy", "freshness", "refusal", "style")
TOLERANCE = 0.03


def main() -> None:
    scenario = load_scenario(sys.argv[1] if len(sys.argv) > 1 else ROOT / "scenarios" / "lumen_support")
    data_dir = Path(tempfile.mkdtemp(prefix="lab-quant-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    lab = Lab(settings.model_copy(update={"quantization": "none"}))
    lab.ensure_ingested(scenario)
    started = time.perf_counter()
    config = TrainConfig()
    trained_on, _ = lab.prepare_training(scenario, config)
    adapter = train_adapter(lab.settings, scenario, config, dataset_path=trained_on)
    print(f"Trained {adapter.name} in {time.perf_counter() - started:.0f} s", flush=True)

    runs = {}
    for quantization in ("none", "int8"):
        if quantization != "none":
            lab = Lab(settings.model_copy(update={"quantization": quantization}))
        started = time.perf_counter()
        run = run_evaluation(
            lab, scenario, EvalConfig(), on_progress=lambda p: print(f"  [{p.done}/{p.total}]", end="\r", flush=True)
        )
        run["settings"]["quantization"] = quantization
        save_run(data_dir, run, f"quantization {quantization}")
        runs[quantization] = run
        print(f"quantization {quantization}: {time.perf_counter() - started:.0f} s", flush=True)

    changes = compare_runs(runs["none"], runs["int8"])
    print(f"\n{'mode':<10}{'metric':<18}{'none':>7}{'int8':>7}{'diff':>8}   95% interval")
    for change in changes:
        print(
            f"{change.mode:<10}{change.metric:<18}{change.before:>7.2f}{change.after:>7.2f}"
            f"{change.difference:>+8.2f}   [{change.low:+.2f}, {change.high:+.2f}]"
        )
    ruled = [c for c in changes if c.metric in RULE_METRICS]
    within = all(abs(c.difference) <= TOLERANCE for c in ruled)
    print(f"\nEvery rule metric within {TOLERANCE}: {within}")

    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    section = existing.get("quantization", {})
    section[f"{scenario.name} · {runs['none']['settings'].get('model', '')}"] = {
        **run_info(),
        "adapter": adapter.name,
        "eval_wall_s": {q: run["wall_s"] for q, run in runs.items()},
        "changes": [c.to_dict() for c in changes],
        "within_tolerance": within,
    }
    out.write_text(json.dumps({**existing, "quantization": section}, indent=2) + "\n")
    print(f"Runs saved in {data_dir} (open it with LAB_DATA_DIR to see them under Compare runs)")


if __name__ == "__main__":
    main()
