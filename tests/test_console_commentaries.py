"""Commentaries in the console: the list, the editor and its live preview, saving into the
folder (and refusing a save that would lose someone else's), .docx import, the subscriber's
preview with its pre-send checks, and the test send."""

from __future__ import annotations

import email
import email.policy
import io
import re

import docx
import pytest
from flask.testing import FlaskClient

from mailer.store.staff import Role
from tests.conftest import Folder, Run
from tests.console_client import CONSOLE, ConsoleApp, csrf_of, make_console

STALEMATE = "2025-09-17-stalemate-to-escalation.md"


@pytest.fixture
def console(folder: Folder) -> ConsoleApp:
    made = make_console(folder)
    made.person("ed@example.org", Role.EDITOR)
    return made


@pytest.fixture
def editor(console: ConsoleApp) -> FlaskClient:
    return console.signed_in("ed@example.org")


def form_of(client: FlaskClient, path: str) -> dict[str, str]:
    """The editor's form as the browser would post it."""
    page = client.get(f"{CONSOLE}{path}").text
    fields = dict(
        re.findall(r'<input type="(?:hidden|text)"[^>]*name="(\w+)" value="([^"]*)"', page)
    )
    fields.update(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    for name, value in re.findall(
        r'<textarea id="field-\w+" name="(\w+)"[^>]*>(.*?)</textarea>', page, re.S
    ):
        fields[name] = value
    import html

    return {name: html.unescape(value) for name, value in fields.items() if name != "q"}


def test_the_list_shows_each_state_and_searches(
    console: ConsoleApp, editor: FlaskClient, folder: Folder
) -> None:
    (folder.commentaries / "2099-01-01-later.md").write_text(
        '+++\ntitle = "Later"\nauthors = ["A"]\ndate = 2099-01-01\n+++\nText.\n', encoding="utf-8"
    )
    (folder.commentaries / "2025-12-01-unfinished.md").write_text(
        '+++\ntitle = "Unfinished"\nauthors = ["A"]\ndate = 2025-12-01\ndraft = true\n+++\nText.\n',
        encoding="utf-8",
    )
    (folder.commentaries / "broken.md").write_text("no front matter\n", encoding="utf-8")
    store = console.newsletter.store
    store.lists.create("commentaries")
    store.campaigns.start("sahel-after-the-juntas", "commentaries", "Sahel")
    page = editor.get(f"{CONSOLE}/commentaries").text
    states = dict(
        re.findall(
            r'<tr><td><a href="/commentaries/console/commentaries/([\w-]+)">'
            r'.*?<span class="state">([^<]+)</span></td>',
            page,
            re.S,
        )
    )
    assert states == {
        "later": "embargoed",
        "unfinished": "draft",
        "broken": "has problems",
        "sahel-after-the-juntas": "sent",
        "mediterranean-energy": "published",
        "writing-a-commentary": "published",
        "stalemate-to-escalation": "published",
    }
    assert "commentaries, " in page  # the list the sent one went to
    found = editor.get(f"{CONSOLE}/commentaries?q=draft").text
    assert "Unfinished" in found and "Later" not in found
    later = folder.commentaries / "2099-01-01-later.md"  # edited outside the console: read again
    later.write_text(
        later.read_text(encoding="utf-8").replace("Later", "Much later"), encoding="utf-8"
    )
    assert "Much later" in editor.get(f"{CONSOLE}/commentaries").text


def test_a_long_archive_is_listed_fifty_to_a_page_newest_first_and_searched_whole(
    editor: FlaskClient, folder: Folder
) -> None:
    for number in range(116):  # with the four examples: 120, so three pages
        folder.write(
            f"commentaries/2020-01-01-piece-{number:03d}.md",
            f'+++\ntitle = "Piece {number:03d}"\nauthors = ["A"]\n'
            "date = 2020-01-01\n+++\n\nText.\n",
        )

    def titles(query: str) -> list[str]:
        return re.findall(r">(Piece \d{3})</a>", editor.get(f"{CONSOLE}/commentaries?{query}").text)

    first = editor.get(f"{CONSOLE}/commentaries").text
    assert "Page 1 of 3 (120 commentaries)" in first and 'rel="next"' in first
    assert 'rel="prev"' not in first
    assert "Stalemate" in first  # the newest file first
    assert len(titles("")) == 46  # 50 rows: the four examples and 46 pieces
    assert titles("page=3") == [f"Piece {n:03d}" for n in range(19, -1, -1)]
    last = editor.get(f"{CONSOLE}/commentaries?page=3").text
    assert 'rel="prev"' in last and 'rel="next"' not in last
    assert titles("page=99") == titles("page=3")  # past the end: the last page
    assert titles("page=x") == titles("")
    assert titles("q=piece+007") == ["Piece 007"]  # the search looks at every page


def test_saving_writes_the_file_the_command_line_reads(
    console: ConsoleApp, editor: FlaskClient, folder: Folder, run: Run
) -> None:
    form = form_of(editor, "/commentaries/stalemate-to-escalation")
    assert form["title"].startswith("From Stalemate") and form["version"]
    form["title"] = "From Stalemate to Escalation, Revised"
    form["body"] = form["body"].replace("Three and a half years", "Three and a half long years")
    saved = editor.post(f"{CONSOLE}/commentaries/stalemate-to-escalation", data=form)
    assert saved.status_code == 302, re.findall(r'class="problems"[^>]*>(<li>.*?)</ul>', saved.text)
    text = (folder.commentaries / STALEMATE).read_text(encoding="utf-8")
    assert 'title = "From Stalemate to Escalation, Revised"' in text
    assert "Three and a half long years" in text and 'pdf = "2553.pdf"' in text
    assert run("check").exit_code == 0
    assert ("ed@example.org", "saved commentary") in [
        (e.actor, e.action) for e in console.newsletter.store.audit.latest()
    ]


def test_the_second_of_two_saves_is_refused_and_loses_nothing(
    console: ConsoleApp, editor: FlaskClient, folder: Folder
) -> None:
    other = console.signed_in("ed@example.org")
    mine = form_of(editor, "/commentaries/stalemate-to-escalation")
    theirs = form_of(other, "/commentaries/stalemate-to-escalation")
    theirs["title"] = "Their title"
    assert (
        other.post(f"{CONSOLE}/commentaries/stalemate-to-escalation", data=theirs).status_code
        == 302
    )
    mine["title"] = "My title"
    refused = editor.post(f"{CONSOLE}/commentaries/stalemate-to-escalation", data=mine)
    assert refused.status_code == 409
    assert "someone else saved this commentary after you opened it" in refused.text
    assert 'value="My title"' in refused.text  # my text is still in the form
    assert 'title = "Their title"' in (folder.commentaries / STALEMATE).read_text(encoding="utf-8")


def test_a_save_with_problems_is_refused_and_each_is_shown_at_its_place(
    editor: FlaskClient, folder: Folder
) -> None:
    before = (folder.commentaries / STALEMATE).read_bytes()
    form = form_of(editor, "/commentaries/stalemate-to-escalation")
    form["date"] = "2025-13-40"
    form["body"] = "First line.\n\nSee [this](javascript:alert(1)).\n"
    refused = editor.post(f"{CONSOLE}/commentaries/stalemate-to-escalation", data=form)
    assert refused.status_code == 400 and "Not saved" in refused.text
    date = re.search(r'id="problems-date"[^>]*>(.*?)</ul>', refused.text, re.S)
    assert date and "is not a date" in date[1]
    body = re.search(r'id="problems-body"[^>]*>(.*?)</ul>', refused.text, re.S)
    assert body and "Line 3: link to" in body[1]
    assert (folder.commentaries / STALEMATE).read_bytes() == before


def test_the_live_preview_renders_the_email_and_places_problems(editor: FlaskClient) -> None:
    form = form_of(editor, "/commentaries/stalemate-to-escalation")
    good = editor.post(f"{CONSOLE}/commentaries/check", data=form)
    assert (
        good.status_code == 200 and "srcdoc=" in good.text and "Three and a half years" in good.text
    )
    form["authors"] = ""
    bad = editor.post(f"{CONSOLE}/commentaries/check", data=form)
    authors = re.search(
        r'id="problems-authors" aria-live="polite" hx-swap-oob="true">(.*?)</ul>', bad.text
    )
    assert authors and "has no authors" in authors[1] and "srcdoc=" not in bad.text


def test_a_new_commentary_is_named_by_date_and_title(editor: FlaskClient, folder: Folder) -> None:
    form = form_of(editor, "/commentaries/new")
    form.update(
        title="Ports of the Adriatic", authors="Ada Lovelace", date="2025-12-02", body="Ports.\n"
    )
    form.pop("draft", None)
    created = editor.post(f"{CONSOLE}/commentaries/new", data=form)
    assert created.headers["Location"].endswith("/commentaries/ports-of-the-adriatic?saved=1")
    assert (folder.commentaries / "2025-12-02-ports-of-the-adriatic.md").is_file()
    again = editor.post(f"{CONSOLE}/commentaries/new", data=form)
    assert again.status_code == 409 and "exists already" in again.text


def word_document() -> bytes:
    document = docx.Document()
    document.add_heading("Ports of the Adriatic", level=0)
    document.add_paragraph("Ada Lovelace and Grace Hopper", style="Subtitle")
    document.add_paragraph("Trieste is growing.", style="List Bullet")
    document.add_paragraph("Rijeka follows.", style="List Bullet")
    document.add_paragraph("The northern Adriatic has become a gateway (again).")
    document.add_heading("Trieste", level=1)
    quote = document.add_paragraph().add_run("A port is a policy, not a place.")
    quote.italic = True
    stream = io.BytesIO()
    document.save(stream)
    return stream.getvalue()


def test_a_word_document_becomes_a_draft_in_the_editor(editor: FlaskClient) -> None:
    answer = editor.post(
        f"{CONSOLE}/commentaries/import",
        data={
            "csrf_token": csrf_of(editor, "/commentaries"),
            "document": (io.BytesIO(word_document()), "ports.docx"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert 'value="Ports of the Adriatic"' in answer.text
    assert ">Ada Lovelace\nGrace Hopper</textarea>" in answer.text
    assert ">Trieste is growing.\nRijeka follows.</textarea>" in answer.text
    body = re.search(r'name="body"[^>]*>(.*?)</textarea>', answer.text, re.S)
    assert body
    assert "### Trieste" in body[1] and "&gt; A port is a policy, not a place." in body[1]
    assert "gateway (again)." in body[1]  # no needless backslashes
    refused = editor.post(
        f"{CONSOLE}/commentaries/import",
        data={
            "csrf_token": csrf_of(editor, "/commentaries"),
            "document": (io.BytesIO(b"not a zip"), "x.docx"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400 and "cannot be read as a Word document" in refused.text


def test_the_preview_shows_what_a_subscriber_receives_and_its_checks(
    editor: FlaskClient, folder: Folder
) -> None:
    page = editor.get(f"{CONSOLE}/commentaries/stalemate-to-escalation/preview").text
    for frame in ("frame-375", "frame-600", "frame-dark", "frame-desktop"):
        assert f'id="{frame}"' in page
    assert "List-Unsubscribe: " in page and "Subject: From Stalemate" in page
    assert "Gmail clips" in page and "Every image has a description." in page
    html = editor.get(f"{CONSOLE}/commentaries/stalemate-to-escalation/email.html")
    assert html.status_code == 200 and "<table" in html.text
    assert html.headers["X-Frame-Options"] == "SAMEORIGIN"
    dark = editor.get(f"{CONSOLE}/commentaries/stalemate-to-escalation/email.html?dark=1").text
    assert "prefers-color-scheme: dark" in html.text  # the theme's own dark rules…
    assert "prefers-color-scheme: dark" not in dark and "min-width: 0" in dark  # …applied
    assert "invert(1)" in dark_mode_of_an_email_without_dark_rules()
    (folder.commentaries / "2099-01-01-later.md").write_text(
        '+++\ntitle = "Later"\nauthors = ["A"]\ndate = 2099-01-01\npdf = "https://example.org/a.pdf"\n+++\n'
        "See ![](https://example.org/map.png) and [this](http://example.org/).\n",
        encoding="utf-8",
    )
    later = editor.get(f"{CONSOLE}/commentaries/later/preview").text
    assert '✘ <span class="failed">Embargoed until 2099-01-01' in later
    assert "The PDF&#39;s size is missing" in later
    assert "Links that are not https: http://example.org/" in later


def dark_mode_of_an_email_without_dark_rules() -> str:
    from mailer.console.commentaries import dark

    return dark("<html><head><style>p { color: #000 }</style></head><body><p>Hi</p></body></html>")


def test_a_test_goes_to_the_signed_in_person_marked_as_a_test(
    console: ConsoleApp, editor: FlaskClient, folder: Folder
) -> None:
    sent = editor.post(
        f"{CONSOLE}/commentaries/stalemate-to-escalation/test",
        data={"csrf_token": csrf_of(editor, "/commentaries/stalemate-to-escalation/preview")},
    )
    assert sent.status_code == 200 and "Test sent" in sent.text
    (message_file,) = (folder.path / "outbox").glob("*.eml")
    message = email.message_from_bytes(message_file.read_bytes(), policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "ed@example.org"
    assert message["Subject"] == "[Test] From Stalemate to Escalation: Why Putin Needs More War"
    assert ("ed@example.org", "sent a test") in [
        (e.actor, e.action) for e in console.newsletter.store.audit.latest()
    ]
