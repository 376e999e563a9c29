"""The Compare page's conversations: each question starts fresh unless the presenter follows up, and a
follow-up says so on screen."""

import pytest

from core.answers.compare import Column
from tests.support.apptest import open_page

pytestmark = pytest.mark.model

FOLLOW_UP = ":material/forum: A follow-up: each column continued its own conversation above."


def _ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_a_new_question_starts_fresh_unless_following_up(lab, sample):
    at = open_page("pages/compare.py")
    at.multiselect[0].set_value(["base", "rag"]).run()
    _ask(at, "Can I return a bike?")
    _ask(at, "How long does delivery take?")
    assert FOLLOW_UP not in _captions(at)
    shown = [m.value for m in at.markdown if m.value and not m.value.startswith("**")]
    fresh = lab.compare(sample, [Column("base"), Column("rag")], "How long does delivery take?").collect()
    for answer in fresh:  # the second turn's answers are the fresh ones, not continuations
        assert any(answer.text.strip()[:40] in text.replace("\\", "") for text in shown), answer.text

    at.toggle(key="compare_follow_up").set_value(True).run()
    _ask(at, "And for a battery?")
    assert _captions(at).count(FOLLOW_UP) == 1
