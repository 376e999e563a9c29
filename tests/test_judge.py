"""The optional LLM judge: reading its verdicts and picks, running it on the real local model, and how
its picks are counted against arena votes."""

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.answers.chat_model import LocalChatModel
from core.common.vocabulary import Decoding
from core.evaluation.arena import ALL_BAD, TIE, Vote
from core.evaluation.judge import (
    GRADE_PROMPT,
    PICK_PROMPT,
    Judge,
    configured_judge,
    parse_pick,
    parse_verdict,
    vote_agreement,
)


def test_parse_verdict_reads_a_clear_verdict():
    assert parse_verdict("CORRECT") is True
    assert parse_verdict("correct.") is True
    assert parse_verdict("Verdict: Correct") is True
    assert parse_verdict("INCORRECT") is False  # contains "CORRECT" but is the opposite
    assert parse_verdict("Incorrect - the answer says 30 days.") is False


def test_parse_verdict_gives_none_without_one():
    assert parse_verdict("The support email is support@lumen") is None  # garbled: no verdict, not a fail
    assert parse_verdict("") is None
    assert parse_verdict("CORRECTLY") is None  # a longer word is not a verdict


def test_parse_pick_takes_the_first_standalone_known_label():
    labels = ["A", "B", "C"]
    assert parse_pick("B", labels) == "B"
    assert parse_pick("Answer C is best.", labels) == "C"
    assert parse_pick("D", labels) is None  # not one of the answers shown
    assert parse_pick("Both are fine", labels) is None  # "B" inside a word is not a pick
    assert parse_pick("", labels) is None


def vote(choice: str, question: str = "What is the support email?") -> Vote:
    entries = [
        {"label": label, "column": i, "mode": mode, "adapter": None, "adapter_version": None, "text": text}
        for i, (label, mode, text) in enumerate(
            (("A", "base", "Call us."), ("B", "rag", "Write to support@lumenbikes.example."))
        )
    ]
    return Vote("c1", "demo", question, "SmolLM2", {}, entries, choice)


@pytest.fixture(scope="module")
def local_judge(lab):
    """The real local model as judge, with replies cut to a few tokens."""
    return Judge("local", LocalChatModel(engine=lab.engine, decoding=Decoding(max_new_tokens=4)))


@pytest.mark.model
def test_the_local_model_as_judge_gives_what_its_reply_says(local_judge):
    question, reference = "What is the support email?", "The support email is support@lumenbikes.example."
    answer = "Write to support@lumenbikes.example."
    verdict = local_judge.grade(question, reference, answer)
    assert verdict in (True, False, None)
    # greedy decoding: the same prompt gives the same reply, and grade() is exactly its verdict
    reply = local_judge.model.invoke(
        GRADE_PROMPT.format_messages(question=question, reference=reference, answer=answer)
    )
    assert verdict == parse_verdict(str(reply.content))

    pick = local_judge.pick(vote("B"))
    assert pick in ("A", "B", None)
    answers = "Answer A: Call us.\n\nAnswer B: Write to support@lumenbikes.example."
    reply = local_judge.model.invoke(PICK_PROMPT.format_messages(question=vote("B").question, answers=answers))
    assert pick == parse_pick(str(reply.content), ["A", "B"])


def test_no_reference_means_no_verdict():
    # a judge that would say CORRECT to anything: grade() must not even ask it
    judge = Judge("always", FakeListChatModel(responses=["CORRECT"]))
    assert judge.grade("What is the support email?", "  ", "support@lumenbikes.example") is None
    assert judge.grade("What is the support email?", "support@lumenbikes.example", "x") is True


def test_vote_agreement_counts_only_decided_votes_with_readable_picks():
    """This test is about the arithmetic, so the judge replies from a fixed list (one reply per decided
    vote, in order); the real model is exercised above."""
    votes = [vote("B"), vote(TIE), vote("A"), vote(ALL_BAD), vote("B"), vote("A")]
    replies = ["B", "Answer B is better", "I cannot tell", "A"]  # for the 1st, 3rd, 5th and 6th votes
    judge = Judge("fixed", FakeListChatModel(responses=replies))
    assert vote_agreement(judge, votes) == {"votes": 4, "judged": 3, "agreed": 2, "agreement": 0.667}


def test_no_decided_votes_means_no_agreement_figure():
    judge = Judge("fixed", FakeListChatModel(responses=["A"]))
    assert vote_agreement(judge, [vote(TIE), vote(ALL_BAD)]) == {
        "votes": 0,
        "judged": 0,
        "agreed": 0,
        "agreement": None,
    }


def test_no_judge_unless_configured(settings):
    assert configured_judge(settings) is None
    assert configured_judge(settings.model_copy(update={"judge_base_url": "http://localhost:1/v1"})) is None
    judge = configured_judge(
        settings.model_copy(update={"judge_base_url": "http://localhost:1/v1", "judge_model": "m"})
    )
    assert judge.name == "m"
