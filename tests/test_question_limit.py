"""The chat length limit (core/text/question_limit.py): the message that says how much to cut, and the
Lab refusing a longer question whichever page or command asks it."""

import pytest

from core.common.scenario import load_scenario
from core.text.question_limit import MAX_QUESTION_CHARS, QuestionTooLong, question_problem
from tests.conftest import SAMPLE


def test_a_question_at_the_limit_passes():
    assert question_problem("x" * MAX_QUESTION_CHARS) is None


def test_a_longer_question_is_told_how_much_to_cut():
    problem = question_problem("x" * 5000)
    assert "5,000 characters" in problem and "up to 2,000" in problem and "by 3,000 characters" in problem


@pytest.mark.parametrize("ask", ["ask", "compare"])
def test_the_lab_refuses_a_question_over_the_limit(settings, ask):
    from core.answers.compare import Column
    from core.lab import Lab

    lab, scenario = Lab(settings), load_scenario(SAMPLE)  # nothing loads before the check
    question = "Tell me about returns. " * 100
    with pytest.raises(QuestionTooLong, match="Shorten it"):
        if ask == "ask":
            lab.ask(scenario, "base", question)
        else:
            lab.compare(scenario, [Column("base"), Column("rag")], question)
    assert lab._engine is None  # refused before the model was asked for
