"""What a streaming answer shows before it is final: a draft the figure or topic check will withhold is
never on screen first, and the final answer is shown whole as it is."""

import pytest

from core.answers.figure_check import states_unsupported_figure, withhold_unsupported_figures
from core.answers.release import Release, any_hold
from core.answers.topic_check import topic_hold
from core.common.vocabulary import Answer, Source
from core.knowledge.lexical_index import tokenize

SHIPPING = Source(name="shipping.md", chunk=0, score=0.6, text="Standard shipping is free on orders over $75.")
STALE = "Hello from Lumen Care! Standard shipping is free on orders over $50. It takes 3 days. Ride on!"


def streamed(mode: str, draft: str, hold, question: str = "When is shipping free?", sources=(SHIPPING,)):
    """Streams `draft` word by word into an answer: (the answer, its Release, what was shown after each word)."""
    answer = Answer(mode=mode, question=question, sources=list(sources))
    release = Release(answer, hold)
    shown = []
    for word in draft.split(" "):
        answer.text += ("" if not answer.text else " ") + word
        shown.append(release.shown())
    return answer, release, shown


def test_a_figure_the_check_withholds_is_never_shown_while_streaming():
    answer, release, shown = streamed("rag", STALE, states_unsupported_figure)
    assert all("$50" not in step.text for step in shown)
    assert shown[-1].held  # the page says a check is holding text back
    withhold_unsupported_figures(answer)
    release.final = True
    assert release.shown().text == answer.text and answer.text.startswith("Hello from Lumen Care! I can't answer")


def test_text_is_released_a_whole_checked_sentence_at_a_time():
    _, _, shown = streamed(
        "rag",
        "Hello from Lumen Care! Standard shipping is free on orders over $75. Ride on!",
        any_hold([states_unsupported_figure]),
    )
    texts = [step.text for step in shown]
    assert set(texts) == {
        "",
        "Hello from Lumen Care!",
        "Hello from Lumen Care! Standard shipping is free on orders over $75.",
    }
    assert texts == sorted(texts, key=len)  # it only grows


def test_the_final_answer_is_shown_exactly_as_the_checks_left_it():
    answer, release, _ = streamed("rag", "Shipping is free over $75. Ride on!", states_unsupported_figure)
    release.final = True
    assert release.shown().text == "Shipping is free over $75. Ride on!"  # the unfinished last sentence too


@pytest.mark.parametrize("mode", ["base", "finetuned"])
def test_modes_without_checks_stream_every_word(mode):
    _, _, shown = streamed(mode, STALE, states_unsupported_figure)
    assert [step.text for step in shown] == [" ".join(STALE.split(" ")[: n + 1]) for n in range(len(shown))]


def test_an_answer_without_sources_is_not_held():
    _, _, shown = streamed("rag", STALE, states_unsupported_figure, sources=())
    assert shown[-1].text == STALE


def test_a_question_word_the_knowledge_base_never_mentions_is_held():
    vocabulary = set(tokenize(["Lumen Bikes ships to the United States and Canada. Stores are in Boston."])[0])
    question = "Is there a Lumen Bikes store in Berlin?"
    stores = Source(name="stores.md", chunk=0, score=0.4, text="Stores are in Boston.")
    draft = "Hello! Yes, there is a Lumen Bikes store in Berlin. It opens at 9. Ride on!"
    _, _, shown = streamed("hybrid", draft, topic_hold(lambda: vocabulary), question, (stores,))
    assert all("Berlin" not in step.text for step in shown) and shown[-1].text == "Hello!"
