"""Playwright helpers for the browser tests: the app as a real Streamlit server, Debian's headless
chromium with one fresh context (so one fresh Streamlit session) per page, chat helpers that wait
on Streamlit's DOM, alarms for dialogs and outside requests, and screenshots of failed tests."""

import contextlib
import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.conftest import ROOT
from tests.support.servers import free_port, start_server

CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright cannot download its own browser here
ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 180_000  # generous: answers come from a real model on a small, shared CPU
CHAT_INPUT = '[data-testid="stChatInput"] textarea'
MESSAGE = '[data-testid="stChatMessage"]'
MARKDOWN = '[data-testid="stMarkdownContainer"]'
FINISHED = "Answered in"  # the caption render_answer_details writes under a finished answer


def start_app(env: dict[str, str] | None = None):
    """The app as `streamlit run` on a free port, with os.environ (the test data dir) or `env`: (process, url)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py")]
    command += ["--server.port", str(port), "--server.headless", "true"]
    url = f"http://127.0.0.1:{port}"
    return start_server(command, f"{url}/_stcore/health", seconds=120, env=env), url


class Chromium:
    """One headless chromium for a test module; every page opens in a context of its own."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.dialogs: list[str] = []  # every alert, confirm or prompt any page tried to show
        self.outside: list[str] = []  # every request a page made to anything but the app
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-background-networking"]
        )
        expect.set_options(timeout=TIMEOUT_MS)

    def open(self, path: str) -> Page:
        context = self.browser.new_context(base_url=self.base_url, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("dialog", self._dialog)
        context.on("request", self._request)
        page = context.new_page()
        page.goto(path)
        return page

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request) -> None:
        if not request.url.startswith((self.base_url, "data:", "blob:")):
            self.outside.append(request.url)

    def screenshots(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", name)
        pages = [page for context in self.browser.contexts for page in context.pages]
        for number, page in enumerate(pages):
            with contextlib.suppress(PlaywrightError):  # a crashed page: the report must still be written
                page.screenshot(path=ARTIFACTS / f"{stem}-{number}.png", full_page=True)

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


class ScreenshotsOnFailure:
    """A pytest plugin, registered while the browser is open: a failed test leaves a screenshot of
    every open page in tests/artifacts/."""

    def __init__(self, chromium: Chromium, module: Path):
        self.chromium, self.module = chromium, module

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.failed and report.when != "teardown" and Path(item.path) == self.module:
            self.chromium.screenshots(item.name)
        return report


def idle(page: Page) -> None:
    """Waits until the page's script run has finished, including one that a widget just asked for."""
    page.wait_for_timeout(300)  # the rerun request's round trip: until then the app still reads "notRunning"
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


# --- chat ------------------------------------------------------------------------------------------
def send(page: Page, text: str) -> None:
    """Types into the chat input and presses Enter. Call `idle` first: mid-run, the page may still hold
    the previous run's elements."""
    page.locator(CHAT_INPUT).fill(text)
    page.locator(CHAT_INPUT).press("Enter")


def submit(page: Page, question: str) -> Locator:
    """Sends a question from an idle chat page; returns the assistant message that will answer it."""
    answer = page.locator(MESSAGE).nth(page.locator(MESSAGE).count() + 1)
    send(page, question)
    return answer


def finished(message: Locator) -> Locator:
    """`message` once its answer is complete: the metrics caption is drawn after the last token."""
    expect(message.get_by_text(FINISHED)).to_be_visible()
    return message


def ask(page: Page, question: str) -> Locator:
    idle(page)
    return finished(submit(page, question))


def answer_text(message: Locator) -> str:
    """The answer itself: the message's first Markdown block (notes, captions and sources follow it)."""
    return message.locator(MARKDOWN).first.inner_text().strip()
