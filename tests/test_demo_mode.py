"""A public demo (LAB_DEMO_MODE): visitors come in without a login and only ask, compare and vote; the
presenter signs in from the sidebar with the admin password and gets every control back."""

import pytest
from streamlit.testing.v1 import AppTest

from core.common.access import ServerConfig, access_mode, check_password, config_problems
from core.common.settings import Settings
from tests.conftest import ROOT
from tests.support.apptest import page_texts

APP = str(ROOT / "streamlit_app.py")
ADMIN, VISITOR = "presenter-secret-9", "visitor-pass-1"
LOCAL = ServerConfig(address="localhost", max_upload_mb=20)


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_demo_mode_wins_over_passwords_but_not_over_oidc():
    assert access_mode(_settings(demo_mode=True, password="visitor-pass-1", admin_password=ADMIN), None) == "demo"
    assert access_mode(_settings(demo_mode=True), {"client_id": "x"}) == "oidc"


def test_demo_mode_says_what_its_passwords_do():
    messages = [p.message for p in config_problems(_settings(demo_mode=True, password="visitor-pass-1"), LOCAL)]
    assert any("LAB_PASSWORD is ignored" in m for m in messages)
    assert any("nobody can train, upload or delete" in m for m in messages)
    assert config_problems(_settings(demo_mode=True, admin_password=ADMIN), LOCAL) == []
    assert all(p.level == "warning" for p in config_problems(_settings(demo_mode=True), ServerConfig()))
    assert check_password(_settings(demo_mode=True, admin_password=ADMIN), ADMIN) == "admin"


@pytest.fixture
def demo(monkeypatch):
    from core.common.settings import get_settings

    monkeypatch.setenv("LAB_DEMO_MODE", "1")
    monkeypatch.setenv("LAB_ADMIN_PASSWORD", ADMIN)
    monkeypatch.setenv("LAB_PASSWORD", VISITOR)  # ignored in a demo: it must not open the presenter's controls
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception
    return at


@pytest.mark.model
def test_a_visitor_chats_without_a_login(demo, sample):
    at = _open("pages/base.py")
    assert not [box for box in at.main.text_input if box.label == "Password"]  # no login wall
    assert at.chat_input and "Demo: ask, compare and vote" in " ".join(c.value for c in at.sidebar.caption)


@pytest.mark.model
def test_a_visitor_gets_no_control_that_changes_shared_data(demo, sample):
    at = _open("pages/knowledge_base.py")
    assert not at.file_uploader
    assert "Only admins can add, replace, delete or re-index documents." in page_texts(at)
    at.switch_page("pages/evaluation.py").run()
    assert not at.exception and "Only admins can start evaluation runs in a demo." in page_texts(at)
    at.switch_page("pages/home.py").run()
    assert not any(e.label.endswith("for admins") for e in at.expander)  # no admin notes for visitors


@pytest.mark.model
def test_only_the_admin_password_signed_in_from_the_sidebar_opens_the_controls(demo, sample):
    at = _open("pages/knowledge_base.py")
    at.sidebar.text_input[0].set_value(VISITOR)
    next(b for b in at.sidebar.button if b.label == "Sign in").click().run()
    assert not at.exception and not at.file_uploader  # only the admin password opens the controls
    at.sidebar.text_input[0].set_value(ADMIN)
    next(b for b in at.sidebar.button if b.label == "Sign in").click().run()
    assert not at.exception and at.file_uploader
    assert ":material/person: Signed in · admin" in [c.value for c in at.sidebar.caption]
