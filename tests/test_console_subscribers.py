"""Subscribers and lists in the console, through the Flask test client: search, a person's page,
their lists, unsubscribe, erase, adding one, export; lists made, renamed, described and archived;
the audience chart with the numbers of a known history; the import wizard from upload to the
rejected rows; and every new form refused without its CSRF token."""

from __future__ import annotations

import csv
import io
import re
import time
import xml.etree.ElementTree as ET

import pytest
from flask.testing import FlaskClient

from mailer.console.imports import MAX_CSV_BYTES
from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.store.staff import Role
from tests.conftest import Folder
from tests.console_client import CONSOLE, ConsoleApp, csrf_of, make_console
from tests.test_audience import EXPECTED, NOW, known_history
from tests.test_directory import mailbox_full
from tests.test_import_files import EXCEL_ITALY

PUBLISHER, ADMIN = "pia@example.org", "adam@example.org"


@pytest.fixture
def console(folder: Folder) -> ConsoleApp:
    made = make_console(folder)
    made.person(PUBLISHER, Role.PUBLISHER)
    made.person(ADMIN, Role.ADMIN)
    return made


def add(console: ConsoleApp, email: str, name: str = "", *lists: str) -> int:
    subscribers = console.newsletter.store.subscribers
    subscribers.merge(
        [Candidate(email, name, frozenset(lists or {"commentaries"}))],
        status=Status.ACTIVE,
        reason=Reason.FORM,
        detail="the subscribe form",
        ip="192.0.2.7",
    )
    found = subscribers.find(email)
    assert found is not None
    return found.id


def submit(client: FlaskClient, path: str, data: dict[str, object], page: str = "") -> object:
    """POST a form of the page at `page` (`path` unless given) with its CSRF token."""
    token = csrf_of(client, page or path)
    return client.post(f"{CONSOLE}{path}", data={"csrf_token": token, **data})


def audit(console: ConsoleApp) -> list[tuple[str, str]]:
    return [(e.action, e.detail) for e in reversed(console.newsletter.store.audit.latest())]


def addresses_on(html: str) -> list[str]:
    return re.findall(r'<a href="[^"]*/subscribers/\d+">([^<]+)</a>', html)


def test_search_by_address_name_status_and_list_a_page_at_a_time(console: ConsoleApp) -> None:
    console.newsletter.store.lists.create("briefings")
    for number in range(55):
        add(console, f"reader{number:02}@example.org")
    add(console, "ada@example.org", "Ada Lovelace", "briefings")
    gone = add(console, "zoe@example.org", "Zoë Bianchi")
    console.newsletter.store.subscribers.change_status(gone, Status.UNSUBSCRIBED, Reason.STAFF)
    client = console.signed_in(PUBLISHER)

    first = client.get(f"{CONSOLE}/subscribers?q=reader")
    assert len(addresses_on(first.text)) == 50
    following = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert following, "no link to the next page"
    second = client.get(following[1].replace("&amp;", "&"))
    assert addresses_on(second.text) == [f"reader{n}@example.org" for n in range(50, 55)]
    assert 'rel="next"' not in second.text

    by_name = client.get(f"{CONSOLE}/subscribers?q=zo%C3%AB")
    assert addresses_on(by_name.text) == ["zoe@example.org"]
    assert addresses_on(client.get(f"{CONSOLE}/subscribers?q=ADA").text) == ["ada@example.org"]
    left = client.get(f"{CONSOLE}/subscribers?status=unsubscribed")
    assert addresses_on(left.text) == ["zoe@example.org"]
    on_list = client.get(f"{CONSOLE}/subscribers?list=Briefings")
    assert addresses_on(on_list.text) == ["ada@example.org"]
    assert client.get(f"{CONSOLE}/subscribers?status=sleeping").status_code == 400


def test_a_subscribers_page_shows_everything_held_on_them(db_folder: Folder) -> None:
    console = make_console(db_folder)
    console.person(PUBLISHER, Role.PUBLISHER)
    store = console.newsletter.store
    ada = add(console, "ada@example.org", "Ada Lovelace")
    store.subscribers.set_language(ada, "it")
    store.campaigns.start("2026-11-30-first", "commentaries", "The first issue")
    store.subscribers.set_frequency(ada, "commentaries", Frequency.WEEKLY, NOW)
    store.events.apply([mailbox_full("ada@example.org")])

    shown = console.signed_in(PUBLISHER).get(f"{CONSOLE}/subscribers/{ada}").text

    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", shown))
    assert facts["Name"] == "Ada Lovelace"
    assert "active" in facts["Status"]
    assert facts["Lists"] == "commentaries"
    assert facts["Language"] == "it"
    assert facts["Frequency"] == "commentaries: weekly"
    consent = shown.split("<h2>Consent</h2>")[1].split("<h2>")[0]
    assert "form" in consent and "the subscribe form" in consent and "192.0.2.7" in consent
    events = shown.split("<h2>Webhook events</h2>")[1].split("<h2>")[0]
    assert "mailgun" in events and "bounced (soft)" in events and "mailbox full" in events
    sent = shown.split("<h2>Send log</h2>")[1]
    assert "The first issue" in sent, sent
    assert "Erase" not in shown  # publishers do not erase


def test_lists_are_changed_and_a_person_unsubscribed_each_in_the_audit_log(
    console: ConsoleApp,
) -> None:
    store = console.newsletter.store
    store.lists.create("briefings")
    ada = add(console, "ada@example.org", "Ada Lovelace")
    client = console.signed_in(PUBLISHER)
    page = f"/subscribers/{ada}"

    changed = submit(client, f"{page}/lists", {"list": ["briefings", "commentaries"]}, page)
    assert changed.status_code == 302  # type: ignore[attr-defined]
    assert store.subscribers.get(ada).lists == ("briefings", "commentaries")  # type: ignore[union-attr]
    unknown = submit(client, f"{page}/lists", {"list": ["nonesuch"]}, page)
    assert unknown.status_code == 400 and "no list" in unknown.text  # type: ignore[attr-defined]
    assert submit(client, f"{page}/unsubscribe", {}, page).status_code == 302  # type: ignore[attr-defined]
    again = submit(client, f"{page}/unsubscribe", {}, page)
    assert again.status_code == 409  # type: ignore[attr-defined]

    person = store.subscribers.get(ada)
    assert person is not None and person.status == Status.UNSUBSCRIBED
    history = store.subscribers.history(ada)
    assert history[-1].reason == "staff" and PUBLISHER in history[-1].detail
    logged = audit(console)
    assert (
        "changed a subscriber's lists",
        f"subscriber {ada}: commentaries → briefings, commentaries",
    ) in logged
    assert ("unsubscribed a subscriber", f"subscriber {ada}") in logged
    assert not any("ada@example.org" in detail for _, detail in logged)


def test_erasing_takes_an_admin_and_the_address_typed_again(console: ConsoleApp) -> None:
    store = console.newsletter.store
    ada = add(console, "Ada@Example.org", "Ada Lovelace")
    publisher = console.signed_in(PUBLISHER)
    assert publisher.get(f"{CONSOLE}/subscribers/{ada}/erase").status_code == 403
    admin = console.signed_in(ADMIN)
    page = f"/subscribers/{ada}/erase"
    assert "Erase…" in admin.get(f"{CONSOLE}/subscribers/{ada}").text

    wrong = submit(admin, page, {"address": "eve@example.org"})
    assert wrong.status_code == 400 and "nothing was erased" in wrong.text  # type: ignore[attr-defined]
    assert store.subscribers.get(ada) is not None

    done = submit(admin, page, {"address": " ada@example.org "})
    assert done.status_code == 200 and "is erased" in done.text  # type: ignore[attr-defined]
    assert store.subscribers.find("ada@example.org") is None
    assert admin.get(f"{CONSOLE}/subscribers/{ada}").status_code == 404
    assert ("erased a subscriber", f"subscriber {ada}") in audit(console)
    assert not any("ada@" in detail.lower() for _, detail in audit(console))
    # The hash keeps them out: adding them again is refused.
    refused = submit(admin, "/subscribers", {"email": "ada@example.org"})
    assert refused.status_code == 409 and "not added back" in refused.text  # type: ignore[attr-defined]


def test_one_person_is_added_to_the_lists_chosen(console: ConsoleApp) -> None:
    store = console.newsletter.store
    store.lists.create("Briefings")
    client = console.signed_in(PUBLISHER)

    added = submit(
        client, "/subscribers", {"email": "Grace@Example.net", "name": "Grace", "list": "briefings"}
    )

    assert added.status_code == 302  # type: ignore[attr-defined]
    grace = store.subscribers.find("grace@example.net")
    assert grace is not None and grace.lists == ("Briefings",) and grace.status == Status.ACTIVE
    assert grace.joined.reason == "staff" and PUBLISHER in grace.joined.detail
    assert added.headers["Location"].endswith(f"/subscribers/{grace.id}")  # type: ignore[attr-defined]
    assert ("added a subscriber", f"subscriber {grace.id}: Briefings") in audit(console)
    bad = submit(client, "/subscribers", {"email": "not an address"})
    assert bad.status_code == 400  # type: ignore[attr-defined]
    typo = submit(client, "/subscribers", {"email": "x@example.org", "list": "brefings"})
    assert typo.status_code == 400 and "no list" in typo.text  # type: ignore[attr-defined]


def test_the_export_keeps_to_the_status_and_neutralises_formulas(console: ConsoleApp) -> None:
    add(console, "ada@example.org", '=HYPERLINK("http://evil")')
    gone = add(console, "bob@example.org", "Bob")
    console.newsletter.store.subscribers.change_status(gone, Status.BOUNCED, Reason.BOUNCE)
    client = console.signed_in(PUBLISHER)

    answer = client.get(f"{CONSOLE}/subscribers/export.csv?status=active")

    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [(r["email"], r["name"], r["status"]) for r in rows] == [
        ("ada@example.org", '\'=HYPERLINK("http://evil")', "active")
    ]
    everybody = client.get(f"{CONSOLE}/subscribers/export.csv").get_data(as_text=True)
    assert "bob@example.org" in everybody
    assert ("exported subscribers", "status active, list any") in audit(console)


def test_lists_are_created_renamed_described_made_private_and_archived(
    console: ConsoleApp,
) -> None:
    lists = console.newsletter.store.lists
    client = console.signed_in(PUBLISHER)
    made = submit(
        client, "/lists", {"name": "briefings", "title": "Briefings", "public": "yes"}, "/lists"
    )
    assert made.status_code == 302  # type: ignore[attr-defined]
    twice = submit(client, "/lists", {"name": "Briefings"}, "/lists")
    assert twice.status_code == 400 and "already exists" in twice.text  # type: ignore[attr-defined]

    saved = submit(
        client,
        "/lists/briefings",
        {
            "action": "save",
            "name": "Weekly briefings",
            "title": "The weekly briefing",
            "description": "Five minutes on Fridays.",
        },
    )
    assert saved.status_code == 302  # type: ignore[attr-defined]
    assert saved.headers["Location"].endswith("/lists/Weekly%20briefings")  # type: ignore[attr-defined]
    (summary,) = [s for s in lists.summaries() if s.name == "Weekly briefings"]
    assert (summary.title, summary.description, summary.public) == (
        "The weekly briefing",
        "Five minutes on Fridays.",
        False,
    )
    long_title = submit(
        client, "/lists/Weekly briefings", {"action": "save", "name": "x", "title": "t" * 201}
    )
    assert long_title.status_code == 400  # type: ignore[attr-defined]
    assert [s.name for s in lists.summaries()] == ["Weekly briefings"]  # nothing renamed

    archived = submit(client, "/lists/weekly briefings", {"action": "archive"}, "/lists")
    assert archived.status_code == 302  # type: ignore[attr-defined]
    assert lists.summaries()[0].archived
    assert "Weekly briefings" not in [o.name for o in lists.offered(private=True)]
    assert [a for a, _ in audit(console) if "list" in a] == [
        "created a list",
        "renamed a list",
        "described a list",
        "archived a list",
    ]
    editor = console.person("ed@example.org", Role.EDITOR)
    seen = console.signed_in(editor.email).get(f"{CONSOLE}/lists/Weekly briefings")
    assert seen.status_code == 200 and "Change it" not in seen.text


def _drawn(svg: str) -> dict[tuple[str, str], str]:
    return {
        (mark.get("data-kind") or "", mark.get("data-week") or mark.get("data-status") or ""): (
            mark.get("data-value") or ""
        )
        for mark in ET.fromstring(svg).iter()
        if mark.get("data-kind")
    }


def test_the_list_page_and_the_dashboard_chart_a_known_history(console: ConsoleApp) -> None:
    known_history(console.newsletter.store)
    console.clock.now = NOW
    client = console.signed_in(PUBLISHER)

    shown = client.get(f"{CONSOLE}/lists/news?weeks=4").text
    dashboard = client.get(f"{CONSOLE}/").text
    # The dashboard asks for each list's chart once it is shown (htmx), as a fragment.
    asks = re.findall(r'hx-get="([^"]+)" hx-trigger="load"', dashboard)
    assert asks == [f"{CONSOLE}/lists/news", f"{CONSOLE}/lists/other"]
    fragment = client.get(asks[0], headers={"HX-Request": "true"}).text
    assert "<html" not in fragment

    for html in (shown, fragment):
        drawn = _drawn(re.search(r"<svg.*?</svg>", html, re.S)[0])  # type: ignore[index]
        table = re.findall(
            r'<tr data-week="([^"]+)"><td>[^<]+</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>'
            r"<td>(\d+)</td></tr>",
            html,
        )
        weeks = {day: numbers for day, *numbers in table}
        for week in EXPECTED[-len(weeks) :]:
            day = week.starts.isoformat()
            numbers = [str(week.active), str(week.signups), str(week.unsubscribes)]
            assert weeks[day] == [*numbers, str(week.bounces)]
            for kind in ("active", "signups", "unsubscribes", "bounces"):
                assert drawn[(kind, day)] == str(getattr(week, kind))
        assert drawn[("share", "active")] == "0.5000"
    assert len(re.findall(r'<tr data-week="', shown)) == 4
    assert "active 2 (50%), bounced 1 (25%), unsubscribed 1 (25%)" in shown


WIZARD_FILE = (
    EXCEL_ITALY
    + "not-an-address;Nessuno;commentaries\r\n"
    + "luca@example.it;Luca Ferrà;comentaries\r\n"
).encode("cp1252")


def mapped(html: str) -> list[str]:
    """The field each column of the wizard's table is imported as ("" when not imported)."""
    chosen = []
    for options in re.findall(r'name="column-\d+">(.*?)</select>', html):
        found = re.search(r'<option value="([^"]*)" selected', options)
        chosen.append(found[1] if found else "")
    return chosen


def wait_until_finished(client: FlaskClient, token: str) -> str:
    """The progress page once it says Done (polled as htmx does), within a generous minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(f"{CONSOLE}/import/{token}/progress", headers={"HX-Request": "true"})
        if "hx-trigger" not in fragment.text:
            return fragment.text
        time.sleep(0.1)
    raise AssertionError(f"the import did not finish: {fragment.text[:500]}")


def test_the_wizard_shows_how_the_file_is_read_previews_it_and_imports_it(
    console: ConsoleApp,
) -> None:
    store = console.newsletter.store
    store.lists.create("Commentaries")
    client = console.signed_in(PUBLISHER)
    token = csrf_of(client, "/import")
    uploaded = client.post(
        f"{CONSOLE}/import",
        data={"csrf_token": token, "file": (io.BytesIO(WIZARD_FILE), "Iscritti.csv")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    wizard = uploaded.headers["Location"]
    import_token = wizard.rsplit("/", 1)[1]

    shown = client.get(wizard).text
    detected = re.sub(r"<[^>]+>", "", re.search(r'<p id="detected">(.*?)</p>', shown)[1])  # type: ignore[index]
    assert detected.startswith(
        "Read as Windows-1252 (detected), cells separated by semicolon (detected)"
    )
    assert mapped(shown) == ["email", "name", "lists"]
    preview = shown.split('id="preview"')[1]
    assert "Niccolò Fabbrì" in preview and "Zoë Bianchi" in preview
    assert "COMMENTARIES" not in preview  # each list as it exists
    rejected = dict(
        re.findall(r'<tr class="rejected"><td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td>', preview)
    )
    assert set(rejected) == {"5", "6"}
    assert "did you mean &#39;Commentaries&#39;" in rejected["6"]

    # Run with the name column left out.
    data = {
        "header": '["email", "name", "lists"]',
        "column-0": "email",
        "column-1": "",
        "column-2": "lists",
        "action": "run",
    }
    started = submit(client, f"/import/{import_token}", data, f"/import/{import_token}")
    assert started.status_code == 302  # type: ignore[attr-defined]
    done = wait_until_finished(client, import_token)

    assert "5 rows: 3 added, 0 updated, 0 unchanged, 2 rejected." in done
    maria = store.subscribers.find("maria.rossi@example.it")
    assert maria is not None and maria.name == "" and maria.lists == ("Commentaries",)
    assert maria.joined.detail == "import of Iscritti.csv"  # as uploaded, not as stored
    assert store.subscribers.find("luca@example.it") is None
    rejects = client.get(f"{CONSOLE}/import/{import_token}/rejects.csv").get_data(as_text=True)
    lines = list(csv.reader(io.StringIO(rejects)))
    assert lines[0] == ["line", "reason"] and [line for line, _ in lines[1:]] == ["5", "6"]
    assert (
        "imported subscribers",
        "Iscritti.csv: 5 rows, 3 added, 0 updated, 0 unchanged, 2 rejected, 0 kept out",
    ) in audit(console)
    assert client.get(wizard).status_code == 302  # the wizard sends to the progress from now on


def test_the_wizard_lets_staff_map_a_file_it_cannot_read_alone(console: ConsoleApp) -> None:
    client = console.signed_in(PUBLISHER)
    token = csrf_of(client, "/import")
    content = b"Posta;Chi\r\nanna@example.org;Anna\r\n"
    uploaded = client.post(
        f"{CONSOLE}/import",
        data={"csrf_token": token, "file": (io.BytesIO(content), "odd.csv")},
        content_type="multipart/form-data",
    )
    wizard = uploaded.headers["Location"]
    import_token = wizard.rsplit("/", 1)[1]
    refused = client.get(wizard)
    assert refused.status_code == 400 and "odd.csv:1: there is no email column" in refused.text
    assert "/tmp" not in refused.text  # the stored file's place is not shown

    mapped = submit(
        client,
        f"/import/{import_token}",
        {"header": '["Posta", "Chi"]', "column-0": "email", "column-1": "name", "new_list": "Soci"},
        f"/import/{import_token}",
    )
    assert mapped.status_code == 200 and "anna@example.org" in mapped.text  # type: ignore[attr-defined]
    rows = mapped.text.split('id="preview"')[1]  # type: ignore[attr-defined]
    assert '<td data-label="Lists">Soci</td>' in rows  # the new list only, not the default


def test_an_upload_over_the_limit_is_refused(console: ConsoleApp) -> None:
    client = console.signed_in(PUBLISHER)
    token = csrf_of(client, "/import")
    big = b"email\n" + b"x" * MAX_CSV_BYTES
    answer = client.post(
        f"{CONSOLE}/import",
        data={"csrf_token": token, "file": (io.BytesIO(big), "big.csv")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413 and "mailer subscribers import" in answer.text


NEW_POSTS = [
    "/subscribers",
    "/subscribers/{id}/lists",
    "/subscribers/{id}/unsubscribe",
    "/subscribers/{id}/erase",
    "/lists",
    "/lists/commentaries",
    "/import",
    "/import/{token}",
]


@pytest.mark.parametrize("path", NEW_POSTS)
def test_each_new_form_is_refused_without_its_token(console: ConsoleApp, path: str) -> None:
    ada = add(console, "ada@example.org")
    client = console.signed_in(ADMIN)
    held = submit(
        client,
        "/import",
        {"file": (io.BytesIO(b"email\r\nx@example.org\r\n"), "x.csv")},
    )
    token = held.headers["Location"].rsplit("/", 1)[1]  # type: ignore[attr-defined]
    target = f"{CONSOLE}{path.format(id=ada, token=token)}"
    data = {"email": "new@example.org", "name": "x", "action": "save", "address": "ada@example.org"}

    answer = client.post(target, data=data)

    assert answer.status_code == 403 and "This form has expired" in answer.text
    subscriber = console.newsletter.store.subscribers.get(ada)
    assert subscriber is not None and subscriber.status == Status.ACTIVE
    assert console.newsletter.store.subscribers.find("new@example.org") is None
