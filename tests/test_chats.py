"""Saved chats: a mode page's conversation survives a new session (a reload, or a server restart) under
its chat id, and stays apart from other chats, pages and scenarios."""

import json
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from core.answers.chats import clear_chat, is_chat_id, load_turns, new_chat_id, save_exchange
from core.common.vocabulary import Answer, Source
from tests.conftest import ROOT


def answer(text: str) -> Answer:
    return Answer(
        mode="rag",
        question="q",
        text=text,
        sources=[Source(name="returns.md", text="Returns within 45 days.", score=0.61, chunk=2)],
        prompt_tokens=400,
        completion_tokens=12,
        ttft_s=0.8,
        notes=["Figure check: withheld."],
        withheld_draft="Within $50.",
    )


def _save_chats(data_dir) -> tuple[str, str]:
    """A chat of two exchanges on the shop's RAG page, plus turns of another chat, page and scenario."""
    chat, other = new_chat_id(), new_chat_id()
    save_exchange(data_dir, chat, "shop", "rag", "How long for returns?", answer("45 days."))
    save_exchange(data_dir, chat, "shop", "rag", "And refunds?", answer("Within 5 days."))
    save_exchange(data_dir, other, "shop", "rag", "Hello", answer("Hi."))
    save_exchange(data_dir, chat, "shop", "base", "Hello", answer("Hi."))
    save_exchange(data_dir, chat, "bikes", "rag", "Hello", answer("Hi."))
    return chat, other


@pytest.mark.process
def test_a_chat_reads_back_whole_in_a_fresh_process(tmp_path):
    chat, _ = _save_chats(tmp_path)
    script = (
        "import json, sys; from core.answers.chats import load_turns; "
        "turns = load_turns(sys.argv[1], sys.argv[2], 'shop', 'rag'); "
        "print(json.dumps([{**t, 'answer': t['answer'].to_dict()} if 'answer' in t else t for t in turns]))"
    )
    read = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), chat], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(read.stdout) == [  # its own turns only: not another chat's, page's or scenario's
        {"role": "user", "content": "How long for returns?"},
        {"role": "assistant", "content": "45 days.", "answer": answer("45 days.").to_dict()},
        {"role": "user", "content": "And refunds?"},
        {"role": "assistant", "content": "Within 5 days.", "answer": answer("Within 5 days.").to_dict()},
    ]
    assert load_turns(tmp_path, chat, "shop", "rag")[1]["answer"] == answer("45 days.")


def test_clearing_a_chat_leaves_every_other_chat_page_or_scenario(tmp_path):
    chat, other = _save_chats(tmp_path)
    clear_chat(tmp_path, chat, "shop", "rag")
    assert load_turns(tmp_path, chat, "shop", "rag") == []
    assert len(load_turns(tmp_path, other, "shop", "rag")) == 2
    assert len(load_turns(tmp_path, chat, "shop", "base")) == 2
    assert len(load_turns(tmp_path, chat, "bikes", "rag")) == 2


def test_only_ids_the_lab_could_have_made_are_taken_from_an_address():
    assert all(is_chat_id(new_chat_id()) for _ in range(20))
    assert len({new_chat_id() for _ in range(100)}) == 100
    for hostile in ["", "short", "../../lab.sqlite", "x" * 65, "a b c d e f g h i j k", None, ["x" * 20]]:
        assert not is_chat_id(hostile)


def _mode_page(chat: str) -> AppTest:
    """A fresh session on the base page, opened at an address that holds `chat`."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.query_params["chat"] = chat
    at.run()
    return at.switch_page("pages/base.py").run()


@pytest.mark.model
def test_the_address_brings_the_chat_back_until_it_is_cleared(sample):
    chat = new_chat_id()
    first = _mode_page(chat)
    first.chat_input[0].set_value("Hello").run()
    assert not first.exception
    said = [(m.name, m.markdown[0].value) for m in first.chat_message]

    again = _mode_page(chat)  # a reload, or the browser reconnecting after a restart: a fresh session
    assert not again.exception
    assert [(m.name, m.markdown[0].value) for m in again.chat_message] == said
    assert "tok/s" in " ".join(c.value for c in again.chat_message[1].caption)  # the figures came back too
    assert not _mode_page(new_chat_id()).chat_message  # another address, another chat

    again.sidebar.button(key="clear_chat").click().run()
    assert not again.chat_message and not _mode_page(chat).chat_message
