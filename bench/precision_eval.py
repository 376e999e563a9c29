"""Do int8 weights, or bfloat16, answer as well as float32? One fresh data dir; the default adapter
trained as on first launch, once per training precision (core.engine.model_store: float32 weights on a
CPU, their products in bfloat16 where the Lab answers in it on a CPU with native bf16); then the whole sample evaluation in float32 and in
each other precision. Prints each metric per mode, float32 against each, with the paired bootstrap
95% interval of the difference (core.evaluation.run_compare, as `Compare runs` shows it), and writes
a "precision" section (per scenario, model and precision) to bench/results.json.

Usage: python -m bench.precision_eval [SCENARIO_DIR] [--against int8 bfloat16]   (default: int8, and
bfloat16 on a CPU with native bf16, where `auto` may pick it; model: LAB_MODEL's, default the Lab's).
The rule (issue 22): another precision becomes the default only if accuracy, freshness, refusal and
style each stay within 0.03 of float32 in every mode.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench.run_info import run_info
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.engine.model_store import resolve_device, training_dtype
from core.engine.row_products import packs_for_onednn
from core.evaluation.eval_store import save_run
from core.evaluation.run_compare import compare_runs
from core.evaluation.runs import EvalConfig, run_evaluation
from core.lab import Lab
from core.training.adapters import set_active
from core.training.finetune import train_adapter
from core.training.mixed_precision import training_precision
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
RULE_METRICS = ("accuracy", "freshness", "refusal", "style")
TOLERANCE = 0.03
PRECISIONS = {  # the settings each precision runs with
    "float32": {"dtype": "float32", "quantization": "none"},
    "int8": {"dtype": "float32", "quantization": "int8"},
    "bfloat16": {"dtype": "bfloat16", "quantization": "none"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=ROOT / "scenarios" / "lumen_support")
    fast_bf16 = packs_for_onednn(torch.bfloat16)  # without native bf16, bfloat16 reads prompts ~6x slower
    parser.add_argument(
        "--against", nargs="+", choices=("int8", "bfloat16"), default=["int8"] + ["bfloat16"] * fast_bf16
    )
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    data_dir = Path(tempfile.mkdtemp(prefix="lab-precision-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    base_settings = Settings(data_dir=data_dir)

    runs, adapters, train_s = {}, {}, {}
    for precision in ("float32", *args.against):
        settings = base_settings.model_copy(update=PRECISIONS[precision])
        lab = Lab(settings)
        lab.ensure_ingested(scenario)
        trained_in = _training_precision(settings)
        if trained_in not in adapters:
            started = time.perf_counter()
            config = TrainConfig()
            trained_on, _ = lab.prepare_training(scenario, config)
            adapters[trained_in] = train_adapter(settings, scenario, config, dataset_path=trained_on).name
            train_s[trained_in] = round(time.perf_counter() - started, 1)
            print(f"Trained {adapters[trained_in]} in {trained_in}: {train_s[trained_in]:.0f} s", flush=True)
        set_active(data_dir, scenario.name, adapters[trained_in])  # this run answers with its dtype's adapter
        started = time.perf_counter()
        run = run_evaluation(
            lab, scenario, EvalConfig(), on_progress=lambda p: print(f"  [{p.done}/{p.total}]", end="\r", flush=True)
        )
        save_run(data_dir, run, f"precision {precision}")
        runs[precision] = run
        print(f"{precision} (adapter trained in {trained_in}): {time.perf_counter() - started:.0f} s", flush=True)

    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    section = existing.get("precision", {})
    for precision in args.against:
        changes = compare_runs(runs["float32"], runs[precision])
        print(f"\n{'mode':<10}{'metric':<18}{'float32':>8}{precision:>13}{'diff':>8}   95% interval")
        for change in changes:
            print(
                f"{change.mode:<10}{change.metric:<18}{change.before:>8.2f}{change.after:>13.2f}"
                f"{change.difference:>+8.2f}   [{change.low:+.2f}, {change.high:+.2f}]"
            )
        within = all(abs(c.difference) <= TOLERANCE for c in changes if c.metric in RULE_METRICS)
        print(f"{precision}: every rule metric within {TOLERANCE} of float32: {within}")
        section[f"{scenario.name} · {runs['float32']['settings'].get('model', '')} · {precision}"] = {
            **run_info(),
            "adapters": adapters,
            "train_s": train_s,
            "eval_wall_s": {p: runs[p]["wall_s"] for p in ("float32", precision)},
            "changes": [c.to_dict() for c in changes],
            "within_tolerance": within,
        }
    out.write_text(json.dumps({**existing, "precision": section}, indent=2) + "\n")
    print(f"Runs saved in {data_dir} (open it with LAB_DATA_DIR to see them under Compare runs)")


def _training_precision(settings: Settings) -> str:
    """How the adapter for `settings` trains: its weights' dtype, and its products' where autocast differs."""
    device = resolve_device(settings)
    weights = str(training_dtype(settings, device)).removeprefix("torch.")
    products = training_precision(settings, device).products
    return f"{weights} with {str(products).removeprefix('torch.')} products" if products else weights


if __name__ == "__main__":
    main()
