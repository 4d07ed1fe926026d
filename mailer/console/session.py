"""Who is signed in: a random token in an HttpOnly, SameSite=Strict cookie, its hash in the
database, and a CSRF token bound to it (before signing in, to a random cookie of its own)."""

from __future__ import annotations

import hmac
import re
import secrets

from flask import Response, g, request

from mailer.console.accounts import token_hash
from mailer.console.service import console
from mailer.store.staff import Account, SignedIn

SESSION_COOKIE = "mailer_console"
FORM_COOKIE = "mailer_console_form"
"""Before signing in there is no session to bind a form to: this random value stands in."""
CSRF_FIELD = "csrf_token"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
TOUCH_EVERY = 60.0
"""Seconds between writes of a session's last use: one write a minute is enough for idling."""


def client_address() -> str:
    return request.remote_addr or ""


def _cookie(name: str) -> str:
    value = request.cookies.get(name, "")
    return value if _TOKEN.match(value) else ""


def signed_in() -> SignedIn | None:
    """The session of this request, if its cookie opens one that has not idled out."""
    if "console_session" not in g:
        g.console_session = _find_session()
    found: SignedIn | None = g.console_session
    return found


def _find_session() -> SignedIn | None:
    token = _cookie(SESSION_COOKIE)
    if not token:
        return None
    service = console()
    now = service.clock()
    found = service.newsletter.store.staff_sessions.current(token_hash(token), now - service.idle)
    if found is not None and (now - found.seen_at).total_seconds() >= TOUCH_EVERY:
        service.newsletter.store.staff_sessions.touch(found.token_hash, now)
    return found


def open_session(account: Account) -> None:
    """Sign this browser in: a new token (never one the browser brought: no fixation)."""
    token = secrets.token_urlsafe(32)
    service = console()
    service.newsletter.store.staff_sessions.open(
        account,
        token_hash(token),
        service.clock(),
        client_address(),
        request.headers.get("User-Agent", ""),
    )
    g.console_cookie = token
    g.pop("console_session", None)


def close_session() -> None:
    found = signed_in()
    if found is not None:
        console().newsletter.store.staff_sessions.close(found.token_hash)
    g.console_cookie = ""


def _bound_to() -> str:
    """What this browser's CSRF token is made from: its session, else its form cookie."""
    if signed_in() is not None:
        return f"session\0{_cookie(SESSION_COOKIE)}"
    form = _cookie(FORM_COOKIE)
    return f"form\0{form}" if form else ""


def csrf_token() -> str:
    """The hidden field's value for a form on this page (a form cookie comes too if needed)."""
    bound = _bound_to() or f"form\0{g.get('console_form_cookie', '')}"
    if bound == "form\0":
        g.console_form_cookie = secrets.token_urlsafe(32)
        bound = f"form\0{g.console_form_cookie}"
    return console().sign(bound)


def csrf_valid() -> bool:
    """Whether the POST carries the token of its session (or, signed out, of its form cookie)."""
    bound = _bound_to()
    sent = request.form.get(CSRF_FIELD, "")
    return bool(bound) and hmac.compare_digest(sent.encode(), console().sign(bound).encode())


def set_cookies(response: Response) -> Response:
    path = console().path + "/"
    options = {"path": path, "secure": request.is_secure, "httponly": True, "samesite": "Strict"}
    token = g.pop("console_cookie", None)
    if token == "":
        response.delete_cookie(SESSION_COOKIE, **options)  # type: ignore[arg-type]
    elif token is not None:
        response.set_cookie(SESSION_COOKIE, token, **options)  # type: ignore[arg-type]
    form = g.pop("console_form_cookie", None)
    if form:
        response.set_cookie(FORM_COOKIE, form, **options)  # type: ignore[arg-type]
    return response
