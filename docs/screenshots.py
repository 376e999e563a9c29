"""The README's screenshots, taken in Chromium from the app as it is now: `make screenshots`.

Starts the app on the sample scenario (`streamlit run`, headless) over a throw-away copy of the data
folder, so the votes, chats and indexes the shots make never reach the real one, then visits the
overview, the hybrid page with an answer and its sources, Compare with a blind vote cast and revealed,
the knowledge base, fine-tuning, evaluation and the leaderboard, and saves one PNG each under
docs/screenshots/. The copy keeps the data folder's adapters and evaluation runs (the model folder is
linked, not copied); `make screenshots` trains the sample adapter first when there is none, as
`make demo` does. Answers come from the real model under LAB_MODEL, so a run takes a few minutes.

    .venv/bin/python docs/screenshots.py [--data-dir .lab] [--out docs/screenshots] [--only compare]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright cannot download its own browser here
VIEWPORT = {"width": 1400, "height": 1800}  # tall: Streamlit scrolls inside the page, so no full-page shots
WAIT_MS = 600_000  # answers come from the real model on a small CPU
CHAT_INPUT = '[data-testid="stChatInput"] textarea'
MESSAGE = '[data-testid="stChatMessage"]'
# Two of the sample's questions to try: one its documents answer, and one whose answer changed since
# the training data was written (the columns differ on it).
HYBRID_QUESTION = "On a single full battery, how many kilometres can the Lumen Drift cover?"
COMPARE_QUESTION = "If I don't like my bike, how many days do I have to send it back?"


def copy_data(source: Path, into: Path) -> None:
    """The data folder without its models (linked instead), logs and lock files."""
    if source.is_dir():
        shutil.copytree(source, into, ignore=shutil.ignore_patterns("models", "logs", "*.lock"), dirs_exist_ok=True)
    into.mkdir(parents=True, exist_ok=True)
    if (source / "models").exists():
        (into / "models").symlink_to((source / "models").resolve())


def start_app(data_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LAB_DATA_DIR": str(data_dir), "LAB_AUTO_TRAIN": "0"}
    for name in ("LAB_PASSWORD", "LAB_ADMIN_PASSWORD", "LAB_DEMO_MODE"):  # the presenter's view, no login
        env.pop(name, None)
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port)]
    server = subprocess.Popen(
        command + ["--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"streamlit exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("streamlit did not answer within 120 s")


def idle(page: Page) -> None:
    """Until the page's script run has finished (including one a click just asked for)."""
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


def ask(page: Page, question: str) -> None:
    idle(page)
    page.locator(CHAT_INPUT).fill(question)
    page.locator(CHAT_INPUT).press("Enter")


def shoot(page: Page, out: Path, name: str) -> None:
    idle(page)
    page.mouse.move(0, 0)  # no hover highlight in the picture
    path = out / f"{name}.png"
    page.screenshot(path=path)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", file=sys.stderr)


def overview(page: Page, out: Path) -> None:
    expect(page.get_by_role("heading", name="RAG vs Fine-Tuning Lab")).to_be_visible()
    shoot(page, out, "overview")


def hybrid(page: Page, out: Path) -> None:
    mode = "hybrid"
    if page.get_by_text(re.compile("needs the model's fine-tuned version")).count():
        print("  no adapter for this model: the RAG page instead (run `make demo` once first)", file=sys.stderr)
        mode = "rag"
        page.goto(f"/{mode}")
        idle(page)
    ask(page, HYBRID_QUESTION)
    expect(page.get_by_text(re.compile(r"^Answered in"))).to_be_visible()
    page.get_by_text(re.compile(r"^Sources \(\d+\)$")).first.click()
    page.locator(MESSAGE).first.scroll_into_view_if_needed()  # the question at the top, its answer below
    shoot(page, out, mode)


def compare(page: Page, out: Path) -> None:
    page.get_by_text("Blind vote", exact=True).click()
    ask(page, COMPARE_QUESTION)
    page.get_by_role("button", name="A is best").click()  # reveals which mode wrote which answer
    expect(page.get_by_text(re.compile(r"^You voted for answer A"))).to_be_visible()
    page.get_by_text(re.compile(r"^What changed")).first.click()
    page.locator(MESSAGE).first.scroll_into_view_if_needed()
    shoot(page, out, "compare")


def knowledge_base(page: Page, out: Path) -> None:
    expect(page.get_by_role("tab", name="Documents")).to_be_visible()
    shoot(page, out, "knowledge_base")


def finetuning(page: Page, out: Path) -> None:
    expect(page.get_by_text(re.compile(r"examples in the file"))).to_be_visible()
    shoot(page, out, "finetuning")


def evaluation(page: Page, out: Path) -> None:
    expect(page.get_by_role("heading", name=re.compile("Evaluation"))).to_be_visible()
    shoot(page, out, "evaluation")


def leaderboard(page: Page, out: Path) -> None:
    expect(page.get_by_role("heading", name=re.compile("Leaderboard"))).to_be_visible()
    shoot(page, out, "leaderboard")


# In this order: Compare's vote is what the leaderboard shows.
SHOTS = {
    "overview": ("/", overview),
    "hybrid": ("/hybrid", hybrid),
    "compare": ("/compare", compare),
    "knowledge_base": ("/knowledge_base", knowledge_base),
    "finetuning": ("/finetuning", finetuning),
    "evaluation": ("/evaluation", evaluation),
    "leaderboard": ("/leaderboard", leaderboard),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LAB_DATA_DIR", ROOT / ".lab")))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="*", choices=list(SHOTS), help="some of the pictures (default: all)")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab-screenshots-") as temporary:
        data_dir = Path(temporary) / "data"
        copy_data(args.data_dir.resolve(), data_dir)
        server, url = start_app(data_dir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                expect.set_options(timeout=WAIT_MS)
                # The first session loads the model and indexes the sample: not part of any picture.
                warm = browser.new_page(viewport=VIEWPORT, base_url=url)
                warm.goto("/")
                expect(warm.get_by_role("heading", name="RAG vs Fine-Tuning Lab")).to_be_visible()
                warm.close()
                for name, (path, take) in SHOTS.items():
                    if args.only and name not in args.only:
                        continue
                    page = browser.new_page(viewport=VIEWPORT, base_url=url)
                    page.set_default_timeout(WAIT_MS)
                    page.goto(path)
                    idle(page)
                    take(page, args.out)
                    page.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
