"""Starting points for a demo: the scenario's questions to try, one click from an answer on every chat
page, on Compare, and from the overview."""

import pytest

from core.common.scenario import load_eval_questions, questions_to_try
from tests.support.apptest import open_page


def test_each_kind_of_question_is_offered_with_what_it_shows(sample):
    offered = questions_to_try(load_eval_questions(sample), per_kind=1)
    assert [label for _, label in offered] == [
        "in the docs",
        "changed since training",
        "not in the docs",
        "house style",
    ]
    assert questions_to_try([], per_kind=2) == []


@pytest.mark.model
def test_a_clicked_question_is_asked_on_a_mode_page(sample):
    question, _ = questions_to_try(load_eval_questions(sample))[0]
    at = open_page("pages/rag.py")
    [chips] = at.button_group
    assert len(chips.options) == len(questions_to_try(load_eval_questions(sample)))
    chips.set_value(question).run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.chat_message[0].markdown[0].value  # the question, shown as the user's turn
    assert at.button_group[0].value is None  # the chip is free to be clicked again


@pytest.mark.model
def test_a_question_from_the_overview_opens_compare_with_it_asked(sample):
    at = open_page("pages/home.py")
    first = next(b for b in at.button if b.key == "try:0")
    first.click().run()
    assert not at.exception
    assert [m.name for m in at.chat_message][:1] == ["user"]
    asked = at.chat_message[0].markdown[0].value
    assert asked and asked.split("\\")[0][:10] in first.label
    assert any(c.value.startswith("All ") and "answers came from one batch" in c.value for c in at.caption)
