"""Saved comparisons in real SQLite, and the conversation a follow-up continues in each column."""

import json
import subprocess
import sys

import pytest

from core.answers.chats import new_chat_id
from core.answers.comparisons import (
    ComparisonTurn,
    clear_comparisons,
    conversation,
    follow_up_refusal,
    load_comparisons,
    save_comparison,
    thread,
)
from core.common.vocabulary import Answer, Source
from core.evaluation.arena import Vote, list_votes, new_comparison_id, record_vote
from tests.conftest import ROOT


def turn(question: str, columns=("base", "rag"), follow_up=False, blind=False) -> ComparisonTurn:
    answers = [
        Answer(
            mode=column.partition(":")[0],
            question=question,
            text=f"{column} says: {question}",
            sources=[Source(name="returns.md", text="Returns within 45 days.", score=0.61, chunk=2)],
            completion_tokens=9,
            stopped="Stopped: it was repeating itself." if column == "base" else "",
        )
        for column in columns
    ]
    order = [1, 0] if blind else list(range(len(columns)))
    return ComparisonTurn(
        new_comparison_id(), question, list(columns), answers, order, blind, follow_up, {"max_new_tokens": 24}, 1.5
    )


def vote(data_dir, scenario: str, saved: ComparisonTurn, choice: str) -> None:
    entries = [{"label": label, "mode": a.mode, "text": a.text} for label, a in zip("AB", saved.answers, strict=False)]
    record_vote(data_dir, Vote(saved.id, scenario, saved.question, "m", saved.decoding, entries, choice))


@pytest.mark.process
def test_a_comparison_reads_back_whole_in_a_fresh_process(tmp_path):
    chat, first, second = new_chat_id(), turn("Can I return a bike?"), turn("And a battery?", follow_up=True)
    for saved in (first, second):
        save_comparison(tmp_path, chat, "shop", saved)
    save_comparison(tmp_path, new_chat_id(), "shop", turn("Another chat"))
    save_comparison(tmp_path, chat, "bikes", turn("Another scenario"))
    script = (
        "import json, sys; from core.answers.comparisons import load_comparisons; "
        "print(json.dumps([t.to_dict() for t in load_comparisons(sys.argv[1], sys.argv[2], 'shop')]))"
    )
    read = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), chat], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(read.stdout) == [first.to_dict(), second.to_dict()]  # its own turns, oldest first
    assert load_comparisons(tmp_path, chat, "shop")[0] == first


def test_saving_a_turn_again_keeps_one_copy(tmp_path):
    chat, saved = new_chat_id(), turn("Can I return a bike?")
    save_comparison(tmp_path, chat, "shop", saved)
    save_comparison(tmp_path, chat, "shop", saved)
    assert len(load_comparisons(tmp_path, chat, "shop")) == 1


def test_a_blind_turn_reloads_hidden_until_it_has_a_vote(tmp_path):
    chat, blind = new_chat_id(), turn("Which is best?", blind=True)
    save_comparison(tmp_path, chat, "shop", blind)
    [reloaded] = load_comparisons(tmp_path, chat, "shop")
    assert reloaded.hidden and reloaded.vote is None and reloaded.order == [1, 0]
    vote(tmp_path, "shop", blind, "B")
    [reloaded] = load_comparisons(tmp_path, chat, "shop")
    assert reloaded.vote == "B" and not reloaded.hidden


def test_clearing_the_comparisons_keeps_other_chats_scenarios_and_votes(tmp_path):
    chat, other, voted = new_chat_id(), new_chat_id(), turn("Which is best?", blind=True)
    save_comparison(tmp_path, chat, "shop", voted)
    vote(tmp_path, "shop", voted, "tie")
    save_comparison(tmp_path, other, "shop", turn("Hello"))
    save_comparison(tmp_path, chat, "bikes", turn("Hello"))
    clear_comparisons(tmp_path, chat, "shop")
    assert load_comparisons(tmp_path, chat, "shop") == []
    assert len(load_comparisons(tmp_path, other, "shop")) == 1 and len(load_comparisons(tmp_path, chat, "bikes")) == 1
    assert [v.comparison_id for v in list_votes(tmp_path, "shop")] == [voted.id]  # the leaderboard keeps it


def test_a_follow_up_continues_the_turns_back_to_the_last_fresh_question():
    turns = [turn("Q1"), turn("Q2"), turn("Q3", follow_up=True), turn("Q4", follow_up=True)]
    assert [t.question for t in thread(turns)] == ["Q2", "Q3", "Q4"]
    assert [t.question for t in thread(turns[:2])] == ["Q2"]
    assert thread([]) == []


def test_a_column_continues_only_the_turns_it_was_asked_in():
    turns = [turn("Q1", ("base", "rag")), turn("Q2", ("rag", "hybrid:v2"), follow_up=True)]
    assert conversation(turns, "hybrid:v2") == [
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "hybrid:v2 says: Q2"},
    ]
    assert [m["content"] for m in conversation(turns, "rag")] == ["Q1", "rag says: Q1", "Q2", "rag says: Q2"]
    assert conversation(turns, "finetuned") == []


def test_a_blind_question_never_follows_up():
    assert follow_up_refusal([turn("Q1")], blind=False) is None
    assert "blind question starts fresh" in follow_up_refusal([turn("Q1")], blind=True)


def test_nothing_follows_up_on_a_blind_turn_before_its_vote():
    hidden = turn("Q1", blind=True)
    assert "Vote on the blind answers above first" in follow_up_refusal([hidden], blind=False)
    hidden.vote = "A"
    assert follow_up_refusal([hidden], blind=False) is None
