"""The shared engine: base equals the plain model, adapters per row, truncation, streaming."""

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from core.common.vocabulary import Decoding
from core.engine.batch_decoder import penalise_repeats
from core.engine.engine import DoneEvent, Row, TextEvent
from core.engine.model_store import model_source
from core.lab import Lab
from tests.support.reference import reference_generate, reference_model

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name a colour."},
]


SHORT = Decoding(max_new_tokens=16)


def _generate_text(lab, messages, adapter=None, decoding=SHORT):
    pieces, stats = [], None
    for event in lab.engine.stream(messages, adapter, decoding):
        if isinstance(event, str):
            pieces.append(event)
        else:
            stats = event
    return "".join(pieces), stats


@pytest.mark.model
def test_base_equals_the_plain_model_token_for_token(lab, sample):
    """Even with an adapter loaded, a base row runs the untouched base model (tests/support/reference.py)."""
    adapter = lab.active_adapter(sample)
    lab.engine.ensure_adapter(adapter.engine_name, adapter.path)
    decoding = Decoding(max_new_tokens=20, repetition_penalty=1.1)
    engine_text, stats = _generate_text(lab, QUESTION, None, decoding)

    source, _ = model_source(lab.settings)
    tokenizer = lab.engine.tokenizer
    plain_ids = reference_generate(reference_model(source, lab.engine.dtype), tokenizer, QUESTION, decoding)

    assert engine_text == tokenizer.decode(plain_ids, skip_special_tokens=True)
    assert stats.completion_tokens == len([t for t in plain_ids if t != tokenizer.eos_token_id])
    assert stats.prompt_tokens == len(tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)["input_ids"])


@pytest.mark.model
def test_base_with_int8_weights_equals_the_plain_int8_model_token_for_token(lab):
    """Base is base within a quantization: the int8 engine's base row is the int8 model's generate()."""
    int8_lab = Lab(lab.settings.model_copy(update={"quantization": "int8"}))
    decoding = Decoding(max_new_tokens=20, repetition_penalty=1.1)
    engine_text, _ = _generate_text(int8_lab, QUESTION, None, decoding)
    source, _ = model_source(lab.settings)
    plain = reference_model(source, int8_lab.engine.dtype, quantization="int8")
    plain_ids = reference_generate(plain, int8_lab.engine.tokenizer, QUESTION, decoding)
    assert engine_text == int8_lab.engine.tokenizer.decode(plain_ids, skip_special_tokens=True)
    # every linear layer is int8; the embedding keeps its float rows for look-ups
    linears = [m for m in int8_lab.engine.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight is None for m in linears)
    assert int8_lab.engine.model.get_input_embeddings().weight.dtype == int8_lab.engine.dtype


def test_repetition_penalty_hits_each_rows_own_answer_only():
    """RAG must be free to quote its sources: the penalty sees only the tokens a row's answer produced
    (the prompt is never passed), and one row's tokens do not penalise another row."""
    scores = torch.full((2, 12), 2.0)
    scores[0, 6] = -2.0
    penalise_repeats(scores, [[5, 6], []], RepetitionPenaltyLogitsProcessor(1.5))
    assert scores[0, 5] == 2.0 / 1.5 and scores[0, 6] == -2.0 * 1.5  # positive scores divided, negative multiplied
    assert torch.equal(scores[0, :5], torch.full((5,), 2.0)) and torch.equal(scores[1], torch.full((12,), 2.0))


@pytest.mark.model
def test_adapter_row_differs_from_base_row_in_one_batch(lab, sample):
    adapter = lab.active_adapter(sample)
    lab.engine.ensure_adapter(adapter.engine_name, adapter.path)
    texts = {0: "", 1: ""}
    done = {}
    rows = [Row(QUESTION, None), Row(QUESTION, adapter.engine_name)]
    for event in lab.engine.stream_rows(rows, Decoding(max_new_tokens=12)):
        if isinstance(event, TextEvent):
            texts[event.row] += event.text
        elif isinstance(event, DoneEvent):
            done[event.row] = event.stats
    assert set(done) == {0, 1}
    assert texts[0] == _generate_text(lab, QUESTION, None, Decoding(max_new_tokens=12))[0]
    # The adapter row ran the LoRA weights: its logits differ from the base model's.
    ids = torch.tensor([lab.engine.encode(QUESTION, 1)[0]] * 2)
    with torch.inference_mode():
        lab.engine.lora.route(["__base__", adapter.engine_name])
        logits = lab.engine.model(input_ids=ids).logits
    assert not torch.equal(logits[0], logits[1])


@pytest.mark.model
def test_over_long_input_is_truncated_with_a_note(lab):
    long_question = "bike " * (lab.engine.context_window + 500)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": long_question}]
    ids, notes = lab.engine.encode(messages, max_new_tokens=16)
    assert len(ids) <= lab.engine.context_window - 16
    assert any("truncated" in note for note in notes)


@pytest.mark.model
def test_old_turns_are_dropped_before_the_question_is_cut(lab):
    turn = "word " * 3000
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": turn},
        {"role": "assistant", "content": turn},
        {"role": "user", "content": "And the colour?"},
    ]
    ids, notes = lab.engine.encode(messages, max_new_tokens=4000)
    text = lab.engine.tokenizer.decode(ids)
    assert "And the colour?" in text and "Be brief." in text
    assert notes and "oldest turn" in notes[0]


@pytest.mark.model
def test_stats_count_the_tokens_with_a_note_at_the_limit(lab):
    text, stats = _generate_text(
        lab, [{"role": "user", "content": "Count from one to fifty."}], None, Decoding(max_new_tokens=5)
    )
    assert stats.completion_tokens == 5
    assert stats.ttft_s is not None and stats.total_s >= stats.ttft_s
    assert any("max-new-tokens" in note for note in stats.notes)
    assert text
