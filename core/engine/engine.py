"""The one shared model: streams answers for rows, each row with its own LoRA adapter or none.

All modes share this engine, its decoding settings and its seed, so differences between answers
come from the prompt (retrieval) and the adapter alone. Adapters run per row
(core.engine.lora_runtime) on the plain base model; a row without one touches no LoRA weight, so base
answers equal the plain model's token for token. On CPU a row's tokens are the same alone and in
any batch, in every dtype (core.engine.row_products, core.engine.row_attention): a compare column equals its mode
page, and a user's answer does not depend on who else is asking.

One worker thread owns the model. Every caller (a mode page, a compare, an evaluation, another
session) hands it rows and reads its own rows' tokens back; rows from different callers share one
batch (core.engine.batch_decoder), joining and leaving between steps, so concurrent users don't queue
behind each other's answers. A row alone checks guessed tokens in each step
(core.engine.prompt_lookup): the same answer in fewer steps.
"""

import atexit
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from core.common.vocabulary import Decoding, GenerationStats
from core.engine.batch_decoder import DecodeBatch, LiveRow, PrefixCache
from core.engine.cpu_budget import CpuBudget
from core.engine.detokenizer import Detokenizer
from core.engine.int8_weights import quantize_linear_layers
from core.engine.lora_runtime import BASE_ADAPTER, LoraRuntime
from core.engine.model_store import LoadedModel
from core.engine.row_attention import use_row_attention
from core.engine.row_products import rows_beside_one, use_row_products
from core.engine.screened_head import screen_cache_path, use_screened_head

__all__ = [
    "BASE_ADAPTER",
    "DoneEvent",
    "Engine",
    "Row",
    "TextEvent",
    "use_batch_invariant_kernels",
]


def use_batch_invariant_kernels(model, threads: int | None = None) -> None:
    """The products and attention that give a row the same result alone and in any batch, on CPU, at the
    engine's thread count (`threads`; default every core). On a GPU the batched products round
    differently anyway, so attention keeps its one batched call there."""
    use_row_products(model, threads)
    if model.device.type == "cpu":
        use_row_attention(model)


@dataclass
class Row:
    """One conversation to continue: chat messages as {"role", "content"} dicts, and an adapter or None."""

    messages: list[dict]
    adapter: str | None = None


@dataclass
class TextEvent:
    row: int
    text: str


@dataclass
class DoneEvent:
    row: int
    stats: GenerationStats


class Engine:
    def __init__(self, loaded: LoadedModel, budget: CpuBudget | None = None, quantization: str = "none"):
        self.model = loaded.model
        self.budget = budget  # the worker's thread count and its turn (core.engine.cpu_budget); None: torch's default
        self.tokenizer = loaded.tokenizer
        self.model_name = loaded.name
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.parameters = sum(p.numel() for p in self.model.parameters())
        # int8 weights (core.engine.int8_weights) on CPU only: a GPU is not short of bandwidth
        self.quantization = quantization if self.device == "cpu" else "none"
        if self.quantization == "int8":
            quantize_linear_layers(self.model, loaded.int8_cache)
        self.adapters: dict[str, str] = {}  # adapter name -> folder it was loaded from
        self._lock = threading.Lock()  # held by the worker for each step; adapters change between steps
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._closed = False
        if self.quantization == "none":  # an int8 output layer reads a quarter of the bytes already
            use_screened_head(self.model, screen_cache_path(loaded.int8_cache))
        use_batch_invariant_kernels(self.model, budget.threads if budget else None)
        self.lora = LoraRuntime(self.model)
        self.prefixes = PrefixCache()  # system prompts' keys and values, per adapter
        # a lone greedy row checks this many guessed tokens a step (core.engine.prompt_lookup); 0: none
        self.guesses = rows_beside_one(self.model) if self.device == "cpu" else 0
        atexit.register(_stop_at_exit, weakref.ref(self))  # a weak reference: a switched-out model is still freed

    # --- adapters -------------------------------------------------------------------------
    def ensure_adapter(self, name: str, path: str) -> None:
        """Loads a LoRA adapter under `name` once; the base weights stay shared."""
        with self._lock:
            if self.adapters.get(name) == str(path):
                return
            self.lora.remove(name)
            self.lora.add(name, path)
            self.adapters[name] = str(path)
            self.prefixes.clear()

    def forget_adapter(self, name: str) -> None:
        """Drops an adapter that was deleted or renamed, so a later one under the same name loads afresh."""
        with self._lock:
            self.adapters.pop(name, None)
            self.lora.remove(name)
            self.prefixes.clear()

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

    def _system_prompt_length(self, messages: list[dict], ids: list[int]) -> int:
        """How many of the prompt's first tokens are its system message (0 if none): the part that
        prompts share, worth caching."""
        if not messages or messages[0]["role"] != "system":
            return 0
        system = list(self.tokenizer.apply_chat_template(messages[:1], tokenize=True, return_dict=False))
        return len(system) if ids[: len(system)] == system else 0

    @staticmethod
    def _droppable_turn(messages: list[dict]) -> int | None:
        """Index of the oldest message that is neither the system prompt nor the last message."""
        for index, message in enumerate(messages[:-1]):
            if message["role"] != "system":
                return index
        return None

    # --- generation -----------------------------------------------------------------------
    def stream_rows(self, rows: list[Row], decoding: Decoding) -> Iterator[TextEvent | DoneEvent]:
        """Generates the rows (in one batch with whatever else the engine is running), yielding text as
        it is decoded and one DoneEvent per row. Stopping the iteration stops the rows."""
        started = time.perf_counter()
        encoded = [self.encode(row.messages, decoding.max_new_tokens) for row in rows]
        stats = [GenerationStats(prompt_tokens=len(ids), notes=notes) for ids, notes in encoded]
        shared = [self._system_prompt_length(row.messages, ids) for row, (ids, _) in zip(rows, encoded, strict=True)]
        request = _Request(rows, [ids for ids, _ in encoded], decoding, shared)
        self._submit(request)
        texts = [Detokenizer(self.tokenizer) for _ in rows]
        finished = [False for _ in rows]
        try:
            while not all(finished):
                item = request.tokens.get()
                if isinstance(item, BaseException):
                    raise item
                index, token, cut_off = item
                if token is None:
                    finished[index] = True
                    stats[index].total_s = time.perf_counter() - started
                    if cut_off:
                        stats[index].notes.append("The answer reached the max-new-tokens limit and was cut off.")
                    yield DoneEvent(index, stats[index])
                    continue
                stats[index].completion_tokens += 1
                delta = texts[index].add(token)
                if delta:
                    if stats[index].ttft_s is None:
                        stats[index].ttft_s = time.perf_counter() - started
                    yield TextEvent(index, delta)
        finally:
            request.cancelled.set()  # a consumer that stops listening also stops its rows

    def close(self) -> None:
        """Takes no more requests. Rows running now finish; then the worker ends, so nothing holds the
        model once the caller drops the engine (a model switch)."""
        with self._worker_lock:
            self._closed = True
            self._requests.put(_STOP)

    def _submit(self, request: "_Request") -> None:
        with self._worker_lock:
            if self._closed:
                raise EngineClosed("The model was switched while this question waited: ask it again.")
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="lab-engine", daemon=True)
                self._worker.start()
        self._requests.put(request)

    def _serve(self) -> None:
        """The worker: runs one batch at a time, taking in new requests between steps. Requests with
        other sampling settings wait for the running batch to end. A request's rows wait in `waiting`
        for their prefill; each step is preceded by PREFILL_TOKENS_PER_STEP tokens of prefill at most
        (and always one row), shortest prompts first: a compare's base and fine-tuned columns start
        streaming while its RAG prompts are still being read, and a long prompt delays the rows already
        decoding by one prefill, not by all of a request's."""
        held: list[_Request] = []
        waiting: list[tuple[_Request, int]] = []  # (request, row index): rows of this batch not yet prefilled
        batch: DecodeBatch | None = None
        closing = False
        while True:
            if batch is None:
                if not held:
                    if closing:
                        return
                    request = self._requests.get()  # idle until someone asks
                    if request is _STOP:
                        return
                    held.append(request)
                batch = DecodeBatch(
                    self.model, self.tokenizer.eos_token_id, held[0].decoding, self.lora, self.prefixes, self.guesses
                )
                torch.manual_seed(held[0].decoding.seed)
            while not self._requests.empty():
                request = self._requests.get()
                closing = closing or request is _STOP
                if request is not _STOP:
                    held.append(request)
            for request in [request for request in held if request.decoding.batch_key == batch.decoding.batch_key]:
                waiting += [(request, index) for index in request.prefill_order()]
            held = [request for request in held if request.decoding.batch_key != batch.decoding.batch_key]
            produced, ended = [], []
            if self.budget:  # torch's thread count is per thread: the worker sets its own
                self.budget.apply()
            with self._lock, torch.inference_mode():
                self._prefill_next(batch, waiting)
                batch.drop([row for row in batch.rows if row.owner.cancelled.is_set()])
                if batch.rows:
                    try:
                        produced, ended = batch.step(_all_set([row.owner.cancelled for row in batch.rows]))
                    except Exception as error:  # every row in the batch fails; the worker goes on
                        for owner in {id(row.owner): row.owner for row in batch.rows}.values():
                            owner.tokens.put(error)
                        batch.drop(list(batch.rows))
            for row, token in produced:
                row.owner.tokens.put((row.index, token, False))
            for row, cut_off in ended:
                row.owner.tokens.put((row.index, None, cut_off))
            if not batch.rows and not waiting:
                batch = None

    def _prefill_next(self, batch: DecodeBatch, waiting: list[tuple["_Request", int]]) -> None:
        """Prefills the next waiting rows and adds them to the batch: one row, and more while their prompts
        fit in PREFILL_TOKENS_PER_STEP. A failure fails that row's request only (its other rows too)."""
        spent = 0
        while waiting:
            request, index = waiting[0]
            if request.cancelled.is_set():  # its caller left, or one of its rows failed
                waiting.pop(0)
                continue
            prompt, shared = request.prompts[index], request.shared_lengths[index]
            if spent and spent + len(prompt) - shared > PREFILL_TOKENS_PER_STEP:
                return
            waiting.pop(0)
            spent += len(prompt) - shared
            row = request.rows[index]
            try:
                if row.adapter and row.adapter not in self.adapters:
                    raise ValueError(f"The adapter {row.adapter!r} is not loaded.")
                adapter = row.adapter or BASE_ADAPTER
                live = LiveRow(
                    request, index, adapter, request.decoding.max_new_tokens, request.decoding.min_new_tokens
                )
                batch.join(live, prompt, batch.prefill(prompt, adapter, shared))
            except Exception as error:
                batch.drop([row for row in batch.rows if row.owner is request])
                request.cancelled.set()  # its rows still waiting are skipped
                request.tokens.put(error)

    def stream(self, messages: list[dict], adapter: str | None, decoding: Decoding) -> Iterator[str | GenerationStats]:
        """One conversation: yields text pieces, then its GenerationStats."""
        for event in self.stream_rows([Row(messages, adapter)], decoding):
            yield event.text if isinstance(event, TextEvent) else event.stats


def _all_set(flags: list[threading.Event]) -> Callable[[], bool]:
    """Whether every one of `flags` is set, asked later (a step's rows: have all their callers left?)."""
    return lambda: all(flag.is_set() for flag in flags)


class EngineClosed(RuntimeError):
    """The engine was closed (the model was switched) before it took this request."""


_STOP = object()  # put in the request queue by close()
EXIT_WAIT_S = 5.0  # at exit, how long a worker still decoding may take to end


def _stop_at_exit(engine_ref: weakref.ref) -> None:
    """Ends the engine's worker before the interpreter shuts down. A daemon thread still alive then is
    stopped where it stands, and inside a torch call that aborts the process ("terminate called without
    an active exception", pytorch/pytorch#38228): 1 in 16 runs of the bench's cold-start script (Qwen
    int8) ended so, after their answers."""
    engine = engine_ref()
    if engine is None or engine._worker is None:
        return
    engine.close()
    engine._worker.join(timeout=EXIT_WAIT_S)


# Prompt tokens prefilled between two steps, beyond the first row: a compare's two short prompts join
# together (about 20 new tokens each); a RAG prompt (about 400) waits for the next step.
PREFILL_TOKENS_PER_STEP = 128


@dataclass
class _Request:
    """Rows one caller asked for; the worker puts (row, token, cut_off) tuples or an error in `tokens`."""

    rows: list[Row]
    prompts: list[list[int]]
    decoding: Decoding
    shared_lengths: list[int]  # per row: leading tokens (the system prompt) worth the prefix cache
    tokens: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def prefill_order(self) -> list[int]:
        """Row indices, the fewest tokens to prefill first (the cached system prompt costs nothing)."""
        return sorted(range(len(self.rows)), key=lambda i: len(self.prompts[i]) - self.shared_lengths[i])
