"""LoRA fine-tuning on a chat dataset: loss on assistant tokens only, seeded, published atomically.

A plain PyTorch loop rather than transformers' Trainer: the sets are small, and the loop reports
progress (step, losses, tokens/s) through one callback, which is also how a job is cancelled.
"""

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from core.common.scenario import Scenario
from core.common.settings import Settings
from core.engine.cpu_budget import CpuBudget
from core.engine.model_store import load_model, resolve_device, training_dtype
from core.training.adapters import METADATA_FILE, AdapterInfo, publish, staging_dir
from core.training.datasets import load_chat_dataset
from core.training.estimate import FINISH_S, RecentRate, seconds_for, validation_passes_left
from core.training.forgetting import check_forgetting
from core.training.frozen_layers import FrozenLayerOutputs, frozen_layer_outputs
from core.training.mixed_precision import FLOAT32, TrainingPrecision, training_precision
from core.training.shared_prefix import SharedPrefix, prefix_groups
from core.training.train_config import TrainConfig

IGNORE = -100
MICRO_BATCH_TOKENS = 512  # padded tokens per forward/backward pass (a backward pass cannot pause: ~2 s)


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    val_loss: float | None
    tokens_per_s: float  # over the last few minutes, pauses included (core.training.estimate.RecentRate)
    eta_s: float  # time left, validation and publishing included (core.training.estimate.seconds_for)


class Cancelled(Exception):
    """Raised by a progress callback to stop training; nothing is published."""


def tokenize_example(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Input ids and labels; labels keep only the assistant turns (and their end-of-turn token)."""
    ids: list[int] = []
    labels: list[int] = []
    for index, message in enumerate(messages):
        before = _render(tokenizer, messages[:index], generation_prompt=message["role"] == "assistant")
        after = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if message["role"] == "assistant":
            prompt_part = before[len(ids) :]
            ids += prompt_part
            labels += [IGNORE] * len(prompt_part)
            answer = after[len(ids) :]
            ids += answer
            labels += answer
        else:
            new = after[len(ids) :]
            ids += new
            labels += [IGNORE] * len(new)
    return ids[:max_len], labels[:max_len]


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
        )
    )


def _batches(examples: list, batch_size: int, rng: random.Random) -> list[list]:
    """Shuffled batches of similar lengths: sorting within windows of a few batches cuts padding."""
    order = examples[:]
    rng.shuffle(order)
    window = batch_size * 4
    batches = []
    for start in range(0, len(order), window):
        group = sorted(order[start : start + window], key=lambda example: len(example[0]))
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(batch, pad_id: int, device: str) -> dict:
    width = max(len(ids) for ids, _ in batch)
    input_ids = [ids + [pad_id] * (width - len(ids)) for ids, _ in batch]
    labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in batch]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
    return {
        "input_ids": torch.tensor(input_ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


def train_adapter(
    settings: Settings,
    scenario: Scenario,
    config: TrainConfig,
    dataset_path: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    name: str | None = None,
    on_phase: Callable[[str], None] | None = None,
    source: dict | None = None,
) -> AdapterInfo:
    """Trains a LoRA adapter for the scenario and publishes it as the active adapter.

    `dataset_path` is the file trained on (default: the scenario's train.jsonl); `source` describes
    what the user chose when that file was derived from another (context-aware training). Training
    pauses before the model's next layer while the app answers (core.engine.cpu_budget)."""
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    on_phase = on_phase or (lambda phase: None)
    on_phase("Loading the model and the training set")
    dataset_path = Path(dataset_path or scenario.train_path)
    dataset = load_chat_dataset(dataset_path, scenario.system_prompt)
    if dataset.errors:
        raise ValueError("The training set has errors:\n" + "\n".join(dataset.errors[:20]))

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = resolve_device(settings)
    loaded = load_model(settings, dtype=training_dtype(settings, device))
    precision = training_precision(settings, device)
    tokenizer, device = loaded.tokenizer, loaded.device
    tokenized = [tokenize_example(tokenizer, e.messages, config.max_seq_len) for e in dataset.examples]
    # An example cut before its answer has nothing left to learn from.
    examples = [(ids, labels) for ids, labels in tokenized if any(label != IGNORE for label in labels)]
    if not examples:
        raise ValueError(f"Every example is longer than max_seq_len ({config.max_seq_len}) before its answer.")
    rng = random.Random(config.seed)
    shuffled = examples[:]
    rng.shuffle(shuffled)
    val_count = config.held_out(len(shuffled))
    val_set, train_set = shuffled[:val_count], shuffled[val_count:]

    layers = config.adapted_layers(loaded.model.config.num_hidden_layers)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        # peft takes a layer subset only with named targets: "all-linear" spelled out as the decoder's layers
        target_modules=config.target_module_list() if layers is None else _linear_layer_names(loaded.model, config),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(loaded.model, lora)
    model.train()
    frozen = frozen_layer_outputs(model.get_base_model().model, layers)
    float_weights_back = precision.cast_frozen_weights(model.get_base_model().model.layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    warmup = max(1, total_steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )

    on_phase("Training")
    threads_before = torch.get_num_threads()  # restored at the end: the calling thread goes on
    pauses = _pause_while_the_app_answers(model, CpuBudget(settings.data_dir, "job", settings.threads), on_phase)
    history: list[dict] = []
    step, tokens_seen, train_started = 0, 0, time.perf_counter()
    planned_tokens = sum(len(ids) for ids, _ in train_set) * total_steps / steps_per_epoch
    val_tokens = sum(len(ids) for ids, _ in val_set)  # one validation pass
    recent = RecentRate()
    recent.add(train_started, 0)
    val_loss = None
    for epoch in range(1, config.epochs + 1):
        for batch in _batches(train_set, config.batch_size, rng):
            if step >= total_steps:
                break
            # Gradients accumulate over micro-batches of bounded size: the same update as one batch, in
            # bounded memory (eight hybrid-length examples at once took ~13 GB on CPU).
            labelled = sum(sum(label != IGNORE for label in labels[1:]) for _, labels in batch)
            batch_loss = 0.0
            # LoRA dropout draws a mask per example, so a shared beginning would share it too
            for shared, group in prefix_groups(batch) if not config.dropout else [(0, batch)]:
                with precision.decoder():
                    prefix = SharedPrefix(model.get_base_model().model, group, shared, frozen) if shared else None
                for part in micro_batches(group, MICRO_BATCH_TOKENS, skip=shared):
                    loss_sum, _ = _assistant_loss(
                        model, part, frozen, tokenizer.pad_token_id, device, prefix, precision
                    )
                    with precision.vocabulary():
                        (loss_sum / labelled).backward()
                    batch_loss += loss_sum.item() / labelled
                    tokens_seen += sum(len(ids) for ids, _ in part)
                if prefix:
                    prefix.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - train_started
            last_of_epoch = step % steps_per_epoch == 0 or step == total_steps
            if last_of_epoch and val_set:
                val_loss = _validation_loss(model, val_set, frozen, tokenizer.pad_token_id, device, precision)
            history.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(batch_loss, 4),
                    "val_loss": val_loss if last_of_epoch else None,
                }
            )
            if on_progress:
                rate = recent.add(time.perf_counter(), tokens_seen) or tokens_seen / elapsed
                on_progress(
                    Progress(
                        step=step,
                        total_steps=total_steps,
                        epoch=epoch,
                        loss=batch_loss,
                        val_loss=val_loss,
                        tokens_per_s=rate,
                        eta_s=seconds_for(
                            planned_tokens - tokens_seen,
                            val_tokens * validation_passes_left(step, total_steps, steps_per_epoch),
                            rate,
                            FINISH_S,
                        ),
                    )
                )

    train_seconds = time.perf_counter() - train_started
    del frozen  # its kept inputs (up to KEEP_BYTES) serve training only, not the forgetting check
    float_weights_back()
    forgetting = None
    if config.check_forgetting:
        on_phase("Checking general knowledge (forgetting)")
        forgetting = check_forgetting(model, tokenizer, scenario.system_prompt)
    for pause in pauses:
        pause.remove()
    torch.set_num_threads(threads_before)
    on_phase("Publishing")
    duration = time.perf_counter() - started
    name = name or f"{scenario.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    staged = staging_dir(settings.data_dir, scenario.name)
    model.save_pretrained(staged)
    metadata = {
        "scenario": scenario.name,
        "base_model": loaded.name,
        "device": device,
        "dtype": str(loaded.dtype).removeprefix("torch."),  # the base model's while training
        # its products' dtype, if not that (core.training.mixed_precision)
        "autocast": str(precision.products).removeprefix("torch.") if precision.products else None,
        "dataset": str(dataset_path),
        "dataset_sha256": dataset.sha256,
        **(source or {}),
        "examples": len(train_set),
        "skipped_too_long": len(tokenized) - len(examples),
        "val_examples": len(val_set),
        "config": asdict(config),
        "loss_history": history,
        "final_loss": history[-1]["loss"] if history else None,
        "final_val_loss": val_loss,
        "train_tokens": tokens_seen,
        "tokens_per_s": round(tokens_seen / max(1e-9, train_seconds), 1),
        "duration_s": round(duration, 1),
        "forgetting": forgetting,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (staged / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return publish(staged, settings.data_dir, scenario.name, name)


def _linear_layer_names(model, config: TrainConfig) -> list[str]:
    """The configured target names, with "all-linear" as the distinct names of the decoder layers'
    linear layers (what peft's "all-linear" adapts: not the output projection)."""
    targets = config.target_module_list()
    if targets != "all-linear":
        return targets
    names = {
        name.rpartition(".")[2]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".layers." in name
    }
    return sorted(names)


def _pause_while_the_app_answers(model, budget: CpuBudget, on_phase) -> list:
    """Checks before each decoder layer's forward whether the app is answering, and waits while it is:
    a job that runs on beside an answer slows it ~10x (measured: a 5 s answer took 49 s while a
    training micro-batch ran on every core). Returns the hooks, to remove."""

    def wait(*_):
        if budget.apply(on_pause=lambda: on_phase("Training (paused while the app answers)")):
            on_phase("Training")

    return [layer.register_forward_pre_hook(wait) for layer in model.get_base_model().model.layers]


def micro_batches(batch: list, max_tokens: int, skip: int = 0) -> list[list]:
    """The batch (sorted by length) in consecutive parts whose padded size stays within max_tokens, counting
    the tokens after the first `skip` (a beginning the examples share runs apart: core.training.shared_prefix)."""
    parts, current = [], []
    for example in sorted(batch, key=lambda e: len(e[0])):
        if current and (len(example[0]) - skip) * (len(current) + 1) > max_tokens:
            parts.append(current)
            current = []
        current.append(example)
    return parts + [current]


def _assistant_loss(
    peft_model,
    part: list,
    frozen: FrozenLayerOutputs,
    pad_id: int,
    device: str,
    prefix: SharedPrefix | None = None,
    precision: TrainingPrecision = FLOAT32,
) -> tuple[torch.Tensor, int]:
    """Summed next-token loss of a micro-batch on labelled positions only, and how many there were.
    The vocabulary projection (a fifth of the model's compute) runs just where a label exists; the
    frozen lower layers run once per example (core.training.frozen_layers); with a `prefix`, the examples'
    shared beginning ran before them and each runs only its rest (core.training.shared_prefix). The decoder
    and the vocabulary projection run their products as `precision` says (core.training.mixed_precision);
    the loss is float32."""
    causal_lm = peft_model.get_base_model()
    skip = prefix.length if prefix else 0
    inputs = _collate([(ids[skip:], labels[skip:]) for ids, labels in part], pad_id, device)
    mask, cached = inputs["attention_mask"], {}
    if prefix:
        mask = torch.cat([mask.new_ones(len(part), skip), mask], dim=1)
        cached = {"past_key_values": prefix.cache_for(len(part)), "use_cache": True}
    with frozen.running(part, skip), precision.decoder():
        output = causal_lm.model(input_ids=inputs["input_ids"], attention_mask=mask, **cached)
    hidden = output.last_hidden_state
    targets = inputs["labels"][:, 1:]
    keep = targets != IGNORE
    with precision.vocabulary():
        logits = causal_lm.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum"), int(keep.sum())


@torch.no_grad()
def _validation_loss(
    model, val_set, frozen: FrozenLayerOutputs, pad_id, device, precision: TrainingPrecision = FLOAT32
) -> float:
    """Mean loss per labelled token over the validation set."""
    model.eval()
    total, count = 0.0, 0
    for part in micro_batches(val_set, MICRO_BATCH_TOKENS):
        loss_sum, labelled = _assistant_loss(model, part, frozen, pad_id, device, precision=precision)
        total, count = total + loss_sum.item(), count + labelled
    model.train()
    return round(total / max(1, count), 4)
