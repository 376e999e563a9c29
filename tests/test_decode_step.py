"""The engine's lean decode step (core/engine/decode_step.py) gives the logits the model's own forward gives, bit
for bit: in the session's dtype and with int8 weights, for a compare's four rows (two prompt lengths, so left
padding; with and without the adapter). Models it does not fit decode through their own forward."""

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

from core.engine.batch_decoder import DecodeBatch, LiveRow, PrefixCache
from core.engine.decode_step import decode_step, fits_decode_step
from core.engine.engine import use_batch_invariant_kernels
from core.lab import Lab
from tests.test_engine_worker import DECODING, QUESTIONS, mode_rows, prefilled_row

STEPS = 8


def stepped_logits(engine, rows, lean: bool) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Each step's logits and every row's tokens, for the rows decoded together in one batch."""
    logits: list[torch.Tensor] = []
    hook = engine.model.lm_head.register_forward_hook(lambda _m, _i, output: logits.append(output.clone()))
    try:
        with engine._lock, torch.inference_mode():
            # its own prefix cache: prefixes prefilled on this thread's thread count stay out of the engine's
            batch = DecodeBatch(engine.model, engine.tokenizer.eos_token_id, DECODING, engine.lora, PrefixCache())
            assert batch.lean_steps  # the bundled models take the lean path: the comparison can fail
            batch.lean_steps = lean
            live = []
            for index, row in enumerate(rows):
                prompt = engine.encode(row.messages, DECODING.max_new_tokens)[0]
                shared = engine._system_prompt_length(row.messages, prompt)
                live.append(LiveRow(None, index, row.adapter or "__base__", STEPS, STEPS))
                batch.join(live[-1], prompt, batch.prefill(prompt, row.adapter, shared))
            logits.clear()  # the prefills' logits are not a step's
            for _ in range(STEPS):
                batch.step()
    finally:
        hook.remove()
    return logits, [row.generated for row in live]


def assert_lean_equals_forward(lab: Lab, sample) -> None:
    rows = list(mode_rows(lab, sample, QUESTIONS[0]).values())
    lean, lean_tokens = stepped_logits(lab.engine, rows, lean=True)
    forward, forward_tokens = stepped_logits(lab.engine, rows, lean=False)
    assert len(lean) == len(forward) == STEPS
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(lean, forward, strict=True))
    assert lean_tokens == forward_tokens and lean_tokens[0] != lean_tokens[2]  # base and fine-tuned differ


@pytest.mark.model
def test_a_lean_step_gives_the_forwards_logits_bit_for_bit(lab, sample):
    assert_lean_equals_forward(lab, sample)


@pytest.mark.model
def test_a_lean_step_gives_the_forwards_logits_bit_for_bit_with_int8_weights(lab, sample):
    int8_lab = Lab(lab.settings.model_copy(update={"quantization": "int8"}))
    assert int8_lab.engine.quantization == "int8"
    assert_lean_equals_forward(int8_lab, sample)


def tiny(config):
    return AutoModelForCausalLM.from_config(config).eval()


def test_only_llama_shaped_models_with_row_attention_take_the_lean_step():
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
    llama = tiny(LlamaConfig(num_hidden_layers=2, vocab_size=64, **shape))
    assert not fits_decode_step(llama)  # plain SDPA over a mask (a GPU's batched attention): its own forward
    use_batch_invariant_kernels(llama)
    assert fits_decode_step(llama)
    gpt2 = tiny(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=64))
    use_batch_invariant_kernels(gpt2)
    assert not fits_decode_step(gpt2)


@pytest.mark.model
@pytest.mark.parametrize("mode", ["rag", "hybrid"])
def test_several_tokens_of_a_row_in_one_step_get_the_logits_of_one_token_steps(lab, sample, mode):
    """What checking a row's guessed tokens rests on (core/engine/prompt_lookup.py): four tokens of a row in
    one step give each the logits, keys and values it gets fed alone, one step at a time; bit for bit."""
    row = mode_rows(lab, sample, QUESTIONS[0])[mode]
    engine = lab.engine
    fed = [engine.tokenizer.encode(" returns within", add_special_tokens=False)[0], 11, 42]
    with engine._lock, torch.inference_mode():
        together = prefilled_row(engine, row)
        engine.lora.route([together.rows[0].adapter])
        tokens = torch.tensor([[together.next_tokens.item(), *fed]])
        positions = together.positions[:, None] + torch.arange(4)
        at_once = decode_step(engine.model, tokens, positions, together.cache, [0])

        alone = prefilled_row(engine, row)
        one_by_one = [
            decode_step(engine.model, tokens[:, at : at + 1], positions[:, at : at + 1], alone.cache, [0])
            for at in range(4)
        ]
    assert at_once.shape[:2] == (1, 4)
    assert all(torch.equal(at_once[:, at : at + 1], logits) for at, logits in enumerate(one_by_one))
    assert not torch.equal(one_by_one[0], one_by_one[1])  # different tokens, different logits: the check can fail
    for ours, theirs in zip(together.cache.layers, alone.cache.layers, strict=True):
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
