"""Every console route and method, as anybody, an editor, a publisher and an admin: each is
refused to whoever is below the role the table says, and let through for everybody else.

The table is written here, apart from the code: a route added without a line here fails the
first test, and a route whose role in the code differs from this table fails the second.
"""

from __future__ import annotations

import itertools
import secrets

import pytest

from mailer.console.accounts import token_hash
from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.store.staff import Role
from tests.conftest import Folder
from tests.console_client import ConsoleApp, make_console

ANYBODY = None
E, P, A = Role.EDITOR, Role.PUBLISHER, Role.ADMIN
EXPECTED: dict[tuple[str, str], Role | None] = {
    ("GET", "/login"): ANYBODY,
    ("POST", "/login"): ANYBODY,
    ("GET", "/password/<token>"): ANYBODY,
    ("POST", "/password/<token>"): ANYBODY,
    ("GET", "/static/<path:filename>"): ANYBODY,
    ("POST", "/logout"): E,
    ("GET", "/"): E,
    ("GET", "/account"): E,
    ("POST", "/account/sessions/end"): E,
    ("POST", "/account/totp"): E,
    ("GET", "/campaigns"): E,
    ("GET", "/campaigns/<int:campaign_id>"): E,
    ("GET", "/campaigns/<int:campaign_id>/failures.csv"): E,
    ("GET", "/commentaries"): E,
    ("GET", "/commentaries/new"): E,
    ("POST", "/commentaries/new"): E,
    ("POST", "/commentaries/check"): E,
    ("POST", "/commentaries/import"): E,
    ("GET", "/commentaries/<slug>"): E,
    ("POST", "/commentaries/<slug>"): E,
    ("GET", "/commentaries/<slug>/preview"): E,
    ("GET", "/commentaries/<slug>/email.html"): E,
    ("POST", "/commentaries/<slug>/test"): E,
    ("GET", "/staff"): A,
    ("POST", "/staff"): A,
    ("POST", "/staff/<int:account_id>/role"): A,
    ("POST", "/staff/<int:account_id>/link"): A,
    ("POST", "/staff/<int:account_id>/remove"): A,
    ("GET", "/audit"): A,
    ("GET", "/campaigns/<int:campaign_id>/progress"): E,
    ("POST", "/campaigns/<int:campaign_id>/pause"): P,
    ("POST", "/campaigns/<int:campaign_id>/resume"): P,
    ("POST", "/campaigns/<int:campaign_id>/cancel"): P,
    ("POST", "/commentaries/<slug>/approve"): P,
    ("GET", "/commentaries/<slug>/send"): P,
    ("POST", "/commentaries/<slug>/send"): P,
    ("GET", "/test-addresses"): P,
    ("POST", "/test-addresses"): P,
    ("POST", "/test-addresses/remove"): P,
    ("POST", "/commentaries/<slug>/files"): E,
    ("GET", "/subscribers"): P,
    ("POST", "/subscribers"): P,
    ("GET", "/subscribers/export.csv"): P,
    ("GET", "/subscribers/<int:subscriber_id>"): P,
    ("POST", "/subscribers/<int:subscriber_id>/lists"): P,
    ("POST", "/subscribers/<int:subscriber_id>/unsubscribe"): P,
    ("GET", "/subscribers/<int:subscriber_id>/erase"): A,
    ("POST", "/subscribers/<int:subscriber_id>/erase"): A,
    ("GET", "/lists"): E,
    ("POST", "/lists"): P,
    ("GET", "/lists/<path:name>"): E,
    ("POST", "/lists/<path:name>"): P,
    ("GET", "/import"): P,
    ("POST", "/import"): P,
    ("GET", "/import/<token>"): P,
    ("POST", "/import/<token>"): P,
    ("GET", "/import/<token>/progress"): P,
    ("GET", "/import/<token>/rejects.csv"): P,
}
WHO = (ANYBODY, E, P, A)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> ConsoleApp:
    import shutil

    from tests.conftest import EXAMPLES, REPOSITORY

    root = tmp_path_factory.mktemp("routes") / "newsletter"
    shutil.copytree(EXAMPLES, root / "commentaries")
    shutil.copyfile(REPOSITORY / "config.example.toml", root / "config.toml")
    (root / "subscribers").mkdir()
    return make_console(Folder(root))


def console_routes(console: ConsoleApp) -> set[tuple[str, str]]:
    prefix = console.console.path
    found = set()
    for rule in console.app.url_map.iter_rules():
        if rule.endpoint.startswith("console."):
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    found.add((method, rule.rule.removeprefix(prefix)))
    return found


def test_the_table_names_every_console_route_and_method(console: ConsoleApp) -> None:
    assert console_routes(console) == set(EXPECTED)


def _path(console: ConsoleApp, rule: str) -> str:
    """A real address for the rule: an account made for the request, a campaign, a slug."""
    victim, _ = console.console.accounts.add(f"victim-{secrets.token_hex(4)}@example.org", E)
    return (
        rule.replace("<int:account_id>", str(victim.id))
        .replace("<int:subscriber_id>", str(_subscriber_id(console)))
        .replace("<path:name>", "commentaries")
        .replace("<int:campaign_id>", "1")
        .replace("<token>", "not-a-link")
        .replace("<path:filename>", "console.css")
        .replace("<slug>", "writing-a-commentary")
    )


def _subscriber_id(console: ConsoleApp) -> int:
    """A subscriber on the list `commentaries`, made on first use."""
    subscribers = console.newsletter.store.subscribers
    if (found := subscribers.find("reader@example.org")) is None:
        reader = Candidate("reader@example.org", "Reader", frozenset({"commentaries"}))
        subscribers.merge([reader], status=Status.ACTIVE, reason=Reason.STAFF)
        found = subscribers.find("reader@example.org")
    assert found is not None
    return found.id


def _client(console: ConsoleApp, role: Role | None) -> tuple[object, str]:
    """A client signed in with `role` (a session made in the store: argon2 is slow by design)."""
    client = console.client()
    if role is None:
        token = secrets.token_urlsafe(32)
        client.set_cookie("mailer_console_form", token, path=f"{console.console.path}/")
        return client, console.console.sign(f"form\0{token}")
    account, _ = console.console.accounts.add(
        f"{role.value}-{secrets.token_hex(4)}@example.org", role
    )
    token = secrets.token_urlsafe(32)
    console.newsletter.store.staff_sessions.open(
        account, token_hash(token), console.clock(), "", ""
    )
    client.set_cookie("mailer_console", token, path=f"{console.console.path}/")
    return client, console.console.sign(f"session\0{token}")


@pytest.mark.parametrize(
    ("route", "who"),
    list(itertools.product(sorted(EXPECTED), WHO)),
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else str(value),
)
def test_each_route_refuses_every_role_below_its_own(
    console: ConsoleApp, route: tuple[str, str], who: Role | None
) -> None:
    method, rule = route
    needed = EXPECTED[route]
    client, csrf = _client(console, who)
    path = console.console.path + _path(console, rule)
    data = {"csrf_token": csrf} if method == "POST" else None
    answer = client.open(path, method=method, data=data)  # type: ignore[attr-defined]
    allowed = needed is None or (who is not None and who.may(needed))
    if allowed:
        assert answer.status_code != 403, answer.text[:500]
        assert "Please sign in" not in answer.text  # a wrong password is a 401 of its own
        assert "/login?next=" not in answer.headers.get("Location", "")
    elif who is None:
        if method == "GET":
            assert answer.status_code == 302
            assert answer.headers["Location"].startswith(f"{console.console.path}/login?next=")
        else:
            assert answer.status_code == 401 and "Please sign in" in answer.text
    else:
        assert answer.status_code == 403 and "Not for your role" in answer.text


@pytest.mark.parametrize(
    "rule",
    sorted(rule for method, rule in EXPECTED if method == "POST"),
)
def test_each_post_without_the_form_token_is_refused(console: ConsoleApp, rule: str) -> None:
    client, _ = _client(console, A)
    path = console.console.path + _path(console, rule)
    for token in (None, "forged"):
        data = {} if token is None else {"csrf_token": token}
        answer = client.post(path, data=data)  # type: ignore[attr-defined]
        assert answer.status_code == 403 and "This form has expired" in answer.text, rule
