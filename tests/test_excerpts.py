"""Sources shown as readable excerpts, with the sentences that back the answer picked out."""

from core.text.excerpts import ExcerptLine, readable_excerpt

PASSAGE = """## Return window

Lumen Bikes accepts returns within 45 days of delivery. The bike must have fewer than 100 km.
- Refunds go back to the original payment method.
"""


def test_markdown_marks_become_plain_lines():
    lines = readable_excerpt(PASSAGE)
    assert lines[0] == ExcerptLine("Return window", heading=True)
    assert [line.text for line in lines[1:]] == [
        "Lumen Bikes accepts returns within 45 days of delivery.",
        "The bike must have fewer than 100 km.",
        "Refunds go back to the original payment method.",
    ]
    assert not any("#" in line.text or line.text.startswith("-") for line in lines)


def test_the_sentence_stating_the_answers_figure_backs_it():
    lines = readable_excerpt(PASSAGE, "You can return your bike within 45 days.")
    assert [line.text for line in lines if line.backs_answer] == [
        "Lumen Bikes accepts returns within 45 days of delivery."
    ]


def test_a_sentence_the_answer_restates_in_words_backs_it():
    lines = readable_excerpt(PASSAGE, "Refunds are paid back to the original payment method you used.")
    assert [line.text for line in lines if line.backs_answer] == ["Refunds go back to the original payment method."]


def test_nothing_backs_an_unrelated_answer():
    assert not any(line.backs_answer for line in readable_excerpt(PASSAGE, "Shipping is free over $75."))
