"""Compare: every column from one batch, each equal to its mode's answer alone."""

import pytest

from core.answers.compare import Column
from core.common.vocabulary import MODES, Decoding
from core.training.adapters import AdapterNotReady
from tests.conftest import QUICK_TRAINING

QUESTION = "How many days do I have to return a bike?"


@pytest.mark.model
def test_batched_answer_of_each_column_equals_its_unbatched_answer(lab, sample):
    stream = lab.compare(sample, [Column(mode) for mode in MODES], QUESTION)
    pieces: dict[int, str] = {}
    for piece in stream:
        pieces[piece.column] = pieces.get(piece.column, "") + piece.text
    assert stream.wall_s > 0
    for index, (mode, batched) in enumerate(zip(MODES, stream.answers, strict=True)):
        alone = lab.ask(sample, mode, QUESTION).collect()
        assert batched.mode == mode
        assert batched.text == alone.text and batched.withheld_draft == alone.withheld_draft
        assert (batched.withheld_draft or batched.text) == pieces[index]  # greedy: token for token, as streamed
        assert batched.completion_tokens == alone.completion_tokens
        assert batched.prompt_tokens == alone.prompt_tokens
        assert [s.name for s in batched.sources] == [s.name for s in alone.sources]
        assert batched.adapter == alone.adapter
        assert batched.ttft_s is not None and 0 < batched.ttft_s <= batched.total_s <= stream.wall_s


@pytest.mark.model
def test_columns_continue_their_own_conversations(lab, sample):
    columns, short = [Column("base"), Column("rag")], Decoding(max_new_tokens=4)
    first = lab.compare(sample, columns, QUESTION, decoding=short).collect()
    histories = [[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": a.text}] for a in first]
    follow_up = lab.compare(sample, columns, "And for a battery?", histories, short).collect()
    fresh = lab.compare(sample, columns, "And for a battery?", decoding=short).collect()
    for continued, alone in zip(follow_up, fresh, strict=True):
        assert continued.prompt_tokens > alone.prompt_tokens


@pytest.mark.model
def test_two_adapters_side_by_side(lab, sample):
    from core.training.finetune import train_adapter
    from core.training.train_config import TrainConfig

    active = lab.active_adapter(sample)
    if "other" not in {a.name for a in lab.adapters(sample)}:
        train_adapter(lab.settings, sample, TrainConfig(**QUICK_TRAINING, seed=7), name="other")
        from core.training.adapters import set_active

        set_active(lab.settings.data_dir, sample.name, active.name)  # the suite keeps its active adapter
    columns = [Column("finetuned", active.name), Column("finetuned", "other")]
    answers = lab.compare(sample, columns, QUESTION, decoding=Decoding(max_new_tokens=12)).collect()
    assert [a.adapter for a in answers] == [active.name, "other"]
    assert lab.engine.adapters.keys() >= {f"{sample.name}--{active.name}", f"{sample.name}--other"}
    with pytest.raises(AdapterNotReady, match="no adapter named 'missing'"):
        lab.compare(sample, [Column("base"), Column("hybrid", "missing")], QUESTION)


def test_column_keys_round_trip():
    for column in (Column("base"), Column("hybrid", "v2")):
        assert Column.from_key(column.key) == column
    assert Column("finetuned", "v2").label(adapter_shown=True) == "Fine-tuned · v2"
    assert Column("finetuned", "v2").label() == "Fine-tuned"


STOPPED = "Stopped by the presenter."


@pytest.mark.model
def test_stopping_a_column_leaves_the_other_columns_answers_as_they_were(lab, sample):
    columns = [Column("base"), Column("rag"), Column("finetuned")]
    whole = lab.compare(sample, columns, QUESTION).collect()
    stream = lab.compare(sample, columns, QUESTION)
    streamed, ended_at = "", None
    for piece in stream:
        if piece.column == 0 and piece.text:
            streamed += piece.text
            stream.stop(0, STOPPED)
        if piece.column == 0 and piece.done:
            ended_at = set(stream.ended)
    base, rag, finetuned = stream.answers
    assert base.stopped == STOPPED and base.text == streamed and base.completion_tokens == 1
    assert whole[0].text.startswith(base.text) and len(base.text) < len(whole[0].text)
    assert ended_at == {0}  # it ended at once, while the others went on
    assert (rag.text, finetuned.text) == (whole[1].text, whole[2].text)
    assert not rag.stopped and not finetuned.stopped


@pytest.mark.model
def test_stopping_every_column_ends_the_comparison(lab, sample):
    columns = [Column("base"), Column("finetuned")]
    stream = lab.compare(sample, columns, QUESTION)
    after_stop = []
    for piece in stream:
        if stream.ended or after_stop:
            after_stop.append(piece)
        else:
            for column in range(len(columns)):
                stream.stop(column, STOPPED)
            after_stop.append(piece)
    assert all(piece.done or piece is after_stop[0] for piece in after_stop)  # no text after the stop
    assert [a.stopped for a in stream.answers] == [STOPPED, STOPPED] and stream.ended == {0, 1}
    assert sum(a.completion_tokens for a in stream.answers) == 1


@pytest.mark.model
def test_a_looping_answer_stops_at_the_same_word_on_its_page_and_in_compare(lab, sample, monkeypatch):
    from core.text.derailment import REPEATING, derailment

    # SmolLM2 loops on this question when nothing penalises repeats, in float32 and in bfloat16 alike
    # ("2.5-meter-wide, 2.5-meter-wide, ..."). The question about sending a bike back looped in float32
    # only: in bfloat16 it ended on its own and this test failed on its premise.
    question = "Tell me about the frame."
    looping = Decoding(max_new_tokens=200, repetition_penalty=1.0)
    [column] = lab.compare(sample, [Column("base")], question, decoding=looping, stop_derailed=True).collect()
    monkeypatch.setattr(
        lab, "settings", lab.settings.model_copy(update={"max_new_tokens": 200, "repetition_penalty": 1.0})
    )
    page = lab.ask(sample, "base", question, stop_derailed=True).collect()
    assert column.stopped == page.stopped == REPEATING
    assert column.text == page.text and derailment(page.text) == REPEATING
    assert 0 < page.completion_tokens < looping.max_new_tokens and page.total_s > 0
