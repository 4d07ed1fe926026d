"""Bounces by mail: real reports of Postfix, Exim, Gmail and Exchange and a feedback report
(tests/bounces/), read by `mailer bounces check` from a real Dovecot over IMAPS and POP3S.

The issue goes out through the outbox backend first, so the send log holds the Message-IDs the
reports name, and each report is addressed as a bounce to mailer's VERP address would be.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailer.app.newsletter import Newsletter
from mailer.bounces.checking import check_mailbox
from mailer.bounces.mailbox import ImapMailbox, MailboxError, open_mailbox
from mailer.bounces.reading import Verdict, read_report
from mailer.core.events import Severity
from mailer.core.lifecycle import Status
from mailer.core.tokens import Links
from mailer.scheduler.due import Scheduler
from tests.conftest import SECRET, Folder, Run
from tests.imap_server import PASSWORD, MailServer, mail_server_fixture  # noqa: F401
from tests.smtp_server import certificates_fixture  # noqa: F401
from tests.test_scheduler import FakeClock

SAMPLES = Path(__file__).parent / "bounces"
BOUNCES = "bounces@example.org"
PEOPLE = "email,name,lists\n" + "".join(
    f"reader{n}@example.net,Reader {n},commentaries\n" for n in range(6)
)
SITE = "https://www.example.org/commentaries/"
links = Links(SITE, SECRET)
LINK_SECRET = "the-row-s-own-link-secret"
JOINED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def sample(name: str, recipient: str, message_id: str, verp: str, n: int = 0) -> bytes:
    text = (SAMPLES / name).read_text(encoding="utf-8")
    for placeholder, value in (
        ("@@VERP@@", verp),
        ("@@RECIPIENT@@", recipient),
        ("@@MESSAGE_ID@@", message_id),
        ("@@N@@", str(n)),
    ):
        text = text.replace(placeholder, value)
    return text.encode("utf-8")


@pytest.mark.parametrize(
    ("name", "verdict", "severity"),
    [
        ("postfix-user-unknown.eml", Verdict.BOUNCE, Severity.HARD),
        ("exim-user-unknown.eml", Verdict.BOUNCE, Severity.HARD),
        ("gmail-over-quota.eml", Verdict.BOUNCE, Severity.SOFT),
        ("exchange-recipient-not-found.eml", Verdict.BOUNCE, Severity.HARD),
        ("arf-abuse.eml", Verdict.COMPLAINT, None),
        ("postfix-delayed.eml", Verdict.DELAY, None),
        ("out-of-office.eml", Verdict.UNREADABLE, None),
    ],
)
def test_each_servers_report_is_read_for_what_it_says(
    name: str, verdict: Verdict, severity: Severity | None
) -> None:
    verp = links.bounce_address(BOUNCES, 42, LINK_SECRET)
    report = read_report(sample(name, "reader@example.net", "<issue.42@example.org>", verp))

    assert (report.verdict, report.severity) == (verdict, severity)
    if verdict in (Verdict.BOUNCE, Verdict.COMPLAINT):
        assert report.original_message_id == "<issue.42@example.org>"
        found = {bounced(BOUNCES, a) for a in report.addressed_to}
        assert 42 in found
        assert report.reason and report.event_id.startswith("<")


def bounced(base: str, address: str, checker: Links = links) -> int | None:
    """The subscriber id a VERP address names, checked against LINK_SECRET as the row's."""
    link = checker.bounced(base, address)
    if link is None or not checker.names(link, LINK_SECRET, JOINED):
        return None
    return link.subscriber_id


def test_a_verp_address_names_its_subscriber_and_a_forged_one_nobody() -> None:
    verp = links.bounce_address(BOUNCES, 42, LINK_SECRET)
    local, _, domain = verp.partition("@")
    assert domain == "example.org" and local.startswith("bounces+") and len(local) <= 64
    assert bounced(BOUNCES, verp) == 42
    assert bounced(BOUNCES, verp.upper()) == 42  # a server changed its case on the way
    assert bounced(BOUNCES, f"<{verp}>") == 42
    token = local.removeprefix("bounces+")
    forged = token.replace(token.split(".")[0], "2b", 1)  # another subscriber, same MAC
    assert bounced(BOUNCES, f"bounces+{forged}@example.org") is None
    assert bounced(BOUNCES, f"bounces+{token[:-4]}0000@example.org") is None
    assert bounced(BOUNCES, f"other+{token}@example.org") is None
    assert bounced(BOUNCES, f"bounces+{token}@example.com") is None
    assert bounced(BOUNCES, verp, Links(SITE, "another secret " * 3)) is None
    # Made for whoever held id 42 before: it names nobody now.
    link = links.bounced(BOUNCES, verp)
    assert link is not None and not links.names(link, "another-link-secret", JOINED)


# Through the mailbox -----------------------------------------------------------------------------


def configure(folder: Folder, server: MailServer, mailbox: str, processed: str = "move") -> None:
    folder.configure('address = ""\n# The mailbox', f'address = "{BOUNCES}"\n# The mailbox')
    folder.configure('mailbox = ""', f'mailbox = "{mailbox}"')
    folder.configure('processed = "move"', f'processed = "{processed}"')
    folder.configure(
        'empty: the system\'s.\nca_file = ""\n# Seconds to wait for the mail server.',
        f'empty: the system\'s.\nca_file = "{server.certificates.ca_file}"\n'
        "# Seconds to wait for the mail server.",
    )
    folder.configure("soft_bounces = 5", "soft_bounces = 3")


@pytest.fixture
def sent(folder: Folder, run: Run, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The issue sent to six readers: each reader's address → the Message-ID it went with."""
    monkeypatch.setenv("MAILER_BOUNCES_PASSWORD", PASSWORD)
    people = folder.write("people.csv", PEOPLE)
    assert run("subscribers", "import", str(people)).exit_code == 0
    assert run("send", "--yes").exit_code == 0
    found = {}
    for path in (folder.path / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found[message["To"].addresses[0].addr_spec] = str(message["Message-ID"])
    assert len(found) == 6
    return found


def status(folder: Folder, address: str) -> Status:
    found = folder.newsletter().store.subscribers.find(address)
    assert found is not None
    return found.status


def verp_of(folder: Folder, address: str) -> str:
    newsletter = folder.newsletter()
    found = newsletter.store.subscribers.find(address)
    assert found is not None
    return newsletter.links.bounce_address(BOUNCES, found.id, found.link_secret)


def test_bounces_and_complaints_in_an_imap_mailbox_mark_their_subscribers(
    folder: Folder, run: Run, mail_server: MailServer, sent: dict[str, str]
) -> None:
    configure(folder, mail_server, mail_server.imap_url)
    r = [f"reader{n}@example.net" for n in range(6)]

    def report(name: str, who: str, verp: str = "", message_id: str = "", n: int = 0) -> bytes:
        return sample(name, who, message_id or sent[who], verp or verp_of(folder, who), n)

    forged_verp = verp_of(folder, r[5]).replace("bounces+", "bounces+1", 1)
    mail_server.deliver(
        report("postfix-user-unknown.eml", r[0]),
        report("exim-user-unknown.eml", r[1]),
        # No VERP token (a relay rewrote the sender): traced by the original's Message-ID.
        report("exchange-recipient-not-found.eml", r[4], verp=BOUNCES),
        report("gmail-over-quota.eml", r[2], n=1),
        report("arf-abuse.eml", r[3]),
        report("postfix-delayed.eml", r[5]),
        report("out-of-office.eml", r[5]),
        # Forged: a token we did not sign and a Message-ID we never sent.
        report("postfix-user-unknown.eml", r[5], verp=forged_verp, message_id="<x@example.com>"),
    )

    result = run("bounces", "check")

    assert result.exit_code == 1, result.output  # two messages were left for a person
    assert "5 reports recorded (3 bounced, 1 complained)" in result.output
    assert "1 delay warning" in result.output and "2 left in the mailbox" in result.output
    assert "names nobody mailer sent to" in result.output
    assert [status(folder, a) for a in r] == [
        Status.BOUNCED,
        Status.BOUNCED,
        Status.ACTIVE,  # one soft bounce: counted, not yet enough
        Status.COMPLAINED,
        Status.BOUNCED,
        Status.ACTIVE,  # the forged bounce marked nobody
    ]
    assert mail_server.subjects("INBOX") == [
        "Out of office: The stalemate that became an escalation",
        "Undelivered Mail Returned to Sender",
    ]
    assert len(mail_server.subjects("Processed")) == 6

    # A second pass repeats nothing; two more soft bounces make three within the window.
    again = run("bounces", "check")
    assert "0 reports recorded" in again.output and again.exit_code == 1
    mail_server.deliver(
        report("gmail-over-quota.eml", r[2], n=2), report("gmail-over-quota.eml", r[2], n=3)
    )
    third = run("bounces", "check")
    assert "2 reports recorded (1 bounced, 0 complained)" in third.output, third.output
    assert status(folder, r[2]) == Status.BOUNCED
    events = folder.newsletter().store.events
    recorded = events.of_subscriber(folder.newsletter().store.subscribers.find(r[0]).id)  # type: ignore[union-attr]
    assert [(e.provider, e.kind, e.severity) for e in recorded] == [("mailbox", "bounced", "hard")]
    assert "5.1.1" in recorded[0].reason


def test_a_pop3_mailbox_has_its_processed_reports_deleted(
    folder: Folder, run: Run, mail_server: MailServer, sent: dict[str, str]
) -> None:
    configure(folder, mail_server, mail_server.pop3_url, processed="delete")
    reader = "reader0@example.net"
    mail_server.deliver(
        sample("postfix-user-unknown.eml", reader, sent[reader], verp_of(folder, reader)),
        sample("out-of-office.eml", reader, sent[reader], verp_of(folder, reader)),
    )

    result = run("bounces", "check")

    assert "1 report recorded (1 bounced" in result.output, result.output
    assert status(folder, reader) == Status.BOUNCED
    assert mail_server.subjects("INBOX") == [
        "Out of office: The stalemate that became an escalation"
    ]


def test_a_mailbox_that_cannot_be_used_is_reported_and_nothing_changes(
    folder: Folder,
    run: Run,
    mail_server: MailServer,
    sent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(folder, mail_server, mail_server.pop3_url)
    reader = "reader0@example.net"
    mail_server.deliver(
        sample("postfix-user-unknown.eml", reader, sent[reader], verp_of(folder, reader))
    )

    moved = run("bounces", "check")  # POP3 has no folder to move to
    assert moved.exit_code == 2
    assert "[bounces] processed: a POP3 mailbox has no folders" in moved.output

    folder.configure('processed = "move"', 'processed = "delete"')
    monkeypatch.setenv("MAILER_BOUNCES_PASSWORD", "not the password")
    refused = run("bounces", "check")
    assert refused.exit_code == 1
    assert f"the bounce mailbox pop3s://127.0.0.1:{mail_server.pop3_port} refused us" in (
        refused.output
    )
    assert "not the password" not in refused.output
    assert status(folder, reader) == Status.ACTIVE
    assert len(mail_server.subjects("INBOX")) == 1


def test_a_pass_cut_short_after_recording_repeats_nothing_on_the_next(
    folder: Folder, run: Run, mail_server: MailServer, sent: dict[str, str]
) -> None:
    configure(folder, mail_server, mail_server.imap_url)
    reader = "reader0@example.net"
    mail_server.deliver(
        sample("gmail-over-quota.eml", reader, sent[reader], verp_of(folder, reader), 1)
    )
    newsletter = Newsletter.load(folder.config_path)  # the password from the environment
    settings = newsletter.config.bounces

    class CutShort(ImapMailbox):
        def processed(self, key: str) -> None:  # the connection drops before the move
            raise MailboxError("the connection was lost")

    mailbox = open_mailbox(settings, newsletter.config.path)
    assert isinstance(mailbox, ImapMailbox)
    mailbox.__class__ = CutShort
    with pytest.raises(MailboxError):
        check_mailbox(mailbox, newsletter.store, newsletter.links, settings.address)
    assert mail_server.subjects("INBOX") == ["Delivery Status Notification (Failure)"]

    again = run("bounces", "check")

    assert again.exit_code == 0, again.output
    assert "0 reports recorded" in again.output and "1 seen before" in again.output
    assert mail_server.subjects("INBOX") == []
    found = newsletter.store.subscribers.find(reader)
    assert found is not None
    assert len(newsletter.store.events.of_subscriber(found.id)) == 1  # one soft bounce, once


# The scheduler's pass ----------------------------------------------------------------------------


@contextmanager
def scheduler_at(folder: Folder, clock: FakeClock) -> Iterator[Scheduler]:
    """A scheduler under a fake clock, reading the environment (the mailbox's password)."""
    newsletter = Newsletter.load(folder.config_path, clock=clock)
    try:
        yield Scheduler(newsletter)
    finally:
        newsletter.store.close()


def test_the_scheduler_reads_the_mailbox_every_interval_and_marks_whom_it_names(
    folder: Folder, run: Run, mail_server: MailServer, sent: dict[str, str]
) -> None:
    configure(folder, mail_server, mail_server.imap_url)
    folder.configure("interval = 5", "interval = 10")
    gone, full = "reader0@example.net", "reader2@example.net"
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    with scheduler_at(folder, clock) as scheduler:
        assert scheduler.tick().warnings == []  # the first pass: nothing there yet
        mail_server.deliver(
            sample("postfix-user-unknown.eml", gone, sent[gone], verp_of(folder, gone))
        )
        clock.set(start + dt.timedelta(seconds=599))
        scheduler.tick()
        assert status(folder, gone) == Status.ACTIVE  # not yet its interval
        assert mail_server.subjects("INBOX") == ["Undelivered Mail Returned to Sender"]

        clock.set(start + dt.timedelta(seconds=600))
        done = scheduler.tick()
        assert status(folder, gone) == Status.BOUNCED
        assert any("1 report recorded (1 bounced" in note.text for note in done.notes)
        assert mail_server.subjects("INBOX") == []

        # Three soft bounces within the window ([bounces] soft_bounces = 3 here).
        mail_server.deliver(
            *(
                sample("gmail-over-quota.eml", full, sent[full], verp_of(folder, full), n)
                for n in (1, 2, 3)
            )
        )
        clock.set(start + dt.timedelta(seconds=1200))
        scheduler.tick()
        assert status(folder, full) == Status.BOUNCED
    assert [status(folder, f"reader{n}@example.net") for n in (1, 3, 4, 5)] == [Status.ACTIVE] * 4


def test_a_mailbox_the_scheduler_cannot_read_is_reported_without_its_password_and_tried_again(
    folder: Folder,
    run: Run,
    mail_server: MailServer,
    sent: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(folder, mail_server, mail_server.imap_url)
    reader = "reader0@example.net"
    mail_server.deliver(
        sample("postfix-user-unknown.eml", reader, sent[reader], verp_of(folder, reader))
    )
    monkeypatch.setenv("MAILER_BOUNCES_PASSWORD", "not the password")
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    with scheduler_at(folder, clock) as scheduler:
        done = scheduler.tick()
    (warning,) = done.warnings
    assert warning.startswith("bounces: the bounce mailbox imaps://") and "refused us" in warning
    assert "not the password" not in caplog.text and "not the password" not in warning
    assert status(folder, reader) == Status.ACTIVE

    monkeypatch.setenv("MAILER_BOUNCES_PASSWORD", PASSWORD)  # put right
    with scheduler_at(folder, clock) as scheduler:
        clock.set(start + dt.timedelta(seconds=60))
        assert scheduler.tick().warnings == []  # within the interval: not tried at every look
        assert status(folder, reader) == Status.ACTIVE
        clock.set(start + dt.timedelta(seconds=300))
        scheduler.tick()
    assert status(folder, reader) == Status.BOUNCED
