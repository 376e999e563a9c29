"""Times answering one question in all four modes in one batch, against each mode alone and one after another.

Every answer is forced to exactly 128 new tokens, so the batch and the single answers do the same
work. Medians of three runs, after a warm-up. Prints a table and adds a "compare" section to
bench/results.json. Run with `make bench` (after `make prepare`); a throw-away data dir and a
briefly trained adapter are used (LoRA speed does not depend on what the adapter learned).
"""

import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.compare import Column
from core.engine import Decoding
from core.finetune import train_adapter
from core.lab import Lab
from core.modes import MODES
from core.scenario import load_scenario
from core.settings import Settings
from core.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTION = "How many days do I have to return my bike?"
RUNS = 3
NEW_TOKENS = 128


@dataclass(frozen=True)
class FixedLength(Decoding):
    """Greedy, and never stops before max_new_tokens: equal work for every row."""

    def generate_kwargs(self, prompt_length: int) -> dict:
        return {**super().generate_kwargs(prompt_length), "min_new_tokens": self.max_new_tokens}


def median_wall(run) -> float:
    walls = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    scenario = load_scenario(SCENARIO)
    train_adapter(settings, scenario, TrainConfig(max_steps=1, batch_size=2, val_fraction=0.0))
    lab = Lab(settings)
    lab.ensure_ingested(scenario)
    decoding = FixedLength(max_new_tokens=NEW_TOKENS)
    lab.decoding = lambda: decoding  # the single-mode answers use the same fixed-length decoding
    columns = [Column(mode) for mode in MODES]
    lab.compare(scenario, columns, "Warm up.", decoding=FixedLength(max_new_tokens=4)).collect()

    alone = {mode: median_wall(lambda mode=mode: lab.ask(scenario, mode, QUESTION).collect()) for mode in MODES}
    batch_answers = []
    batch = median_wall(
        lambda: batch_answers.append(lab.compare(scenario, columns, QUESTION, decoding=decoding).collect())
    )
    first_tokens = {a.mode: a.ttft_s for a in batch_answers[-1]}
    one_after_another = sum(alone.values())

    rows = [(f"{mode} alone", wall) for mode, wall in alone.items()]
    rows += [("all four, one after another", one_after_another), ("all four in one batch", batch)]
    results = {
        "new_tokens_per_answer": NEW_TOKENS,
        "runs": RUNS,
        "wall_s": {name: round(wall, 2) for name, wall in rows},
        "batch_over_base_alone": round(batch / alone["base"], 2),
        "batch_over_slowest_alone": round(batch / max(alone.values()), 2),
        "batch_over_one_after_another": round(batch / one_after_another, 2),
        "batch_first_token_s": first_tokens,
    }
    out = ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, "compare": results}, indent=2) + "\n")

    print(f"One question, {NEW_TOKENS} new tokens per answer, median of {RUNS} runs")
    print(f"{'':<30} {'wall s':>7} {'÷ base alone':>13}")
    for name, wall in rows:
        print(f"{name:<30} {wall:>7.2f} {wall / alone['base']:>13.2f}")
    print(
        f"batch ÷ slowest single mode: {results['batch_over_slowest_alone']}; first token in the batch: {first_tokens}"
    )
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
