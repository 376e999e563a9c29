"""Blind arena votes in SQLite, the leaderboard's math, and safe CSV export."""

import csv
import io
import subprocess
import sys

import pytest

from core.common.export import csv_text, safe_cell
from core.evaluation.arena import (
    ALL_BAD,
    TIE,
    AlreadyVoted,
    Vote,
    blind_order,
    list_votes,
    new_comparison_id,
    record_vote,
    vote_rows,
)
from core.evaluation.leaderboard import battles, leaderboard, plain_summary, rating_domain
from tests.conftest import ROOT

FOUR = ("base", "rag", "finetuned", "hybrid")


def vote(choice: str, modes=FOUR, scenario="demo", adapter=None, question="q?") -> Vote:
    entries = [
        {
            "label": label,
            "column": mode,
            "mode": mode,
            "adapter": adapter if mode in ("finetuned", "hybrid") else None,
            "adapter_version": None,
            "text": f"{mode} says hi",
        }
        for label, mode in zip("ABCDEF", modes, strict=False)
    ]
    return Vote(new_comparison_id(), scenario, question, "SmolLM2", {"seed": 0}, entries, choice)


def test_one_vote_per_comparison(tmp_path):
    first = vote("B")
    record_vote(tmp_path, first)
    with pytest.raises(AlreadyVoted):
        record_vote(tmp_path, Vote(**{**first.to_dict(), "choice": "A"}))
    assert [v.choice for v in list_votes(tmp_path)] == ["B"]


def test_bad_votes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown choice"):
        record_vote(tmp_path, vote("Z"))
    with pytest.raises(ValueError, match="two answers"):
        record_vote(tmp_path, vote("A", modes=("base",)))
    assert list_votes(tmp_path) == []


@pytest.mark.process
def test_a_vote_survives_a_restart(tmp_path):
    """Written by one process, read by the next one, with everything needed to audit it."""
    script = (
        "import sys; from tests.test_arena import vote; from core.evaluation.arena import record_vote;"
        "record_vote(sys.argv[1], vote('C', scenario='lumen_support', adapter='v1', question='Return window?'))"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, check=True, timeout=120)
    [saved] = list_votes(tmp_path, "lumen_support")
    assert saved.question == "Return window?" and saved.model == "SmolLM2" and saved.decoding == {"seed": 0}
    assert saved.winner["mode"] == "finetuned" and saved.winner["adapter"] == "v1"
    assert list_votes(tmp_path, "other_scenario") == []


def test_blind_order_is_a_stable_shuffle():
    orders = {tuple(blind_order(new_comparison_id(), 4)) for _ in range(200)}
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len(orders) > 12  # most of the 24 orders turn up
    assert blind_order("same-id", 4) == blind_order("same-id", 4)


def test_a_mode_that_wins_every_vote_ranks_first():
    standings = leaderboard([vote("B") for _ in range(6)] + [vote("B", modes=("base", "hybrid"))])
    assert standings[0].contestant == "RAG" and standings[0].chosen == 6 and standings[0].win_rate == 1.0
    assert standings[0].rating_low > 1000 and standings[0].rating_low <= standings[0].rating <= standings[0].rating_high
    assert standings[-1].contestant == "Base"  # lost every battle it was in
    assert all(s.rating < 2000 for s in standings)  # the prior keeps an unbeaten mode finite


def test_votes_that_favour_no_mode_give_equal_ratings():
    swapped = leaderboard([vote("A", modes=("base", "rag")), vote("B", modes=("base", "rag"))])
    assert swapped[0].rating == pytest.approx(swapped[1].rating) == pytest.approx(1000.0)
    tied = leaderboard([vote(TIE), vote(ALL_BAD)])
    assert {round(s.rating, 6) for s in tied} == {1000.0} and {s.win_rate for s in tied} == {0.5}


def test_battles_from_a_vote():
    assert sorted(battles([vote("A", modes=("base", "rag", "hybrid"))])) == [
        ("Base", "Hybrid", 1.0),
        ("Base", "RAG", 1.0),
    ]
    assert len(battles([vote(TIE)])) == 6  # every pair of four draws
    two_adapters = vote("A", modes=("finetuned", "finetuned"))
    assert battles([two_adapters]) == []  # the same mode against itself says nothing about modes


def test_adapters_can_be_told_apart():
    one, other = (
        vote("A", modes=("finetuned", "base"), adapter="v1"),
        vote("B", modes=("base", "finetuned"), adapter="v2"),
    )
    names = {s.contestant for s in leaderboard([one, other], split_adapters=True)}
    assert names == {"Base", "Fine-tuned · v1", "Fine-tuned · v2"}


def test_csv_export_neutralises_formulas():
    hostile = vote("A", question='=HYPERLINK("http://evil.example")')
    hostile.entries[0]["text"] = "+1 then -2 @SUM(A1)"
    text = csv_text(vote_rows([hostile]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    assert rows[0]["question"].startswith("'=HYPERLINK") and rows[0]["answer"] == "'+1 then -2 @SUM(A1)"
    assert rows[1]["answer"] == "rag says hi"  # ordinary text is untouched
    assert [safe_cell(v) for v in ("-3", "@x", "\tx", "ok", None, 5)] == ["'-3", "'@x", "'\tx", "ok", "", "5"]


def test_after_a_few_votes_the_summary_says_it_is_too_early():
    votes = [vote("B", modes=("base", "finetuned"))]
    summary = plain_summary(leaderboard(votes), len(votes))
    assert summary.startswith(
        "After 1 vote, people have preferred Fine-tuned so far (chosen best in 1 of 1 comparison)"
    )
    assert "too early to tell" in summary


def test_a_leader_whose_range_clears_the_rest_is_called_clear():
    votes = [vote("B") for _ in range(30)]
    standings = leaderboard(votes)
    assert standings[0].rating_low > standings[1].rating_high
    assert plain_summary(standings, len(votes)).startswith("People clearly preferred RAG")


def test_an_overlapping_lead_asks_for_more_votes():
    votes = [vote("A", modes=("base", "rag")) for _ in range(6)] + [vote("B", modes=("base", "rag")) for _ in range(5)]
    summary = plain_summary(leaderboard(votes), len(votes))
    assert summary.startswith("Base leads") and "more votes are needed" in summary


def test_the_rating_axis_spans_whole_fifties_even_after_one_vote():
    low, high = rating_domain(leaderboard([vote("A", modes=("base", "rag"))]))
    assert high - low >= 100 and low % 50 == 0 and high % 50 == 0
