"""Times training the sample scenario's adapter as first launch does (context-aware, default settings),
compares the Lab's training loop with a plain transformers Trainer + peft on the same data and
settings, and times answering in each mode.

Prints a table and writes bench/results.json. Run with `make bench` (after `make prepare`).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.run_info import run_info
from core.common.scenario import load_scenario
from core.common.settings import Settings
from core.common.vocabulary import MODES
from core.lab import Lab
from core.training.finetune import train_adapter
from core.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "lumen_support"
QUESTION = "How many days do I have to return my bike?"


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    (data_dir / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    settings = Settings(data_dir=data_dir)
    scenario = load_scenario(SCENARIO)

    lab = Lab(settings.model_copy(update={"max_new_tokens": 128}))
    lab.ensure_ingested(scenario)
    started = time.perf_counter()
    config = TrainConfig()
    trained_on, _ = lab.prepare_training(scenario, config)
    adapter = train_adapter(settings, scenario, config, dataset_path=trained_on)
    train_wall = time.perf_counter() - started
    throughput = compare_with_trainer(settings, scenario, trained_on)
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
        "training_throughput": throughput,
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
    existing = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**existing, **results}, indent=2) + "\n")

    t = results["sample_adapter_training"]
    print(
        f"Sample adapter training: {t['wall_s']} s wall, {t['train_tokens']} tokens, {t['tokens_per_s']} tok/s, "
        f"{t['epochs']} epochs, loss {t['final_loss']}, val loss {t['final_val_loss']}"
    )
    b = results["training_throughput"]
    print(
        f"Training throughput, {b['steps']} steps each on the same data: Lab {b['lab_tokens_per_s']} tok/s, "
        f"Trainer + peft {b['trainer_tokens_per_s']} tok/s, ratio {b['ratio']} (target >= 1.0)"
    )
    print(f"{'mode':<10} {'TTFT s':>7} {'total s':>8} {'tokens':>7} {'tok/s':>6} {'prompt':>7}")
    for mode, a in results["answers"].items():
        print(
            f"{mode:<10} {a['ttft_s']:>7.2f} {a['total_s']:>8.2f} {a['completion_tokens']:>7} {a['tokens_per_s']:>6.1f} {a['prompt_tokens']:>7}"
        )
    print(f"wrote {out}", file=sys.stderr)


def compare_with_trainer(settings: Settings, scenario, dataset_path: Path, steps: int = 12) -> dict:
    """Tokens/s of the Lab's loop and of transformers' Trainer over the same examples, LoRA settings,
    batch size and number of steps (non-padding tokens per second of training)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from core.engine.model_store import load_model
    from core.training.datasets import load_chat_dataset
    from core.training.finetune import tokenize_example

    config = TrainConfig(max_steps=steps, val_fraction=0.0, check_forgetting=False)
    ours = train_adapter(settings, scenario, config, dataset_path=dataset_path, name="throughput-lab")

    loaded = load_model(settings, dtype=torch.float32)
    examples = [
        tokenize_example(loaded.tokenizer, e.messages, config.max_seq_len)
        for e in load_chat_dataset(dataset_path, scenario.system_prompt).examples
    ]
    model = get_peft_model(
        loaded.model,
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    seen = {"tokens": 0}
    pad = loaded.tokenizer.pad_token_id

    def collate(batch):
        width = max(len(ids) for ids, _ in batch)
        seen["tokens"] += sum(len(ids) for ids, _ in batch)
        return {
            "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch]),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]),
        }

    arguments = TrainingArguments(
        output_dir=str(settings.data_dir / "trainer"),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_steps=steps,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=config.seed,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=examples, data_collator=collate)
    runtime = trainer.train().metrics["train_runtime"]
    trainer_rate = seen["tokens"] / runtime
    return {
        "steps": steps,
        "lab_tokens_per_s": ours.metadata["tokens_per_s"],
        "trainer_tokens_per_s": round(trainer_rate, 1),
        "ratio": round(ours.metadata["tokens_per_s"] / trainer_rate, 2),
    }


if __name__ == "__main__":
    main()
