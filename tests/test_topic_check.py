"""The topic check: RAG and hybrid answers about a subject no knowledge-base document mentions are withheld."""

import pytest

from core.answers.topic_check import topic_check, unknown_topic_words
from core.common.vocabulary import Answer, Source
from core.knowledge.lexical_index import tokenize
from core.text.refusals import is_decline

DOCS = "Lumen Bikes ships within 3 to 5 business days. The Lumen Volt covers 60 km on one charge."
VOCABULARY = set(tokenize([DOCS])[0])
SHIPPING = Source(name="shipping.md", chunk=0, score=0.5, text=DOCS)
check = topic_check(lambda: VOCABULARY)


def answer(mode: str, text: str, question: str, sources=(SHIPPING,)) -> Answer:
    return Answer(mode=mode, question=question, text=text, sources=list(sources))


def test_an_answer_about_what_no_document_mentions_is_withheld_in_its_own_voice():
    question = "Is there a Lumen Bikes store in Berlin?"
    assert unknown_topic_words("No, there is no Lumen Bikes store in Berlin.", question, VOCABULARY) == [
        "store",
        "Berlin",
    ]
    made_up = answer("hybrid", "Hello from Lumen Care! No, there is no Lumen store in Berlin. Ride on!", question)
    check(made_up)
    assert made_up.withheld_draft.startswith("Hello from Lumen Care! No, there is")
    assert made_up.text.startswith("Hello from Lumen Care! I can't answer that") and made_up.text.endswith("Ride on!")
    assert "“store” or “Berlin”" in made_up.text and is_decline(made_up.text)
    assert any(note.startswith("Topic check") for note in made_up.notes)


def test_answers_in_the_documents_words_pass_even_when_the_question_words_differ():
    for text, question in [
        ("Lumen Bikes ships within 3 to 5 business days.", "How quickly do you dispatch orders?"),
        ("The Volt covers 60 km on one charge.", "How many kilometres does the Volt cover?"),  # answer: km
        ("Lumen Bikes ships within 3 to 5 business days.", "How long does delivery to Berlin take?"),  # not repeated
        ("The Volt 2027 ships in 3 days.", "When does the Volt 2027 ship?"),  # figures: the figure check's
    ]:
        passed = answer("rag", text, question)
        check(passed)
        assert passed.text == text and not passed.withheld_draft


def test_only_retrieval_answers_with_sources_are_checked_never_declines():
    question = "Do you have a store in Berlin?"
    for left in [
        answer("base", "Yes, our Berlin store is open daily.", question),
        answer("finetuned", "Yes, our Berlin store is open daily.", question),
        answer("rag", "I don't know whether there is a store in Berlin.", question),
        answer("rag", "Yes, our Berlin store is open daily.", question, sources=()),
    ]:
        before = left.text
        check(left)
        assert left.text == before and not left.withheld_draft


@pytest.mark.model
def test_the_knowledge_base_vocabulary_follows_its_documents(lab, sample):
    vocabulary = lab.knowledge_base(sample).vocabulary()
    assert {"lumen", "warranti", "batteri"} <= vocabulary and "berlin" not in vocabulary
