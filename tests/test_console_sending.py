"""Sending from the console: approval ([console] approval), the confirmation naming the list,
the recipients and the backend, send now and schedule through the scheduler (and a real
`mailer serve` killed half-way), pause, resume and cancel, the campaign's live progress and
report, the saved test addresses, and PDF and image uploads."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import re
import signal
import subprocess

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from mailer.console.drafting import version
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.delivery.smtp import SmtpBackend
from mailer.scheduler.due import Scheduler
from mailer.store.approvals import MAX_TEST_ADDRESSES
from mailer.store.campaigns import CampaignStatus
from mailer.store.schema import deliveries
from mailer.store.staff import Role
from tests.conftest import Folder, Run
from tests.console_client import CONSOLE, ConsoleApp, csrf_of, make_console
from tests.processes import (
    assert_nobody_lost_nor_sent_again,
    killed_part_way,
    mailer_command,
    mailer_environment,
    wait_until_logged_as_sent,
)
from tests.smtp_server import (
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import add_people, many, use_server

STALEMATE = "stalemate-to-escalation"
SEND = f"/commentaries/{STALEMATE}/send"


@pytest.fixture
def console(folder: Folder, run: Run) -> ConsoleApp:
    add_people(folder, run, many(3))
    made = make_console(folder)
    made.clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the scheduler's clock too
    for email_, role in (
        ("ed@example.org", Role.EDITOR),
        ("pat@example.org", Role.PUBLISHER),
        ("quinn@example.org", Role.PUBLISHER),
    ):
        made.person(email_, role)
    return made


def with_approval(folder: Folder) -> ConsoleApp:
    folder.configure("approval = false", "approval = true")
    made = make_console(folder)
    made.clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return made


def version_on(client: FlaskClient, path: str = SEND) -> str:
    found = re.search(r'name="version" value="(\w+)"', client.get(f"{CONSOLE}{path}").text)
    assert found, "no version on the page"
    return found[1]


def confirm(client: FlaskClient, version: str = "", **fields: str) -> object:
    """Press the confirmation's button, as the page has it (or as it had it: `version`)."""
    return client.post(
        f"{CONSOLE}{SEND}",
        data={
            "csrf_token": csrf_of(client, SEND),
            "version": version or version_on(client),
            "list": "commentaries",
            **fields,
        },
    )


def actions(console: ConsoleApp) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in console.newsletter.store.audit.latest()]


def save_in_the_editor(client: FlaskClient, slug: str = STALEMATE) -> None:
    from tests.test_console_commentaries import form_of

    form = form_of(client, f"/commentaries/{slug}")
    form["body"] += "\n\nOne more line.\n"
    saved = client.post(f"{CONSOLE}/commentaries/{slug}", data=form)
    assert saved.status_code == 302, saved.text[:2000]


def test_the_confirmation_names_the_list_the_recipients_and_the_backend(
    console: ConsoleApp, folder: Folder, run: Run
) -> None:
    add_people(folder, run, [("weekly@example.net", "Weekly Reader", "commentaries")])
    store = console.newsletter.store
    weekly = store.subscribers.find("weekly@example.net")
    assert weekly is not None
    store.subscribers.set_frequency(weekly.id, "commentaries", Frequency.WEEKLY, console.clock.now)
    publisher = console.signed_in("pat@example.org")
    shown = publisher.get(f"{CONSOLE}{SEND}").text
    confirmation = shown[shown.index('id="confirmation"') :]
    assert "<dd>commentaries</dd>" in confirmation
    assert '<strong id="recipients">3</strong>' in confirmation  # the weekly reader aside
    assert "<strong>outbox</strong>" in confirmation
    assert "Send it now to 3 subscribers" in confirmation
    assert not store.campaigns.all()  # looking sends nothing


def test_send_now_records_a_campaign_that_the_scheduler_sends(
    console: ConsoleApp, folder: Folder
) -> None:
    publisher = console.signed_in("pat@example.org")
    seen = version_on(publisher)
    answer = confirm(publisher, seen)
    store = console.newsletter.store
    (campaign,) = store.campaigns.all()
    assert answer.status_code == 302  # type: ignore[attr-defined]
    assert answer.headers["Location"] == f"{CONSOLE}/campaigns/{campaign.id}"  # type: ignore[attr-defined]
    assert campaign.status == CampaignStatus.SCHEDULED and not list(
        (folder.path / "outbox").glob("*")
    )
    assert campaign.scheduled_at == console.clock.now
    waiting = publisher.get(f"{CONSOLE}/campaigns/{campaign.id}").text
    assert 'id="campaign-state">scheduled' in waiting and 'hx-trigger="every 2s"' in waiting

    Scheduler(folder.newsletter()).tick()  # as `mailer serve` does at its next look
    assert len(list((folder.path / "outbox").glob("*.eml"))) == 3
    done = publisher.get(f"{CONSOLE}/campaigns/{campaign.id}").text
    assert 'id="campaign-state">done' in done and 'id="count-sent">3<' in done
    assert "hx-trigger" not in done and 'id="left-since"' in done
    again = confirm(publisher, seen)  # a second press, or the back button: no second campaign
    assert again.status_code == 409 and "It is not sent twice" in again.text  # type: ignore[attr-defined]
    assert len(store.campaigns.all()) == 1
    assert ("pat@example.org", "sent campaign") in actions(console)


def test_a_scheduled_send_waits_for_its_time_and_never_before_the_embargo(
    console: ConsoleApp, folder: Folder
) -> None:
    publisher = console.signed_in("pat@example.org")
    zone = console.newsletter.config.newsletter.zone
    at = (console.clock.now + dt.timedelta(days=2)).astimezone(zone).replace(tzinfo=None, second=0)
    shown = publisher.get(f"{CONSOLE}{SEND}", query_string={"at": at.isoformat("T", "minutes")})
    assert "Schedule it for 3 subscribers" in shown.text
    assert confirm(publisher, at=at.isoformat("T", "minutes")).status_code == 302  # type: ignore[attr-defined]
    (campaign,) = console.newsletter.store.campaigns.all()
    assert campaign.scheduled_at == at.replace(tzinfo=zone)
    Scheduler(folder.newsletter()).tick()
    assert console.newsletter.store.campaigns.all()[0].status == CampaignStatus.SCHEDULED
    dashboard = publisher.get(f"{CONSOLE}/").text
    assert f'href="{CONSOLE}/campaigns/{campaign.id}"' in dashboard.split('id="scheduled"')[1]
    assert ("pat@example.org", "scheduled campaign") in actions(console)

    past = (console.clock.now - dt.timedelta(hours=1)).astimezone(zone).replace(tzinfo=None)
    refused = publisher.get(f"{CONSOLE}{SEND}", query_string={"at": past.isoformat(" ")}).text
    assert "is past: give a time to come" in refused

    embargoed = folder.commentaries / "2025-11-05-sahel-after-the-juntas.md"
    later = console.clock.now + dt.timedelta(days=5)
    text = embargoed.read_text(encoding="utf-8")
    embargoed.write_text(
        text.replace("date = 2025-11-05", f"date = {later.isoformat()}", 1), encoding="utf-8"
    )
    other = publisher.get(f"{CONSOLE}/commentaries/sahel-after-the-juntas/send").text
    assert console.newsletter.local_time(later) in other
    assert "when its embargo ends" in other


def test_with_approval_a_publisher_who_did_not_write_it_approves_it_as_it_is(
    console: ConsoleApp, folder: Folder
) -> None:
    strict = with_approval(folder)
    editor = strict.signed_in("ed@example.org")
    save_in_the_editor(editor)
    writer = strict.signed_in("pat@example.org")
    save_in_the_editor(writer)  # a publisher who edits it is one of its writers too
    assert strict.newsletter.store.approvals.writers(STALEMATE) == [
        "ed@example.org",
        "pat@example.org",
    ]
    assert "It can be sent once it is approved" in writer.get(f"{CONSOLE}{SEND}").text
    as_it_is = version(folder.commentaries / "2025-09-17-stalemate-to-escalation.md")
    assert confirm(writer, as_it_is).status_code == 409  # type: ignore[attr-defined]
    own = writer.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/approve",
        data={"csrf_token": csrf_of(writer, SEND), "version": as_it_is},
    )
    assert own.status_code == 403 and "Not yours to approve" in own.text
    assert not strict.newsletter.store.campaigns.all()

    other = strict.signed_in("quinn@example.org")
    stale = other.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/approve",
        data={"csrf_token": csrf_of(other, SEND), "version": "0" * 64},
    )
    assert stale.status_code == 409 and "The commentary changed" in stale.text
    approved = other.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/approve",
        data={"csrf_token": csrf_of(other, SEND), "version": version_on(other)},
    )
    assert approved.status_code == 302
    assert "Approved by quinn@example.org" in writer.get(f"{CONSOLE}{SEND}").text

    save_in_the_editor(editor)  # a change after the approval is not approved
    assert "It can be sent once it is approved" in writer.get(f"{CONSOLE}{SEND}").text
    other.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/approve",
        data={"csrf_token": csrf_of(other, SEND), "version": version_on(other)},
    )
    assert confirm(writer).status_code == 302  # type: ignore[attr-defined]
    log = actions(strict)
    assert log.count(("quinn@example.org", "approved commentary")) == 2
    assert ("pat@example.org", "approval refused") in log


def test_an_author_named_by_address_in_the_front_matter_may_not_approve(
    console: ConsoleApp, folder: Folder
) -> None:
    strict = with_approval(folder)
    path = folder.commentaries / "2025-09-17-stalemate-to-escalation.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('authors = ["Nona Mikhelidze"]', 'authors = ["Quinn <Quinn@example.org>"]'),
        encoding="utf-8",
    )
    other = strict.signed_in("quinn@example.org")
    assert "You wrote this commentary" in other.get(f"{CONSOLE}{SEND}").text
    refused = other.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/approve",
        data={"csrf_token": csrf_of(other, SEND), "version": version(path)},
    )
    assert refused.status_code == 403
    publisher = strict.signed_in("pat@example.org")
    assert 'id="approve"' in publisher.get(f"{CONSOLE}{SEND}").text


def test_pause_resume_and_cancel_change_the_campaign_and_are_logged(
    console: ConsoleApp, folder: Folder
) -> None:
    publisher = console.signed_in("pat@example.org")
    confirm(publisher)
    store = console.newsletter.store
    (campaign,) = store.campaigns.all()
    page = f"/campaigns/{campaign.id}"

    def press(action: str) -> object:
        return publisher.post(
            f"{CONSOLE}{page}/{action}", data={"csrf_token": csrf_of(publisher, page)}
        )

    assert press("pause").status_code == 409  # type: ignore[attr-defined]  # not running yet
    store.campaigns.begin(campaign.id)  # as the scheduler starts it
    assert 'id="pause"' in publisher.get(f"{CONSOLE}{page}").text
    assert press("pause").status_code == 302  # type: ignore[attr-defined]
    paused = store.campaigns.get(campaign.id)
    assert paused is not None and paused.status == CampaignStatus.PAUSED
    assert paused.status_detail == "paused by pat@example.org"
    assert 'id="resume"' in publisher.get(f"{CONSOLE}{page}").text

    with store.engine.begin() as connection:  # paused longer ago than the grace (six hours)
        connection.execute(
            update(deliveries).values(updated_at=console.clock.now - dt.timedelta(hours=12))
        )
    assert press("resume").status_code == 302  # type: ignore[attr-defined]
    later = folder.newsletter()
    Scheduler(later).tick()  # goes on: the grace counts from the resume
    finished = store.campaigns.get(campaign.id)
    assert finished is not None and finished.status == CampaignStatus.DONE, finished
    assert len(list((folder.path / "outbox").glob("*.eml"))) == 3
    assert press("cancel").status_code == 409  # type: ignore[attr-defined]  # done already

    second = store.campaigns.schedule(
        "sahel-after-the-juntas", "commentaries", "S", console.clock.now
    )
    assert (
        publisher.post(
            f"{CONSOLE}/campaigns/{second.id}/cancel",
            data={"csrf_token": csrf_of(publisher, page)},
        ).status_code
        == 302
    )
    Scheduler(later).tick()
    cancelled = store.campaigns.get(second.id)
    assert cancelled is not None and cancelled.status == CampaignStatus.CANCELLED
    log = actions(console)
    for step in ("paused campaign", "resumed campaign", "cancelled campaign"):
        assert ("pat@example.org", step) in log


def test_the_progress_fragment_measures_the_rate_and_the_time_left(
    console: ConsoleApp, folder: Folder
) -> None:
    editor = console.signed_in("ed@example.org")
    store = console.newsletter.store
    campaign = store.campaigns.start(STALEMATE, "commentaries", "S")
    opened = console.clock.now
    assert "measuring…" in editor.get(f"{CONSOLE}/campaigns/{campaign.id}").text
    with store.engine.begin() as connection:  # two of three went in the ten seconds
        ids = connection.execute(
            deliveries.select()
            .with_only_columns(deliveries.c.subscriber_id)
            .order_by(deliveries.c.subscriber_id)
            .limit(2)
        ).scalars()
        connection.execute(
            update(deliveries).where(deliveries.c.subscriber_id.in_(list(ids))).values(state="sent")
        )
    console.clock.advance(seconds=10)
    later = editor.get(
        f"{CONSOLE}/campaigns/{campaign.id}/progress",
        query_string={"shown": "running", "done": "0", "since": opened.isoformat()},
    )
    assert 'id="count-sent">2<' in later.text and 'id="count-waiting">1<' in later.text
    assert "0.2 a second" in later.text and 'id="time-left">0:00:05<' in later.text
    assert "HX-Refresh" not in later.headers
    store.campaigns.set_status(campaign.id, CampaignStatus.DONE)  # the page reloads: the report
    done = editor.get(f"{CONSOLE}/campaigns/{campaign.id}/progress?shown=running")
    assert done.headers["HX-Refresh"] == "true"


def test_the_report_counts_bounces_and_unsubscribes_since_the_send(
    console: ConsoleApp, folder: Folder
) -> None:
    publisher = console.signed_in("pat@example.org")
    confirm(publisher)
    Scheduler(folder.newsletter()).tick()
    store = console.newsletter.store
    (campaign,) = store.campaigns.all()
    left, bounced = (store.subscribers.find(f"reader000{n}@example.net") for n in (0, 1))
    assert left is not None and bounced is not None
    store.subscribers.change_status(left.id, Status.UNSUBSCRIBED, Reason.UNSUBSCRIBE_PAGE)
    store.subscribers.change_status(bounced.id, Status.BOUNCED, Reason.BOUNCE)
    report = publisher.get(f"{CONSOLE}/campaigns/{campaign.id}").text
    assert "1 bounced and 1 unsubscribed since it went" in report


def test_saved_test_addresses_are_validated_limited_and_get_the_test(
    console: ConsoleApp, folder: Folder
) -> None:
    publisher = console.signed_in("pat@example.org")
    page = "/test-addresses"

    def save(address: str) -> object:
        return publisher.post(
            f"{CONSOLE}{page}", data={"csrf_token": csrf_of(publisher, page), "email": address}
        )

    assert save("not an address").status_code == 400  # type: ignore[attr-defined]
    assert save("x" * 300 + "@example.org").status_code == 400  # type: ignore[attr-defined]
    assert save("Seed@Example.ORG").status_code == 302  # type: ignore[attr-defined]
    assert console.newsletter.store.test_addresses.all() == ["Seed@example.org"]
    for n in range(MAX_TEST_ADDRESSES - 1):
        save(f"seed{n}@example.org")
    full = save("one-too-many@example.org")
    assert full.status_code == 409 and "at most" in full.text  # type: ignore[attr-defined]
    for n in range(MAX_TEST_ADDRESSES - 1):
        publisher.post(
            f"{CONSOLE}{page}/remove",
            data={"csrf_token": csrf_of(publisher, page), "email": f"seed{n}@example.org"},
        )
    assert console.newsletter.store.test_addresses.all() == ["Seed@example.org"]

    editor = console.signed_in("ed@example.org")  # anyone may send a test to the saved ones
    preview = f"/commentaries/{STALEMATE}/preview"
    assert 'value="Seed@example.org"' in editor.get(f"{CONSOLE}{preview}").text
    sent = editor.post(
        f"{CONSOLE}/commentaries/{STALEMATE}/test",
        data={
            "csrf_token": csrf_of(editor, preview),
            "to": ["me", "Seed@example.org", "stranger@example.org"],
        },
    )
    assert sent.status_code == 200, sent.text
    to = set()
    for path in (folder.path / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["Subject"].startswith("[Test] ")
        to.add(message["To"].addresses[0].addr_spec)
    assert to == {"ed@example.org", "Seed@example.org"}  # never an address not saved
    log = actions(console)
    assert ("pat@example.org", "saved a test address") in log
    assert ("pat@example.org", "removed a test address") in log


PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def test_a_pdf_and_images_are_uploaded_beside_the_commentary_and_named_in_it(
    console: ConsoleApp, folder: Folder, run: Run
) -> None:
    from tests.conftest import png

    editor = console.signed_in("ed@example.org")
    path = f"/commentaries/{STALEMATE}"

    def upload(**files: object) -> object:
        return editor.post(
            f"{CONSOLE}{path}/files",
            data={
                "csrf_token": csrf_of(editor, path),
                "version": version_on(editor, path),
                **files,
            },
            content_type="multipart/form-data",
        )

    pretending = upload(pdf_file=(io.BytesIO(b"<html>not a pdf</html>"), "paper.pdf"))
    assert pretending.status_code == 400 and "not a PDF" in pretending.text  # type: ignore[attr-defined]
    fake = upload(images=[(io.BytesIO(PDF), "photo.png")])
    assert fake.status_code == 400 and "not a PNG" in fake.text  # type: ignore[attr-defined]
    large = upload(images=[(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * 6 * 1024 * 1024), "big.png")])
    assert large.status_code == 400 and "at most 5 MB" in large.text  # type: ignore[attr-defined]
    own_folder = folder.commentaries / STALEMATE
    before = sorted(p.name for p in own_folder.iterdir())

    done = upload(
        pdf_file=(io.BytesIO(PDF), "The Paper (final).PDF"),
        images=[(io.BytesIO(png(40, 30)), "Front Line 2.png")],
    )
    assert done.status_code == 302, done.text  # type: ignore[attr-defined]
    assert (own_folder / "the-paper-final.pdf").read_bytes() == PDF
    assert (own_folder / "front-line-2.png").is_file()
    assert sorted(p.name for p in own_folder.iterdir()) == sorted(
        [*before, "the-paper-final.pdf", "front-line-2.png"]
    )
    text = (folder.commentaries / "2025-09-17-stalemate-to-escalation.md").read_text("utf-8")
    assert 'pdf = "the-paper-final.pdf"' in text and f"pdf_size = {len(PDF)}" in text
    assert text.rstrip().endswith("![Describe this image](front-line-2.png)")
    assert run("check").exit_code == 0  # the files are where `mailer check` looks
    stale = editor.post(
        f"{CONSOLE}{path}/files",
        data={
            "csrf_token": csrf_of(editor, path),
            "version": "0" * 64,
            "images": [(io.BytesIO(png(10, 10)), "late.png")],
        },
        content_type="multipart/form-data",
    )
    assert stale.status_code == 409  # someone saved meanwhile: the commentary is left as it was
    assert "late.png" not in (
        folder.commentaries / "2025-09-17-stalemate-to-escalation.md"
    ).read_text("utf-8")
    assert ("ed@example.org", "uploaded files") in actions(console)


def test_a_send_from_the_console_survives_mailer_serve_killed_and_started_again(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    """ "Send now" only records the campaign: `mailer serve` sends it, and a `mailer serve`
    killed half-way (SIGKILL) and started again goes on, nobody logged as sent getting it
    twice, nobody lost."""
    batch = SmtpBackend.batch_size
    count = 3 * 2 * batch
    server = smtp_server(delay=0.001)
    add_people(folder, run, many(count))
    use_server(folder, server, concurrency=2, max_attempts=5)
    folder.configure("interval = 30", "interval = 1")
    made = make_console(folder)
    made.clock.now = dt.datetime.now(dt.UTC)
    made.person("pat@example.org", Role.PUBLISHER)
    assert confirm(made.signed_in("pat@example.org")).status_code == 302  # type: ignore[attr-defined]
    made.newsletter.store.close()

    def serve() -> subprocess.Popen[bytes]:
        command = mailer_command(folder, "serve", "--port", str(free_port()))
        return subprocess.Popen(
            command,
            env=mailer_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    sent_before = killed_part_way(folder, serve(), server, count, batch)
    second = serve()
    try:  # the campaign is continued: every delivery logged as sent
        wait_until_logged_as_sent(folder, second, count)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    everyone = {address for address, _, _ in many(count)}
    assert_nobody_lost_nor_sent_again(server.arrivals(), everyone, sent_before)
