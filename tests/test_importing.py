"""CSV import of subscribers, as staff run it, on SQLite and on PostgreSQL.

Every rejected row is reported as FILE:LINE: reason and the rest go in; a file that cannot be used
imports nothing; importing the same file twice changes nothing; nobody who left comes back.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import MetaData, create_engine, func, select

from mailer.core.lifecycle import Reason, Status
from mailer.store.database import Store
from mailer.store.importing.reader import BATCH
from mailer.store.importing.writer import import_csv
from mailer.store.schema import subscribers as subscribers_table
from tests.conftest import SECRET, Folder, Run

# The "done when" file. Line numbers matter: the rejections name them.
DONE_WHEN_CSV = (
    "email,name,lists\n"  # 1
    "Alice@Example.ORG,Alice Rossi,news\n"  # 2
    "anna@BÜCHER.example,Anna Weber,\n"  # 3
    "\n"  # 4: a blank line is no row at all
    ",Nobody,news\n"  # 5: blank address
    "not-an-address,Mallory,\n"  # 6: invalid
    '"carl@example.org","Carl\n'  # 7: a name holding a line break...
    'Second Line",news\n'  # 8: ...ends here, but the record starts on line 7
    "  dora@example.org  ,  Dora Bianchi  ,  briefings  \n"  # 9: surrounding spaces
    "alice@example.org,,briefings\n"  # 10: Alice again, lower case, another list
    "bob@example.org,Bob Again,news\n"  # 11: unsubscribed earlier
    "anna@bücher.example,,\n"  # 12: Anna again
    "@example.org,Nobody Either,\n"  # 13: invalid
)


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def summary(result: Result) -> dict[str, int]:
    """The counts of the summary line: added, updated, unchanged, rejected."""
    found = re.search(
        r"([\d,]+) added, ([\d,]+) updated, ([\d,]+) unchanged, ([\d,]+) rejected", result.output
    )
    assert found, f"no summary in:\n{result.output}"
    numbers = [int(n.replace(",", "")) for n in found.groups()]
    return dict(zip(("added", "updated", "unchanged", "rejected"), numbers, strict=True))


def rejections(result: Result, path: Path) -> dict[int, str]:
    """The rejected rows reported as FILE:LINE: reason, by line."""
    prefix = re.escape(str(path))
    return {int(m[1]): m[2] for m in re.finditer(rf"^{prefix}:(\d+): (.*)$", result.stderr, re.M)}


def show(run: Run, email: str) -> dict[str, Any]:
    result = run("subscribers", "show", email)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: the whole content of the database."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def subscriber_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(subscribers_table)) or 0)
    finally:
        engine.dispose()


# The "done when" -------------------------------------------------------------------------


def test_the_done_when_file_imports_exactly_as_described(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    assert run("subscribers", "add", "bob@example.org", "--name", "Bob").exit_code == 0
    assert run("subscribers", "remove", "bob@example.org").exit_code == 0
    path = write(tmp_path / "people.csv", DONE_WHEN_CSV)

    result = run("subscribers", "import", str(path), "--create-lists")

    assert result.exit_code == 1, result.output
    # Ten rows (the blank line is none): Alice, Anna and Dora are new; the second Alice and the
    # second Anna merge into them; Bob is kept out; four rows are rejected.
    assert summary(result) == {"added": 3, "updated": 0, "unchanged": 2, "rejected": 4}
    rejected = rejections(result, path)
    assert sorted(rejected) == [5, 6, 7, 13]
    assert "empty" in rejected[5]
    assert "not-an-address" in rejected[6]
    assert "line break" in rejected[7]
    assert re.search(r"\b1 address(es)? kept out", result.stdout), result.stdout
    created = next(line for line in result.stdout.splitlines() if line.startswith("Created"))
    assert "briefings" in created and "news" in created

    alice = show(run, "alice@example.org")
    assert alice["email"] == "Alice@example.org"  # the local part as given, the domain lower-cased
    assert alice["name"] == "Alice Rossi"  # a later row with no name does not blank it
    assert alice["status"] == "active"
    assert alice["lists"] == ["briefings", "news"]  # the union of both rows' lists
    anna = show(run, "ANNA@BÜCHER.EXAMPLE")
    assert anna["email"] == "anna@bücher.example"
    assert anna["lists"] == ["commentaries"]  # no list named: the default list
    dora = show(run, "dora@example.org")
    assert (dora["email"], dora["name"], dora["lists"]) == (
        "dora@example.org",
        "Dora Bianchi",
        ["briefings"],
    )
    bob = show(run, "bob@example.org")
    assert (bob["status"], bob["name"], bob["lists"]) == ("unsubscribed", "Bob", ["commentaries"])
    assert run("subscribers", "show", "carl@example.org").exit_code == 2
    assert run("subscribers", "show", "not-an-address").exit_code == 2


def test_the_done_when_file_through_the_installed_command(
    db_folder: Folder, tmp_path: Path
) -> None:
    """The same file through the console script of the installed package, as staff run it."""
    mailer = Path(sys.executable).parent / "mailer"
    env = {**os.environ, "MAILER_SECRET": SECRET}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(mailer), "--config", str(db_folder.config_path), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    assert command("subscribers", "add", "bob@example.org").returncode == 0
    assert command("subscribers", "remove", "bob@example.org").returncode == 0
    path = write(tmp_path / "people.csv", DONE_WHEN_CSV)

    done = command("subscribers", "import", str(path), "--create-lists")

    assert done.returncode == 1, done.stderr
    assert "10 rows: 3 added, 0 updated, 2 unchanged, 4 rejected." in done.stdout
    assert "1 address kept out" in done.stdout
    for line in (5, 6, 7, 13):
        assert f"{path}:{line}: " in done.stderr
    shown = json.loads(command("subscribers", "show", "ALICE@example.org").stdout)
    assert (shown["status"], shown["lists"]) == ("active", ["briefings", "news"])
    bob = json.loads(command("subscribers", "show", "bob@example.org").stdout)
    assert bob["status"] == "unsubscribed"


def test_a_line_break_in_a_name_is_reported_on_the_first_line_of_its_record(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "multi.csv",
        'email,name\nok@example.org,Ok\n"eve@example.org","Eve\nBcc: x@example.org\nthird"\n'
        "after@example.org,After\n",
    )
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert list(rejections(result, path)) == [3]
    assert summary(result)["added"] == 2
    assert show(run, "after@example.org")["name"] == "After"


def test_importing_the_same_file_again_changes_nothing(
    db_folder: Folder, database_url: str, run: Run, tmp_path: Path
) -> None:
    run("subscribers", "add", "bob@example.org")
    run("subscribers", "remove", "bob@example.org")
    path = write(tmp_path / "people.csv", DONE_WHEN_CSV)
    run("subscribers", "import", str(path), "--create-lists")
    before = dump(database_url)
    exported_before = run("subscribers", "export").stdout

    again = run("subscribers", "import", str(path), "--create-lists")

    assert summary(again) == {"added": 0, "updated": 0, "unchanged": 5, "rejected": 4}
    assert "Created" not in again.stdout
    assert dump(database_url) == before
    assert run("subscribers", "export").stdout == exported_before


def test_importing_again_changes_nothing_when_a_person_is_far_apart_in_the_file(
    db_folder: Folder, database_url: str, run: Run, tmp_path: Path
) -> None:
    """The same person near the start and near the end of a long file, named differently: an
    import fills an empty name but never renames, so the first name given stays."""
    rows = [
        "email,name,lists",
        "alice@example.org,Alice,news",
        *(f"p{i}@example.org,P {i}," for i in range(BATCH + 10)),
        "alice@example.org,Alice Rossi,",
    ]
    path = write(tmp_path / "long.csv", "\n".join(rows) + "\n")
    first = run("subscribers", "import", str(path), "--create-lists")
    assert first.exit_code == 0, first.output
    assert show(run, "alice@example.org")["name"] == "Alice"
    before = dump(database_url)

    again = run("subscribers", "import", str(path), "--create-lists")

    assert summary(again)["added"] == 0
    assert summary(again)["updated"] == 0
    assert dump(database_url) == before


# Nobody who left comes back ----------------------------------------------------------------------


def test_an_import_never_brings_back_who_left_or_was_erased(
    db_folder: Folder, run: Run, store: Store, tmp_path: Path
) -> None:
    """`store` is the database the command line uses: it sets up what no command does."""
    for who in ("unsub", "bounced", "complained", "erased", "stays"):
        assert run("subscribers", "add", f"{who}@example.org", "--name", who).exit_code == 0
    run("subscribers", "remove", "unsub@example.org")
    subscribers = store.subscribers
    for who, status, reason in (
        ("bounced", Status.BOUNCED, Reason.BOUNCE),
        ("complained", Status.COMPLAINED, Reason.COMPLAINT),
    ):
        found = subscribers.find(f"{who}@example.org")
        assert found is not None
        assert subscribers.change_status(found.id, status, reason)
    assert run("subscribers", "erase", "erased@example.org", "--yes").exit_code == 0
    path = write(
        tmp_path / "old-export.csv",
        "email,name,lists\n"
        "UNSUB@example.org,New Name,news\n"
        "Bounced@Example.org,New Name,news\n"
        "complained@EXAMPLE.ORG,New Name,news\n"
        "Erased@example.org,New Name,news\n"
        "stays@example.org,,\n",
    )

    result = run("subscribers", "import", str(path), "--create-lists")

    assert result.exit_code == 0, result.output
    assert summary(result) == {"added": 0, "updated": 0, "unchanged": 1, "rejected": 0}
    assert re.search(r"\b4 addresses kept out", result.stdout), result.stdout
    for who, expected in (
        ("unsub", "unsubscribed"),
        ("bounced", "bounced"),
        ("complained", "complained"),
    ):
        person = show(run, f"{who}@example.org")
        assert (person["status"], person["name"], person["lists"]) == (
            expected,
            who,
            ["commentaries"],
        )
    assert run("subscribers", "show", "erased@example.org").exit_code == 2
    assert subscribers.find("erased@example.org") is None


# Lists -------------------------------------------------------------------------------------------


def test_lists_named_in_the_file_are_created_and_the_summary_says_so(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    run("lists", "create", "news")
    path = write(
        tmp_path / "lists.csv",
        "email,name,lists\n"
        "alice@example.org,Alice,news;briefings\n"
        "bob@example.org,Bob, policy papers ; news\n"
        "carl@example.org,Carl,\n",
    )

    result = run("subscribers", "import", str(path), "--create-lists")

    assert result.exit_code == 0, result.output
    # news existed; Carl names no list, so he joins the default list, made now too.
    assert "Created 3 lists: briefings, commentaries, policy papers." in result.stdout
    assert show(run, "alice@example.org")["lists"] == ["briefings", "news"]
    assert show(run, "bob@example.org")["lists"] == ["news", "policy papers"]
    assert show(run, "carl@example.org")["lists"] == ["commentaries"]
    listed = run("lists").stdout
    for name in ("briefings", "commentaries", "news", "policy papers"):
        assert name in listed


def test_list_option_adds_every_row_to_that_list(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "lists.csv",
        "email,name,lists\nalice@example.org,Alice,news\nbob@example.org,Bob,\n",
    )

    result = run("subscribers", "import", str(path), "--list", "partners", "--create-lists")

    assert result.exit_code == 0, result.output
    assert "partners" in next(line for line in result.stdout.splitlines() if "Created" in line)
    assert show(run, "alice@example.org")["lists"] == ["news", "partners"]
    assert show(run, "bob@example.org")["lists"] == ["partners"]


def test_a_file_with_only_an_email_column_puts_everybody_on_the_default_list(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path / "plain.csv", "Email\r\nalice@example.org\r\nbob@example.org\r\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert summary(result)["added"] == 2
    assert show(run, "bob@example.org")["lists"] == ["commentaries"]


# Files that cannot be used -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"name,address\nAlice,alice@example.org\n", id="no-email-column"),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x08\x06\x00\x00\x00\x1f\xf3",
            id="binary",
        ),
        pytest.param(gzip.compress(b"email\nalice@example.org\n"), id="gzip"),
        pytest.param(b"\x00email\x00\nalice@example.org\n", id="nul-bytes"),
        pytest.param("email,name\nalice@example.org,Alice\n".encode("utf-16"), id="utf-16"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_file_that_cannot_be_used_exits_2_and_imports_nothing(
    db_folder: Folder, database_url: str, run: Run, tmp_path: Path, content: bytes
) -> None:
    path = write(tmp_path / "people.csv", content)

    result = run("subscribers", "import", str(path))

    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr
    assert "Traceback" not in result.output
    assert subscriber_count(database_url) == 0


def test_a_broken_record_deep_in_a_large_file_never_leaves_half_an_import(
    db_folder: Folder, database_url: str, run: Run, tmp_path: Path
) -> None:
    """Either the file is refused whole (exit 2, nothing in) or that row alone (exit 1)."""
    good = BATCH + 10
    broken_line = good + 2
    path = tmp_path / "broken.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("email,name\n")
        stream.writelines(f"p{i}@example.org,P {i}\n" for i in range(good))
        stream.write(f"huge@example.org,{'x' * (2 << 20)}\n")  # a field larger than any name
        stream.writelines(f"q{i}@example.org,Q {i}\n" for i in range(10))

    result = run("subscribers", "import", str(path))

    assert result.exit_code in (1, 2), result.output
    assert f"{path}:{broken_line}:" in result.stderr
    if result.exit_code == 2:
        assert subscriber_count(database_url) == 0
    else:
        assert subscriber_count(database_url) == good + 10


def test_a_row_that_is_not_utf8_is_rejected_with_its_line_and_the_rest_imported(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    """Told the file is UTF-8, a row that is not is rejected (undetected, the file would be
    read as Windows-1252, Carl's UTF-8 name garbled)."""
    path = write(
        tmp_path / "mixed.csv",
        b"email,name\nalice@example.org,Alice\n"
        + b"rene@example.org,Ren\xe9\n"
        + "carl@example.org,Carl Gro\u00df\n".encode(),
    )

    result = run("subscribers", "import", str(path), "--encoding", "utf-8")

    assert result.exit_code == 1
    assert list(rejections(result, path)) == [3]
    assert "UTF-8" in rejections(result, path)[3]
    assert summary(result) == {"added": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert show(run, "carl@example.org")["name"] == "Carl Groß"
    assert run("subscribers", "show", "rene@example.org").exit_code == 2


def test_a_byte_order_mark_is_not_part_of_the_first_column(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path / "excel.csv", "\ufeffemail,name\r\nalice@example.org,Alice\r\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert show(run, "alice@example.org")["name"] == "Alice"


# Any size ----------------------------------------------------------------------------------------

LARGE = 60_000


def test_a_large_file_is_streamed_and_committed_in_batches(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("email,name,lists\n")
        for i in range(LARGE):
            stream.write(f"person{i}@example{i % 97}.org,Person {i},{'news' if i % 2 else ''}\n")
    size = path.stat().st_size
    seen: list[tuple[int, int]] = []  # (bytes read so far, subscribers committed so far)
    read = 0

    def progress(count: int) -> None:
        nonlocal read
        read += count
        with store.engine.connect() as connection:
            committed = connection.scalar(select(func.count()).select_from(subscribers_table))
        seen.append((read, int(committed or 0)))

    report = import_csv(
        path,
        store.subscribers,
        lists=[],
        default_list="commentaries",
        create_lists=True,
        progress=progress,
    )

    assert (report.rows, report.merged.added, len(report.rejected)) == (LARGE, LARGE, 0)
    assert read == size
    # Rows were already in the database while most of the file was still unread: the file is
    # streamed and committed a batch at a time, not held in memory whole.
    assert any(0 < committed < LARGE and done < size for done, committed in seen), seen
    by_status, by_list = store.subscribers.counts()
    assert by_status == {"active": LARGE}
    assert sum(by_list["news"].values()) == LARGE // 2
    assert sum(by_list["commentaries"].values()) == LARGE // 2
    with store.engine.connect() as connection:  # drawn a batch at a time, each their own
        secrets = list(connection.scalars(select(subscribers_table.c.link_secret)))
    assert len(set(secrets)) == LARGE and all(re.fullmatch("[0-9a-f]{32}", s) for s in secrets)


def test_an_exported_list_imported_again_keeps_who_left_out(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    """An export carries each status; importing it elsewhere must not make leavers active."""
    path = write(
        tmp_path / "export.csv",
        "email,name,status,lists\n"
        "stays@example.org,Stays,active,news\n"
        "left@example.org,Left,unsubscribed,news\n"
        "gone@example.org,Gone,bounced,news\n"
        "odd@example.org,Odd,on holiday,news\n",
    )
    result = run("subscribers", "import", str(path), "--create-lists")
    assert result.exit_code == 1
    assert f"{path}:5: the status 'on holiday' is not one of" in result.stderr
    assert show(run, "stays@example.org")["status"] == "active"
    assert show(run, "left@example.org")["status"] == "unsubscribed"
    assert show(run, "gone@example.org")["status"] == "bounced"
