"""Access for shared demos: which login is configured, password and e-mail roles, a per-session login
throttle, and the start-up configuration checks.

Modes: "open" (nothing configured: no login, everyone is admin, as before), "password" (LAB_PASSWORD and/or
LAB_ADMIN_PASSWORD), "demo" (LAB_DEMO_MODE: no login for visitors, who only read, chat, compare and vote;
the presenter signs in with LAB_ADMIN_PASSWORD) and "oidc" (an [auth] section in .streamlit/secrets.toml,
used by st.login; it wins over the others). Admins may change what the Lab holds for everyone: train, cancel jobs, switch, rename or delete
adapters, add, replace, edit, re-index or delete documents, save retrieval settings, create scenarios, rename
or delete evaluation runs. Everyone else reads, chats, compares, votes, tries retrieval and runs evaluations.

Roles: the admin password gives admin. The visitor password gives admin only while no admin password is set
(one shared secret, no split). An OIDC login proves an identity, not a right: only the addresses in
LAB_ADMIN_EMAILS are admins, and with none listed nobody is.

Configuration checks return (level, message). "error" means the app refuses to serve (shows the message
instead of any page) because the configured access would not do what it says: admin and visitor passwords
alike (everyone with the visitor password is admin), an [auth] section st.login cannot use, or a sign-in
cookie without XSRF protection. Everything else is a "warning": printed at start-up and shown to admins.
"""

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from core.common.settings import Settings

Mode = Literal["open", "password", "demo", "oidc"]
Role = Literal["admin", "user"]

FREE_TRIES = 5  # wrong passwords allowed before the lockout starts (typos happen)
LOCKOUT_S = 30.0  # the first lockout; each further failure doubles it
MAX_LOCKOUT_S = 900.0
MIN_PASSWORD_CHARS = 8
MAX_NEW_TOKENS_CAP = 1024  # above this one answer can hold the shared engine for minutes


# --- modes and roles -------------------------------------------------------------------------------
def oidc_providers(auth: Mapping | None) -> list[str | None]:
    """The st.login providers of an [auth] section: None for the default one (client_id at the top), then
    each [auth.NAME] table."""
    if not auth:
        return []
    default = [None] if "client_id" in auth else []
    return default + [name for name, value in auth.items() if isinstance(value, Mapping)]


def access_mode(settings: Settings, auth: Mapping | None) -> Mode:
    if auth:
        return "oidc"
    if settings.demo_mode:
        return "demo"
    if settings.password or settings.admin_password:
        return "password"
    return "open"


def _same(given: str, secret) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


def check_password(settings: Settings, given: str) -> Role | None:
    """The role a password gives, or None. Both secrets are always compared (constant time each)."""
    admin = _same(given, settings.admin_password)
    visitor = _same(given, settings.password)
    if admin or (visitor and settings.admin_password is None):
        return "admin"
    return "user" if visitor else None


def role_for_email(email: str | None, admin_emails: list[str]) -> Role:
    return "admin" if email and email.strip().lower() in admin_emails else "user"


# --- login throttle --------------------------------------------------------------------------------
@dataclass
class LoginThrottle:
    """Wrong passwords in one session: FREE_TRIES free, then a lockout that doubles with each failure."""

    failures: int = 0
    locked_until: float = 0.0

    def wait_s(self, now: float) -> float:
        return max(0.0, self.locked_until - now)

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= FREE_TRIES:
            self.locked_until = now + min(MAX_LOCKOUT_S, LOCKOUT_S * 2 ** (self.failures - FREE_TRIES))


# --- configuration checks --------------------------------------------------------------------------
class Problem(NamedTuple):
    level: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class ServerConfig:
    """The Streamlit options the checks read (st.get_option), and whether st.login can run."""

    address: str | None = None
    max_upload_mb: int = 200
    xsrf: bool = True
    cors: bool = True
    tls: bool = False
    authlib: bool = False


def is_local_address(address: str | None) -> bool:
    """True for loopback only: an unset address makes Streamlit listen on every interface."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def config_problems(settings: Settings, server: ServerConfig, auth: Mapping | None = None) -> list[Problem]:
    errors: list[str] = []
    warnings: list[str] = []
    mode = access_mode(settings, auth)
    local = is_local_address(server.address)

    if mode == "oidc":
        if "redirect_uri" not in auth or "cookie_secret" not in auth or not oidc_providers(auth):
            errors.append(
                "The [auth] section of .streamlit/secrets.toml is incomplete (needs redirect_uri, cookie_secret "
                "and a provider's client_id, client_secret and server_metadata_url): nobody could sign in."
            )
        if not server.authlib:
            errors.append("Sign-in with [auth] needs Authlib: pip install 'streamlit[auth]'.")
        if settings.password or settings.admin_password:
            warnings.append("LAB_PASSWORD / LAB_ADMIN_PASSWORD are ignored: the [auth] sign-in is used instead.")
        if not settings.admin_emails:
            warnings.append("LAB_ADMIN_EMAILS is empty: nobody who signs in may train or delete.")
    elif mode == "demo":
        if settings.password:
            warnings.append("LAB_PASSWORD is ignored in demo mode: visitors come in without one.")
        if not settings.admin_password:
            warnings.append("Demo mode without LAB_ADMIN_PASSWORD: nobody can train, upload or delete.")
        elif len(settings.admin_password.get_secret_value()) < MIN_PASSWORD_CHARS:
            warnings.append(f"A password is shorter than {MIN_PASSWORD_CHARS} characters: easy to guess.")
    elif mode == "password":
        admin, visitor = settings.admin_password, settings.password
        if admin and visitor and _same(visitor.get_secret_value(), admin):
            errors.append("LAB_PASSWORD and LAB_ADMIN_PASSWORD are the same: every visitor would be an admin.")
        if any(p and len(p.get_secret_value()) < MIN_PASSWORD_CHARS for p in (admin, visitor)):
            warnings.append(f"A password is shorter than {MIN_PASSWORD_CHARS} characters: easy to guess.")

    if not server.xsrf and mode == "oidc":
        errors.append(
            "server.enableXsrfProtection is off while sign-in uses a cookie: another site could act as a "
            "signed-in visitor. Turn it back on."
        )
    elif not server.xsrf:
        warnings.append("server.enableXsrfProtection is off: uploads from other sites are not refused.")

    if not local and mode == "open":
        where = f"on {server.address}" if server.address else "on every network interface (server.address unset)"
        warnings.append(
            f"The Lab listens {where} with no login: anyone who reaches it may train and delete. Set "
            'LAB_PASSWORD and LAB_ADMIN_PASSWORD (or an [auth] sign-in), or server.address = "localhost".'
        )
    signs_in = mode == "password" or (mode == "demo" and settings.admin_password)
    if not local and signs_in and not server.tls:
        warnings.append(
            "Passwords travel over plain HTTP unless a reverse proxy adds HTTPS (or set server.sslCertFile "
            "and server.sslKeyFile)."
        )
    if not server.cors:
        warnings.append("server.enableCORS is off: the Lab's endpoints answer requests made by any other site.")
    if server.max_upload_mb > settings.max_upload_mb:
        warnings.append(
            f"server.maxUploadSize is {server.max_upload_mb} MB but LAB_MAX_UPLOAD_MB is {settings.max_upload_mb}: "
            "Streamlit takes files the Lab then refuses, after holding them in memory. Make them equal."
        )
    if settings.max_new_tokens > MAX_NEW_TOKENS_CAP:
        warnings.append(
            f"LAB_MAX_NEW_TOKENS is {settings.max_new_tokens} (above {MAX_NEW_TOKENS_CAP}): one long answer "
            "can hold the shared model for every visitor."
        )
    return [Problem("error", text) for text in errors] + [Problem("warning", text) for text in warnings]
