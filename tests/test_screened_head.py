"""The greedy screen of the vocabulary projection (core/engine/screened_head.py): its bounds hold for every token,
the full product's best token is always a candidate and is the one chosen, greedy answers are the ones the
full product gives, and its file is read back or rebuilt."""

import pytest
import torch

from core.engine.batch_decoder import DecodeBatch, LiveRow, PrefixCache
from core.engine.screened_head import ScreenedHead, greedy_screen
from tests.test_engine_worker import DECODING, QUESTIONS, mode_rows


def assert_screen_keeps_the_best(screen: ScreenedHead, states: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Checks the bounds against the full product's logits, and that the candidates' exact scores choose its
    token; returns how many candidates each state kept."""
    lower, upper = screen.bounds(states)
    full = full.float()
    assert bool((lower <= full).all()) and bool((full <= upper).all())
    candidates = upper >= lower.amax(dim=1, keepdim=True)
    best = full.argmax(dim=1)
    assert bool(candidates[torch.arange(len(best)), best].all())
    assert torch.equal(screen.exact(states, candidates).argmax(dim=1), best)
    return candidates.sum(dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_bounds_hold_for_every_token_of_random_rows(dtype):
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(3000, 64, generator=generator) * 0.05).to(dtype)
    states = torch.randn(40, 64, generator=generator) * 2
    states[:, 3] *= 30  # an outlier channel, as a final norm's output has: it sets the row's int8 scale
    states = states.to(dtype)
    screen = ScreenedHead.of(weight)
    kept = assert_screen_keeps_the_best(screen, states, torch.nn.functional.linear(states, weight))
    assert kept.float().median() < 0.05 * len(weight)  # the bound is tight enough to leave few candidates


def test_the_screen_is_read_back_from_its_file_or_rebuilt_when_the_file_is_unreadable(tmp_path):
    weight = torch.randn(500, 32, generator=torch.Generator().manual_seed(1))
    cache = tmp_path / "head-screen.safetensors"
    first = ScreenedHead.of(weight, cache)
    assert cache.exists()
    again = ScreenedHead.of(weight, cache)
    states = torch.randn(3, 32)
    assert all(torch.equal(a, b) for a, b in zip(first.bounds(states), again.bounds(states), strict=True))
    cache.write_bytes(b"not a safetensors file")
    rebuilt = ScreenedHead.of(weight, cache)
    assert all(torch.equal(a, b) for a, b in zip(first.bounds(states), rebuilt.bounds(states), strict=True))
    assert ScreenedHead.of(torch.randn(400, 32), cache).residual_norm.shape == (400,)  # another shape: rebuilt


def final_states(engine, rows, steps: int) -> torch.Tensor:
    """The final norm's output at every step of the rows decoded together (the vocabulary projection's input)."""
    captured = []

    def keep(_module, _inputs, output):
        if output.shape[1] == 1:  # a decode step's rows [slots, 1, hidden], not a prefill's [1, tokens, hidden]
            captured.append(output.reshape(-1, output.shape[-1]).clone())

    hook = engine.model.get_decoder().norm.register_forward_hook(keep)
    try:
        decode_together(engine, rows, steps)
    finally:
        hook.remove()
    return torch.cat(captured)


def decode_together(engine, rows, steps: int) -> list[list[int]]:
    with engine._lock, torch.inference_mode():
        batch = DecodeBatch(engine.model, engine.tokenizer.eos_token_id, DECODING, engine.lora, PrefixCache())
        live = []
        for index, row in enumerate(rows):
            prompt = engine.encode(row.messages, DECODING.max_new_tokens)[0]
            live.append(LiveRow(None, index, row.adapter or "__base__", steps, 0))
            batch.join(live[-1], prompt, batch.prefill(prompt, row.adapter))
        while batch.rows:
            batch.step()
    return [row.generated for row in live]


@pytest.mark.model
def test_on_the_models_own_states_the_bounds_hold_and_the_best_token_is_chosen(lab, sample):
    engine = lab.engine
    screen = greedy_screen(engine.model)
    assert (screen is not None) == (engine.dtype == torch.float32)  # the bundled models' float32 layers are screened
    if screen is None:
        pytest.skip("the screen serves float32 output layers only")
    states = torch.cat([final_states(engine, list(mode_rows(lab, sample, q).values()), 24) for q in QUESTIONS])
    assert len(states) > 100
    with torch.inference_mode():
        full = engine.model.lm_head(
            states
        )  # the engine's own full product (packed on first use, core.engine.row_products)
    assert engine.model.lm_head.shared_product is not None and greedy_screen(engine.model) is screen
    kept = assert_screen_keeps_the_best(screen, states, full)
    assert kept.float().median() < 64


@pytest.mark.model
def test_greedy_answers_with_the_screen_are_the_full_products_in_every_mode(lab, sample, monkeypatch):
    engine = lab.engine
    head = engine.model.lm_head
    screen = greedy_screen(engine.model)
    if screen is None:
        pytest.skip("the screen serves float32 output layers only")
    for question in QUESTIONS:
        rows = list(mode_rows(lab, sample, question).values())
        calls = []
        monkeypatch.setattr(
            screen, "exact", lambda *args, _exact=screen.exact, _calls=calls: _calls.append(1) or _exact(*args)
        )
        screened = decode_together(engine, rows, 32)
        assert calls  # the screen chose these tokens
        monkeypatch.delattr(head, "greedy_screen")
        assert decode_together(engine, rows, 32) == screened
        monkeypatch.undo()
        assert greedy_screen(engine.model) is screen
