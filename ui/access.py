"""The login gate every page passes first, the visitor's role, the configuration banner, and the note that
stands in for an admin-only control (the rules are in core/common/access.py)."""

import math
import sys
import time
from collections.abc import Mapping

import streamlit as st
from streamlit.auth_util import is_authlib_installed

from core.common.access import (
    LoginThrottle,
    Mode,
    Problem,
    Role,
    ServerConfig,
    access_mode,
    check_password,
    config_problems,
    oidc_providers,
    role_for_email,
)
from core.common.settings import get_settings
from core.text.safe_text import escape_markdown

ROLE_KEY = "access_role"  # set by the password form; an [auth] sign-in lives in st.user instead
THROTTLE_KEY = "access_throttle"


def auth_section() -> Mapping | None:
    """The [auth] section of secrets.toml that st.login reads; None without one."""
    if not st.secrets.load_if_toml_exists():
        return None
    return st.secrets.get("auth") or None


def server_config() -> ServerConfig:
    return ServerConfig(
        address=st.get_option("server.address"),
        max_upload_mb=st.get_option("server.maxUploadSize"),
        xsrf=st.get_option("server.enableXsrfProtection"),
        cors=st.get_option("server.enableCORS"),
        tls=bool(st.get_option("server.sslCertFile")),
        authlib=is_authlib_installed(),
    )


def current_mode() -> Mode:
    return access_mode(get_settings(), auth_section())


def current_role() -> Role | None:
    """The visitor's role, or None until they are in."""
    mode = current_mode()
    if mode == "open":
        return "admin"
    if mode == "oidc":
        if not st.user.get("is_logged_in"):
            return None
        return role_for_email(st.user.get("email"), get_settings().admin_emails)
    if mode == "demo":  # visitors are in without a login; the presenter signs in from the sidebar
        return st.session_state.get(ROLE_KEY, "user")
    return st.session_state.get(ROLE_KEY)


def is_admin() -> bool:
    return current_role() == "admin"


def admin_note(what: str) -> None:
    """What a visitor sees where an admin would find a training or deleting control."""
    st.caption(f":material/lock: Only admins can {what}.")


# --- the gate --------------------------------------------------------------------------------------
def require_access() -> None:
    """Stops the script at the login (or at a configuration error) until the visitor is in; costs
    nothing when no access is configured. Called by the router and by every page's frame."""
    problems = config_problems(get_settings(), server_config(), auth_section())
    _print_once(tuple(problems))
    errors = [p.message for p in problems if p.level == "error"]
    if errors:
        st.title(":material/block: RAG vs Fine-Tuning Lab")
        for message in errors:
            st.error(message, icon=":material/error:")
        st.caption("The Lab refuses to serve until its configuration is fixed and the app restarted.")
        st.stop()
    if current_role() is not None:
        return
    st.title(":material/lock: RAG vs Fine-Tuning Lab")
    if current_mode() == "oidc":
        _sign_in_buttons(auth_section())
    else:
        _password_form()
    st.stop()


@st.cache_resource(show_spinner=False)
def _print_once(problems: tuple[Problem, ...]) -> None:
    """Once per process (and per distinct set of problems): the checks on stderr, for whoever runs it."""
    for level, message in problems:
        print(f"[lab config] {level}: {message}", file=sys.stderr)


def _password_form(presenter: bool = False) -> None:
    """The password form; for the presenter of a demo, only the admin password opens anything."""
    if not presenter:
        st.caption("This Lab is shared: enter the password you were given.")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    throttle: LoginThrottle = st.session_state.setdefault(THROTTLE_KEY, LoginThrottle())
    wait = throttle.wait_s(time.monotonic())
    if wait:  # refused without checking, and not counted: the lockout does not grow while it runs
        st.error(f"Too many wrong passwords. Try again in {math.ceil(wait)} s.", icon=":material/timer:")
        return
    if not submitted:
        return
    role = check_password(get_settings(), given)
    if presenter and role != "admin":
        role = None
    if role is None:
        throttle.failed(time.monotonic())
        wait = throttle.wait_s(time.monotonic())
        later = f" Too many tries: wait {math.ceil(wait)} s." if wait else ""
        st.error(f"Wrong password.{later}", icon=":material/error:")
        return
    st.session_state.pop(THROTTLE_KEY, None)
    st.session_state[ROLE_KEY] = role
    st.rerun()


def _sign_in_buttons(auth: Mapping) -> None:
    st.caption("This Lab is shared: sign in to use it.")
    for provider in oidc_providers(auth):
        label = "Sign in" if provider is None else f"Sign in with {provider.capitalize()}"
        st.button(
            label, type="primary", icon=":material/login:", key=f"login:{provider}", on_click=st.login, args=(provider,)
        )


# --- in the sidebar and on the Overview ----------------------------------------------------------
def render_account() -> None:
    """Who is signed in, as what, and a way out; nothing when access is open."""
    mode = current_mode()
    if mode == "open":
        return
    if mode == "demo" and not is_admin():
        st.caption(":material/visibility: Demo: ask, compare and vote; nothing here changes shared data.")
        if get_settings().admin_password:
            with st.popover("Presenter sign-in", icon=":material/login:"):
                _password_form(presenter=True)
        return
    who = escape_markdown(st.user.get("email") or "signed in") if mode == "oidc" else "Signed in"
    st.caption(f":material/person: {who} · {'admin' if is_admin() else 'visitor'}")
    if mode == "oidc":
        st.button("Sign out", icon=":material/logout:", key="sign_out", on_click=st.logout)
    elif st.button("Sign out", icon=":material/logout:", key="sign_out"):
        st.session_state.pop(ROLE_KEY, None)
        st.rerun()


def render_config_warnings() -> None:
    """For admins: the start-up checks' warnings (errors never get this far)."""
    if not is_admin():
        return
    warnings = [p.message for p in config_problems(get_settings(), server_config(), auth_section())]
    if warnings:  # collapsed: a laptop demo on the default address should not open with a warning
        notes = f"{len(warnings)} configuration note{'s' if len(warnings) != 1 else ''} for admins"
        with st.expander(notes, icon=":material/shield:"):
            st.warning("\n".join(f"- {message}" for message in warnings))
