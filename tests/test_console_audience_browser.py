"""Subscribers in a real browser (headless Chromium) against a real `mailer serve`, on SQLite and
PostgreSQL: a publisher signs in with the keyboard, imports the CSV that Excel saves in Italy
(semicolons, Windows-1252, CRLF) through the wizard, sees how it was read and which row is
rejected and why, runs it and watches it finish; then finds an imported person and opens their
page. Screenshots of search, a subscriber's page and the wizard at 375 and 1280 px go to
$MAILER_TEST_SCREENSHOTS (a temporary folder unless set)."""

from __future__ import annotations

import os
from pathlib import Path

from mailer.core.lifecycle import Status
from tests.conftest import Folder, Run
from tests.test_browser import chromium
from tests.test_console_browser import CONSOLE, Shots, staff_page
from tests.test_import_files import EXCEL_ITALY
from tests.web_server import mailer_serve

TYPO = "luca@example.it;Luca Ferrà;Comentaries\r\n"
PASSWORD = "the publisher's long password"


def test_a_publisher_imports_the_excel_file_from_italy_in_the_wizard(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    shots = Shots(Path(os.environ.get("MAILER_TEST_SCREENSHOTS") or tmp_path / "shots"))
    assert run("lists", "create", "Commentaries").exit_code == 0
    for address, name in (("anna.weber@example.org", "Anna Weber"), ("ben@example.org", "Ben")):
        assert run("subscribers", "add", address, "--name", name).exit_code == 0
    added = run("staff", "add", "pat@example.org", "--role", "publisher")
    assert added.exit_code == 0, added.output
    link = added.output.strip().splitlines()[-1]
    upload = tmp_path / "Iscritti.csv"
    upload.write_bytes((EXCEL_ITALY + TYPO).encode("cp1252"))

    with (
        mailer_serve(db_folder.config_path, f"{CONSOLE}/login") as served,
        chromium() as browser,
    ):
        from playwright.sync_api import expect

        base = f"http://127.0.0.1:{served.port}"
        page = staff_page(browser, base, link, "pat@example.org", PASSWORD)
        page.click("nav >> text=Subscribers")
        page.click("text=Import a CSV file")
        page.set_input_files("#file", str(upload))
        page.click("button:text-is('Upload and preview')")

        detected = page.locator("#detected")
        expect(detected).to_contain_text(
            "Read as Windows-1252 (detected), cells separated by semicolon (detected)"
        )
        assert page.input_value("#column-0") == "email"
        assert page.input_value("#column-1") == "name"
        assert page.input_value("#column-2") == "lists"
        preview = page.locator("#preview")
        expect(preview).to_contain_text("Niccolò Fabbrì")
        expect(preview).to_contain_text("Zoë Bianchi")
        rejected = page.locator("#preview tr.rejected")
        expect(rejected).to_have_count(1)
        expect(rejected).to_contain_text("there is no list 'Comentaries'")
        expect(rejected).to_contain_text("did you mean 'Commentaries'?")
        shots.take(page, "wizard-preview")

        page.focus("button:text-is('Import the whole file')")
        page.keyboard.press("Enter")
        # The progress polls (htmx) until the import, in the background, is done.
        expect(page.locator("#summary")).to_contain_text(
            "4 rows: 3 added, 0 updated, 0 unchanged, 1 rejected.", timeout=60_000
        )
        expect(page.locator("text=Download the rejected rows")).to_be_visible()
        shots.take(page, "wizard-done")

        page.click("text=See the subscribers")
        page.fill("#q", "Nic")
        page.keyboard.press("Enter")
        expect(page.locator("#results tbody tr")).to_have_count(1)
        shots.take(page, "search")
        page.click("#results >> text=niccolo@example.it")
        expect(page.locator("h1")).to_have_text("niccolo@example.it")
        expect(page.locator("dl.facts")).to_contain_text("Niccolò Fabbrì")
        shots.take(page, "subscriber")

        page.click("nav >> text=Lists")
        shots.take(page, "lists")
        page.click("main >> text=Commentaries")
        expect(page.locator("figure.chart svg")).to_be_visible()
        expect(page.locator("figcaption")).to_contain_text("active 5 (100%)")
        shots.take(page, "list")
        page.click("nav >> text=Dashboard")
        expect(page.locator("figure.chart svg")).to_have_count(1)  # fetched by htmx
        shots.take(page, "dashboard-chart")

    store = db_folder.newsletter().store
    for address, name in (
        ("maria.rossi@example.it", "Maria Rossi"),
        ("niccolo@example.it", "Niccolò Fabbrì"),
        ("zoe@example.it", "Zoë Bianchi"),
    ):
        person = store.subscribers.find(address)
        assert person is not None, address
        assert (person.name, person.lists, person.status) == (
            name,
            ("Commentaries",),
            Status.ACTIVE,
        )
    assert store.subscribers.find("luca@example.it") is None
    assert store.lists.names() == ["Commentaries"]
    actions = [(e.actor, e.action) for e in reversed(store.audit.latest())]
    for step in ("uploaded a file to import", "started an import", "imported subscribers"):
        assert ("pat@example.org", step) in actions, step
