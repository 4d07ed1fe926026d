"""What the console tests share: an app with a clock the test moves, and a signed-in client."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from flask import Flask
from flask.testing import FlaskClient

from mailer.app.newsletter import Newsletter
from mailer.console.service import EXTENSION, Console
from mailer.store.staff import Account, Role
from mailer.wsgi import create_app
from tests.conftest import Folder

CONSOLE = "/commentaries/console"
PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class ConsoleApp:
    app: Flask
    newsletter: Newsletter
    clock: Clock

    @property
    def console(self) -> Console:
        service: Console = self.app.extensions[EXTENSION]
        return service

    def person(self, email: str, role: Role, password: str = PASSWORD) -> Account:
        """An account with its password set, as if its link had been followed."""
        account, _ = self.console.accounts.add(email, role)
        self.console.accounts.set_password(account, password)
        return account

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def signed_in(self, email: str, password: str = PASSWORD, code: str = "") -> FlaskClient:
        client = self.client()
        answer = sign_in(client, email, password, code)
        assert answer.status_code == 302, answer.text
        return client


def make_console(folder: Folder) -> ConsoleApp:
    newsletter = folder.newsletter()
    clock = Clock()
    return ConsoleApp(create_app(newsletter, clock=clock), newsletter, clock)


def csrf_of(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the console page at `path`."""
    page = client.get(f"{CONSOLE}{path}")
    found = _TOKEN.search(page.text)
    assert found, f"no form token on {path}: {page.status_code} {page.text[:300]}"
    return found[1]


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, code: str = "") -> object:
    token = csrf_of(client, "/login")
    return client.post(
        f"{CONSOLE}/login",
        data={"csrf_token": token, "email": email, "password": password, "code": code},
    )


def post(
    client: FlaskClient, path: str, data: dict[str, str] | None = None, page: str = "/account"
):  # type: ignore[no-untyped-def]
    """POST a console form with the token of this client's session."""
    return client.post(
        f"{CONSOLE}{path}", data={"csrf_token": csrf_of(client, page), **(data or {})}
    )
