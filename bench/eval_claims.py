"""Does the sample scenario show what the Lab claims? A fresh data dir, the default adapter trained as
first launch trains it, then `core eval` over the whole eval set, checked against the claims.

Usage: python -m bench.eval_claims [SCENARIO_DIR] (default: the sample), or
python -m bench.eval_claims --run FILE.json to check a run saved by `python -m core eval --out`.
The model is LAB_MODEL's (default: the Lab's default). Prints the metrics and each claim with its
figures, and adds an "evaluation" section (per scenario and model) to bench/results.json.
Takes ~20 minutes on 2 cores with SmolLM2 (about 5 to train, the rest to answer every question in
four modes), about an hour with Qwen2.5-Coder-0.5B.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.run_info import run_info
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.evaluation.runs import EvalConfig, run_evaluation
from core.lab import Lab
from core.training.finetune import train_adapter
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def claims(modes: dict) -> list[tuple[str, bool, str]]:
    """(claim, holds, the figures) for the claims of the evaluation issue."""
    base, rag, tuned, hybrid = (modes[m] for m in ("base", "rag", "finetuned", "hybrid"))

    def pts(value: float) -> str:
        return f"{value * 100:+.0f} pts"

    found = [
        (
            "RAG accuracy ≥ base + 30 pts",
            rag["accuracy"] >= base["accuracy"] + 0.30,
            f"{rag['accuracy']:.2f} vs {base['accuracy']:.2f} ({pts(rag['accuracy'] - base['accuracy'])})",
        ),
        (
            "Fine-tuned style ≥ base + 50 pts",
            tuned["style"] >= base["style"] + 0.50,
            f"{tuned['style']:.2f} vs {base['style']:.2f}",
        ),
    ]
    for mode in ("rag", "hybrid"):
        fresh = modes[mode]["freshness"]
        found.append(
            (
                f"{mode} freshness ≥ fine-tuned + 40 pts",
                fresh >= tuned["freshness"] + 0.40,
                f"{fresh:.2f} vs {tuned['freshness']:.2f}",
            )
        )
    together = {m: modes[m]["accuracy"] + modes[m]["style"] for m in modes}
    found += [
        (
            "Hybrid best on accuracy + style",
            together["hybrid"] >= max(together.values()),
            ", ".join(f"{m} {v:.2f}" for m, v in together.items()),
        ),
        (
            "Hybrid accuracy ≥ RAG accuracy",
            hybrid["accuracy"] >= rag["accuracy"],
            f"{hybrid['accuracy']:.2f} vs {rag['accuracy']:.2f}",
        ),
    ]
    found += [
        (
            f"{mode} wrongly declined ≤ 0.15",
            modes[mode]["wrongly_declined"] <= 0.15,
            f"{modes[mode]['wrongly_declined']:.2f}",
        )
        for mode in ("rag", "hybrid")
    ]
    for mode in ("rag", "hybrid"):
        found.append(
            (
                f"{mode} refusal ≥ 0.75 and > base",
                modes[mode]["refusal"] >= 0.75 and modes[mode]["refusal"] > base["refusal"],
                f"{modes[mode]['refusal']:.2f} vs base {base['refusal']:.2f}",
            )
        )
    return found


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        run, train_s, grounding = json.loads(Path(sys.argv[2]).read_text()), None, None
    else:
        run, train_s, grounding = train_and_evaluate(
            load_scenario(sys.argv[1] if len(sys.argv) > 1 else ROOT / "scenarios" / "lumen_support")
        )
    checked = claims(run["modes"])

    columns = (
        "accuracy",
        "freshness",
        "refusal",
        "wrongly_declined",
        "style",
        "groundedness",
        "retrieval_hit_rate",
        "latency_p50_s",
    )
    print(f"\n{'mode':<10}" + "".join(f"{c[:12]:>13}" for c in columns))
    for mode, metrics in run["modes"].items():
        print(f"{mode:<10}" + "".join(f"{'-' if metrics[c] is None else round(metrics[c], 2):>13}" for c in columns))
    print()
    for claim, holds, figures in checked:
        print(f"{'PASS' if holds else 'MISS'}  {claim:<40} {figures}")

    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    evaluation = existing.get("evaluation", {})
    model = run["settings"].get("model", "")
    evaluation[f"{run['scenario']} · {model}"] = {
        **run_info(),
        "model": model,
        "train_s": train_s,
        "grounding": grounding,
        "adapter": run["settings"].get("adapter"),
        "eval_wall_s": run["wall_s"],
        "modes": {m: {k: v for k, v in metrics.items() if k != "by_kind"} for m, metrics in run["modes"].items()},
        "failures": run["failures"],
        "claims": [{"claim": c, "holds": h, "figures": f} for c, h, f in checked],
    }
    out.write_text(json.dumps({**existing, "evaluation": evaluation}, indent=2) + "\n")


def train_and_evaluate(scenario) -> tuple[dict, float, dict | None]:
    """As on first launch: a fresh data dir, the default adapter, then every question in every mode."""
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    lab = Lab(Settings(data_dir=data_dir))
    lab.ensure_ingested(scenario)
    started = time.perf_counter()
    config = TrainConfig()
    trained_on, grounding = lab.prepare_training(scenario, config)
    adapter = train_adapter(lab.settings, scenario, config, dataset_path=trained_on)
    train_s = round(time.perf_counter() - started, 1)
    print(f"Trained {adapter.name} in {train_s:.0f} s ({grounding.summary() if grounding else 'plain'})", flush=True)
    run = run_evaluation(
        lab, scenario, EvalConfig(), on_progress=lambda p: print(f"  [{p.done}/{p.total}] {p.question_id}", flush=True)
    )
    (data_dir / "eval-run.json").write_text(json.dumps(run, indent=2))
    print(f"Whole run: {data_dir / 'eval-run.json'}", flush=True)
    return run, train_s, grounding.to_dict() if grounding else None


if __name__ == "__main__":
    main()
