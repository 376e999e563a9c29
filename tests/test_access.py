"""Access for shared demos: modes, password and e-mail roles, the login throttle and the configuration
checks (core/common/access.py); then the gate and the admin-only controls under AppTest (ui/access.py)."""

import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from core.common.access import (
    FREE_TRIES,
    MAX_LOCKOUT_S,
    LoginThrottle,
    ServerConfig,
    access_mode,
    check_password,
    config_problems,
    is_local_address,
    oidc_providers,
    role_for_email,
)
from core.common.settings import Settings
from tests.conftest import ROOT
from tests.support.apptest import page_texts

APP = str(ROOT / "streamlit_app.py")
VISITOR, ADMIN = "visitor-secret-1", "admin-secret-22"
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-string",
    "google": {"client_id": "id", "client_secret": "s", "server_metadata_url": "https://accounts.google.com/x"},
}
SAFE = ServerConfig(address="localhost", max_upload_mb=20, xsrf=True, cors=True, authlib=True)


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)  # only what the test gives (the suite's env still applies)


# --- modes and roles -------------------------------------------------------------------------------
def test_mode_is_open_without_configuration():
    assert access_mode(_settings(), None) == "open"


def test_passwords_ask_for_a_login_unless_oidc_is_configured():
    assert access_mode(_settings(password=VISITOR), None) == "password"
    assert access_mode(_settings(admin_password=ADMIN), {}) == "password"
    assert access_mode(_settings(password=VISITOR), AUTH) == "oidc"


def test_blank_passwords_are_unset():
    settings = _settings(password="  ", admin_password="")
    assert settings.password is None and settings.admin_password is None
    assert access_mode(settings, None) == "open"


def test_admin_emails_are_a_lowercase_list():
    assert _settings(admin_emails=" Ann@Example.org, ,bo@x.io ").admin_emails == ["ann@example.org", "bo@x.io"]


def test_passwords_give_roles():
    both = _settings(password=VISITOR, admin_password=ADMIN)
    assert check_password(both, ADMIN) == "admin"
    assert check_password(both, VISITOR) == "user"
    assert check_password(both, "wrong") is None and check_password(both, "") is None
    assert check_password(both, VISITOR + " ") is None  # exact match only
    # one shared password and no admin password: no split, whoever is in may do everything
    assert check_password(_settings(password=VISITOR), VISITOR) == "admin"
    # an admin password alone: only admins get in
    assert check_password(_settings(admin_password=ADMIN), ADMIN) == "admin"
    assert check_password(_settings(admin_password=ADMIN), VISITOR) is None


def test_role_from_email():
    admins = ["ann@example.org"]
    assert role_for_email("Ann@Example.org ", admins) == "admin"
    assert role_for_email("bo@example.org", admins) == "user"
    assert role_for_email(None, admins) == "user"
    assert role_for_email("ann@example.org", []) == "user"  # nobody listed: nobody is admin


def test_oidc_providers():
    assert oidc_providers(None) == [] and oidc_providers({}) == []
    assert oidc_providers(AUTH) == ["google"]
    assert oidc_providers({"client_id": "x", "redirect_uri": "u", "okta": {"client_id": "y"}}) == [None, "okta"]


def test_throttle_allows_typos_then_locks_out_longer_each_time():
    throttle = LoginThrottle()
    for _ in range(FREE_TRIES - 1):
        throttle.failed(now=100.0)
    assert throttle.wait_s(100.0) == 0
    throttle.failed(now=100.0)
    assert throttle.wait_s(100.0) == 30 and throttle.wait_s(120.0) == 10 and throttle.wait_s(131.0) == 0
    throttle.failed(now=131.0)
    assert throttle.wait_s(131.0) == 60
    for _ in range(20):
        throttle.failed(now=200.0)
    assert throttle.wait_s(200.0) == MAX_LOCKOUT_S


# --- configuration checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "local"),
    [("localhost", True), ("127.0.0.1", True), ("::1", True), ("[::1]", True), (None, False), ("", False)]
    + [("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("lab.example.org", False)],
)
def test_local_addresses(address, local):
    assert is_local_address(address) == local


def test_a_safe_configuration_has_no_problem():
    assert config_problems(_settings(), SAFE) == []
    protected = _settings(password=VISITOR, admin_password=ADMIN)
    assert config_problems(protected, ServerConfig(address="0.0.0.0", max_upload_mb=20, tls=True)) == []
    oidc = _settings(admin_emails="ann@example.org")
    assert config_problems(oidc, ServerConfig(address="0.0.0.0", max_upload_mb=20, authlib=True), AUTH) == []


def test_the_shipped_streamlit_config_matches_the_default_upload_limit():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = ServerConfig(address="localhost", max_upload_mb=config["server"]["maxUploadSize"])
    assert config_problems(Settings(_env_file=None), server) == []


def _levels(problems, *words) -> list[str]:
    return [level for level, message in problems if all(w in message for w in words)]


@pytest.mark.parametrize(
    ("settings", "server", "auth", "words", "level"),
    [
        ({}, {"address": None}, None, ("every network interface", "no login"), "warning"),
        ({}, {"address": "0.0.0.0"}, None, ("0.0.0.0", "no login"), "warning"),
        ({}, {"max_upload_mb": 200}, None, ("server.maxUploadSize is 200 MB",), "warning"),
        ({}, {"xsrf": False}, None, ("enableXsrfProtection",), "warning"),
        ({}, {"cors": False}, None, ("enableCORS",), "warning"),
        ({"max_new_tokens": 2048}, {}, None, ("LAB_MAX_NEW_TOKENS is 2048",), "warning"),
        ({"password": "short"}, {}, None, ("shorter than 8",), "warning"),
        ({"password": VISITOR, "admin_password": VISITOR}, {}, None, ("the same",), "error"),
        ({"password": VISITOR}, {"address": "0.0.0.0"}, None, ("plain HTTP",), "warning"),
        ({"admin_emails": "a@b.c"}, {"xsrf": False}, AUTH, ("enableXsrfProtection",), "error"),
        ({"admin_emails": "a@b.c"}, {"authlib": False}, AUTH, ("Authlib",), "error"),
        ({"admin_emails": "a@b.c"}, {}, {"redirect_uri": "u", "cookie_secret": "c"}, ("incomplete",), "error"),
        ({}, {}, AUTH, ("LAB_ADMIN_EMAILS is empty",), "warning"),
        ({"admin_emails": "a@b.c", "password": VISITOR}, {}, AUTH, ("are ignored",), "warning"),
    ],
)
def test_each_unsafe_setting_is_reported(settings, server, auth, words, level):
    values = {"address": "localhost", "max_upload_mb": 20, "authlib": True} | server
    problems = config_problems(_settings(**settings), ServerConfig(**values), auth)
    assert _levels(problems, *words) == [level], problems
    assert not any(VISITOR in message for _, message in problems)  # a password is never repeated


# --- the gate and the admin-only controls under AppTest -------------------------------------------
@pytest.fixture
def access(monkeypatch):
    """Configure access for one test: LAB_ variables set, settings re-read; all restored afterwards."""
    from core.common.settings import get_settings

    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"LAB_{name.upper()}", value)
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


def _app(page: str = "pages/home.py", **attributes) -> AppTest:
    """The router's first run, then the page. (AppTest runs a page's own script after the first run, so
    widgets drawn by the router's gate would change ids; drawn by the page's frame, they keep them.)"""
    at = AppTest.from_file(APP, default_timeout=300)
    for name, value in attributes.items():
        setattr(at, name, value)
    at.run()
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception
    return at


def _sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input[0].set_value(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception
    return at


def _only_the_login(at: AppTest) -> bool:
    return (
        [t.value for t in at.title] == [":material/lock: RAG vs Fine-Tuning Lab"]
        and [b.label for b in at.button] == ["Sign in"]
        and len(at.sidebar.children) == 0
        and not at.tabs
        and not at.metric
    )


def test_with_a_password_only_the_login_renders_on_any_page(access):
    access(password=VISITOR, admin_password=ADMIN)
    at = AppTest.from_file(APP, default_timeout=60).run()  # the router's gate
    assert not at.exception and _only_the_login(at) and at.text_input[0].label == "Password"
    at.switch_page("pages/knowledge_base.py").run()
    assert _only_the_login(at)
    # a page script served directly (no router) passes the same gate in its frame
    direct = AppTest.from_file(str(ROOT / "pages" / "finetuning.py"), default_timeout=60).run()
    assert not direct.exception and _only_the_login(direct)


def test_a_wrong_password_is_refused_without_being_echoed(access):
    access(password=VISITOR, admin_password=ADMIN)
    at = _sign_in(_app(), "guess-number-1")
    assert at.error[0].value == "Wrong password." and _only_the_login(at)
    assert "guess-number-1" not in page_texts(at)


def test_repeated_wrong_passwords_lock_out_even_the_right_one(access):
    access(password=VISITOR, admin_password=ADMIN)
    at = _app()
    for attempt in range(1, FREE_TRIES + 1):
        _sign_in(at, f"guess-number-{attempt}")
    assert "Too many tries: wait 30 s" in at.error[0].value
    _sign_in(at, ADMIN)  # even the right password waits out the lockout
    assert "Try again in" in at.error[0].value and _only_the_login(at)


@pytest.mark.model
def test_the_admin_password_shows_the_page_with_every_control(access, sample):
    access(password=VISITOR, admin_password=ADMIN)
    at = _sign_in(_app(), ADMIN)
    assert "RAG vs Fine-Tuning Lab" in at.title[0].value and not at.text_input
    assert ":material/person: Signed in · admin" in [c.value for c in at.sidebar.caption]
    at.switch_page("pages/finetuning.py").run()
    assert not at.exception and "Only admins" not in page_texts(at)
    assert "Upload a JSONL file" in at.radio[0].options
    assert any(b.label == "Start training" for b in at.button)
    at.switch_page("pages/knowledge_base.py").run()
    assert not at.exception and "Only admins" not in page_texts(at)
    assert at.file_uploader and any(e.label.startswith("Re-index") for e in at.expander)


@pytest.mark.model
def test_a_visitor_sees_the_pages_without_training_or_deleting(access, sample):
    access(password=VISITOR, admin_password=ADMIN)
    at = _sign_in(_app(), VISITOR)
    assert ":material/person: Signed in · visitor" in [c.value for c in at.sidebar.caption]
    assert not at.warning  # the configuration banner is for admins
    at.switch_page("pages/finetuning.py").run()
    assert not at.exception
    text = page_texts(at)
    assert "Only admins can start training." in text and "Only admins can activate, rename or delete" in text
    assert at.radio[0].options == ["The scenario's train.jsonl"] and at.metric  # the report still shows
    assert not any(b.label in ("Start training", "Cancel") for b in at.button)
    at.switch_page("pages/knowledge_base.py").run()
    assert not at.exception
    text = page_texts(at)
    assert "Only admins can add, replace, delete or re-index documents." in text
    assert "Only admins can edit documents for the freshness test." in text
    assert not at.file_uploader and not any(e.label.startswith("Re-index") for e in at.expander)
    assert list(at.dataframe[0].value["Document"])  # documents can still be read
    assert "Apply the edit" not in " ".join(b.label for b in at.button)
    sign_out = next(b for b in at.sidebar.button if b.label == "Sign out")
    sign_out.click().run()
    assert _only_the_login(at)


@pytest.mark.model
def test_with_nothing_configured_everyone_is_admin_without_a_login(sample):
    at = _app("pages/knowledge_base.py")
    assert at.file_uploader and "Only admins" not in page_texts(at)
    assert not any(b.label == "Sign out" for b in at.sidebar.button)
    at.switch_page("pages/home.py").run()
    # AppTest sets no server.address: Streamlit would listen everywhere
    assert any(e.label.endswith("for admins") for e in at.expander)
    assert "no login" in at.warning[0].value


def test_an_oidc_visitor_who_is_not_signed_in_sees_only_the_sign_in_button(access, monkeypatch):
    monkeypatch.setattr("ui.access.is_authlib_installed", lambda: True)  # Authlib is not installed here
    access(admin_emails="ann@example.org")
    at = _app(secrets={"auth": AUTH}, user={"is_logged_in": False})
    assert [t.value for t in at.title] == [":material/lock: RAG vs Fine-Tuning Lab"]
    assert [b.label for b in at.button] == ["Sign in with Google"] and not at.text_input
    assert len(at.sidebar.children) == 0


@pytest.mark.model
def test_an_oidc_sign_in_takes_the_role_from_the_email(access, monkeypatch, sample):
    monkeypatch.setattr("ui.access.is_authlib_installed", lambda: True)
    access(admin_emails="ann@example.org")
    visitor = {"is_logged_in": True, "email": "bo@example.org"}
    at = _app("pages/finetuning.py", secrets={"auth": AUTH}, user=visitor)
    assert "Only admins can start training." in page_texts(at)
    assert ":material/person: bo@example.org · visitor" in [c.value for c in at.sidebar.caption]
    at.user = {"is_logged_in": True, "email": "Ann@Example.org"}
    at.run()
    assert not at.exception and any(b.label == "Start training" for b in at.button)


def test_a_configuration_error_refuses_to_serve(access):
    access(password=VISITOR, admin_password=VISITOR)
    at = _app()
    assert "the same" in at.error[0].value and not at.text_input and not at.button
    assert VISITOR not in page_texts(at)
