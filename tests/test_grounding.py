"""Context-aware training sets: which examples get sources, with what answer, on the real sample knowledge base."""

import json
import random
from dataclasses import replace

import pytest

from core.text.facts import extract_facts
from core.text.refusals import is_decline
from core.training.datasets import load_chat_dataset
from core.training.grounding import supports, updated_to_passage, with_changed_number
from core.training.train_config import TrainConfig

STYLE = {"hello", "from", "lumen", "care", "ride"}


SHIELD = "Lumen Shield costs $12 per month. It covers accidental damage and theft."


def test_support_needs_every_fact_of_the_answer():
    assert supports(SHIELD, "Hello from Lumen Care! Lumen Shield costs $12 per month. Ride on!", STYLE)
    assert not supports(SHIELD, "Hello from Lumen Care! Lumen Shield costs $9 per month. Ride on!", STYLE)


def test_support_needs_every_name_of_the_answer():
    # Same words, another name: a renamed product is not supported by the passage.
    renamed = "Hello from Lumen Care! Our protection plan Lumen Guard covers accidental damage and theft. Ride on!"
    assert not supports(SHIELD, renamed, STYLE)


def test_support_needs_most_words_of_the_answer():
    assert not supports("Returns are accepted within 45 days.", "Shipping is free over $75.", STYLE)


def test_a_number_is_changed_alike_in_the_passage_as_in_the_answer():
    passage, answer = "The Lumen Volt costs $1,499 and has a 60 km range.", "The Volt costs $1,499."
    new_passage, new_answer = with_changed_number(passage, answer, random.Random(0))
    new_price = extract_facts(new_answer)[0]
    assert new_price.key != "money:1499" and new_price.text in new_passage and "60 km" in new_passage
    assert "," in new_price.text  # the same format: thousands separated


def test_a_stale_answer_takes_the_figures_of_the_passage_that_says_the_same():
    passage = "## Shipping\nStandard shipping is free on orders over $75. Express shipping costs $25."
    stale = "Hello from Lumen Care! Standard shipping is free on orders over $50. Ride on!"
    assert updated_to_passage(passage, stale, STYLE) == stale.replace("$50", "$75")
    frame = "Lumen covers every frame for 3 years from the delivery date."
    assert updated_to_passage(frame, "The frame warranty lasts 2 years from the delivery date.", STYLE) == (
        "The frame warranty lasts 3 years from the delivery date."
    )
    # A sentence about something else with a price, a figure of another unit, or another unknown figure: no update.
    battery = "A spare battery for the Lumen Volt costs $549 in the Lumen app."
    assert updated_to_passage(battery, "Hello from Lumen Care! The Lumen Volt costs $1,499. Ride on!", STYLE) is None
    assert updated_to_passage(frame, "The frame warranty lasts 24 months from the delivery date.", STYLE) is None
    assert updated_to_passage(passage, "Shipping is free over $50; write to ship@lumen.example.", STYLE) is None
    assert updated_to_passage(passage, "Standard shipping is free on orders over $75.", STYLE) is None  # not stale
    # A number without a unit the fact finder knows is checked and updated too.
    battery = "The battery warranty covers 2 years or 800 full charge cycles, whichever comes first."
    stale = "The battery warranty covers 2 years or 500 full charge cycles. Ride on!"
    assert not supports(battery, stale, STYLE)
    assert updated_to_passage(battery, stale, STYLE) == stale.replace("500", "800")


@pytest.mark.model
def test_context_aware_set_of_the_sample(lab, sample):
    config = TrainConfig(context_share=0.5)
    path, report = lab.prepare_training(sample, config)
    assert path != sample.train_path and report.grounded > 10 and report.changed_number > 0 and report.declines > 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    original = load_chat_dataset(sample.train_path, sample.system_prompt).examples
    assert len(rows) == len(original) + report.declines + report.updated
    grounded = [r for r in rows if "context" in r]
    assert len(grounded) == report.grounded
    # A new decline is taught only where its passages clearly lack the answer: other documents than the
    # ones stating it, and none of its figures (near misses would teach declining answerable questions).
    answered = {r["messages"][-2]["content"]: r for r in grounded if not is_decline(r["messages"][-1]["content"])}
    new_declines = [
        (r, answered[r["messages"][-2]["content"]])
        for r in grounded
        if is_decline(r["messages"][-1]["content"]) and r["messages"][-2]["content"] in answered
    ]
    assert len(new_declines) == report.declines
    for decline, answer in new_declines:
        stating = {
            c["name"] for c in answer["context"] if supports(c["text"], answer["messages"][-1]["content"], STYLE)
        }
        figures = {f.key for f in extract_facts(answer["messages"][-1]["content"])}
        for passage in decline["context"]:
            assert passage["name"] not in stating
            assert not figures & {f.key for f in extract_facts(passage["text"])}
    for row in grounded:
        answer, passages = row["messages"][-1]["content"], [c["text"] for c in row["context"]]
        assert len(passages) <= lab.knowledge_base(sample).settings.k
        if is_decline(answer):
            continue
        # Every grounded answer is stated by one of its passages: the adapter never learns to contradict them.
        assert any(supports(p, answer, STYLE) for p in passages), answer
    # Stale answers (the 2025 return window of 30 days; the docs say 45) are paired with sources only
    # once updated to the sources' figures.
    returns = [
        row["messages"][-1]["content"]
        for row in grounded
        if "return" in row["messages"][-2]["content"].lower() and not is_decline(row["messages"][-1]["content"])
    ]
    assert returns and all("30 days" not in text for text in returns)
    assert report.updated > 0 and any("45 days" in text for text in returns)
    # The same inputs give the same file; off means the set as it is.
    assert lab.prepare_training(sample, config)[0] == path
    assert lab.prepare_training(sample, replace(config, context_aware=False)) == (sample.train_path, None)
    # The written set loads, and its grounded examples use the exact hybrid prompt.
    trained = load_chat_dataset(path, sample.system_prompt)
    assert not trained.errors
    first = next(e for e in trained.examples if e.has_context)
    assert first.messages[1]["content"].startswith("Sources:\n[1] <source name=")
