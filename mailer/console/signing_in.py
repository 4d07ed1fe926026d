"""Signing in and out, and setting a password from a one-time link."""

from __future__ import annotations

from flask import redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import ANYBODY, needs, page, record
from mailer.console.accounts import SignInRefused, Throttled
from mailer.console.service import console
from mailer.console.session import close_session, open_session, signed_in
from mailer.core.errors import RequestError
from mailer.store.staff import Role

FIELD_LIMIT = 1024


def _field(name: str) -> str:
    return request.form.get(name, "")[:FIELD_LIMIT]


def _next_page() -> str:
    """Where to go after signing in: a console page only, never another site."""
    wanted = request.values.get("next", "")
    path = console().path
    if wanted.startswith(path + "/") and "//" not in wanted and "\\" not in wanted:
        return wanted
    return path + "/"


@needs(ANYBODY, "/login", ("GET", "POST"))
def login() -> ResponseReturnValue:
    if request.method == "GET":
        if signed_in() is not None:
            return redirect(_next_page())
        return page("login.html", next=_next_page(), problem="")
    email = _field("email").strip()
    try:
        account = console().accounts.sign_in(
            email, _field("password"), _field("code"), request.remote_addr or ""
        )
    except Throttled as error:
        record("sign-in throttled", "", actor=email[:320])
        return page("login.html", 429, next=_next_page(), problem=str(error), email=email)
    except SignInRefused as error:
        record("sign-in failed", "", actor=email[:320])
        return page("login.html", 401, next=_next_page(), problem=str(error), email=email)
    open_session(account)
    record("signed in", "", actor=account.email)
    return redirect(_next_page())


@needs(Role.EDITOR, "/logout", ("POST",))
def logout() -> ResponseReturnValue:
    record("signed out")
    close_session()
    return redirect(console().path + "/login")


@needs(ANYBODY, "/password/<token>", ("GET", "POST"))
def password(token: str) -> ResponseReturnValue:
    service = console()
    account = service.accounts.by_link(token)
    if account is None:
        return page(
            "message.html",
            404,
            heading="This link does not work",
            text="It was used already, replaced by a newer one, or is more than two days old. "
            "Ask an admin for a new link.",
        )
    if request.method == "GET":
        return page("password.html", email=account.email, problem="")
    new = _field("password")
    if new != _field("again"):
        return page("password.html", 400, email=account.email, problem="The two passwords differ.")
    try:
        service.accounts.set_password(account, new)
    except RequestError as error:
        return page("password.html", 400, email=account.email, problem=str(error).capitalize())
    record("set password", "", actor=account.email)
    return page(
        "message.html",
        heading="Your password is set",
        text="Sign in with your address and the new password.",
        link=f"{service.path}/login",
        link_text="Sign in",
    )
