"""Derailment: the one rule that stops a looping answer early, on answers the bundled models wrote.

Texts marked "SmolLM2" are real SmolLM2-135M-Instruct answers from the sample scenarios (greedy; the
looping ones with the repetition penalty off, where loops come sooner), copied as the model wrote them.
"""

import pytest

from core.text.derailment import LIST_REPEATING, REPEATING, derailment

# SmolLM2, base, "What bikes do you sell?": its second paragraph says the first one again.
PARAGRAPH_AGAIN = (
    "I'm happy to help you find the perfect bike for your needs. I'm a dedicated bike-buying AI, and I'm happy "
    "to assist you with everything from bike-specific products to general bike-related inquiries. Whether it's "
    "a bike you're looking for, a bike you're considering, or just a bike-buying guide, I'm here to help.\n\n"
    "I can assist with everything from bike-specific products to general bike-related inquiries. Whether it's a "
    "bike you're looking for, a bike you're considering, or just a bike-buying guide, I'm here to help.\n\n"
)
# SmolLM2, base, "List the steps to set up my new bike.": item 2 is item 1 under another heading.
ITEM_AGAIN = (
    "To set up your new bike, here are the steps to follow:\n\n"
    "1. **Choose a bike**: Select a bike that fits your needs and budget. Ensure it meets your expectations.\n\n"
    "2. **Select a bike**: Choose a bike that fits your needs and budget. Ensure it meets your expectations.\n\n"
)
# SmolLM2, base, "If I don't like my bike, how many days do I have to send it back?": one short sentence again.
SENTENCE_AGAIN = (
    "Lumina Bikes is here to help. We can't keep fixing bikes forever. If you're not happy with your bike, we "
    "can't keep fixing it. We can't keep fixing bikes forever.\n\nWe can't keep fixing bikes forever.\n\n"
)
# SmolLM2, base, "Does Lumen Bikes have a military discount?": a phrase that keeps coming back.
PHRASE_AGAIN = (
    "Lumen Bikes does not currently offer a military discount. However, we do offer a variety of products that "
    "are designed to be used responsibly and in accordance with the law. For example, we offer a range of "
    "bicycles that are designed to be used responsibly, such as bicycles with wheels that are designed to be "
    "used responsibly.\n\nWe also offer a range of bicycles that are designed to be used responsibly, such as "
    "bicycles that are designed to be used responsibly, such as "
)
# SmolLM2, RAG, the same question with the penalty on: eight distinct steps (wrong ones, but no loop).
DISTINCT_STEPS = (
    "1. Download the Lumen e-bike app from the official website [Lumina Bikes](https://www.luminabiketrack.com/)."
    '\n\n2. Open the app and select "My Bike" in the dropdown menu.\n\n3. In the dropdown menu, click on "Add to '
    'Cart". \n\n4. Select your order number from the dropdown list. \n\n5. Enter your order details: the '
    'customer\'s name, product type (e.g., bike), and shipping address.\n\n6. Click "Add to Cart".\n\n7. You will '
    "be asked to enter a payment for the order. You can choose to pay with credit card or debit card.\n\n8. After "
    "you have entered all the information, you will receive an order confirmation email.\n\n"
)
# SmolLM2, RAG, "How heavy is the Lumen Drift?": five sentences that open alike and say different things.
SAME_OPENINGS = (
    "The Lumen Drift is the all-road and light-trail e-bike of Lumen Bikes. The Lumen Drift costs $2,099. The "
    "Lumen Drift weighs 18 kg. The Lumen Drift has a 350 Wh battery and a 400 W rear hub motor. The Lumen Drift "
    "comes with fenders, a rear rack mount and integrated front and rear lights. "
)
# SmolLM2, base, "My bike arrived 40 days ago. Is it too late to return it?": it rambles to the token limit,
# but never says the same thing twice. Rambling is for the presenter's Stop button.
RAMBLING = (
    "We're glad to hear that your bike is still available. However, as a customer-support assistant, I must "
    "emphasize that the current availability of our service can vary based on various factors such as weather "
    "conditions and other services being offered by Lumen Bikes.\n\nIn recent times, we've had issues with the "
    "availability of certain services, particularly in terms of transportation and logistics. For example, we "
    "have limited supply of our own vehicles for delivery, which has affected some of our operations. "
    "Additionally, there's been an increase in the number of customers who are using our online platforms, which "
    "may impact our ability to provide more accurate information about our services.\n\nTo address these issues, "
    "we're currently working on implementing new technologies that will help us manage our inventory better and "
    "ensure that we always have what we need. We're also exploring ways to improve our delivery capabilities, "
    "which could potentially reduce the time you'd typically spend waiting for a bike to arrive.\n\nHowever, if "
)


def _first_stop(text: str) -> int | None:
    """How much of the text had streamed when the rule first stopped it (None: never)."""
    return next((end for end in range(1, len(text) + 1) if derailment(text[:end])), None)


@pytest.mark.parametrize("text", [PARAGRAPH_AGAIN, ITEM_AGAIN, PHRASE_AGAIN], ids=["paragraph", "list item", "phrase"])
def test_a_passage_written_a_second_time_stops_the_answer(text):
    assert derailment(text) == REPEATING


def test_an_answer_stops_as_the_repeat_is_written_not_before():
    stop = _first_stop(PARAGRAPH_AGAIN)
    second = PARAGRAPH_AGAIN.index("I can assist")
    assert stop is not None and second < stop < len(PARAGRAPH_AGAIN)


@pytest.mark.parametrize(
    "text",
    [DISTINCT_STEPS, SAME_OPENINGS, RAMBLING],
    ids=["distinct numbered steps", "sentences opening alike", "rambling without a repeat"],
)
def test_an_answer_that_does_not_repeat_itself_is_never_stopped(text):
    assert _first_stop(text) is None


def test_a_short_sentence_stops_the_answer_the_third_time():
    third = SENTENCE_AGAIN.rindex("We can't")
    assert derailment(SENTENCE_AGAIN[:third]) is None
    assert _first_stop(SENTENCE_AGAIN) > third and derailment(SENTENCE_AGAIN) == REPEATING


def test_a_phrase_looping_without_punctuation_stops_the_answer():
    assert derailment("You can charge it at home with the charger " + "and the battery " * 8) == REPEATING


def test_a_list_giving_two_items_again_stops_the_answer():
    items = ["Lumen Volt", "Lumen Drift", "Lumen Atlas", "Lumen Volt", "Lumen Drift", "Lumen Atlas"]
    text = "We sell these bikes:\n" + "".join(f"{n}. {item}\n" for n, item in enumerate(items, 1))
    assert derailment(text[: text.index("5.")]) is None  # one item again: not yet
    assert derailment(text) == LIST_REPEATING


def test_the_same_short_detail_under_each_item_is_not_a_repeating_list():
    bikes = ["Lumen Volt", "Lumen Drift", "Lumen Atlas"]
    text = "".join(
        f"{n}. **{bike}**\n   - Warranty: 2 years\n   - Charger included\n" for n, bike in enumerate(bikes, 1)
    )
    assert _first_stop(text) is None


def test_items_that_differ_only_in_their_codes_are_distinct():
    codes = "".join(f"- RC-40{n:02d}: the request was refused; see the error table.\n" for n in range(30, 45))
    assert _first_stop(codes) is None


def test_markdown_tables_and_rules_are_not_repeats():
    table = "| Plan | Seats | Price | Storage | Support | API |\n| --- | --- | --- | --- | --- | --- |\n"
    table += "| Starter | 1 | $8 | 100 GB | e-mail | no |\n| Team | 5 | $12 | 1 TB | chat | yes |\n\n" + "-" * 60 + "\n"
    assert _first_stop(table) is None


def test_one_character_written_forty_times_stops_the_answer():
    assert derailment("Ride on" + "!" * 39) is None
    assert derailment("Ride on" + "!" * 40) == REPEATING
