"""The files staff really have, imported on SQLite and PostgreSQL: Excel's in Italy (semicolons,
Windows-1252 or UTF-8 with a BOM, CRLF), Excel's comma variant with accented names, a Mailchimp
export, and a file whose lists column holds a typo."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from mailer.store import database
from tests.conftest import Folder, Run
from tests.test_importing import rejections, show, summary, write

EXCEL_ITALY = (
    "email;name;lists\r\n"
    "maria.rossi@example.it;Maria Rossi;commentaries\r\n"
    "niccolo@example.it;Niccolò Fabbrì;Commentaries\r\n"
    "zoe@example.it;Zoë Bianchi;COMMENTARIES\r\n"
)


@pytest.mark.parametrize(
    ("encoding", "said"), [("cp1252", "Windows-1252"), ("utf-8-sig", "UTF-8 with BOM")]
)
def test_an_excel_file_saved_in_italy_imports_every_row_with_its_accents(
    db_folder: Folder, run: Run, tmp_path: Path, encoding: str, said: str
) -> None:
    assert run("lists", "create", "Commentaries").exit_code == 0
    path = write(tmp_path / "excel.csv", EXCEL_ITALY.encode(encoding))

    result = run("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert f"read as {said} (detected), cells separated by semicolon (detected)" in result.output
    assert summary(result) == {"added": 3, "updated": 0, "unchanged": 0, "rejected": 0}
    assert show(run, "niccolo@example.it")["name"] == "Niccolò Fabbrì"
    assert show(run, "zoe@example.it")["name"] == "Zoë Bianchi"
    # Three spellings of one list: all on it, and no list was made.
    assert {tuple(show(run, a)["lists"]) for a in ("maria.rossi@example.it", "zoe@example.it")} == {
        ("Commentaries",)
    }
    assert "Created" not in result.output


def test_the_comma_windows_1252_variant_keeps_people_with_accented_names(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "comma.csv",
        "email,name\r\nluca@example.it,Luca Ferrà\r\njose@example.org,José Núñez\r\n"
        "plain@example.org,Plain Name\r\n".encode("cp1252"),
    )

    result = run("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert "read as Windows-1252 (detected), cells separated by comma" in result.output
    assert summary(result)["added"] == 3
    assert show(run, "luca@example.it")["name"] == "Luca Ferrà"
    assert show(run, "jose@example.org")["name"] == "José Núñez"


MAILCHIMP = (
    '"Email Address","First Name","Last Name","Address","Phone Number","MEMBER_RATING",'
    '"OPTIN_TIME","TAGS"\n'
    '"anna@example.org","Anna","Weber","","","2","2025-01-02 10:00:00",""\n'
    '"ben@example.org","Ben","","","","3","2025-02-03 11:00:00",""\n'
    '"cleo@example.org","","Okafor","","","1","2025-03-04 12:00:00",""\n'
)


def test_a_mailchimp_export_joins_first_and_last_names_and_says_what_it_left_out(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path / "subscribed_members_export.csv", MAILCHIMP)

    result = run("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert "Email Address → email, First Name → first_name, Last Name → last_name" in result.output
    assert "not imported: Address, Phone Number, MEMBER_RATING, OPTIN_TIME, TAGS" in result.output
    assert summary(result)["added"] == 3
    assert show(run, "anna@example.org")["name"] == "Anna Weber"
    assert show(run, "ben@example.org")["name"] == "Ben"
    assert show(run, "cleo@example.org")["name"] == "Okafor"
    assert show(run, "anna@example.org")["lists"] == ["commentaries"]  # the default list


TYPO = (
    "email,name,lists\n"  # 1
    "ada@example.org,Ada,Commentaries\n"  # 2
    "bea@example.org,Bea,comentaries\n"  # 3: the typo
    "cy@example.org,Cy,commentaries;briefings\n"  # 4: another case, and a list unlike any
)


def test_a_typo_in_the_lists_column_is_rejected_with_the_list_it_meant(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    assert run("lists", "create", "Commentaries").exit_code == 0
    path = write(tmp_path / "typo.csv", TYPO)

    result = run("subscribers", "import", str(path))

    assert result.exit_code == 1
    assert rejections(result, path) == {
        3: "there is no list 'comentaries' (did you mean 'Commentaries'?): correct the name, "
        "or create the list (--create-lists creates every list a file names)",
        4: "there is no list 'briefings': correct the name, "
        "or create the list (--create-lists creates every list a file names)",
    }
    assert summary(result) == {"added": 1, "updated": 0, "unchanged": 0, "rejected": 2}
    assert "Created" not in result.output
    assert run("subscribers", "show", "bea@example.org").exit_code == 2
    lists = run("lists", "show")
    assert "comentaries" not in lists.output and "briefings" not in lists.output


def test_create_lists_makes_the_lists_a_file_names_and_says_so(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    assert run("lists", "create", "Commentaries").exit_code == 0
    path = write(tmp_path / "typo.csv", TYPO)

    result = run("subscribers", "import", str(path), "--create-lists")

    assert result.exit_code == 0, result.output
    assert "Created 2 lists: briefings, comentaries." in result.output
    assert show(run, "cy@example.org")["lists"] == ["Commentaries", "briefings"]


def test_a_list_option_naming_no_list_stops_before_anything_is_read(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    assert run("lists", "create", "Partners").exit_code == 0
    path = write(tmp_path / "people.csv", "email\nada@example.org\n")

    result = run("subscribers", "import", str(path), "--list", "partner")

    assert result.exit_code == 2
    assert "there is no list 'partner' (did you mean 'Partners'?)" in result.output
    assert run("subscribers", "show", "ada@example.org").exit_code == 2


def test_encoding_delimiter_and_map_override_what_is_detected(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path / "tabs.csv", "Posta\tWer\nada@example.org\tAda Ł\n".encode("cp1250"))

    result = run(
        "subscribers",
        "import",
        str(path),
        "--encoding",
        "cp1250",
        "--delimiter",
        "tab",
        "--map",
        "posta=email",
        "--map",
        "Wer=name",
    )

    assert result.exit_code == 0, result.output
    assert "read as cp1250 (as given), cells separated by tab (as given)" in result.output
    assert show(run, "ada@example.org")["name"] == "Ada Ł"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--map", "email"], "write it as COLUMN=FIELD"),
        (["--map", "Posta=telephone"], "the field must be one of email, name"),
        (["--encoding", "klingon"], "is not an encoding Python knows"),
    ],
)
def test_a_bad_override_is_refused_with_what_to_write(
    db_folder: Folder, run: Run, tmp_path: Path, options: list[str], message: str
) -> None:
    path = write(tmp_path / "people.csv", "email\nada@example.org\n")
    result = run("subscribers", "import", str(path), *options)
    assert result.exit_code == 2
    assert message in result.output


def test_a_file_without_an_email_column_says_how_it_was_read(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path / "people.csv", "Posta;Nome\nada@example.org;Ada\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 2
    assert f"{path}:1: there is no email column" in result.output
    assert "cells separated by semicolon (detected)" in result.output
    assert "--map COLUMN=FIELD" in result.output


@pytest.mark.parametrize("header", ["E-mail,Nome,Cognome", "email_address,first_name,surname"])
def test_common_header_spellings_are_recognised(
    db_folder: Folder, run: Run, tmp_path: Path, header: str
) -> None:
    path = write(tmp_path / "people.csv", f"{header}\nada@example.org,Ada,Lovelace\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert show(run, "ada@example.org")["name"] == "Ada Lovelace"


def test_two_columns_for_one_field_are_refused(db_folder: Folder, run: Run, tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "Email,E-mail\nada@example.org,ada@example.net\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 2
    assert "the columns 'Email' and 'E-mail' both hold the email" in result.output


def test_lists_differing_only_by_case_are_merged_by_the_upgrade_which_says_so(
    database_url: str, folder: Folder, run: Run
) -> None:
    folder.configure('url = "sqlite:///subscribers/mailer.db"', f'url = "{database_url}"')
    engine = database.open_engine(database.resolve_url(database_url, folder.path))
    with engine.begin() as connection:
        command.upgrade(database._alembic(connection), "0002")
        connection.execute(
            text(
                "INSERT INTO lists (id, name, created_at) VALUES "
                "(1, 'News', '2026-01-01 00:00:00.000000+00:00'), "
                "(2, 'news', '2026-01-02 00:00:00.000000+00:00')"
            )
        )
        for subscriber, address in ((1, "a@example.org"), (2, "b@example.org")):
            connection.execute(
                text(
                    "INSERT INTO subscribers (id, email, email_key, name, status, source, "
                    "source_detail, source_ip, created_at, updated_at) VALUES (:id, :a, :a, '', "
                    "'active', 'import', '', '', '2026-01-01 00:00:00.000000+00:00', "
                    "'2026-01-01 00:00:00.000000+00:00')"
                ),
                {"id": subscriber, "a": address},
            )
        connection.execute(
            text(
                "INSERT INTO memberships (subscriber_id, list_id, created_at) VALUES "
                "(1, 1, '2026-01-01 00:00:00.000000+00:00'), "
                "(2, 2, '2026-01-01 00:00:00.000000+00:00'), "
                "(1, 2, '2026-01-01 00:00:00.000000+00:00')"
            )
        )
    engine.dispose()

    upgraded = run("db", "upgrade")

    assert upgraded.exit_code == 0, upgraded.output
    assert "The lists 'news' and 'News' differ only by case" in upgraded.output
    assert show(run, "a@example.org")["lists"] == ["News"]
    assert show(run, "b@example.org")["lists"] == ["News"]
    with create_engine(database.resolve_url(database_url, folder.path)).connect() as connection:
        assert connection.execute(text("SELECT name_key FROM lists")).scalars().all() == ["news"]
