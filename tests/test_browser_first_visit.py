"""What a stakeholder meets first, in real Chromium against a real `streamlit run` server: the first visit
to a fresh Lab (the page draws at once, with its loading state where it will be), questions to try
asked with one click, a public demo's visitor (chats, and sees no control that changes shared data),
and the chat length limit.

The server runs as a public demo (LAB_DEMO_MODE) on a data folder of its own, empty but for the
converted model, so its first visit is a real one: the Lab loads and indexes the sample's documents
then. Without an adapter there, Compare answers with base and RAG."""

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.common.scenario import load_eval_questions, load_scenario, questions_to_try
from core.common.settings import Settings
from core.jobs import request_cancel, submit_training
from core.text.question_limit import MAX_QUESTION_CHARS
from tests.conftest import ROOT, SAMPLE
from tests.support.browser import (
    CHAT_INPUT,
    MESSAGE,
    Chromium,
    ScreenshotsOnFailure,
    answer_text,
    ask,
    finished,
    idle,
    send,
    start_app,
)
from tests.support.servers import stop_server
from tests.support.waiting import ended, wait_for_job

pytestmark = [pytest.mark.model, pytest.mark.process, pytest.mark.browser]

ADMIN = "presenter-secret-7"


@pytest.fixture(scope="module")
def fresh_dir():
    """A data folder with only the converted model in it (linked, as the suite's own)."""
    folder = Path(tempfile.mkdtemp(prefix="lab-first-visit-"))
    (folder / "models").symlink_to((ROOT / ".lab" / "models").resolve())
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def web(fresh_dir, request):
    env = {**os.environ, "LAB_DATA_DIR": str(fresh_dir), "LAB_DEMO_MODE": "1", "LAB_ADMIN_PASSWORD": ADMIN}
    env.pop("LAB_PASSWORD", None)
    server, url = start_app(env)
    chromium = Chromium(url)
    screenshots = ScreenshotsOnFailure(chromium, request.path)
    request.config.pluginmanager.register(screenshots)
    yield chromium
    request.config.pluginmanager.unregister(screenshots)
    chromium.close()
    stop_server(server)


@pytest.fixture(autouse=True)
def own_pages(web):
    before = set(web.browser.contexts)
    yield
    for context in set(web.browser.contexts) - before:
        context.close()


def test_the_first_visit_shows_its_loading_state_where_the_page_will_be(web):
    page = web.open("/")  # the server's first session: nothing is loaded or indexed yet
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(r"^(Loading the model|Indexing the knowledge base)"))).to_be_visible()
    expect(page.get_by_role("heading", name="RAG vs Fine-Tuning Lab")).to_be_visible()
    expect(main.get_by_text(re.compile(r"^Indexing the knowledge base"))).to_have_count(0)
    expect(main.get_by_text("Documents", exact=True)).to_be_visible()


def test_a_suggested_question_is_asked_with_one_click(web):
    question, _ = questions_to_try(load_eval_questions(load_scenario(SAMPLE)))[0]
    page = web.open("/rag")
    idle(page)
    answer = page.locator(MESSAGE).nth(1)
    page.get_by_test_id("stButtonGroup").get_by_text(question, exact=True).click()
    expect(page.locator(MESSAGE).first).to_contain_text(question)
    assert answer_text(finished(answer))


def test_a_question_to_try_on_the_overview_opens_compare_with_it_asked(web):
    question, _ = questions_to_try(load_eval_questions(load_scenario(SAMPLE)))[0]
    page = web.open("/")
    page.get_by_role("button", name=re.compile(re.escape(question))).first.click()
    expect(page).to_have_url(re.compile(r"/compare"))
    expect(page.locator(MESSAGE).first).to_contain_text(question)
    expect(page.get_by_text(re.compile(r"All 2 answers came from one batch"))).to_be_visible()


def test_a_visitor_chats_without_a_login(web):
    page = web.open("/base")
    expect(page.get_by_test_id("stSidebar").get_by_text(re.compile("Demo: ask, compare and vote"))).to_be_visible()
    message = ask(page, "What is a bike?")
    assert answer_text(message)
    expect(page.get_by_role("textbox", name="Password")).to_have_count(0)


def test_a_visitor_sees_no_control_that_changes_shared_data(web, fresh_dir):
    page = web.open("/knowledge_base")
    expect(page.get_by_text("Only admins can add, replace, delete or re-index documents.")).to_be_visible()
    expect(page.locator('[data-testid="stFileUploader"]')).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile(r"^(Delete|Re-index)"))).to_have_count(0)

    page = web.open("/finetuned")  # no adapter in this data folder: the page waits for one
    expect(page.get_by_text("Only admins can start training.")).to_be_visible()
    expect(page.get_by_role("button", name="Train the adapter now")).to_have_count(0)

    settings = Settings(_env_file=None, data_dir=fresh_dir, model="smollm2-135m")
    with open(fresh_dir / "jobs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the job waits for its turn behind this: a queued job, as a visitor meets one
        job_id = submit_training(settings, SAMPLE)
        try:
            page = web.open("/finetuning")
            expect(page.get_by_text(f"Job {job_id} · queued")).to_be_visible()
            expect(page.get_by_role("button", name=re.compile(r"^(Cancel|Start training)"))).to_have_count(0)
        finally:
            request_cancel(settings, job_id)
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert wait_for_job(settings, job_id, ended, timeout_s=120).status == "cancelled"


def test_a_message_over_the_limit_is_handed_back_with_how_much_to_cut(web):
    page = web.open("/base")
    idle(page)
    text = ("Please read my whole e-mail. " * 100)[: MAX_QUESTION_CHARS + 340]
    send(page, text)
    expect(page.get_by_text(re.compile(r"Shorten it by 340 characters"))).to_be_visible()
    expect(page.locator(CHAT_INPUT)).to_have_value(text)  # nothing typed is lost
    expect(page.locator(MESSAGE)).to_have_count(0)  # and nothing was sent
