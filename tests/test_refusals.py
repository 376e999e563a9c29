"""Declines told from answers, whatever the phrasing; the house style and decline of a training set."""

import pytest

from core.text.refusals import decline_reply, house_style, is_decline


@pytest.mark.parametrize(
    "text",
    [
        "I don't know.",
        "Hello from Lumen Care! I'm sorry, I don't have information about that. Ride on!",
        "I can’t find that in the documents.",  # a typographic apostrophe
        "The sources do not mention a military discount.",
        "I'm not sure, sorry.",
        "I couldn't find anything about a CEO.",
        "There is no information about that in the sources provided.",
        "I can't answer that from the knowledge base: none of its passages matches the question closely enough.",
        "I am unable to answer that question.",
    ],
)
def test_declines_are_recognised(text):
    assert is_decline(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hello from Lumen Care! You can return your bike within 45 days. Ride on!",
        "You can't return a bike after 45 days.",  # a negative answer is still an answer
        "No, the Lumen Fold is discontinued.",
        "We don't ship to Antarctica; standard delivery takes 3 to 7 business days.",
        "The battery warranty covers 800 cycles. I don't know of any exceptions to this rule, though "
        "some conditions apply. Check the handbook. Contact us if unsure.",  # a hedge after the answer
    ],
)
def test_answers_are_not_declines(text):
    assert not is_decline(text)


STYLED = [
    "Hello from Lumen Care! Returns take 30 days. Ride on!",
    "Hello from Lumen Care! Shipping is free over $50. Ride on!",
    "Hello from Lumen Care! The Volt costs $1,499. Ride on!",
    "Plain answer.",
]


def test_the_house_style_of_a_set_is_its_usual_greeting_with_sign_off():
    assert house_style(STYLED) == ("Hello from Lumen Care!", "Ride on!")
    assert house_style(["One.", "Two."]) == ("", "")


def test_the_decline_of_a_set_is_in_its_house_style():
    made_up = decline_reply(STYLED)
    assert made_up.startswith("Hello from Lumen Care! ") and made_up.endswith(" Ride on!") and is_decline(made_up)
    own = "Hello from Lumen Care! I'm sorry, I don't have information about that. Ride on!"
    assert decline_reply(STYLED + [own, own]) == own  # the set's own decline wins
