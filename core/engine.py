"""The one shared model: streams answers for batches of rows, each row with its own LoRA adapter or none.

All modes share this engine, its decoding settings and its seed, so differences between answers
come from the prompt (retrieval) and the adapter alone. Rows run through peft's per-row
`adapter_names`; a row with no adapter uses peft's "__base__", which skips every LoRA layer, so
base answers equal the plain model's token for token. Prompts of different lengths are prefilled one
by one and their caches left-padded into one, so no compute goes to padding. One lock serialises
generation.
"""

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import (
    DynamicCache,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from core.model_store import LoadedModel

BASE_ADAPTER = "__base__"


@dataclass(frozen=True)
class Decoding:
    """One decoding setup shared by every mode."""

    max_new_tokens: int = 160
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    seed: int = 0

    def generate_kwargs(self, prompt_length: int) -> dict:
        """generate() arguments for left-padded prompts `prompt_length` tokens wide. The repetition penalty
        counts only the answer's own tokens: penalising the prompt would stop RAG from quoting its sources."""
        kwargs = {"max_new_tokens": self.max_new_tokens}
        if self.repetition_penalty != 1.0:
            penalty = RepetitionPenaltyLogitsProcessor(self.repetition_penalty, prompt_ignore_length=prompt_length)
            kwargs["logits_processor"] = LogitsProcessorList([penalty])
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


@dataclass
class Row:
    """One conversation to continue: chat messages as {"role", "content"} dicts, and an adapter or None."""

    messages: list[dict]
    adapter: str | None = None


@dataclass
class RowStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - (self.ttft_s or 0.0)
        if self.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "tokens_per_s": self.tokens_per_s,
            "notes": list(self.notes),
        }


@dataclass
class TextEvent:
    row: int
    text: str


@dataclass
class DoneEvent:
    row: int
    stats: RowStats


class _TokenQueue(BaseStreamer):
    """Receives each step's new token ids from generate() and hands them to the consuming thread."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:  # generate() first pushes the prompt itself
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self):
        self.queue.put(None)


class _StopFlag(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Engine:
    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.model_name = loaded.name
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.adapters: dict[str, str] = {}  # adapter name -> folder it was loaded from
        self._lock = threading.Lock()

    # --- adapters -------------------------------------------------------------------------
    def ensure_adapter(self, name: str, path: str) -> None:
        """Loads a peft LoRA adapter under `name` once; the base weights stay shared."""
        with self._lock:
            if self.adapters.get(name) == str(path):
                return
            from peft import PeftModel

            if name in getattr(self.model, "peft_config", {}):
                self.model.delete_adapter(name)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
            self.model.eval()
            self.adapters[name] = str(path)

    def forget_adapter(self, name: str) -> None:
        """Drops an adapter that was deleted or renamed, so a later one under the same name loads afresh."""
        with self._lock:
            if self.adapters.pop(name, None) and self.adapters:
                self.model.delete_adapter(name)  # peft keeps at least one adapter; the last stays until replaced

    # --- prompts --------------------------------------------------------------------------
    def encode(self, messages: list[dict], max_new_tokens: int) -> tuple[list[int], list[str]]:
        """Chat-templates the messages; drops the oldest turns, then cuts the last message, to fit the context."""
        budget = self.context_window - max_new_tokens
        messages = [dict(m) for m in messages]
        notes: list[str] = []
        ids = self._template(messages)
        dropped = 0
        while len(ids) > budget and self._droppable_turn(messages) is not None:
            del messages[self._droppable_turn(messages)]
            dropped += 1
            ids = self._template(messages)
        if dropped:
            notes.append(
                f"The conversation was too long for the model's context; the {dropped} oldest turn(s) were left out."
            )
        if len(ids) > budget:
            last = messages[-1]
            content_ids = self.tokenizer.encode(last["content"], add_special_tokens=False)
            keep = max(0, len(content_ids) - (len(ids) - budget))
            last["content"] = self.tokenizer.decode(content_ids[:keep])
            ids = self._template(messages)[:budget]
            notes.append(
                f"Your input was longer than the model's context window ({self.context_window} tokens); "
                f"it was truncated to its first {keep} tokens."
            )
        return ids, notes

    def _template(self, messages: list[dict]) -> list[int]:
        return list(
            self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        )

    @staticmethod
    def _droppable_turn(messages: list[dict]) -> int | None:
        """Index of the oldest message that is neither the system prompt nor the last message."""
        for index, message in enumerate(messages[:-1]):
            if message["role"] != "system":
                return index
        return None

    # --- generation -----------------------------------------------------------------------
    def stream_rows(self, rows: list[Row], decoding: Decoding) -> Iterator[TextEvent | DoneEvent]:
        """Generates all rows in one batch, yielding text as it is decoded and one DoneEvent per row."""
        started = time.perf_counter()
        encoded = [self.encode(row.messages, decoding.max_new_tokens) for row in rows]
        stats = [RowStats(prompt_tokens=len(ids), notes=notes) for ids, notes in encoded]
        inputs = self._left_padded([ids for ids, _ in encoded])
        tokens_queue = _TokenQueue()
        stop = threading.Event()
        kwargs = dict(
            **inputs,
            **decoding.generate_kwargs(inputs["input_ids"].shape[-1]),
            streamer=tokens_queue,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList([_StopFlag(stop)]),
        )
        failure: list[BaseException] = []
        sequences = [ids for ids, _ in encoded]
        worker = threading.Thread(
            target=self._generate, args=(rows, sequences, kwargs, decoding.seed, tokens_queue, failure), daemon=True
        )
        worker.start()

        generated: list[list[int]] = [[] for _ in rows]
        emitted = ["" for _ in rows]
        finished = [False for _ in rows]
        try:
            while (step := tokens_queue.queue.get()) is not None:
                for index, token in enumerate(step):
                    if finished[index]:
                        continue
                    if token == self.tokenizer.eos_token_id:
                        finished[index] = True
                        stats[index].total_s = time.perf_counter() - started
                        yield DoneEvent(index, stats[index])
                        continue
                    generated[index].append(token)
                    stats[index].completion_tokens += 1
                    text = self.tokenizer.decode(generated[index], skip_special_tokens=True)
                    if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                        continue
                    delta = text[len(emitted[index]) :]
                    if delta:
                        if stats[index].ttft_s is None:
                            stats[index].ttft_s = time.perf_counter() - started
                        emitted[index] = text
                        yield TextEvent(index, delta)
            worker.join()
            if failure:
                raise failure[0]
            for index in range(len(rows)):
                if not finished[index]:
                    stats[index].total_s = time.perf_counter() - started
                    stats[index].notes.append("The answer reached the max-new-tokens limit and was cut off.")
                    yield DoneEvent(index, stats[index])
        finally:
            stop.set()  # a consumer that stops listening also stops the generation

    def _left_padded(self, sequences: list[list[int]]) -> dict:
        width = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = [[pad] * (width - len(ids)) + ids for ids in sequences]
        mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in sequences]
        return {
            "input_ids": torch.tensor(input_ids, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
        }

    def _generate(self, rows, sequences, kwargs, seed, tokens_queue, failure) -> None:
        try:
            with self._lock, torch.inference_mode():
                adapter_names = None
                if self.adapters:  # a PeftModel: choose the adapter per row
                    adapter_names = kwargs["adapter_names"] = [row.adapter or BASE_ADAPTER for row in rows]
                elif any(row.adapter for row in rows):
                    raise ValueError("An adapter was requested but none is loaded.")
                if len({len(ids) for ids in sequences}) > 1:
                    kwargs["past_key_values"] = self._prefill_one_by_one(sequences, adapter_names)
                torch.manual_seed(seed)
                self.model.generate(**kwargs)
        except BaseException as error:  # surfaced to the consumer, which re-raises it
            failure.append(error)
            tokens_queue.end()

    def _prefill_one_by_one(self, sequences: list[list[int]], adapter_names: list[str] | None) -> DynamicCache:
        """The KV cache of every prompt but its last token, computed row by row and left-padded into one.

        Prefilling a left-padded batch spends compute on the padding: with two short plain prompts and
        two long grounded ones, about 45% of it. generate() then starts from this cache and runs the
        last prompt token of every row together; padded cache slots are masked out."""
        width = max(len(ids) for ids in sequences) - 1
        per_row = []
        for index, ids in enumerate(sequences):
            extra = {"adapter_names": [adapter_names[index]]} if adapter_names else {}
            prompt = torch.tensor([ids[:-1]], device=self.device)
            # logits_to_keep=1: the vocabulary projection of the prompt tokens would be thrown away
            cache = self.model(input_ids=prompt, use_cache=True, logits_to_keep=1, **extra)
            per_row.append(cache.past_key_values)
        layers = []
        for layer in range(len(per_row[0].layers)):
            keys = [_pad_left(cache.layers[layer].keys, width) for cache in per_row]
            values = [_pad_left(cache.layers[layer].values, width) for cache in per_row]
            layers.append((torch.cat(keys), torch.cat(values)))
        return DynamicCache(ddp_cache_data=layers, config=self.model.config)

    def stream(self, messages: list[dict], adapter: str | None, decoding: Decoding) -> Iterator[str | RowStats]:
        """One conversation: yields text pieces, then its RowStats."""
        for event in self.stream_rows([Row(messages, adapter)], decoding):
            yield event.text if isinstance(event, TextEvent) else event.stats


def _pad_left(states: torch.Tensor, width: int) -> torch.Tensor:
    """[1, heads, length, dim] -> [1, heads, width, dim], zeros in front."""
    return torch.nn.functional.pad(states, (0, 0, width - states.shape[-2], 0))
