"""The figure check: RAG and hybrid answers stating a figure that no source contains are withheld."""

import pytest

from core.answers.figure_check import figures_reason, unsupported_figures, withheld_reply, withhold_unsupported_figures
from core.common.vocabulary import Answer, Source
from core.text.refusals import is_decline

SHIPPING = Source(name="shipping.md", chunk=0, score=0.6, text="Standard shipping is free on orders over $75.")


def answer(mode: str, text: str, question: str = "When is shipping free?", sources=(SHIPPING,)) -> Answer:
    return Answer(mode=mode, question=question, text=text, sources=list(sources))


def test_unsupported_figures_fold_spelling_variants():
    assert unsupported_figures("Free over $75.00, in 3-5 business days.", ["over $75", "3 business days"]) == [
        "5 business days"
    ]
    assert unsupported_figures("Write to help@lumen.example.", ["Mail HELP@lumen.example"]) == []
    assert unsupported_figures("It has 2.5 Nm of torque.", ["nothing"]) == []  # not a unit the check knows


def test_a_stale_figure_is_withheld_in_the_drafts_own_voice():
    stale = answer("hybrid", "Hello from Lumen Care! Standard shipping is free on orders over $50. Ride on!")
    withhold_unsupported_figures(stale)
    assert stale.withheld_draft.endswith("over $50. Ride on!")
    assert stale.text.startswith("Hello from Lumen Care! I can't answer that reliably") and stale.text.endswith(
        "Ride on!"
    )
    assert "$50" in stale.text and is_decline(stale.text)
    assert any("Figure check" in note and "$50" in note for note in stale.notes)


@pytest.mark.parametrize(
    "text, question",
    [
        pytest.param("Shipping is free on orders over $75.", "When is shipping free?", id="supported"),
        pytest.param(
            "No: $65 is below the $75 free-shipping threshold.",
            "I'm buying accessories worth $65. Is shipping free?",
            id="from-the-question",
        ),
    ],
)
def test_figures_the_sources_or_the_question_give_pass(text, question):
    checked = answer("rag", text, question)
    withhold_unsupported_figures(checked)
    assert checked.text == text and not checked.withheld_draft


def test_only_retrieval_answers_with_sources_are_checked_never_declines():
    for checked in [
        answer("base", "Shipping is free over $50."),
        answer("finetuned", "Shipping is free over $50."),
        answer("rag", "I don't know. Write to help@lumen.example."),  # a decline may name a contact
        answer("rag", "Shipping is free over $50.", sources=()),
    ]:
        before = checked.text
        withhold_unsupported_figures(checked)
        assert checked.text == before and not checked.withheld_draft


def test_a_withheld_reply_keeps_only_a_plain_greeting_from_the_draft():
    # "The answer is: 4." and a markup fragment are not a greeting or a sign-off.
    reply = withheld_reply("The answer is: 4. You have 10 days. <li>x</li>", figures_reason(["10 days"]))
    assert reply.startswith("I can't answer that reliably") and "<li>" not in reply and "4." not in reply
    reply = withheld_reply("Sure! It costs $9, $8, $7 or $6.", figures_reason(["$9", "$8", "$7", "$6"]))
    assert reply.startswith("Sure! I can't") and "$6" not in reply  # three figures named at most


@pytest.mark.model
def test_the_lab_checks_figures_of_every_streamed_answer(lab, sample):
    """Through the real model: whatever RAG answers, it states no figure its sources and question lack."""
    from core.answers.compare import Column

    question = "How much does the Lumen Volt cost, and how many dollars is express shipping?"
    alone = lab.ask(sample, "rag", question).collect()
    together = lab.compare(sample, [Column("base"), Column("rag")], question).collect()
    for checked in (alone, together[1]):
        supporting = [s.text for s in checked.sources] + [question]
        assert checked.withheld_draft or not unsupported_figures(checked.text, supporting)
        if checked.withheld_draft:
            assert unsupported_figures(checked.withheld_draft, supporting)
    assert alone.text == together[1].text  # the same check on the mode page and in compare
    assert not together[0].withheld_draft  # base is never checked
