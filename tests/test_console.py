"""The staff console's accounts: password links, argon2, sessions in the database, CSRF,
throttled sign-in, TOTP, roles and the audit log; and `mailer staff` on the command line."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest

from mailer.console.accounts import ACCOUNT_FAILURES, NETWORK_FAILURES, network_of
from mailer.store.staff import Role
from tests.conftest import Folder, Run
from tests.console_client import (
    CONSOLE,
    PASSWORD,
    Clock,
    ConsoleApp,
    csrf_of,
    make_console,
    post,
    sign_in,
)


@pytest.fixture
def console(folder: Folder) -> ConsoleApp:
    return make_console(folder)


def actions(console: ConsoleApp) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in reversed(console.newsletter.store.audit.latest())]


def test_a_password_link_sets_an_argon2_password_once(console: ConsoleApp) -> None:
    _, link = console.console.accounts.add("Ada@Example.org", Role.EDITOR)
    assert link.startswith("https://www.example.org/commentaries/console/password/")
    path = link.removeprefix("https://www.example.org")
    client = console.client()
    token = csrf_of(client, path.removeprefix(CONSOLE))
    short = client.post(path, data={"csrf_token": token, "password": "short", "again": "short"})
    assert short.status_code == 400 and "at least 12 characters" in short.text
    done = client.post(path, data={"csrf_token": token, "password": PASSWORD, "again": PASSWORD})
    assert done.status_code == 200 and "Your password is set" in done.text
    stored = console.newsletter.store.staff.find("ada@example.org")
    assert stored is not None and stored.password_hash
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert client.get(path).status_code == 404  # the link worked once
    assert sign_in(client, "ada@example.org").status_code == 302
    assert ("Ada@example.org", "set password") in actions(console)


def test_a_password_link_expires_after_two_days(console: ConsoleApp) -> None:
    _, link = console.console.accounts.add("ada@example.org", Role.EDITOR)
    console.clock.advance(hours=49)
    assert console.client().get(link.removeprefix("https://www.example.org")).status_code == 404


def test_the_session_cookie_is_httponly_strict_and_scoped(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    answer = sign_in(console.client(), "ada@example.org")
    cookie = next(
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith("mailer_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert f"Path={CONSOLE}/" in cookie and "Secure" not in cookie  # plain http in this test
    secure = console.client()
    page = secure.get(f"{CONSOLE}/login", base_url="https://www.example.org")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    answer = secure.post(
        f"{CONSOLE}/login",
        base_url="https://www.example.org",
        data={"csrf_token": token, "email": "ada@example.org", "password": PASSWORD},
    )
    assert any("Secure" in c for c in answer.headers.getlist("Set-Cookie"))


def test_a_stolen_session_cookie_stops_working_after_logout(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    client = console.signed_in("ada@example.org")
    stolen = client.get_cookie("mailer_console", path=f"{CONSOLE}/")
    assert stolen is not None
    thief = console.client()
    thief.set_cookie("mailer_console", stolen.value, path=f"{CONSOLE}/")
    assert thief.get(f"{CONSOLE}/").status_code == 200
    assert post(client, "/logout").status_code == 302
    assert thief.get(f"{CONSOLE}/").status_code == 302  # back to the sign-in page
    assert (
        console.newsletter.store.staff_sessions.of(
            console.newsletter.store.staff.named("ada@example.org")
        )
        == []
    )


def test_a_session_ends_after_the_idle_time_and_not_before(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    client = console.signed_in("ada@example.org")
    console.clock.advance(minutes=59)
    assert client.get(f"{CONSOLE}/").status_code == 200  # used: the hour starts again
    console.clock.advance(minutes=59)
    assert client.get(f"{CONSOLE}/").status_code == 200
    console.clock.advance(minutes=61)
    assert client.get(f"{CONSOLE}/").status_code == 302


def test_sessions_are_listed_and_one_can_be_ended_from_another(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    laptop = console.signed_in("ada@example.org")
    phone = console.signed_in("ada@example.org")
    account = console.newsletter.store.staff.named("ada@example.org")
    sessions = console.newsletter.store.staff_sessions.of(account)
    assert len(sessions) == 2
    page = laptop.get(f"{CONSOLE}/account")
    assert page.text.count("this browser") == 1 and page.text.count(">End<") == 1
    other = re.search(r'name="session" value="([0-9a-f]{64})"', page.text)
    assert other
    assert post(laptop, "/account/sessions/end", {"session": other[1]}).status_code == 302
    assert phone.get(f"{CONSOLE}/").status_code == 302
    assert laptop.get(f"{CONSOLE}/").status_code == 200
    assert post(laptop, "/account/sessions/end", {"session": "0" * 64}).status_code == 404


def test_a_new_password_signs_out_every_browser(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    client = console.signed_in("ada@example.org")
    link = console.console.accounts.new_link(
        console.newsletter.store.staff.named("ada@example.org")
    )
    path = link.removeprefix("https://www.example.org")
    fresh = console.client()
    token = csrf_of(fresh, path.removeprefix(CONSOLE))
    new = "another good long password"
    fresh.post(path, data={"csrf_token": token, "password": new, "again": new})
    assert client.get(f"{CONSOLE}/").status_code == 302
    assert sign_in(console.client(), "ada@example.org", PASSWORD).status_code == 401
    assert sign_in(console.client(), "ada@example.org", new).status_code == 302


def test_every_post_needs_the_token_of_its_own_session(console: ConsoleApp) -> None:
    console.person("root@example.org", Role.ADMIN)
    admin = console.signed_in("root@example.org")
    other = console.signed_in("root@example.org")
    add = {"email": "new@example.org", "role": "editor"}
    missing = admin.post(f"{CONSOLE}/staff", data=add)
    assert missing.status_code == 403 and "expired" in missing.text
    foreign = admin.post(f"{CONSOLE}/staff", data={**add, "csrf_token": csrf_of(other, "/")})
    assert foreign.status_code == 403
    assert console.newsletter.store.staff.find("new@example.org") is None
    assert post(admin, "/staff", add).status_code == 200
    assert console.newsletter.store.staff.find("new@example.org") is not None
    signed_out = console.client()
    assert (
        signed_out.post(f"{CONSOLE}/login", data={"email": "x", "password": "y"}).status_code == 403
    )


def test_sign_in_is_throttled_per_account_then_per_network(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    client = console.client()
    for _ in range(ACCOUNT_FAILURES):
        assert sign_in(client, "ada@example.org", "wrong password!").status_code == 401
    refused = sign_in(client, "ada@example.org")  # the right password, too late
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.text.lower()
    console.clock.advance(minutes=16)
    assert sign_in(client, "ada@example.org").status_code == 302
    for number in range(NETWORK_FAILURES):
        sign_in(console.client(), f"guess{number}@example.org", "wrong password!")
    assert sign_in(console.client(), "ada@example.org").status_code == 429
    assert ("ada@example.org", "sign-in throttled") in actions(console)


def test_client_networks_group_ipv4_by_24_and_ipv6_by_64() -> None:
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


def test_totp_once_turned_on_is_needed_to_sign_in(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    client = console.signed_in("ada@example.org")
    started = post(client, "/account/totp", {"action": "start"})
    secret = re.search(r'name="secret" value="([A-Z2-7]+)"', started.text)
    assert secret
    wrong = post(
        client, "/account/totp", {"action": "confirm", "secret": secret[1], "code": "000000"}
    )
    assert wrong.status_code == 400
    code = pyotp.TOTP(secret[1]).at(console.clock())
    assert (
        post(
            client, "/account/totp", {"action": "confirm", "secret": secret[1], "code": code}
        ).status_code
        == 302
    )
    assert sign_in(console.client(), "ada@example.org").status_code == 401
    code = pyotp.TOTP(secret[1]).at(console.clock())
    assert sign_in(console.client(), "ada@example.org", code=code).status_code == 302
    assert ("ada@example.org", "turned on two-factor sign-in") in actions(console)


def test_after_signing_in_only_a_console_page_is_a_destination(console: ConsoleApp) -> None:
    console.person("ada@example.org", Role.EDITOR)
    for wanted, landing in (
        (f"{CONSOLE}/campaigns", f"{CONSOLE}/campaigns"),
        ("https://evil.example/", f"{CONSOLE}/"),
        (f"{CONSOLE}//evil.example/", f"{CONSOLE}/"),
    ):
        client = console.client()
        token = csrf_of(client, "/login")
        answer = client.post(
            f"{CONSOLE}/login",
            data={
                "csrf_token": token,
                "email": "ada@example.org",
                "password": PASSWORD,
                "next": wanted,
            },
        )
        assert answer.headers["Location"] == landing


def test_admins_manage_accounts_in_the_console_and_the_log_shows_it(console: ConsoleApp) -> None:
    console.person("root@example.org", Role.ADMIN)
    admin = console.signed_in("root@example.org")
    added = post(admin, "/staff", {"email": "ed@example.org", "role": "editor"}, page="/staff")
    link = re.search(r"https://www.example.org(/commentaries/console/password/[\w-]+)", added.text)
    assert link
    ed = console.newsletter.store.staff.named("ed@example.org")
    post(admin, f"/staff/{ed.id}/role", {"role": "publisher"}, page="/staff")
    assert console.newsletter.store.staff.named("ed@example.org").role == Role.PUBLISHER
    root = console.newsletter.store.staff.named("root@example.org")
    last = post(admin, f"/staff/{root.id}/role", {"role": "editor"}, page="/staff")
    assert last.status_code == 400 and "only admin" in last.text
    post(admin, f"/staff/{ed.id}/remove", page="/staff")
    assert console.newsletter.store.staff.find("ed@example.org") is None
    log = admin.get(f"{CONSOLE}/audit")
    for action in ("signed in", "added staff", "changed role", "removed staff"):
        assert action in log.text
    assert "127.0.0.1" in log.text
    assert 'aria-current="page">Audit log</a>' in log.text  # where you are, for screen readers


def test_staff_commands_add_list_role_reset_remove_and_log(run: Run, folder: Folder) -> None:
    added = run("staff", "add", "grace@example.org", "--role", "admin")
    assert added.exit_code == 0, added.output
    assert re.search(
        r"https://www.example.org/commentaries/console/password/[\w-]{43}\n", added.output
    )
    again = run("staff", "add", "GRACE@example.org", "--role", "editor")
    assert again.exit_code == 2 and "already has a staff account" in again.output
    bad = run("staff", "add", "not an address", "--role", "editor")
    assert bad.exit_code == 2 and "not a valid email address" in bad.output
    assert run("staff", "add", "ed@example.org", "--role", "editor").exit_code == 0
    listed = run("staff", "list")
    assert re.search(
        r"^grace@example.org\s+admin\s+waiting for the password link$", listed.output, re.M
    )
    assert run("staff", "role", "ed@example.org", "publisher").exit_code == 0
    only = run("staff", "role", "grace@example.org", "editor")
    assert only.exit_code == 2 and "only admin" in only.output
    reset = run("staff", "reset", "ed@example.org")
    assert reset.exit_code == 0 and "/password/" in reset.output
    assert run("staff", "remove", "ed@example.org", "--yes").exit_code == 0
    missing = run("staff", "remove", "ed@example.org", "--yes")
    assert missing.exit_code == 2 and "mailer staff list" in missing.output
    log = run("staff", "log").output.splitlines()
    assert [line.split("\t")[2] for line in log] == [
        "removed staff",
        "gave a password link",
        "changed role",
        "added staff",
        "added staff",
    ]
    assert all(line.split("\t")[1] == "command line" for line in log)


def test_accounts_sessions_failures_and_the_log_on_each_database(store) -> None:  # type: ignore[no-untyped-def]
    from mailer.console.accounts import Accounts

    clock = Clock()
    accounts = Accounts(store, "https://www.example.org/console/", clock)
    account, _ = accounts.add("Ada@Example.org", Role.EDITOR)
    accounts.set_password(account, PASSWORD)
    assert accounts.sign_in("ada@example.org", PASSWORD, "", "192.0.2.1").id == account.id
    store.staff_sessions.open(account, "a" * 64, clock(), "192.0.2.1", "test")
    assert store.staff_sessions.current("a" * 64, clock() - dt.timedelta(hours=1)) is not None
    assert store.staff_sessions.current("a" * 64, clock()) is None  # idle since then: ended
    assert store.staff_sessions.of(account) == []
    store.login_failures.add("ADA@example.org", "192.0.2.0/24", clock())
    assert store.login_failures.since(
        "ada@example.org", "192.0.2.0/24", clock() - dt.timedelta(minutes=1)
    ) == (1, 1)
    store.audit.record("ada@example.org", "signed in", "", "192.0.2.1", clock())
    (entry,) = store.audit.latest()
    assert (entry.actor, entry.action, entry.address, entry.at) == (
        "ada@example.org",
        "signed in",
        "192.0.2.1",
        clock(),
    )
    store.staff.remove(account)
    assert store.staff.all() == []


def test_the_wheel_carries_the_console_templates_and_htmx(wheel_files: set[str]) -> None:
    from mailer.console.access import blueprint
    from tests.conftest import REPOSITORY

    folder = REPOSITORY / "mailer" / "console"
    assert blueprint.template_folder == "templates"
    shipped = [
        str(path.relative_to(REPOSITORY))
        for path in sorted((folder / "templates").rglob("*.html"))
        + sorted((folder / "static").iterdir())
    ]
    assert len(shipped) > 15 and "mailer/console/static/htmx.LICENSE" in shipped
    assert [name for name in shipped if name not in wheel_files] == []


def test_the_readme_makes_the_first_admin_with_one_command(run: Run) -> None:
    from tests.conftest import REPOSITORY

    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- first-admin-command -->\n```sh\n(.+)\n```", readme)
    assert block
    first, serve = block[1].split(" && ")
    assert serve == ".venv/bin/mailer serve"
    words = first.split()
    assert words[:3] == [".venv/bin/mailer", "staff", "add"]
    made = run(*words[1:])
    assert made.exit_code == 0 and "/commentaries/console/password/" in made.output
    assert re.search(r"^you@example.org\s+admin\s", run("staff", "list").output, re.M)
