"""Accounts in the console: admins manage staff; everybody sees their own sessions and TOTP."""

from __future__ import annotations

import pyotp
from flask import abort, redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import me, needs, page, record
from mailer.console.service import console
from mailer.console.session import signed_in
from mailer.core.errors import RequestError
from mailer.store.staff import Account, Role

AUDIT_PAGE = 200


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        abort(400)


def _account(account_id: int) -> Account:
    found = console().newsletter.store.staff.get(account_id)
    if found is None:
        abort(404)
    return found


def _staff_page(status: int = 200, **shown: str) -> ResponseReturnValue:
    accounts = console().newsletter.store.staff.all()
    return page(
        "staff.html",
        status,
        accounts=accounts,
        roles=list(Role),
        link=shown.get("link", ""),
        link_for=shown.get("link_for", ""),
        problem=shown.get("problem", ""),
    )


@needs(Role.ADMIN, "/staff")
def staff() -> ResponseReturnValue:
    return _staff_page()


@needs(Role.ADMIN, "/staff", ("POST",))
def add_staff() -> ResponseReturnValue:
    email = request.form.get("email", "")[:320].strip()
    role = _role(request.form.get("role", ""))
    try:
        account, link = console().accounts.add(email, role)
    except RequestError as error:
        return _staff_page(400, problem=str(error))
    record("added staff", f"{account.email} as {role.value}")
    return _staff_page(link=link, link_for=account.email)


@needs(Role.ADMIN, "/staff/<int:account_id>/role", ("POST",))
def change_role(account_id: int) -> ResponseReturnValue:
    account = _account(account_id)
    role = _role(request.form.get("role", ""))
    try:
        console().newsletter.store.staff.set_role(account, role)
    except RequestError as error:
        return _staff_page(400, problem=str(error))
    record("changed role", f"{account.email}: {account.role.value} → {role.value}")
    return redirect(f"{console().path}/staff")


@needs(Role.ADMIN, "/staff/<int:account_id>/link", ("POST",))
def new_link(account_id: int) -> ResponseReturnValue:
    account = _account(account_id)
    link = console().accounts.new_link(account)
    record("gave a password link", account.email)
    return _staff_page(link=link, link_for=account.email)


@needs(Role.ADMIN, "/staff/<int:account_id>/remove", ("POST",))
def remove_staff(account_id: int) -> ResponseReturnValue:
    account = _account(account_id)
    try:
        console().newsletter.store.staff.remove(account)
    except RequestError as error:
        return _staff_page(400, problem=str(error))
    record("removed staff", account.email)
    return redirect(f"{console().path}/staff")


@needs(Role.ADMIN, "/audit")
def audit() -> ResponseReturnValue:
    actor = request.args.get("actor", "")[:320] or None
    entries = console().newsletter.store.audit.latest(AUDIT_PAGE, actor)
    return page("audit.html", entries=entries, actor=actor or "")


def _account_page(status: int = 200, **context: str) -> ResponseReturnValue:
    session = signed_in()
    account = me()
    return page(
        "account.html",
        status,
        sessions=console().newsletter.store.staff_sessions.of(account),
        current=session.token_hash if session else "",
        totp_uri=context.get("totp_uri", ""),
        totp_secret=context.get("totp_secret", ""),
        problem=context.get("problem", ""),
    )


@needs(Role.EDITOR, "/account")
def account() -> ResponseReturnValue:
    return _account_page()


@needs(Role.EDITOR, "/account/sessions/end", ("POST",))
def end_session() -> ResponseReturnValue:
    """End one of my sessions (another browser, a lost phone): it stops working at once."""
    wanted = request.form.get("session", "")
    sessions = console().newsletter.store.staff_sessions
    if wanted not in {s.token_hash for s in sessions.of(me())}:
        abort(404)
    sessions.close(wanted)
    record("ended a session")
    return redirect(f"{console().path}/account")


@needs(Role.EDITOR, "/account/totp", ("POST",))
def totp() -> ResponseReturnValue:
    """Two steps: a new secret is shown, then turned on only once a code from it is given."""
    accounts = console().accounts
    account = me()
    action = request.form.get("action", "")
    if action == "off":
        console().newsletter.store.staff.set_totp(account, None)
        record("turned off two-factor sign-in")
        return redirect(f"{console().path}/account")
    if action == "start":
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(
            name=account.email, issuer_name=console().newsletter.config.newsletter.name
        )
        return _account_page(totp_uri=uri, totp_secret=secret)
    secret = request.form.get("secret", "")[:64]
    if action != "confirm" or not secret:
        abort(400)
    if not accounts.code_matches(secret, request.form.get("code", "")[:16]):
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.email)
        return _account_page(
            400,
            totp_uri=uri,
            totp_secret=secret,
            problem="That code does not match; check the phone's clock and type the current one.",
        )
    console().newsletter.store.staff.set_totp(account, secret)
    record("turned on two-factor sign-in")
    return redirect(f"{console().path}/account")
