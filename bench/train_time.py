"""Times training the sample scenario's adapter as first launch does, and answering in each mode.

Prints a table and writes bench/results.json. Run with `make bench` (after `make prepare`).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.run_info import run_info
from core.finetune import train_adapter
from core.lab import Lab
from core.modes import MODES
from core.scenario import load_scenario
from core.settings import Settings
from core.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTION = "How many days do I have to return my bike?"


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    scenario = load_scenario(SCENARIO)

    started = time.perf_counter()
    adapter = train_adapter(settings, scenario, TrainConfig())
    train_wall = time.perf_counter() - started

    lab = Lab(settings.model_copy(update={"max_new_tokens": 128}))
    lab.ensure_ingested(scenario)
    lab.ask(scenario, "base", "Warm up.").collect()
    answers = {mode: lab.ask(scenario, mode, QUESTION).collect() for mode in MODES}

    results = {
        **run_info(),
        "sample_adapter_training": {
            "wall_s": round(train_wall, 1),
            "train_tokens": adapter.metadata["train_tokens"],
            "tokens_per_s": adapter.metadata["tokens_per_s"],
            "epochs": adapter.metadata["config"]["epochs"],
            "final_loss": adapter.metadata["final_loss"],
            "final_val_loss": adapter.metadata["final_val_loss"],
        },
        "answers": {
            mode: {
                "ttft_s": a.ttft_s,
                "total_s": a.total_s,
                "completion_tokens": a.completion_tokens,
                "tokens_per_s": a.tokens_per_s,
                "prompt_tokens": a.prompt_tokens,
            }
            for mode, a in answers.items()
        },
    }
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")

    t = results["sample_adapter_training"]
    print(
        f"Sample adapter training: {t['wall_s']} s wall, {t['train_tokens']} tokens, {t['tokens_per_s']} tok/s, "
        f"{t['epochs']} epochs, loss {t['final_loss']}, val loss {t['final_val_loss']}"
    )
    print(f"{'mode':<10} {'TTFT s':>7} {'total s':>8} {'tokens':>7} {'tok/s':>6} {'prompt':>7}")
    for mode, a in results["answers"].items():
        print(
            f"{mode:<10} {a['ttft_s']:>7.2f} {a['total_s']:>8.2f} {a['completion_tokens']:>7} {a['tokens_per_s']:>6.1f} {a['prompt_tokens']:>7}"
        )
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
