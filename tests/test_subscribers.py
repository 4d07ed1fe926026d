"""The subscriber store and the commands around it, on SQLite and on PostgreSQL.

Adding and merging people, their lifecycle with its history, removing and erasing them, exporting,
listing and counting them, lists, the signed links, the secret, and the schema's migrations.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, inspect, select, text

from mailer.cli import main
from mailer.core.addresses import AddressBook, Candidate, SuppressionHash
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.core.tokens import InvalidLink, Links, Purpose
from mailer.store import database
from mailer.store.database import Store
from mailer.store.schema import driver_time
from tests.conftest import POSTGRES_URL, SECRET, Folder, Run

SITE = "https://www.example.org/commentaries/"
HASHES = SuppressionHash(lambda: SECRET)


def show(run: Run, email: str) -> dict[str, Any]:
    result = run("subscribers", "show", email)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def changes(shown: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The changes of status in `show` output (from, to, reason), leaving out how they began."""
    return [(h["from"], h["to"], h["reason"]) for h in shown["history"] if h["from"] is not None]


def table(output: str) -> list[list[str]]:
    """A table printed by a command, as rows of cells (cells are separated by 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]


def stats(run: Run) -> dict[str, dict[str, int]]:
    """`mailer subscribers stats` as {list or 'all': {status or 'total': count}}."""
    result = run("subscribers", "stats")
    assert result.exit_code == 0, result.output
    header, *rows = table(result.stdout)
    columns = [c.lower() for c in header[1:]]
    return {
        row[0]: {c: int(n.replace(",", "")) for c, n in zip(columns, row[1:], strict=True)}
        for row in rows
    }


def rows_of(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


def everything_in(url: str) -> str:
    """Every value of every row of every table, as one text to search."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return "\n".join(
                repr(tuple(row))
                for each in metadata.tables.values()
                for row in connection.execute(select(each))
            )
    finally:
        engine.dispose()


def column(url: str, sql: str) -> list[Any]:
    """The first column of a query's rows."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def tables_and_columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        return {name: {c.name for c in each.columns} for name, each in metadata.tables.items()}
    finally:
        engine.dispose()


def person(store: Store, email: str, status: Status = Status.ACTIVE) -> int:
    """Add someone (active, or pending) as the subscription form would; returns their id."""
    address = AddressBook().normalise(email)
    store.subscribers.merge(
        [Candidate(email=address, name="", lists=frozenset({"commentaries"}))],
        status=Status.PENDING if status is Status.PENDING else Status.ACTIVE,
        reason=Reason.FORM,
    )
    found = store.subscribers.find(address)
    assert found is not None
    return found.id


# Adding ------------------------------------------------------------------------------------------


def test_add_with_name_lists_and_pending_status(db_folder: Folder, run: Run) -> None:
    result = run(
        "subscribers",
        "add",
        "Alice@Example.ORG",
        "--name",
        "Alice Rossi",
        "--list",
        "news",
        "--list",
        "briefings",
        "--status",
        "pending",
    )

    assert result.exit_code == 0, result.output
    alice = show(run, "alice@example.org")
    assert alice["email"] == "Alice@example.org"  # local part as given, domain lower-cased
    assert (alice["name"], alice["status"], alice["lists"]) == (
        "Alice Rossi",
        "pending",
        ["briefings", "news"],
    )
    assert [c["source"] for c in alice["consent"]] == ["staff"]
    assert changes(alice) == []


def test_add_without_a_list_joins_the_default_list_as_active(db_folder: Folder, run: Run) -> None:
    assert run("subscribers", "add", "  bob@example.org ").exit_code == 0
    bob = show(run, "bob@example.org")
    assert (bob["email"], bob["status"], bob["lists"]) == (
        "bob@example.org",
        "active",
        ["commentaries"],
    )


def test_adding_the_same_person_again_merges(db_folder: Folder, run: Run) -> None:
    run("subscribers", "add", "alice@example.org", "--list", "news")

    again = run("subscribers", "add", "ALICE@Example.org", "--name", "Alice", "--list", "briefings")
    unchanged = run("subscribers", "add", "alice@EXAMPLE.org", "--list", "news")

    assert again.exit_code == 0 and unchanged.exit_code == 0
    assert "nothing changed" in unchanged.output
    alice = show(run, "alice@example.org")
    assert (alice["email"], alice["name"], alice["lists"]) == (
        "alice@example.org",
        "Alice",
        ["briefings", "news"],
    )
    assert len(alice["consent"]) == 1 and changes(alice) == []
    assert stats(run)["all"]["total"] == 1


def test_an_address_is_one_person_whatever_its_case(store: Store) -> None:
    alice = person(store, "Alice@Example.ORG")
    anna = person(store, "anna@BÜCHER.example")

    for spelling in ("alice@example.org", "ALICE@EXAMPLE.ORG", "Alice@Example.ORG"):
        found = store.subscribers.find(spelling)
        assert found is not None and found.id == alice
        assert found.email == "Alice@example.org"
    for spelling in ("anna@bücher.example", "ANNA@BÜCHER.EXAMPLE", "anna@xn--bcher-kva.example"):
        person(store, spelling)
    found = store.subscribers.find("Anna@Bücher.Example")
    assert found is not None and found.id == anna and found.email == "anna@bücher.example"
    assert store.subscribers.counts()[0] == {"active": 2}


def test_addresses_differing_in_more_than_case_are_different_people(store: Store) -> None:
    """ß is not a capital letter of ss: these are two mailboxes, and two people."""
    strasse = person(store, "strasse@example.org")
    strasse_eszett = person(store, "straße@example.org")
    assert strasse != strasse_eszett
    assert store.subscribers.counts()[0] == {"active": 2}


@pytest.mark.parametrize("name", ["Eve\nBcc: all@example.org", "Eve\rX", "Eve\tX", "Eve\x00"])
def test_a_name_with_a_line_break_or_control_character_is_refused(
    db_folder: Folder, run: Run, name: str
) -> None:
    result = run("subscribers", "add", "eve@example.org", "--name", name)
    assert result.exit_code == 2
    assert "control character" in result.stderr or "line break" in result.stderr
    assert run("subscribers", "show", "eve@example.org").exit_code == 2


def test_a_name_may_hold_any_unicode(db_folder: Folder, run: Run) -> None:
    name = "Zoë Ångström-李 \U0001f600"
    assert run("subscribers", "add", "zoe@example.org", "--name", name).exit_code == 0
    assert show(run, "zoe@example.org")["name"] == name


@pytest.mark.parametrize("address", ["not-an-address", "a@b@example.org", "", "alice@"])
def test_an_invalid_address_is_refused(db_folder: Folder, run: Run, address: str) -> None:
    result = run("subscribers", "add", address)
    assert result.exit_code == 2
    assert result.stderr.startswith("mailer: ")
    assert "Traceback" not in result.output
    assert stats(run)["all"]["total"] == 0


def test_add_never_brings_back_who_left(db_folder: Folder, run: Run) -> None:
    run("subscribers", "add", "bob@example.org")
    run("subscribers", "remove", "bob@example.org")
    run("subscribers", "add", "eve@example.org")
    run("subscribers", "erase", "eve@example.org", "--yes")

    for address in ("Bob@example.org", "EVE@example.org"):
        result = run("subscribers", "add", address, "--list", "news")
        assert result.exit_code == 2
        assert "not added back" in result.stderr
    assert show(run, "bob@example.org")["status"] == "unsubscribed"
    assert run("subscribers", "show", "eve@example.org").exit_code == 2


# Lifecycle ---------------------------------------------------------------------------------------

ALLOWED = [
    (Status.PENDING, Status.ACTIVE),
    (Status.PENDING, Status.UNSUBSCRIBED),
    (Status.ACTIVE, Status.UNSUBSCRIBED),
    (Status.ACTIVE, Status.BOUNCED),
    (Status.ACTIVE, Status.COMPLAINED),
    (Status.UNSUBSCRIBED, Status.PENDING),
    (Status.BOUNCED, Status.PENDING),
    (Status.COMPLAINED, Status.UNSUBSCRIBED),
]
FORBIDDEN = [
    (Status.ACTIVE, Status.PENDING),
    (Status.UNSUBSCRIBED, Status.ACTIVE),
    (Status.BOUNCED, Status.ACTIVE),
    (Status.COMPLAINED, Status.ACTIVE),
    (Status.COMPLAINED, Status.PENDING),
]


def subscriber_with_status(store: Store, status: Status) -> int:
    """Someone brought to `status` by the allowed path from active (or added pending)."""
    subscriber_id = person(store, "someone@example.org", status)
    if status not in (Status.ACTIVE, Status.PENDING):
        assert store.subscribers.change_status(subscriber_id, status, Reason.STAFF, "setting up")
    return subscriber_id


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=lambda s: str(s))
def test_an_allowed_change_of_status_is_made_and_recorded(
    store: Store, old: Status, new: Status
) -> None:
    subscriber_id = subscriber_with_status(store, old)
    before = store.subscribers.history(subscriber_id)

    assert store.subscribers.change_status(subscriber_id, new, Reason.BOUNCE, "550 no such user")

    found = store.subscribers.get(subscriber_id)
    assert found is not None and found.status is new
    history = store.subscribers.history(subscriber_id)
    assert len(history) == len(before) + 1
    last = history[-1]
    assert (last.old_status, last.new_status, last.reason, last.detail) == (
        old.value,
        new.value,
        "bounce",
        "550 no such user",
    )
    assert last.at.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - last.at) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(("old", "new"), FORBIDDEN, ids=lambda s: str(s))
def test_a_forbidden_change_of_status_is_refused_and_changes_nothing(
    store: Store, old: Status, new: Status
) -> None:
    subscriber_id = subscriber_with_status(store, old)
    before = store.subscribers.history(subscriber_id)

    assert not store.subscribers.change_status(subscriber_id, new, Reason.STAFF)

    found = store.subscribers.get(subscriber_id)
    assert found is not None and found.status is old
    assert store.subscribers.history(subscriber_id) == before


def test_show_holds_everything_on_one_person(db_folder: Folder, run: Run, store: Store) -> None:
    run("subscribers", "add", "alice@example.org", "--name", "Alice", "--list", "news")
    run("subscribers", "remove", "alice@example.org")
    found = store.subscribers.find("alice@example.org")
    assert found is not None
    store.subscribers.change_status(found.id, Status.COMPLAINED, Reason.COMPLAINT, "feedback loop")

    alice = show(run, "ALICE@example.org")

    assert {"email", "name", "status", "lists", "consent", "history"} <= alice.keys()
    assert (alice["email"], alice["name"], alice["status"], alice["lists"]) == (
        "alice@example.org",
        "Alice",
        "complained",
        ["news"],
    )
    assert len(alice["consent"]) == 1 and alice["consent"][0]["source"] == "staff"
    assert changes(alice) == [
        ("active", "unsubscribed", "staff"),
        ("unsubscribed", "complained", "complaint"),
    ]
    assert alice["history"][-1]["detail"] == "feedback loop"
    assert all(dt.datetime.fromisoformat(h["at"]).tzinfo for h in alice["history"])


def test_show_of_an_unknown_address_exits_2(db_folder: Folder, run: Run) -> None:
    result = run("subscribers", "show", "nobody@example.org")
    assert result.exit_code == 2
    assert "nobody@example.org" in result.stderr


# Remove and erase --------------------------------------------------------------------------------


def test_remove_unsubscribes_and_keeps_the_record(db_folder: Folder, run: Run) -> None:
    run("subscribers", "add", "alice@example.org", "--name", "Alice", "--list", "news")

    result = run("subscribers", "remove", "Alice@Example.org")

    assert result.exit_code == 0, result.output
    alice = show(run, "alice@example.org")
    assert (alice["status"], alice["name"], alice["lists"]) == ("unsubscribed", "Alice", ["news"])
    assert changes(alice) == [("active", "unsubscribed", "staff")]
    again = run("subscribers", "remove", "alice@example.org")
    assert again.exit_code == 0
    assert changes(show(run, "alice@example.org")) == [("active", "unsubscribed", "staff")]


def test_erase_deletes_everything_and_keeps_only_a_hash(
    db_folder: Folder, database_url: str, run: Run
) -> None:
    run("subscribers", "add", "Alice@Example.org", "--name", "Alice Rossi", "--list", "news")
    run("subscribers", "remove", "alice@example.org")
    run("subscribers", "add", "bob@example.org", "--name", "Bob", "--list", "news")
    [alice_id] = column(database_url, "SELECT id FROM subscribers WHERE name = 'Alice Rossi'")

    result = run("subscribers", "erase", "ALICE@example.org", "--yes")

    assert result.exit_code == 0, result.output
    assert run("subscribers", "show", "alice@example.org").exit_code == 2
    assert len(column(database_url, "SELECT id FROM subscribers")) == 1
    for name, columns in tables_and_columns(database_url).items():
        if "subscriber_id" in columns:  # memberships, consent, history, deliveries...
            held = column(database_url, f"SELECT subscriber_id FROM {name}")
            assert alice_id not in held, f"{name} still holds rows of the erased subscriber"
    hashed = HASHES("alice@example.org")
    assert hashed != hashlib.sha256(b"alice@example.org").hexdigest()
    assert column(database_url, "SELECT email_hash FROM suppressions") == [hashed]
    content = everything_in(database_url).casefold()
    assert "alice" not in content and "rossi" not in content
    assert show(run, "bob@example.org")["lists"] == ["news"]


def test_erase_without_yes_off_a_terminal_asks_for_yes_and_erases_nothing(
    db_folder: Folder, run: Run
) -> None:
    run("subscribers", "add", "alice@example.org")

    result = run("subscribers", "erase", "alice@example.org")

    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert show(run, "alice@example.org")["status"] == "active"


SPELLINGS = [
    pytest.param("ALICE@example.org", "alice@example.org", id="case"),
    pytest.param("ANNA@BÜCHER.EXAMPLE", "anna@bücher.example", id="unicode-case"),
    pytest.param(" alice@example.org ", "alice@example.org", id="surrounding-spaces"),
    pytest.param("anna@xn--bcher-kva.example", "anna@bücher.example", id="punycode"),
]
"""Other spellings of a stored address, which the address is normalised from when stored."""


@pytest.mark.parametrize(("spelling", "stored"), SPELLINGS)
def test_show_and_remove_find_a_person_by_any_spelling_of_the_address(
    db_folder: Folder, run: Run, spelling: str, stored: str
) -> None:
    run("subscribers", "add", "alice@example.org")
    run("subscribers", "add", "anna@bücher.example")

    assert show(run, spelling)["email"] == stored
    assert run("subscribers", "remove", spelling).exit_code == 0
    assert show(run, stored)["status"] == "unsubscribed"


@pytest.mark.parametrize(("spelling", "stored"), SPELLINGS)
def test_erase_finds_a_person_by_any_spelling_of_the_address(
    db_folder: Folder, database_url: str, run: Run, spelling: str, stored: str
) -> None:
    run("subscribers", "add", "alice@example.org")
    run("subscribers", "add", "anna@bücher.example")

    assert run("subscribers", "erase", spelling, "--yes").exit_code == 0

    assert run("subscribers", "show", stored).exit_code == 2, f"{stored} was not erased"
    assert column(database_url, "SELECT email_hash FROM suppressions") == [HASHES(stored)]


def test_erasing_an_unknown_address_still_suppresses_it(db_folder: Folder, run: Run) -> None:
    result = run("subscribers", "erase", "ghost@example.org", "--yes")
    assert result.exit_code == 0
    assert run("subscribers", "add", "Ghost@example.org").exit_code == 2


# Export, list, stats -----------------------------------------------------------------------------


@pytest.fixture
def people(db_folder: Folder, run: Run, store: Store) -> None:
    """Four people on two lists, in four statuses."""
    run("subscribers", "add", "Alice@Example.org", "--name", 'Alice, "Al" Rossi', "--list", "news")
    run("subscribers", "add", "bob@example.org", "--name", "Bob", "--list", "news", "--list", "b")
    run("subscribers", "add", "carl@example.org", "--status", "pending", "--list", "b")
    run("subscribers", "add", "anna@bücher.example", "--name", "Anna Groß")
    run("subscribers", "remove", "bob@example.org")
    anna = store.subscribers.find("anna@bücher.example")
    assert anna is not None
    store.subscribers.change_status(anna.id, Status.BOUNCED, Reason.BOUNCE)


def test_export_writes_every_status_by_default(people: None, run: Run, tmp_path: Path) -> None:
    target = tmp_path / "all.csv"
    result = run("subscribers", "export", str(target))
    assert result.exit_code == 0, result.output
    rows = rows_of(target.read_text(encoding="utf-8"))
    assert {r["email"]: (r["name"], r["status"], r["lists"]) for r in rows} == {
        "Alice@example.org": ('Alice, "Al" Rossi', "active", "news"),
        "bob@example.org": ("Bob", "unsubscribed", "b;news"),
        "carl@example.org": ("", "pending", "b"),
        "anna@bücher.example": ("Anna Groß", "bounced", "commentaries"),
    }
    assert run("subscribers", "export").stdout == target.read_text(encoding="utf-8")


def test_export_narrowed_by_status_and_list(people: None, run: Run) -> None:
    def emails(*args: str) -> set[str]:
        result = run("subscribers", "export", *args)
        assert result.exit_code == 0, result.output
        return {r["email"] for r in rows_of(result.stdout)}

    assert emails("--status", "active") == {"Alice@example.org"}
    assert emails("--status", "unsubscribed", "--status", "bounced") == {
        "bob@example.org",
        "anna@bücher.example",
    }
    assert emails("--list", "b") == {"bob@example.org", "carl@example.org"}
    assert emails("--list", "news", "--status", "active") == {"Alice@example.org"}
    assert emails("--list", "nonexistent") == set()


@pytest.fixture
def other_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same kind as `database_url`."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_an_export_imports_back_into_an_empty_database_as_the_same_people(
    people: None,
    store: Store,
    db_folder: Folder,
    database_url: str,
    run: Run,
    other_database: str,
    tmp_path: Path,
) -> None:
    bob = store.subscribers.find("bob@example.org")
    alice = store.subscribers.find("alice@example.org")
    assert bob is not None and alice is not None
    now = dt.datetime.now(dt.UTC)
    store.subscribers.set_frequency(bob.id, "b", Frequency.WEEKLY, now)
    store.subscribers.set_frequency(alice.id, "news", Frequency.WEEKLY, now)
    exported = tmp_path / "export.csv"
    run("subscribers", "export", str(exported))
    frequencies = {r["email"]: r["frequency"] for r in rows_of(exported.read_text())}
    assert frequencies == {
        "Alice@example.org": "weekly",
        "bob@example.org": "weekly;immediate",  # b, news
        "carl@example.org": "immediate",
        "anna@bücher.example": "immediate",
    }
    other = Folder(tmp_path / "other")
    shutil.copytree(db_folder.path, other.path)
    other.configure(f'url = "{database_url}"', f'url = "{other_database}"')
    runner = CliRunner(env={"MAILER_SECRET": SECRET})

    imported = runner.invoke(
        main,
        [
            "--config",
            str(other.config_path),
            "subscribers",
            "import",
            str(exported),
            "--create-lists",
        ],
    )
    again = runner.invoke(main, ["--config", str(other.config_path), "subscribers", "export"])

    assert imported.exit_code == 0, imported.output
    fields = ("email", "name", "status", "lists", "language", "frequency")
    people_before = {tuple(r[f] for f in fields) for r in rows_of(exported.read_text())}
    people_after = {tuple(r[f] for f in fields) for r in rows_of(again.stdout)}
    assert people_after == people_before


FORMULAS = [
    ("=eq@example.org", '=HYPERLINK("http://evil.example","open")', "=sums"),
    ("+plus@example.org", "+Ada", "+list"),
    ("-dash@example.org", "-Bob", "-drafts"),
    ("at@example.org", "@Carol", "@team"),
    ("quote@example.org", "'=Dan", "news"),
    ("quotes@example.org", "''Eve", "news"),
    ("tis@example.org", "'Tis Fay", "news"),
]
"""Names, addresses and lists a spreadsheet would run as a formula, and names already beginning
with the quote that neutralises them."""


def test_an_export_neutralises_formulas_and_imports_back_as_the_same_people(
    db_folder: Folder, run: Run, other_database: str, database_url: str, tmp_path: Path
) -> None:
    for email, name, list_name in FORMULAS:
        added = run("subscribers", "add", f"--name={name}", f"--list={list_name}", "--", email)
        assert added.exit_code == 0, added.output
    exported = tmp_path / "export.csv"

    assert run("subscribers", "export", str(exported)).exit_code == 0

    rows = list(csv.reader(io.StringIO(exported.read_text(encoding="utf-8"))))[1:]
    for cell in (cell for row in rows for cell in row):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    other = Folder(tmp_path / "other")
    shutil.copytree(db_folder.path, other.path)
    other.configure(f'url = "{database_url}"', f'url = "{other_database}"')
    runner = CliRunner(env={"MAILER_SECRET": SECRET})
    imported = runner.invoke(
        main,
        [
            "--config",
            str(other.config_path),
            "subscribers",
            "import",
            str(exported),
            "--create-lists",
        ],
    )
    assert imported.exit_code == 0, imported.output
    again = runner.invoke(main, ["--config", str(other.config_path), "subscribers", "list"])
    shown = {tuple(row[:2]) for row in table(again.stdout)[1:]}
    assert shown == {(email, name) for email, name, _ in FORMULAS}
    for email, name, list_name in FORMULAS:
        person = json.loads(
            runner.invoke(
                main, ["--config", str(other.config_path), "subscribers", "show", "--", email]
            ).stdout
        )
        assert (person["email"], person["name"], person["lists"]) == (email, name, [list_name])


def test_list_shows_a_table_with_filters(people: None, run: Run) -> None:
    result = run("subscribers", "list")
    assert result.exit_code == 0, result.output
    header, *rows = table(result.stdout)
    assert header == ["EMAIL", "NAME", "STATUS", "LISTS", "SINCE"]
    assert {row[0] for row in rows} == {
        "Alice@example.org",
        "bob@example.org",
        "carl@example.org",
        "anna@bücher.example",
    }
    bob = next(row for row in rows if row[0] == "bob@example.org")
    assert bob[1:4] == ["Bob", "unsubscribed", "b, news"]

    def listed(*args: str) -> set[str]:
        found = run("subscribers", "list", *args)
        assert found.exit_code == 0, found.output
        return {row[0] for row in table(found.stdout)[1:]}

    assert listed("--status", "pending") == {"carl@example.org"}
    assert listed("--list", "news") == {"Alice@example.org", "bob@example.org"}
    assert listed("--search", "EXAMPLE.ORG", "--status", "active") == {"Alice@example.org"}
    assert listed("--search", "bücher") == {"anna@bücher.example"}
    assert listed("--search", "%") == set()
    assert "No subscribers match" in run("subscribers", "list", "--search", "zzz").stdout
    assert len(table(run("subscribers", "list", "--limit", "2").stdout)) == 3


def test_stats_counts_by_status_and_list(people: None, run: Run) -> None:
    counts = stats(run)
    assert counts["all"] == {
        "pending": 1,
        "active": 1,
        "unsubscribed": 1,
        "bounced": 1,
        "complained": 0,
        "total": 4,
    }
    assert counts["news"] == {
        "pending": 0,
        "active": 1,
        "unsubscribed": 1,
        "bounced": 0,
        "complained": 0,
        "total": 2,
    }
    assert (counts["b"]["pending"], counts["b"]["unsubscribed"], counts["b"]["total"]) == (1, 1, 2)
    assert (counts["commentaries"]["bounced"], counts["commentaries"]["total"]) == (1, 1)


# Lists -------------------------------------------------------------------------------------------


def test_lists_create_show_and_rename(db_folder: Folder, run: Run) -> None:
    assert "no lists yet" in run("lists").stdout
    assert run("lists", "create", "briefings").exit_code == 0
    run("subscribers", "add", "alice@example.org", "--list", "briefings")
    run("subscribers", "add", "bob@example.org", "--list", "briefings")
    run("subscribers", "remove", "bob@example.org")

    rows = table(run("lists").stdout)
    assert rows[0][:3] == ["LIST", "ACTIVE", "TOTAL"]
    assert rows[1][:3] == ["briefings", "1", "2"]

    renamed = run("lists", "rename", "briefings", "policy briefings")
    assert renamed.exit_code == 0, renamed.output
    assert show(run, "alice@example.org")["lists"] == ["policy briefings"]
    assert show(run, "bob@example.org")["lists"] == ["policy briefings"]
    assert [row[:3] for row in table(run("lists", "show").stdout)[1:]] == [
        ["policy briefings", "1", "2"]
    ]


def test_a_list_name_already_taken_is_refused(db_folder: Folder, run: Run) -> None:
    run("lists", "create", "news")
    run("lists", "create", "briefings")
    run("subscribers", "add", "alice@example.org", "--list", "news")

    for args in (
        ("lists", "create", "news"),
        ("lists", "create", " news "),
        ("lists", "rename", "briefings", "news"),
        ("lists", "rename", "nonexistent", "other"),
        ("lists", "create", "a;b"),
        ("lists", "create", ""),
    ):
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("mailer: "), args
    assert sorted(row[0] for row in table(run("lists").stdout)[1:]) == ["briefings", "news"]
    assert show(run, "alice@example.org")["lists"] == ["news"]


# Links -------------------------------------------------------------------------------------------


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


LINK_SECRET = "0123456789abcdef0123456789abcdef"
JOINED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_link_token_names_its_subscriber_for_its_purpose() -> None:
    links = Links(SITE, SECRET)
    for purpose in Purpose:
        url = links.url(purpose, 4217, LINK_SECRET)
        assert url.startswith(f"{SITE}{purpose.value}/")
        link = links.read(purpose, token_of(url))
        assert link.subscriber_id == 4217
        assert links.names(link, LINK_SECRET, JOINED)
        assert not links.names(link, LINK_SECRET.replace("0", "1"), JOINED)


def older_form(subscriber_id: int, day: int) -> str:
    """An unsubscribe token as mailer made them before links were bound to their person."""
    key = hashlib.sha256(f"mailer-unsubscribe\0{SECRET}".encode()).digest()
    signed = f"{subscriber_id:x}.{day:x}"
    mac = hashlib.blake2s(signed.encode(), key=key, digest_size=16).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_an_unsubscribe_link_of_the_older_form_names_only_someone_who_came_in_before_it() -> None:
    links = Links(SITE, SECRET)
    day = int(dt.datetime.now(dt.UTC).timestamp()) // 86_400 - 30
    link = links.read(Purpose.UNSUBSCRIBE, older_form(7, day))
    made = dt.datetime.fromtimestamp(day * 86_400, dt.UTC)

    assert link.subscriber_id == 7
    assert links.names(link, LINK_SECRET, made - dt.timedelta(days=200))
    assert not links.names(link, LINK_SECRET, made + dt.timedelta(hours=1))
    assert not links.names(link, LINK_SECRET, made + dt.timedelta(days=3))
    for other in (Purpose.CONFIRM, Purpose.PREFERENCES):  # they never had the older form
        with pytest.raises(InvalidLink):
            links.read(other, older_form(7, day))


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    links = Links(SITE, SECRET)
    token = token_of(links.url(Purpose.UNSUBSCRIBE, 7, LINK_SECRET))
    for other in (Purpose.CONFIRM, Purpose.PREFERENCES):
        with pytest.raises(InvalidLink) as refused:
            links.read(other, token)
        assert not refused.value.expired


def altered(text: str) -> str:
    """Every character of `text` replaced by another one of the same kind."""
    return "".join(
        str((int(c) + 1) % 10) if c.isdigit() else ("b" if c == "a" else "a") if c.isalpha() else c
        for c in text
    )


def with_part(token: str, index: int, change: Any) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda t: with_part(t, -1, lambda p: altered(p[:6]) + p[6:]), id="signature"),
        pytest.param(lambda t: with_part(t, -1, lambda p: p[:-4]), id="signature-truncated"),
        pytest.param(lambda t: with_part(t, 0, altered), id="subscriber-part"),
        pytest.param(lambda t: with_part(t, 1, altered), id="time-part"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="signature-removed"),
        pytest.param(lambda t: t + "a", id="longer"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "not a token at all", id="garbage"),
    ],
)
def test_a_changed_token_is_refused(alter: Any) -> None:
    links = Links(SITE, SECRET)
    token = links.token(Purpose.UNSUBSCRIBE, 7, LINK_SECRET)
    assert links.read(Purpose.UNSUBSCRIBE, token).subscriber_id == 7
    forged = alter(token)
    assert forged != token
    with pytest.raises(InvalidLink) as refused:
        links.read(Purpose.UNSUBSCRIBE, forged)
    assert not refused.value.expired


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = Links(SITE, "another-secret-0123456789abcdef").token(
        Purpose.UNSUBSCRIBE, 7, LINK_SECRET
    )
    with pytest.raises(InvalidLink):
        Links(SITE, SECRET).read(Purpose.UNSUBSCRIBE, forged)


def signed_ago(purpose: Purpose, days: float) -> str:
    """A token made `days` ago, by a mailer whose clock said so."""
    then = dt.datetime.now(dt.UTC).timestamp() - days * 86_400
    return Links(SITE, SECRET, clock=lambda: then).token(purpose, 7, LINK_SECRET)


def test_an_expired_token_is_refused_as_expired() -> None:
    links = Links(SITE, SECRET)
    with pytest.raises(InvalidLink) as refused:
        links.read(Purpose.CONFIRM, signed_ago(Purpose.CONFIRM, 9))
    assert refused.value.expired
    assert links.read(Purpose.CONFIRM, signed_ago(Purpose.CONFIRM, 3)).subscriber_id == 7
    # An unsubscribe link in an issue read months later still works; not years later.
    assert links.read(Purpose.UNSUBSCRIBE, signed_ago(Purpose.UNSUBSCRIBE, 180)).subscriber_id == 7
    with pytest.raises(InvalidLink) as refused:
        links.read(Purpose.UNSUBSCRIBE, signed_ago(Purpose.UNSUBSCRIBE, 3 * 365))
    assert refused.value.expired


def test_a_token_never_holds_the_address(store: Store) -> None:
    subscriber_id = person(store, "alice.rossi@mail.example.org")
    alice = store.subscribers.get(subscriber_id)
    assert alice is not None
    links = Links(SITE, SECRET)
    for purpose in Purpose:
        token = token_of(links.url(purpose, subscriber_id, alice.link_secret))
        for piece in ("alice", "rossi", "mail.example", "example.org"):
            assert piece not in token.casefold()
            encoded = base64.urlsafe_b64encode(piece.encode()).decode().rstrip("=")
            assert encoded[:-1] not in token
        assert links.read(purpose, token).subscriber_id == subscriber_id


# The secret --------------------------------------------------------------------------------------


def test_check_refuses_a_missing_secret(
    folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILER_SECRET")
    result = run("check")
    assert result.exit_code == 2
    assert "MAILER_SECRET" in result.stderr
    assert "newsletter.secret" in result.stderr


@pytest.mark.parametrize("secret", ["secret", "changeme", "Secret ", "short-but-random"[:12]])
def test_check_refuses_a_weak_secret(
    folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("MAILER_SECRET", secret)
    result = run("check")
    assert result.exit_code == 2
    assert "newsletter.secret" in result.stderr


def test_check_accepts_a_strong_secret(folder: Folder, run: Run) -> None:
    result = run("check")
    assert result.exit_code == 0, result.output


# Migrations --------------------------------------------------------------------------------------


def test_a_new_database_gets_the_schema_on_first_use(
    db_folder: Folder, database_url: str, run: Run
) -> None:
    assert run("subscribers", "stats").exit_code == 0
    tables = set(inspect(create_engine(database_url)).get_table_names())
    assert {"subscribers", "lists", "memberships", "suppressions", "alembic_version"} <= tables
    status = run("db", "status")
    assert status.exit_code == 0
    assert "current" in status.stdout and "needs" not in status.stdout


def test_db_upgrade_makes_a_new_database_and_then_has_nothing_to_do(
    db_folder: Folder, database_url: str, run: Run
) -> None:
    before = run("db", "status")
    assert "needs `mailer db upgrade`" in before.stdout

    first = run("db", "upgrade")
    second = run("db", "upgrade")

    assert first.exit_code == 0 and "Migrated" in first.stdout
    assert second.exit_code == 0 and "nothing to do" in second.stdout
    assert "current" in run("db", "status").stdout
    assert run("subscribers", "add", "alice@example.org").exit_code == 0


def make_database(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


@pytest.mark.parametrize(
    "statements, advice",
    [
        pytest.param(
            (
                "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
                "INSERT INTO alembic_version VALUES ('old')",
            ),
            "made or migrated by a newer mailer",
            id="unknown-revision",
        ),
        pytest.param(
            ("CREATE TABLE people (email TEXT)",),
            "mailer db upgrade",
            id="tables-mailer-did-not-make",
        ),
    ],
)
def test_a_database_mailer_did_not_make_is_left_alone_until_db_upgrade(
    db_folder: Folder, database_url: str, run: Run, statements: tuple[str, ...], advice: str
) -> None:
    make_database(database_url, *statements)

    for args in (("subscribers", "list"), ("subscribers", "add", "alice@example.org")):
        result = run(*args)
        assert result.exit_code == 2, args
        assert advice in result.stderr
    assert "subscribers" not in inspect(create_engine(database_url)).get_table_names()
    assert "needs `mailer db upgrade`" in run("db", "status").stdout


def test_db_upgrade_of_a_database_from_an_unknown_mailer_exits_2_with_a_message(
    db_folder: Folder, database_url: str
) -> None:
    make_database(
        database_url,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('old')",
    )
    runner = CliRunner()

    result = runner.invoke(main, ["--config", str(db_folder.config_path), "db", "upgrade"])

    assert result.exit_code == 2, f"{result.output}{result.exception!r}"
    assert "old" in result.stderr


def database_at_0002(url: str) -> None:
    """A database as mailer made it at revision 0002: three people on a list, one campaign's
    send log, their history, and an address erased then (its hash unkeyed); the newest person
    erased too, so that SQLite had freed the highest id."""
    engine = database.open_engine(url)
    with engine.begin() as connection:
        command.upgrade(database._alembic(connection), "0002")
        now = driver_time(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), connection.dialect.name)
        statements = [
            "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', :now)",
            *(
                "INSERT INTO subscribers (id, email, email_key, name, status, source, "
                f"source_detail, source_ip, created_at, updated_at) VALUES ({n}, "
                f"'p{n}@example.org', 'p{n}@example.org', 'P{n}', 'active', 'import', '', '', "
                ":now, :now)"
                for n in (1, 2, 3)
            ),
            *(
                "INSERT INTO memberships (subscriber_id, list_id, created_at) "
                f"VALUES ({n}, 1, :now)"
                for n in (1, 2, 3)
            ),
            "INSERT INTO campaigns (id, issue, list_id, subject, status, status_detail, "
            "recipients, created_at) VALUES (1, 'stalemate', 1, 'S', 'done', '', 2, :now)",
            *(
                "INSERT INTO deliveries (campaign_id, subscriber_id, state, attempts, updated_at) "
                f"VALUES (1, {n}, 'sent', 1, :now)"
                for n in (1, 2)
            ),
            "INSERT INTO history (subscriber_id, at, old_status, new_status, reason, detail, ip) "
            "VALUES (2, :now, 'pending', 'active', 'confirmation', '', '')",
            "INSERT INTO suppressions (email_hash, reason, at) VALUES (:ghost, 'erased', :now)",
            "DELETE FROM subscribers WHERE id = 3",
        ]
        ghost = hashlib.sha256(b"ghost@example.org").hexdigest()
        if connection.dialect.name == "postgresql":  # as mailer's own inserts would have left them
            statements += [
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})"
                for table, last in (("lists", 1), ("subscribers", 3), ("campaigns", 1))
            ]
        for statement in statements:
            connection.execute(text(statement), {"now": now, "ghost": ghost})
    engine.dispose()


def test_db_upgrade_from_0002_keeps_everyone_binds_their_links_and_never_reuses_an_id(
    db_folder: Folder, database_url: str, run: Run
) -> None:
    database_at_0002(database_url)
    assert "needs `mailer db upgrade`" in run("db", "status").stdout

    result = run("db", "upgrade")

    assert result.exit_code == 0, result.output
    assert column(database_url, "SELECT id FROM subscribers ORDER BY id") == [1, 2]
    assert len(column(database_url, "SELECT list_id FROM memberships")) == 2
    assert len(column(database_url, "SELECT state FROM deliveries")) == 2
    assert column(database_url, "SELECT subscriber_id FROM history") == [2]
    assert show(run, "p1@example.org")["lists"] == ["news"]
    secrets = column(database_url, "SELECT link_secret FROM subscribers")
    assert len(set(secrets)) == 2 and all(re.fullmatch("[0-9a-f]{32}", s) for s in secrets)
    # The address erased before the upgrade stays out, by its unkeyed hash.
    assert run("subscribers", "add", "Ghost@example.org").exit_code == 2
    # From now on an id once given is never given again, even when its holder is erased.
    assert run("subscribers", "add", "new@example.org").exit_code == 0
    [new_id] = column(database_url, "SELECT id FROM subscribers WHERE name = ''")
    assert run("subscribers", "erase", "new@example.org", "--yes").exit_code == 0
    assert run("subscribers", "add", "newer@example.org").exit_code == 0
    assert column(database_url, "SELECT id FROM subscribers WHERE name = ''") == [new_id + 1]


def test_the_database_and_the_outbox_messages_are_readable_by_their_owner_alone(
    folder: Folder, run: Run
) -> None:
    folder.configure(
        'url = "sqlite:///subscribers/mailer.db"', 'url = "sqlite:///private/mailer.db"'
    )
    previous = os.umask(0o022)  # what most systems give: files world-readable unless said
    try:
        assert run("subscribers", "add", "alice@example.org").exit_code == 0
        assert run("send", "--yes").exit_code == 0
        database = folder.path / "private" / "mailer.db"
        with sqlite3.connect(database) as connection:  # a reader keeps -wal and -shm there
            connection.execute("SELECT count(*) FROM subscribers").fetchone()
            files = [database, *(database.with_name(f"mailer.db-{end}") for end in ("wal", "shm"))]
            messages = sorted((folder.path / "outbox").glob("*.eml"))
            assert messages and all(path.exists() for path in files)
            for path in [*files, *messages]:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        for path in (database.parent, folder.path / "outbox"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path.name
    finally:
        os.umask(previous)
