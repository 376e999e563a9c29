"""The app in real Chromium against a real `streamlit run` server, with the real model, Chroma and SQLite:
chat in every mode, compare (follow-ups kept across a reload, a Stop), a blind vote, an upload made
retrievable, a training job's live progress, hostile text shown as text, and four sessions at once
without cross-talk.

One server and one browser serve the whole module; every page opens in a fresh browser context, so
a fresh Streamlit session. Uploads go to a scenario of their own, created on the page, because the
server is another process writing the store the other test modules read (as in test_cli)."""

import re
import shutil
import time

import pytest
from playwright.sync_api import expect

from core.common.db import connect
from core.common.vocabulary import MODES
from core.evaluation.arena import list_votes
from core.jobs import list_jobs, request_cancel
from tests.support.browser import (
    MARKDOWN,
    MESSAGE,
    Chromium,
    ScreenshotsOnFailure,
    answer_text,
    ask,
    finished,
    idle,
    send,
    start_app,
    submit,
)
from tests.support.servers import stop_server
from tests.support.waiting import ended, wait_for_job

pytestmark = [pytest.mark.model, pytest.mark.process, pytest.mark.browser]

# One short question per mode page; RAG and hybrid ones have sources above the minimum score, so the
# model answers (a question without sources is declined without it, and draws no metrics caption).
QUESTIONS = {
    "base": "What is a bike?",
    "rag": "Can I return a bike?",
    "finetuned": "How long is the warranty?",
    "hybrid": "What is the support email address?",
}
UPLOAD_SCENARIO = ("Browser uploads", "browser_uploads")  # (title typed on the page, the name it gets)
HOSTILE = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "![x](http://evil.example/x.png)",
]


@pytest.fixture(scope="module")
def app(sample, lab):
    """The app served by `streamlit run` (the sample scenario indexed, its adapter active), warmed up."""
    server, url = start_app()
    yield url
    stop_server(server)
    shutil.rmtree(lab.user_scenarios_dir / UPLOAD_SCENARIO[1], ignore_errors=True)


@pytest.fixture(scope="module")
def web(app, request):
    chromium = Chromium(app)
    screenshots = ScreenshotsOnFailure(chromium, request.path)
    request.config.pluginmanager.register(screenshots)
    # The first session loads the model; opening the router first also registers every page's URL.
    page = chromium.open("/")
    expect(page.get_by_role("heading", name="RAG vs Fine-Tuning Lab")).to_be_visible()
    page.context.close()
    yield chromium
    request.config.pluginmanager.unregister(screenshots)
    chromium.close()


@pytest.fixture(autouse=True)
def own_pages(web):
    """Closes the pages a test opened (module fixtures keep theirs)."""
    before = set(web.browser.contexts)
    yield
    for context in set(web.browser.contexts) - before:
        context.close()


@pytest.fixture(scope="module")
def alone(web):
    """Each mode page asked its question in a fresh session, one page at a time: {mode: page}."""
    pages = {}
    for mode in MODES:
        pages[mode] = web.open(f"/{mode}")
        ask(pages[mode], QUESTIONS[mode])
    yield pages
    for page in pages.values():
        page.context.close()


def test_every_mode_page_answers_a_chat_question(alone):
    for mode, page in alone.items():
        user, assistant = page.locator(MESSAGE).all()
        expect(user).to_contain_text(QUESTIONS[mode])
        assert answer_text(assistant), mode
        # The adapter modes name the adapter that answered; base and RAG run the plain model.
        origin = assistant.get_by_text(re.compile(r"^Local · "))
        if mode in ("finetuned", "hybrid"):
            expect(origin).to_contain_text("+ adapter ")
        else:
            expect(origin).not_to_contain_text("adapter")
        # RAG and hybrid list their sources under the answer; base and fine-tuned have none.
        expect(assistant.get_by_text(re.compile(r"^Sources \(\d+\)$"))).to_have_count(int(mode in ("rag", "hybrid")))


def test_compare_page_fills_four_columns(web):
    page = web.open("/compare")
    idle(page)
    expect(page.get_by_text(re.compile(r"Same for every column: greedy"))).to_be_visible()
    send(page, "How do I charge the battery?")
    expect(page.get_by_text(re.compile(r"All 4 answers came from one batch"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^What changed"))).to_be_visible()
    columns = page.locator('[data-testid="stColumn"]').filter(has_text="Answered in")
    expect(columns).to_have_count(4)
    for column, label in zip(columns.all(), ["Base", "RAG", "Fine-tuned", "Hybrid"], strict=True):
        expect(column.locator("strong").first).to_contain_text(label)  # the heading
        assert column.locator(MARKDOWN).nth(1).inner_text().strip()  # the answer, under it


def test_compare_follow_ups_show_each_columns_conversation_after_a_reload(web):
    page = web.open("/compare")
    for column in ("RAG", "Hybrid"):  # two short prompts are enough to follow up on
        page.get_by_role("button", name=re.compile(f"^Remove {column}")).click()
    idle(page)
    send(page, "Can I return a bike?")
    expect(page.get_by_text("All 2 answers came from one batch")).to_be_visible()
    idle(page)
    page.get_by_text("Follow up on the answers above", exact=True).click()
    expect(page.get_by_role("switch", name="Follow up on the answers above")).to_be_checked()
    idle(page)
    send(page, "And for a battery?")
    expect(page.get_by_text("All 2 answers came from one batch")).to_have_count(2)
    idle(page)
    continued = page.locator('[data-testid="stColumn"]').filter(has_text="Continues 1 earlier exchange(s):")
    expect(continued).to_have_count(2)  # each column of the follow-up, above its new answer
    for column in continued.all():
        expect(column.get_by_text("You: Can I return a bike?")).to_be_visible()
    shown = [column.inner_text() for column in continued.all()]
    assert shown[0] != shown[1]  # each column shows its own earlier answer

    assert "chat=" in page.url  # the address holds the saved comparison
    page.reload()
    expect(page.get_by_text("A follow-up: each column continued its own conversation")).to_be_visible()
    idle(page)
    again = page.locator('[data-testid="stColumn"]').filter(has_text="Continues 1 earlier exchange(s):")
    expect(again).to_have_count(2)
    assert [column.inner_text() for column in again.all()] == shown
    expect(page.locator(MESSAGE).filter(has_text="Can I return a bike?")).to_have_count(1)


def test_the_presenter_can_stop_a_comparison_mid_answer(web):
    page = web.open("/compare")
    idle(page)
    page.get_by_role("button", name="Decoding").click()
    limit = page.get_by_role("spinbutton", name="Max new tokens")
    limit.fill("400")  # a story of 400 tokens takes far longer than a click
    limit.press("Enter")
    page.keyboard.press("Escape")
    idle(page)
    send(page, "Write a very long story about a bike trip, with ten chapters.")
    page.get_by_role("button", name="Stop all columns").click()
    expect(page.get_by_text("All 4 answers came from one batch")).to_be_visible()
    expect(page.get_by_text("Stopped by the presenter.").first).to_be_visible()
    expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0)


def test_blind_vote_is_recorded(web, sample, settings):
    page = web.open("/compare")
    for column in ("RAG", "Hybrid"):  # two short prompts are enough to vote on
        page.get_by_role("button", name=re.compile(f"^Remove {column}")).click()
    page.get_by_text("Blind vote", exact=True).click()
    expect(page.get_by_role("switch", name="Blind vote")).to_be_checked()
    question = f"Hello, who answers here? ({time.time_ns()})"
    idle(page)
    send(page, question)
    vote = page.get_by_role("button", name="B is best")
    expect(vote).to_be_visible()
    expect(page.get_by_text("Answer A", exact=True)).to_be_visible()
    expect(page.get_by_text("tok/s")).to_have_count(0)  # nothing gives a mode away before the vote
    vote.click()
    expect(page.get_by_text(re.compile(r"You voted for answer B: (Base|Fine-tuned)"))).to_be_visible()
    [recorded] = [v for v in list_votes(settings.data_dir, sample.name) if v.question == question]
    try:
        assert recorded.choice == "B" and {e["mode"] for e in recorded.entries} == {"base", "finetuned"}
        assert all(e["text"] for e in recorded.entries)
    finally:  # the AppTest leaderboard test expects a scenario without votes
        with connect(settings.data_dir) as db:
            db.execute("DELETE FROM votes WHERE comparison_id = ?", (recorded.comparison_id,))


@pytest.fixture(scope="module")
def kb_page(web):
    """The knowledge base page, switched to an empty scenario of its own created there."""
    page = web.open("/knowledge_base")
    title, name = UPLOAD_SCENARIO
    page.get_by_role("button", name="New scenario").click()
    page.get_by_role("textbox", name="Title", exact=True).fill(title)
    page.get_by_role("textbox", name="Description", exact=True).fill("Documents uploaded by the browser tests.")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text(f"Scenario {title} · RAG and hybrid retrieve")).to_be_visible()
    page.keyboard.press("Escape")  # closes the popover
    yield page
    page.context.close()


def upload(page, name: str, text: str) -> None:
    page.get_by_role("tab", name="Documents").click()
    idle(page)  # until then the previous run's uploader may still be on the page too
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": text.encode()}]
    )
    page.get_by_role("button", name="Add to knowledge base").click()
    expect(page.get_by_text(f"{name}: 1 chunks added")).to_be_visible()


def retrieve(page, query: str) -> None:
    page.get_by_role("tab", name="Retrieval playground").click()
    box = page.get_by_role("textbox", name="Query", exact=True)
    box.fill(query)
    box.press("Enter")


def test_uploaded_document_becomes_retrievable(kb_page):
    fact = "The Zorbly day pass for the Quillon cycle track costs 41 quatloos."
    upload(kb_page, "zorbly.txt", fact)
    retrieve(kb_page, "How much is a Zorbly day pass?")
    expect(kb_page.get_by_text("[1] zorbly.txt", exact=True)).to_be_visible()
    expect(kb_page.locator('[data-testid="stText"]').first).to_have_text(fact)


def test_hostile_chat_input_is_shown_as_inert_text(web):
    page = web.open("/base")
    hostile = "Hi " + " ".join(HOSTILE)
    ask(page, hostile)
    user = page.locator(MESSAGE).first
    for part in HOSTILE:
        expect(user).to_contain_text(part)
    assert_nothing_ran(web, page)


def test_hostile_document_is_shown_as_text_on_the_knowledge_base_page(web, kb_page):
    text = "Roadside help for Quillon riders: " + " ".join(HOSTILE)
    upload(kb_page, "roadside.txt", text)
    retrieve(kb_page, "roadside help for Quillon riders")
    expect(kb_page.get_by_text("[1] roadside.txt", exact=True)).to_be_visible()
    expect(kb_page.locator('[data-testid="stText"]').first).to_have_text(text)
    assert_nothing_ran(web, kb_page)


def assert_nothing_ran(web, page) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x'], img[src*='evil.example']").count() == 0
    assert page.locator(f"{MESSAGE} script, [data-testid='stText'] script").count() == 0
    assert not web.dialogs and not web.outside


def test_a_training_job_shows_live_progress_until_cancelled(web, lab, sample, settings):
    active = lab.active_adapter(sample).name
    newest = max((j.id for j in list_jobs(settings, kind="train")), default=0)
    page = web.open("/finetuning")
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    # Short steps (one example each) so progress shows soon; nothing slow before or after training.
    page.get_by_text("Context aware", exact=True).click()
    expect(page.get_by_text("Context-aware:")).to_have_count(0)
    page.get_by_text("Check forgetting", exact=True).click()
    for label, value in [("Epochs", "1"), ("Batch size", "1"), ("Val fraction", "0")]:
        box = page.get_by_role("spinbutton", name=label, exact=True)
        box.fill(value)
        box.press("Enter")
    expect(page.get_by_text(re.compile(r"× 1 epoch\(s\)"))).to_be_visible()
    page.get_by_role("button", name="Start training").click()
    job_id = None
    try:
        # 165 examples, one per step, one epoch: the settings reached the job.
        progress = page.get_by_text(re.compile(r"Training · step \d+ of 165 "))
        expect(progress).to_be_visible()
        [job] = [j for j in list_jobs(settings, kind="train") if j.id > newest]
        job_id = job.id
        assert not job.config["context_aware"] and not job.config["check_forgetting"]
        expect(page.get_by_text(f"Job {job_id} · running")).to_be_visible()
        page.locator(f".st-key-cancel-{job_id} button").click()
        expect(progress).to_have_count(0)  # the live view drops the job once it ends
        job = wait_for_job(settings, job_id, ended, timeout_s=180)
        assert job.status == "cancelled" and job.adapter is None
        assert lab.active_adapter(sample).name == active
        expect(page.get_by_text(f"active adapter: {active}.")).to_be_visible()  # the page says so too
    finally:  # whatever happened, leave no job running and the sample's adapter active
        job_id = job_id or max((j.id for j in list_jobs(settings, kind="train")), default=0)
        if job_id > newest:
            request_cancel(settings, job_id)
            job = wait_for_job(settings, job_id, ended, timeout_s=180)
            if job.adapter:
                lab.activate_adapter(sample, active)
                lab.delete_adapter(sample, job.adapter)


def test_four_sessions_at_once_each_get_their_own_answer(web, alone):
    """Every mode page asks its question in its own session, all at the same time: each answer is the
    one that page gave alone (greedy decoding), so no session sees another's answer or adapter."""
    pages = {mode: web.open(f"/{mode}") for mode in MODES}
    for page in pages.values():  # every page ready first, so the four questions go out together
        idle(page)
    pending = {mode: submit(page, QUESTIONS[mode]) for mode, page in pages.items()}
    together = {mode: answer_text(finished(message)) for mode, message in pending.items()}
    assert together == {mode: answer_text(page.locator(MESSAGE).last) for mode, page in alone.items()}
    for mode, page in pages.items():
        expect(page.locator(MESSAGE).first).to_contain_text(QUESTIONS[mode])
