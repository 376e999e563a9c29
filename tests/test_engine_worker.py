"""The engine's own decode loop and worker: greedy answers equal transformers' generate() on the plain
model and on peft's model (all four modes, alone and in one mixed batch); a later request joins a
running batch, and rows leave when nobody listens. Concurrent callers: test_sessions.

The reference (tests/support/reference.py) uses the engine's kernels, which make a row's result independent of
its batch (test_row_invariance)."""

import subprocess
import sys
import threading

import pytest
import torch

from core.answers.prompts import grounded_messages
from core.common.vocabulary import Decoding
from core.engine.batch_decoder import DecodeBatch, LiveRow, PrefixCache
from core.engine.engine import DoneEvent, Row, TextEvent
from core.engine.model_store import model_source
from tests.conftest import ROOT
from tests.support.reference import reference_generate, reference_model

pytestmark = pytest.mark.model

DECODING = Decoding(max_new_tokens=24)
QUESTIONS = ["How many days do I have to return a bike?", "Do you ship to Canada?"]


def run_rows(engine, rows: list[Row], decoding: Decoding = DECODING) -> list[str]:
    texts, done = ["" for _ in rows], set()
    for event in engine.stream_rows(rows, decoding):
        if isinstance(event, TextEvent):
            texts[event.row] += event.text
        elif isinstance(event, DoneEvent):
            done.add(event.row)
    assert done == set(range(len(rows)))
    return texts


def mode_rows(lab, sample, question: str) -> dict[str, Row]:
    """The four modes' engine rows for a question, with the prompts the mode pages use."""
    adapter = lab.load_adapter(sample).engine_name
    plain = [{"role": "system", "content": sample.system_prompt}, {"role": "user", "content": question}]
    grounded = grounded_messages(sample.system_prompt, question, lab.knowledge_base(sample).search(question))
    return {
        "base": Row(plain),
        "rag": Row(grounded),
        "finetuned": Row(plain, adapter),
        "hybrid": Row(grounded, adapter),
    }


@pytest.fixture(scope="module")
def reference(lab, sample):
    """generate() on a separately loaded plain model and on peft's model of the active adapter."""
    source, _ = model_source(lab.settings)
    plain = reference_model(source, lab.engine.dtype)
    tuned = reference_model(source, lab.engine.dtype, lab.active_adapter(sample).path)
    tokenizer = lab.engine.tokenizer

    def generate(row: Row) -> str:
        ids = reference_generate(tuned if row.adapter else plain, tokenizer, row.messages, DECODING)
        return tokenizer.decode(ids, skip_special_tokens=True)

    return generate


def test_every_mode_equals_generate_whether_alone_or_in_a_mixed_batch(lab, sample, reference):
    """The engine's loop (in-place cache, own LoRA hooks, fast small-batch products) gives generate()'s
    greedy tokens: base on the plain model, fine-tuned and hybrid on peft's model of the same adapter."""
    for question in QUESTIONS:  # the second question reuses the cached system prompt
        rows = mode_rows(lab, sample, question)
        expected = {mode: reference(row) for mode, row in rows.items()}
        assert expected["base"] != expected["finetuned"]  # the adapter changes the answer: the check can fail
        batched = dict(zip(rows, run_rows(lab.engine, list(rows.values())), strict=True))
        assert batched == expected
        if question == QUESTIONS[0]:
            assert {mode: run_rows(lab.engine, [row])[0] for mode, row in rows.items()} == expected


def test_a_later_request_joins_the_running_batch(lab, sample):
    """A short answer asked while a long one is decoding finishes first: it joined the batch between
    steps rather than waiting for the long answer to end."""
    plain = mode_rows(lab, sample, QUESTIONS[0])["base"]
    long_answer = Decoding(max_new_tokens=120, min_new_tokens=120)
    order: list[str] = []
    first_piece = threading.Event()

    def long_caller() -> None:
        for event in lab.engine.stream_rows([plain], long_answer):
            first_piece.set()
            if isinstance(event, DoneEvent):
                order.append("long")

    thread = threading.Thread(target=long_caller)
    thread.start()
    assert first_piece.wait(timeout=300)
    short = run_rows(lab.engine, [plain], Decoding(max_new_tokens=8))
    order.append("short")
    thread.join()
    assert order == ["short", "long"]
    assert short[0]


def test_a_caller_that_stops_listening_frees_the_engine(lab, sample):
    """Closing a stream drops its rows; the next request is served at once and answers normally."""
    plain = mode_rows(lab, sample, QUESTIONS[1])["base"]
    stream = lab.engine.stream_rows([plain], Decoding(max_new_tokens=400, min_new_tokens=400))
    next(event for event in stream if isinstance(event, TextEvent))
    stream.close()
    assert run_rows(lab.engine, [plain], DECODING)[0] == run_rows(lab.engine, [plain], DECODING)[0] != ""


def test_a_step_nobody_waits_for_stops_between_layers_and_the_next_answer_is_unchanged(lab, sample):
    """A caller who leaves while its step runs (the bench's first-token measure; a user who stops and asks
    again): the step stops at the next layer instead of finishing, its rows leave the batch, and the next
    answer is what it is on a fresh batch."""
    engine = lab.engine
    plain = mode_rows(lab, sample, QUESTIONS[1])["base"]
    layers = engine.model.get_decoder().layers
    ran: list[int] = []
    with engine._lock, torch.inference_mode():
        batch = prefilled_row(engine, plain)
        hooks = [
            layer.input_layernorm.register_forward_pre_hook(lambda *_, i=i: ran.append(i))
            for i, layer in enumerate(layers)
        ]
        try:
            wanted = iter([True, True, True])  # wanted before the first three layers, then not
            produced, ended = batch.step(lambda: not next(wanted, False))
        finally:
            for hook in hooks:
                hook.remove()
    assert (produced, ended, batch.rows) == ([], [], [])
    assert batch.cache is None  # nothing half updated is kept
    assert ran == [0, 1, 2]  # the first three layers ran, and no other
    assert run_rows(engine, [plain])[0] == run_rows(engine, [plain])[0] != ""


def test_a_short_prompt_streams_before_a_long_one_in_its_request_is_read(lab, sample, monkeypatch):
    """Rows wait for their prefill one step at a time, the shortest first: a compare's base column
    streams while its RAG prompt is still being prefilled, and both answers stay what they are alone."""
    rows = mode_rows(lab, sample, QUESTIONS[0])
    long_first = [rows["rag"], rows["base"]]
    alone = [run_rows(lab.engine, [row])[0] for row in long_first]
    steps: list[list[int]] = []  # the request's rows (by index) in each decoding step
    step = DecodeBatch.step

    def recorded_step(batch, *args):
        steps.append([row.index for row in batch.rows])
        return step(batch, *args)

    monkeypatch.setattr(DecodeBatch, "step", recorded_step)
    assert run_rows(lab.engine, long_first) == alone
    assert steps[:2] == [[1], [1, 0]]  # the short row decoded its first token alone, then the long one joined


def test_a_row_that_cannot_run_fails_its_own_request_only(lab, sample):
    """A request whose second row names an adapter that is not loaded gets the error; its first row leaves
    the batch, and another caller's answer decoding beside it is what it is alone."""
    plain = mode_rows(lab, sample, QUESTIONS[1])["base"]
    alone = run_rows(lab.engine, [plain])[0]
    other: list[str] = []
    first_piece = threading.Event()

    def other_caller() -> None:
        text = ""
        for event in lab.engine.stream_rows([plain], DECODING):
            if isinstance(event, TextEvent):
                text += event.text
                first_piece.set()
        other.append(text)

    thread = threading.Thread(target=other_caller)
    thread.start()
    assert first_piece.wait(timeout=300)
    with pytest.raises(ValueError, match="not loaded"):
        run_rows(lab.engine, [plain, Row(plain.messages, "no-such-adapter")])
    thread.join()
    assert other == [alone]


def test_a_prompt_prefilled_again_with_an_adapter_runs_only_the_layers_it_adapts(lab, sample):
    """Hybrid after RAG (one prompt, another adapter): the layers below the adapter's do not run again,
    and the cache is bit for bit the one a whole prefill gives."""
    engine = lab.engine
    adapter = lab.load_adapter(sample).engine_name
    first = engine.lora.untouched_below()
    assert first > 0  # the sample adapter leaves the lower layers alone: the check can fail
    messages = mode_rows(lab, sample, QUESTIONS[0])["rag"].messages
    prompt = engine.encode(messages, DECODING.max_new_tokens)[0]
    shared = engine._system_prompt_length(messages, prompt)
    layers = engine.model.get_decoder().layers
    lowest = layers[0]
    calls: list[int] = []
    with engine._lock, torch.inference_mode():
        prefixes = PrefixCache()  # both heads prefilled here, on this thread's thread count, not the worker's

        def fresh_batch() -> DecodeBatch:
            return DecodeBatch(engine.model, engine.tokenizer.eos_token_id, DECODING, engine.lora, prefixes)

        whole = fresh_batch().prefill(prompt, adapter, shared)
        batch = fresh_batch()
        batch.prefill(prompt, None, shared)  # the RAG row
        hook = lowest.register_forward_hook(lambda *_: calls.append(1))
        try:
            reused = batch.prefill(prompt, adapter, shared)  # the hybrid row
        finally:
            hook.remove()
    assert calls == []
    assert layers[0] is lowest  # the lower layers are back in place
    assert len(reused.layers) == len(whole.layers) == len(layers)
    for ours, theirs in zip(reused.layers, whole.layers, strict=True):
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


@pytest.mark.parametrize("mode", ["rag", "hybrid"])
def test_a_prefill_runs_only_the_keys_and_values_of_the_top_layer_and_keeps_the_same_cache(lab, sample, mode):
    """Only the cache of a prefill is kept (its last token runs in the next step): the top layer computes its
    keys and values and none of its attention output or MLP, and every layer's keys and values are bit for
    bit those of the model's own forward over the prompt (with the adapter's LoRA for hybrid)."""
    engine = lab.engine
    row = mode_rows(lab, sample, QUESTIONS[0])[mode]
    prompt = engine.encode(row.messages, DECODING.max_new_tokens)[0]
    adapter = row.adapter or "__base__"
    top = engine.model.get_decoder().layers[-1]
    ran: list[str] = []
    with engine._lock, torch.inference_mode():
        engine.lora.route([adapter])
        whole = engine.model(input_ids=torch.tensor([prompt[:-1]]), use_cache=True).past_key_values
        batch = DecodeBatch(engine.model, engine.tokenizer.eos_token_id, DECODING, engine.lora, PrefixCache())
        hooks = [
            top.mlp.register_forward_hook(lambda *_: ran.append("mlp")),
            top.self_attn.o_proj.register_forward_hook(lambda *_: ran.append("o_proj")),
            top.self_attn.k_proj.register_forward_hook(lambda *_: ran.append("k_proj")),
        ]
        try:
            prefilled = batch.prefill(prompt, adapter)
        finally:
            for hook in hooks:
                hook.remove()
    assert ran == ["k_proj"]  # the top layer's keys were computed, its output was not
    assert "forward" not in vars(top)  # the layer is itself again
    assert len(prefilled.layers) == len(whole.layers)
    for ours, theirs in zip(prefilled.layers, whole.layers, strict=True):
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


def prefilled_row(engine, row: Row, decoding: Decoding = DECODING, guesses: int = 0) -> DecodeBatch:
    """A batch holding `row` alone, prefilled (call with the engine's lock held)."""
    batch = DecodeBatch(engine.model, engine.tokenizer.eos_token_id, decoding, engine.lora, PrefixCache(), guesses)
    prompt = engine.encode(row.messages, decoding.max_new_tokens)[0]
    live = LiveRow(None, 0, row.adapter or "__base__", decoding.max_new_tokens, decoding.min_new_tokens)
    batch.join(live, prompt, batch.prefill(prompt, row.adapter))
    return batch


def lone_row_run(engine, row: Row, decoding: Decoding, guesses: int) -> tuple[list[int], int, bool]:
    """(tokens, steps, cut off) of a row decoded alone, checking up to `guesses` guessed tokens a step."""
    with engine._lock, torch.inference_mode():
        batch = prefilled_row(engine, row, decoding, guesses)
        live = batch.rows[0]
        steps, ended = 0, []
        while batch.rows:
            ended += batch.step()[1]
            steps += 1
    return live.generated, steps, ended[0][1]


@pytest.mark.parametrize("mode", ["rag", "hybrid"])
def test_a_lone_row_checks_guessed_tokens_and_gives_the_same_answer_in_fewer_steps(lab, sample, mode):
    """A row alone in the batch checks tokens guessed from its prompt (core/engine/prompt_lookup.py) in the
    block of rows its step computes anyway: RAG quotes its sources, so guesses hold, and the answer is
    token for token the one a step at a time gives, whether it ends on its own or at its token limit."""
    engine = lab.engine
    assert engine.guesses >= 1  # on CPU: the rows of the block a one-row step computes anyway
    row = mode_rows(lab, sample, QUESTIONS[0])[mode]
    for decoding in (DECODING, Decoding(max_new_tokens=40, min_new_tokens=40)):
        plain, plain_steps, plain_cut = lone_row_run(engine, row, decoding, 0)
        guessed, guessed_steps, guessed_cut = lone_row_run(engine, row, decoding, engine.guesses)
        assert guessed == plain and guessed_cut == plain_cut
    assert len(plain) == 40 and guessed_steps < plain_steps  # guesses held: the check can fail


EXIT_SCRIPT = """
import atexit
from core.common.settings import Settings
from core.common.vocabulary import Decoding
from core.engine.engine import Row
from core.lab import Lab
engine = Lab(Settings()).engine
list(engine.stream_rows([Row([{"role": "user", "content": "Hello"}])], Decoding(max_new_tokens=4)))
worker = engine._worker
atexit._run_exitfuncs()  # what the interpreter runs at exit, before it stops the daemon threads
print("WORKER_ALIVE", worker.is_alive())
"""


@pytest.mark.process
def test_the_worker_ends_before_the_interpreter_shuts_down():
    """A daemon worker stopped mid-call by the interpreter's shutdown can abort the process
    (pytorch/pytorch#38228): the engine ends its worker at exit instead."""
    result = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "WORKER_ALIVE False" in result.stdout
