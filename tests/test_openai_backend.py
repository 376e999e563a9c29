"""The OpenAI-compatible backend against real servers: llm-katan serving the bundled model (and its
echo backend for rate limits and slow answers) started on 127.0.0.1 by the tests, and a port where
nothing listens."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.answers.compare import Column
from core.answers.remote_model import BackendNotConfigured, check_openai_settings
from core.common.settings import Settings
from core.common.vocabulary import MODES
from core.evaluation.runs import EvalConfig, run_evaluation
from core.lab import Lab
from tests.conftest import DATA_DIR
from tests.support.servers import free_port, start_server, stop_server

KATAN = Path(sys.executable).with_name("llm-katan")
KEY = "sk-test-5ecret-k3y"  # what the server expects; a test greps for it in everything the Lab shows or saves
QUESTION = "How many days do I have to return a bike?"


def start_katan(tmp: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [str(KATAN), "--host", "127.0.0.1", "--port", str(port), "--stats-file", str(tmp / f"stats-{port}.json")]
    command += ["--disable-dashboard", "--log-level", "WARNING", *args]
    # Loading the model takes ~10-30 s on 2 cores.
    return start_server(command, f"http://127.0.0.1:{port}/health", seconds=120), port


@pytest.fixture(scope="module")
def model_server(sample, tmp_path_factory):
    """The bundled model behind a real OpenAI-compatible server that checks its API key."""
    model_dir = next((DATA_DIR / "models").iterdir())  # the converted safetensors copy
    server, port = start_katan(
        tmp_path_factory.mktemp("katan"),
        *("--model", str(model_dir), "--served-model-name", "smol", "--backend", "transformers"),
        *("--device", "cpu", "--no-quantize", "--max-tokens", "24", "--temperature", "0"),
        *("--validate-keys", "--api-keys", f"openai={KEY}"),
    )
    yield port
    stop_server(server)


def remote_lab(port: int, **overrides) -> Lab:
    settings = dict(
        backend="openai",
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        openai_api_key=KEY,
        openai_model="smol",
        openai_finetuned_model="smol-support-ft",
        openai_max_retries=1,
    )
    return Lab(Settings(**{**settings, **overrides}))


@pytest.mark.model
@pytest.mark.process
def test_every_mode_streams_from_the_server_naming_it(model_server, sample):
    lab = remote_lab(model_server, prices={"smol": (1.0, 2.0)})
    for mode in MODES:
        stream = lab.ask(sample, mode, QUESTION)
        pieces = list(stream)
        answer = stream.answer
        assert not answer.error and len(pieces) > 1  # streamed in pieces
        assert "".join(pieces) == (answer.withheld_draft or answer.text)
        assert answer.backend == "openai" and answer.server == f"127.0.0.1:{model_server}"
        assert answer.model == ("smol-support-ft" if mode in ("finetuned", "hybrid") else "smol")
        assert answer.prompt_tokens > 0 and answer.completion_tokens > 0 and answer.ttft_s is not None
        assert bool(answer.sources) == (mode in ("rag", "hybrid"))
        if mode in ("base", "rag"):  # priced: 1 and 2 USD per million prompt and completion tokens
            assert answer.cost_usd == pytest.approx((answer.prompt_tokens + 2 * answer.completion_tokens) / 1e6)
        else:
            assert answer.cost_usd is None  # no price known for the fine-tuned name
    # Retrieval sources reach the server: the grounded prompt is longer than the plain one.
    rag, base = lab.ask(sample, "rag", QUESTION).collect(), lab.ask(sample, "base", QUESTION).collect()
    assert rag.prompt_tokens > base.prompt_tokens + 100


@pytest.mark.model
@pytest.mark.process
def test_compare_runs_every_column_concurrently(model_server, sample):
    lab = remote_lab(model_server)
    stream = lab.compare(sample, [Column(mode) for mode in MODES], QUESTION)
    columns_seen = {piece.column for piece in stream}
    assert columns_seen == {0, 1, 2, 3}
    answers = stream.answers
    assert [a.mode for a in answers] == list(MODES) and all(a.text and not a.error for a in answers)
    # Same model, same greedy decoding: base asked alone says what its column said.
    assert lab.ask(sample, "base", QUESTION).collect().text == answers[0].text


@pytest.mark.model
@pytest.mark.process
def test_a_wrong_key_is_a_clear_401_that_never_shows_the_key(model_server, sample):
    wrong = "sk-wrong-key-0000"
    lab = remote_lab(model_server, openai_api_key=wrong)
    answers = lab.compare(sample, [Column("base"), Column("rag")], QUESTION).collect()
    for answer in answers:
        assert "refused the API key (401)" in answer.error and answer.text == ""
        # The server's own message echoes the key it got: none of it reaches the answer.
        shown = json.dumps(answer.to_dict())
        assert wrong not in shown and KEY not in shown
    assert "**********" in repr(lab.settings) and wrong not in repr(lab.settings)


@pytest.mark.model
@pytest.mark.process
def test_a_run_saved_from_the_server_holds_no_key(model_server, sample):
    lab = remote_lab(model_server)
    run = run_evaluation(lab, sample, EvalConfig(modes=["base", "rag", "hybrid"], limit=2))
    assert run["settings"]["backend"] == "openai" and run["settings"]["model"] == "smol"
    assert run["settings"]["precision"] is None  # the server's own, unknown here
    assert run["settings"]["adapter"] == "smol-support-ft"
    assert KEY not in json.dumps(run)
    assert all(q["answers"]["rag"]["text"] for q in run["questions"])


@pytest.mark.model
@pytest.mark.process
def test_rate_limits_are_retried_then_fail_only_their_own_column(tmp_path, sample):
    # The echo backend answers two requests, then 429 for every later one.
    server, port = start_katan(tmp_path, "--model", "echo", "--backend", "echo", "--rate-limit-after", "2")
    try:
        lab = remote_lab(port, openai_max_retries=2)
        answers = lab.compare(sample, [Column(mode) for mode in MODES], QUESTION).collect()
        failed = [a for a in answers if a.error]
        assert len(failed) == 2 and all(a.text for a in answers if not a.error)
        for answer in failed:
            assert "rate-limiting requests (429), still after 2 retries" in answer.error
    finally:
        stop_server(server)


@pytest.mark.model
@pytest.mark.process
def test_a_slow_server_times_out_with_a_message(tmp_path, sample):
    server, port = start_katan(tmp_path, "--model", "echo", "--backend", "echo", "--latency-ms", "5000")
    try:
        lab = remote_lab(port, openai_timeout_s=0.5, openai_max_retries=0)
        answer = lab.ask(sample, "base", QUESTION).collect()
        assert answer.error == f"The server at 127.0.0.1:{port} did not answer within 0.5 s."
    finally:
        stop_server(server)


@pytest.mark.model
def test_a_server_that_is_down_fails_every_column_clearly(sample):
    lab = remote_lab(free_port(), openai_max_retries=0)
    answers = lab.compare(sample, [Column("base"), Column("hybrid")], QUESTION).collect()
    for answer in answers:
        assert "cannot be reached" in answer.error and "LAB_OPENAI_BASE_URL" in answer.error


def test_missing_settings_are_named(monkeypatch):
    for variable in ("LAB_OPENAI_API_KEY", "LAB_OPENAI_MODEL"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(BackendNotConfigured, match="LAB_OPENAI_API_KEY.*LAB_OPENAI_MODEL"):
        check_openai_settings(Settings(backend="openai"))
    check_openai_settings(Settings(backend="openai", openai_api_key="EMPTY", openai_model="m"))


def test_settings_precedence_env_over_dotenv_over_secrets_over_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for variable in ("LAB_OPENAI_MODEL", "LAB_OPENAI_API_KEY", "LAB_OPENAI_TIMEOUT_S", "LAB_BACKEND"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        'openai_api_key = "from-secrets"\nopenai_model = "secrets-model"\nopenai_timeout_s = 7\n'
    )
    settings = Settings()
    assert settings.openai_api_key.get_secret_value() == "from-secrets" and settings.openai_timeout_s == 7
    assert settings.backend == "local"  # a default
    (tmp_path / ".env").write_text("LAB_OPENAI_MODEL=dotenv-model\nLAB_BACKEND=openai\n")
    settings = Settings()
    assert settings.openai_model == "dotenv-model" and settings.backend == "openai"
    monkeypatch.setenv("LAB_OPENAI_MODEL", "env-model")
    settings = Settings()
    assert settings.openai_model == "env-model" and settings.openai_api_key.get_secret_value() == "from-secrets"
    assert "from-secrets" not in repr(settings) and "from-secrets" not in str(settings.model_dump())


@pytest.fixture
def openai_backend_without_key(monkeypatch):
    """The app's settings and Lab as a fresh server process would build them, with LAB_BACKEND=openai
    and no key; the caches are cleared again afterwards so later tests get the local Lab back."""
    import streamlit as st

    from core.common.settings import get_settings

    monkeypatch.setenv("LAB_BACKEND", "openai")
    monkeypatch.setenv("LAB_OPENAI_MODEL", "smol")
    monkeypatch.delenv("LAB_OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    st.cache_resource.clear()


@pytest.mark.model
def test_every_page_names_the_missing_key(openai_backend_without_key):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT
    from ui.sidebar import EXTRA_PAGES

    pages = ["pages/home.py"] + [f"pages/{mode}.py" for mode in MODES] + [path for path, _, _ in EXTRA_PAGES]
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.run()
    for page in pages:
        at.switch_page(page)
        at.run()
        assert not at.exception, page
        assert any("LAB_OPENAI_API_KEY" in e.value for e in at.error), page
        assert not at.chat_input, page  # nothing below the message: no chat to type into


@pytest.fixture
def app_on_the_server(model_server, sample, monkeypatch):
    """The app as a server process configured for the OpenAI-compatible backend would run it."""
    import streamlit as st

    from core.common.settings import get_settings

    for name, value in {
        "LAB_BACKEND": "openai",
        "LAB_OPENAI_BASE_URL": f"http://127.0.0.1:{model_server}/v1",
        "LAB_OPENAI_API_KEY": KEY,
        "LAB_OPENAI_MODEL": "smol",
        "LAB_OPENAI_FINETUNED_MODEL": "smol-support-ft",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield model_server
    monkeypatch.undo()
    get_settings.cache_clear()
    st.cache_resource.clear()


@pytest.mark.model
@pytest.mark.process
def test_pages_answer_from_the_server_naming_it(app_on_the_server):
    from tests.support.apptest import open_page, page_texts

    at = open_page("pages/compare.py")
    at.chat_input[0].set_value("What is the support email address?").run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert sum(f"OpenAI-compatible server 127.0.0.1:{app_on_the_server}" in c for c in captions) == 4
    assert sum("model smol-support-ft" in c for c in captions) == 2  # fine-tuned and hybrid
    assert any("concurrent requests to the server" in c for c in captions)
    at = open_page("pages/hybrid.py")
    at.chat_input[0].set_value("How many days do I have to return a bike?").run()
    assert not at.exception and not at.error
    assert f"OpenAI-compatible server 127.0.0.1:{app_on_the_server} · model smol-support-ft" in page_texts(at)
    assert KEY not in page_texts(at)
