"""The Compare page's conversations: each question starts fresh unless the presenter follows up, a
follow-up shows each column the exchanges it continued, and the comparisons come back after a reload
(a blind one without giving its columns away)."""

import pytest
from streamlit.testing.v1 import AppTest

from core.answers.chats import new_chat_id
from core.answers.compare import Column
from core.text.safe_text import escape_markdown
from tests.conftest import ROOT
from tests.support.apptest import open_page

pytestmark = pytest.mark.model

FOLLOW_UP = ":material/forum: A follow-up: each column continued its own conversation, shown in it."
CONTINUES = ":material/forum: Continues 1 earlier exchange(s):"


def _ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def _compare_page(chat: str) -> AppTest:
    """A fresh session on Compare, opened at an address that holds `chat` (a reload, or another tab)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.query_params["chat"] = chat
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    return at


def _headings(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith(("**Answer", "**:material/"))]


def test_a_new_question_starts_fresh_unless_following_up(lab, sample):
    at = open_page("pages/compare.py")
    at.multiselect[0].set_value(["base", "rag"]).run()
    _ask(at, "Can I return a bike?")
    _ask(at, "How long does delivery take?")
    assert FOLLOW_UP not in _captions(at) and CONTINUES not in _captions(at)
    shown = [m.value for m in at.markdown if m.value and not m.value.startswith("**")]
    fresh = lab.compare(sample, [Column("base"), Column("rag")], "How long does delivery take?").collect()
    for answer in fresh:  # the second turn's answers are the fresh ones, not continuations
        assert any(answer.text.strip()[:40] in text.replace("\\", "") for text in shown), answer.text

    at.toggle(key="compare_follow_up").set_value(True).run()
    _ask(at, "And for a battery?")
    assert _captions(at).count(FOLLOW_UP) == 1


def test_each_column_of_a_follow_up_shows_the_exchange_it_continued(lab, sample):
    at = open_page("pages/compare.py")
    at.multiselect[0].set_value(["base", "rag"]).run()
    _ask(at, "Can I return a bike?")
    at.toggle(key="compare_follow_up").set_value(True).run()
    _ask(at, "And for a battery?")
    columns = [column for column in at.columns if CONTINUES in [c.value for c in column.caption]]
    assert len(columns) == 2  # base and RAG, each above its new answer
    first = lab.compare(sample, [Column("base"), Column("rag")], "Can I return a bike?").collect()
    for column, name, earlier in zip(columns, ["Base", "RAG"], first, strict=True):
        said = [c.value for c in column.caption]
        assert f"**You:** {escape_markdown('Can I return a bike?')}" in said
        its_own = escape_markdown(earlier.text.split()[0])  # its own earlier answer, not the other column's
        assert any(c.startswith(f"**{name}:** {its_own}") for c in said), (said, earlier.text)


def test_a_comparison_comes_back_after_a_reload(sample):
    chat = new_chat_id()
    first = _compare_page(chat)
    first.multiselect[0].set_value(["base", "rag"]).run()
    _ask(first, "Can I return a bike?")
    first.toggle(key="compare_follow_up").set_value(True).run()
    _ask(first, "And for a battery?")
    said = [m.value for m in first.markdown]

    again = _compare_page(chat)  # a fresh session at the same address
    assert [m.value for m in again.markdown] == said
    assert _captions(again).count(FOLLOW_UP) == 1 and _captions(again).count(CONTINUES) == 2
    assert not _compare_page(new_chat_id()).chat_message  # another address, another comparison

    again.sidebar.button(key="clear_comparison").click().run()
    assert not again.chat_message and not _compare_page(chat).chat_message


def test_a_blind_comparison_reloads_hidden_until_its_vote(sample, settings):
    from core.common.db import connect
    from core.evaluation.arena import list_votes

    chat = new_chat_id()
    at = _compare_page(chat)
    at.multiselect[0].set_value(["base", "rag"]).run()
    at.toggle(key="compare_blind").set_value(True).run()
    _ask(at, "Where is the frame number stamped?")

    reloaded = _compare_page(chat)
    assert _headings(reloaded) == ["**Answer A**", "**Answer B**"]
    assert not any("tok/s" in c or "one batch" in c for c in _captions(reloaded))  # nothing gives a mode away
    assert not reloaded.expander  # no sources, no "What changed"
    [vote_b] = [b for b in reloaded.button if b.label == "B is best"]
    vote_b.click().run()
    try:
        revealed = _compare_page(chat)
        assert "You voted for answer B" in revealed.success[0].value
        assert sorted(_headings(revealed)) == ["**:material/deployed_code: Base**", "**:material/menu_book: RAG**"]
        assert not [b for b in revealed.button if b.label.endswith("is best")]
    finally:  # the leaderboard test expects a scenario without votes
        with connect(settings.data_dir) as db:
            for vote in list_votes(settings.data_dir, sample.name):
                if vote.question == "Where is the frame number stamped?":
                    db.execute("DELETE FROM votes WHERE comparison_id = ?", (vote.comparison_id,))


def test_a_blind_question_cannot_follow_up(sample):
    at = open_page("pages/compare.py")
    at.multiselect[0].set_value(["base", "rag"]).run()
    _ask(at, "Can I return a bike?")
    at.toggle(key="compare_blind").set_value(True).run()
    assert at.toggle(key="compare_follow_up").disabled


def _what_changed_so_far():
    from core.common.vocabulary import Answer
    from ui.compare import render_what_changed

    answers = [Answer("base", "q", text="Returns within 30 days."), Answer("rag", "q", text="Within 45 days.")]
    render_what_changed([*answers, Answer("hybrid", "q")], ["Base", "RAG", "Hybrid"], ended={0, 1})
    render_what_changed(answers, ["Base", "RAG"], ended={0})  # one answer: nothing to compare yet


def test_what_changed_is_drawn_once_two_columns_have_ended():
    at = AppTest.from_function(_what_changed_so_far).run()
    assert not at.exception
    assert [e.label for e in at.expander] == ["What changed so far: 2 fact(s) not in every answer"]
    assert "Still answering: Hybrid. Their facts join when they end." in _captions(at)
    assert list(at.dataframe[0].value.columns) == ["Fact", "Only in some", "Base", "RAG"]
