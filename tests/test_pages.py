"""Every page under Streamlit's AppTest, with the real model: it renders, and a chat turn yields an answer."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

pytestmark = pytest.mark.model

APP = str(ROOT / "streamlit_app.py")
MODE_PAGES = ["pages/base.py", "pages/rag.py", "pages/finetuned.py", "pages/hybrid.py"]


def _app(page=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def test_the_home_page_shows_the_lab_at_a_glance(sample):
    at = _app()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "RAG vs Fine-Tuning Lab" in at.title[0].value
    assert "SmolLM2-135M-Instruct" in text and at.metric[0].value == "9"
    assert "Questions to try" in [s.value for s in at.subheader] and "retrieval" in text
    assert at.sidebar.selectbox[0].value == "lumen_support"
    # The bundled models, the one answering, and (no login: everyone is an admin) the switch.
    assert "Models" in [s.value for s in at.subheader] and "Qwen2.5-Coder-0.5B-Instruct" in text
    assert "SmolLM2-135M-Instruct** — " in text and "answering now" in text
    switch = next(box for box in at.main.selectbox if box.label == "Model")
    assert switch.value == "smollm2-135m" and switch.options == ["SmolLM2-135M-Instruct", "Qwen2.5-Coder-0.5B-Instruct"]


@pytest.mark.parametrize("page", MODE_PAGES)
def test_mode_page_answers_a_chat_turn(sample, page):
    at = _app(page)
    assert not at.exception
    at.chat_input[0].set_value("What is the support email address?").run()
    assert not at.exception
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    answer_text = " ".join(md.value for md in messages[1].markdown)
    assert answer_text.strip()
    captions = " ".join(c.value for c in messages[1].caption)
    assert "tok/s" in captions and "prompt" in captions
    has_sources = any(e.label.startswith("Sources") for e in messages[1].expander)
    assert has_sources == (page in ("pages/rag.py", "pages/hybrid.py"))


def test_history_persists_across_turns(sample):
    at = _app("pages/base.py")
    at.chat_input[0].set_value("Hello").run()
    at.chat_input[0].set_value("And again").run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]


def test_blank_input_does_nothing(sample):
    at = _app("pages/rag.py")
    at.chat_input[0].set_value("   ").run()
    assert not at.exception and len(at.chat_message) == 0


def test_hostile_input_is_shown_as_text(sample):
    at = _app("pages/base.py")
    at.chat_input[0].set_value("<img src=x onerror=alert(1)> ![x](http://evil.example/a.png) costs $5").run()
    shown = at.chat_message[0].markdown[0].value
    assert "\\<img" in shown and "!\\[x\\](" in shown and "\\$5" in shown  # escaped: shown as text


@pytest.mark.process
def test_first_launch_trains_the_missing_adapter_in_the_background(tmp_path, monkeypatch, lab):
    """A scenario without an adapter: the page starts a background job and shows its progress."""
    from core import jobs
    from core.common.settings import get_settings

    (tmp_path / "models").symlink_to((lab.settings.data_dir / "models").resolve())
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LAB_AUTO_TRAIN", "1")
    get_settings.cache_clear()
    started = []
    # The job itself is tested for real in test_jobs; here only the page's wiring is under test.
    monkeypatch.setattr(jobs, "_spawn_worker", lambda settings, job_id: started.append(job_id))
    st.cache_resource.clear()  # the cached Lab belongs to the suite's data dir
    try:
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        at.switch_page("pages/finetuned.py")
        at.run()
        assert not at.exception
        assert started == [1]
        assert "trained in the background" in at.info[0].value
        assert len(at.chat_input) == 0  # no chat until the adapter exists
    finally:
        get_settings.cache_clear()
        st.cache_resource.clear()


def test_compare_needs_two_columns(sample):
    at = _app("pages/compare.py")
    at.multiselect[0].set_value(["base"]).run()
    assert not at.exception
    assert "two or more columns" in at.info[0].value and at.chat_input[0].disabled


def test_a_blind_vote_reaches_the_leaderboard(sample, settings):
    from core.evaluation.arena import list_votes

    at = _app("pages/leaderboard.py")
    assert not at.exception and "No votes" in at.info[0].value

    at = _app("pages/compare.py")
    at.multiselect[0].set_value(["base", "rag"]).run()
    at.toggle(key="compare_blind").set_value(True).run()
    at.chat_input[0].set_value("Can I return a bike?").run()
    assert not at.exception
    headings = [m.value for m in at.markdown if m.value.startswith(("**Answer", "**:material/"))]
    assert headings == ["**Answer A**", "**Answer B**"]
    assert not any("tok/s" in c.value for c in at.caption)  # nothing that gives a mode away before the vote
    [vote_b] = [b for b in at.button if b.label == "B is best"]
    vote_b.click().run()
    assert not at.exception
    assert "You voted for answer B" in at.success[0].value
    [vote] = list_votes(settings.data_dir, sample.name)
    assert vote.choice == "B" and vote.question == "Can I return a bike?"
    assert {e["mode"] for e in vote.entries} == {"base", "rag"} and vote.winner["mode"] in at.success[0].value.lower()
    assert not [b for b in at.button if b.label == "A is best"]  # one vote per comparison

    at = _app("pages/leaderboard.py")
    assert not at.exception
    assert {row for row in at.dataframe[0].value["Mode"]} == {"Base", "RAG"}
    assert len(at.get("download_button")) == 2


def test_the_overview_keeps_file_paths_under_technical_details(sample, settings):
    at = _app()
    assert not at.exception
    [details] = [e for e in at.expander if e.label == "Technical details"]
    inside = {c.value for c in details.caption}
    shown = [m.value for m in at.main.markdown] + [c.value for c in at.main.caption]
    with_path = [text for text in shown if str(settings.data_dir.resolve()) in text]
    assert with_path and all(text in inside for text in with_path)  # an admin finds them, one click away
    assert not [m.label for m in at.metric if "chunks" in m.label.lower() or "eval.jsonl" in str(m.value)]


def test_a_message_over_the_limit_is_handed_back_unsent(sample):
    from core.text.question_limit import MAX_QUESTION_CHARS

    at = _app("pages/base.py")
    at.chat_input[0].set_value("Why? " * (MAX_QUESTION_CHARS // 5 + 1)).run()
    assert not at.exception and len(at.chat_message) == 0  # not sent: no bubble, no answer
    assert "Shorten it by 5 characters" in at.warning[0].value and "back in the box" in at.warning[0].value


def test_blind_within_style_compares_fine_tuned_against_hybrid(sample, lab):
    at = _app("pages/compare.py")
    at.toggle(key="compare_blind").set_value(True).run()
    assert any("give the fine-tuned and hybrid answers away" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Blind within style").click().run()
    assert not at.exception and not at.warning
    active = lab.active_adapter(sample).name
    assert at.multiselect[0].value == [f"finetuned:{active}", f"hybrid:{active}"]
    assert at.toggle(key="compare_blind").value


def test_the_leaderboard_opens_with_who_was_preferred(sample, settings):
    import json

    from core.common.db import connect
    from core.evaluation.arena import Vote, list_votes, new_comparison_id, record_vote

    entries = [
        {"label": label, "column": mode, "mode": mode, "adapter": None, "adapter_version": None, "text": mode}
        for label, mode in (("A", "base"), ("B", "rag"))
    ]
    vote = Vote(new_comparison_id(), sample.name, "q?", "SmolLM2-135M-Instruct", {"seed": 0}, entries, "B")
    record_vote(settings.data_dir, vote)
    try:
        at = _app("pages/leaderboard.py")
        assert not at.exception
        votes = len(list_votes(settings.data_dir, sample.name))  # other tests may have voted too
        assert at.info[0].value.startswith(f"After {votes} vote") and "too early to tell" in at.info[0].value
        [chart] = at.get("vega_lite_chart")
        x = json.loads(chart.proto.spec)["layer"][0]["encoding"]["x"]
        assert x["axis"]["format"] == "d" and x["scale"]["domain"][1] - x["scale"]["domain"][0] >= 100
    finally:  # the other leaderboard test expects a scenario without votes
        with connect(settings.data_dir) as db:
            db.execute("DELETE FROM votes WHERE comparison_id = ?", (vote.comparison_id,))
