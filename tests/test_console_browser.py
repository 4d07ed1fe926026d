"""The console end to end in a real browser (headless Chromium) against a real `mailer serve`:
an admin makes an editor and a publisher; the editor signs in with the keyboard, starts a
commentary from a Word document made from the example commentary's text, fixes the problem the
check reports, previews it at 375 px and sends a test, which the SMTP test server receives; the
publisher approves it ([console] approval) and schedules it, the scheduler in `mailer serve`
delivers it on time, and the campaign page shows its progress and final counts. The audit log
has every step. Screenshots of the main screens at 375 and 1280 px are kept in
$MAILER_TEST_SCREENSHOTS (a temporary folder unless set), for people to look at.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
import time
import zoneinfo
from pathlib import Path
from typing import Any

import docx
import pytest

from mailer.content.commentary import slug_of, source
from tests.conftest import EXAMPLES, Folder, Run
from tests.smtp_server import (
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_browser import chromium
from tests.test_sending import PASSWORD as SMTP_PASSWORD
from tests.test_sending import add_people, many, use_server
from tests.web_server import mailer_serve

SITE = "https://www.example.org"
CONSOLE = "/commentaries/console"
EXAMPLE = EXAMPLES / "2025-10-02-writing-a-commentary.md"
WIDTHS = (375, 1280)
READERS = 6


def word_document_of(path: Path, target: Path) -> None:
    """A .docx of a commentary's text as a writer would have it: the title in the Title style,
    key points as bullets, sections as headings, pull quotes in italics; no author line (so the
    check has something to report) and no code samples."""
    found = source(path.read_text(encoding="utf-8"), path)
    assert not isinstance(found, Exception) and isinstance(found, tuple)
    data, body = found
    document = docx.Document()
    document.add_heading(data["title"], level=0)
    for point in data["summary"]:
        document.add_paragraph(point, style="List Bullet")
    in_code = False
    for block in re.split(r"\n\s*\n", body):
        text = block.strip()
        if text.startswith("```") or in_code:
            in_code = not text.endswith("```") or (text == "```" and not in_code)
            continue
        if text.startswith("### "):
            document.add_heading(text[4:], level=1)
        elif text.startswith("> "):
            document.add_paragraph().add_run(" ".join(text[2:].split())).italic = True
        elif text.startswith("- "):
            for item in text.split("\n- "):
                document.add_paragraph(item.removeprefix("- ").strip(), style="List Bullet")
        elif text:
            document.add_paragraph(" ".join(text.split()))
    document.save(str(target))


def local(link: str, base: str) -> str:
    return link.replace(SITE, base)


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str) -> None:
        """The page at each width, whole; and nothing may be wider than a phone's screen."""
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(self.folder / f"{name}-{width}.png"), full_page=True)
            if width == 375:
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 375, f"{name} is {scroll} px wide at 375"
        page.set_viewport_size({"width": 1280, "height": 900})


def set_password(page: Any, link: str, password: str) -> None:
    page.goto(link)
    page.fill("#password", password)
    page.fill("#again", password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your password is set")


def staff_page(browser: Any, base: str, link: str, address: str, password: str) -> Any:
    """A page of its own for `address`, who sets a password through the link the console made
    (as printed or shown) and signs in with the keyboard."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    set_password(page, local(link.strip(), base), password)
    sign_in_with_the_keyboard(page, base, address, password)
    return page


def sign_in_with_the_keyboard(page: Any, base: str, address: str, password: str) -> None:
    page.goto(f"{base}{CONSOLE}/")
    page.wait_for_selector("#email:focus")  # the sign-in page opens with the address field ready
    page.keyboard.type(address)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('Dashboard')")


def approve_and_schedule(
    publisher: Any, base: str, slug: str, shots: Shots, server: SmtpServer
) -> None:
    """The publisher approves the editor's issue and schedules it some seconds ahead; it
    arrives, none of it before its time, and the campaign page follows it to the end."""
    from playwright.sync_api import expect

    publisher.goto(f"{base}{CONSOLE}/commentaries/{slug}/preview")
    publisher.click("#send-link")
    publisher.click("#approve")
    publisher.wait_for_selector("text=Approved by pat@example.org")
    zone = zoneinfo.ZoneInfo("Europe/Rome")
    # The next whole minute at least 15 s away: the form takes minutes, as people write times.
    at = (dt.datetime.now(zone) + dt.timedelta(seconds=75)).replace(second=0, microsecond=0)
    due = time.monotonic() + (at - dt.datetime.now(zone)).total_seconds()
    publisher.fill("#send-at", at.strftime("%Y-%m-%dT%H:%M"))
    publisher.click("#choose")
    publisher.wait_for_selector(f"text={at:%Y-%m-%d %H:%M} (Europe/Rome)")
    assert publisher.text_content("#recipients") == str(READERS)
    assert "smtp" in (publisher.text_content("#confirmation") or "")
    shots.take(publisher, "confirm-send")
    publisher.click("#confirm-send")
    expect(publisher.locator("#campaign-state")).to_have_text("scheduled", timeout=30_000)
    expect(publisher.locator("#campaign-state")).to_have_text("running", timeout=120_000)
    expect(publisher.locator("#count-sent")).not_to_have_text("0", timeout=60_000)
    shots.take(publisher, "campaign-running")
    expect(publisher.locator("#campaign-state")).to_have_text("done", timeout=180_000)
    assert publisher.text_content("#count-sent") == str(READERS)
    assert publisher.text_content("#count-failed") == "0"
    publisher.wait_for_selector("#left-since")  # the report, once it is done
    shots.take(publisher, "campaign-done")
    arrived = [m for m in server.messages() if m.recipients[0].startswith("reader")]
    assert len(arrived) == READERS
    assert min(m.at for m in arrived) >= due - 1  # never before its time (1 s of measuring)


def test_an_editor_writes_from_word_previews_and_sends_a_test(
    folder: Folder,
    run: Run,
    tmp_path: Path,
    smtp_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shots = Shots(Path(os.environ.get("MAILER_TEST_SCREENSHOTS") or tmp_path / "shots"))
    server = smtp_server()
    use_server(folder, server)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    add_people(folder, run, many(READERS))
    folder.configure("approval = false", "approval = true")
    folder.configure("interval = 30", "interval = 1")  # the scheduler looks every second
    folder.configure("rate = 0", "rate = 0.5")  # slow enough to watch the progress
    added = run("staff", "add", "admin@example.org", "--role", "admin")
    assert added.exit_code == 0, added.output
    admin_link = added.output.strip().splitlines()[-1]
    document = tmp_path / "writing.docx"
    word_document_of(EXAMPLE, document)

    with mailer_serve(folder.config_path, f"{CONSOLE}/login") as served, chromium() as browser:
        from playwright.sync_api import expect

        base = f"http://127.0.0.1:{served.port}"
        admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        set_password(admin, local(admin_link, base), "the admin's long password")
        admin.goto(f"{base}{CONSOLE}/login")
        shots.take(admin, "login")
        sign_in_with_the_keyboard(admin, base, "admin@example.org", "the admin's long password")
        links = {}
        for address, role in (("ed@example.org", "editor"), ("pat@example.org", "publisher")):
            admin.goto(f"{base}{CONSOLE}/staff")
            admin.fill("#new-email", address)
            admin.select_option("#new-role", role)
            admin.click("button:text-is('Add')")
            links[address] = admin.text_content("#password-link") or ""
        shots.take(admin, "staff")

        editor = staff_page(
            browser, base, links["ed@example.org"], "ed@example.org", "the editor's long password"
        )
        shots.take(editor, "dashboard")
        editor.click("nav >> text=Commentaries")
        shots.take(editor, "commentaries")
        editor.set_input_files("#document", str(document))
        editor.click("button:text-is('Import')")
        editor.wait_for_selector("#field-title")
        assert editor.input_value("#field-title") == "How to Write a Commentary for This Series"
        assert "Sections, pull quotes" in editor.input_value("#field-summary")
        assert "### The front matter" in editor.input_value("#field-body")
        assert "has no authors" in (editor.text_content("#problems-authors") or "")
        editor.fill("#field-authors", "Élodie Pérez")
        editor.uncheck("#field-draft")  # ready: a draft is never sent
        # The live preview (htmx, after a pause in typing) clears the problem, shows the email.
        expect(editor.locator("#problems-authors li")).to_have_count(0, timeout=30_000)
        editor.wait_for_selector("#preview iframe", timeout=30_000)
        shots.take(editor, "editor")
        editor.click("button:text-is('Save')")
        editor.wait_for_selector("text=Saved to")
        editor.wait_for_selector("#preview iframe", timeout=30_000)  # made once the page is in
        saved = next(folder.commentaries.glob("*how-to-write-a-commentary-for-this-series.md"))
        assert 'authors = ["Élodie Pérez"]' in saved.read_text(encoding="utf-8")
        assert run("check").exit_code == 0

        editor.click("#preview-link")
        editor.set_viewport_size({"width": 375, "height": 800})
        for frame in ("#frame-375", "#frame-600", "#frame-dark", "#frame-desktop"):
            editor.frame_locator(frame).locator("text=Sections, pull quotes").first.wait_for()
        box = editor.locator("#frame-375").bounding_box()
        assert box is not None and box["width"] <= 375
        shots.take(editor, "preview")
        for frame in ("frame-dark", "frame-desktop"):  # below the fold: shot on their own
            editor.locator(f"#{frame}").screenshot(path=str(shots.folder / f"{frame}.png"))
        editor.focus("#test-send")
        editor.keyboard.press("Enter")
        editor.wait_for_selector("h1:text-is('Test sent')", timeout=60_000)

        received = server.only_message_to("ed@example.org")
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert message["Subject"] == "[Test] How to Write a Commentary for This Series"

        publisher = staff_page(
            browser,
            base,
            links["pat@example.org"],
            "pat@example.org",
            "the publisher's long password",
        )
        approve_and_schedule(publisher, base, slug_of(saved), shots, server)

        admin.goto(f"{base}{CONSOLE}/audit")
        shots.take(admin, "audit")
        admin.goto(f"{base}{CONSOLE}/account")
        shots.take(admin, "account")

    actions = [(e.actor, e.action) for e in reversed(folder.newsletter().store.audit.latest())]
    for step in (
        ("command line", "added staff"),
        ("admin@example.org", "set password"),
        ("admin@example.org", "signed in"),
        ("admin@example.org", "added staff"),
        ("ed@example.org", "set password"),
        ("ed@example.org", "signed in"),
        ("ed@example.org", "imported a Word document"),
        ("ed@example.org", "created commentary"),
        ("ed@example.org", "sent a test"),
        ("pat@example.org", "approved commentary"),
        ("pat@example.org", "scheduled campaign"),
    ):
        assert step in actions, step
    assert actions.count(("admin@example.org", "added staff")) == 2
