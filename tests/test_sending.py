"""`mailer send` through the smtp backend to a real SMTP server on loopback (tests/smtp_server.py).

What arrived is checked byte for byte where it matters (headers, both parts, the personalised
unsubscribe link), and so is what the send log says, on SQLite and PostgreSQL where the database
does the work (claiming, recording, bouncing, resuming). The server's fault mode plays the
failures a real submission server produces: temporary and permanent refusals, a 421 that closes
the connection, a connection cut at DATA, a stall, a refused login, a certificate
nobody trusts, nothing listening at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, text

from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Reason, Status
from mailer.core.tokens import Links, Purpose
from mailer.delivery.base import Backend, Outgoing, Result, Settled, unheard
from mailer.render.message import MessageTemplate
from mailer.sending.dispatch import Dispatcher, Pace
from mailer.sending.journal import Journal
from mailer.store.campaigns import Campaigns, CampaignStatus, Claimed, DeliveryState
from mailer.store.schema import deliveries, subscribers
from tests.conftest import SECRET, Folder, Run
from tests.smtp_server import (
    Certificates,
    Received,
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)

SLUG = "stalemate-to-escalation"
SITE = "https://www.example.org/commentaries/"
SENDER = "commentaries@example.org"
USER = "mailer"
PASSWORD = "correct horse battery staple"
REPORT = re.compile(
    r"this run sent ([\d,]+), failed ([\d,]+), skipped ([\d,]+) in ([\d.]+) s "
    r"\(([\d,]+) messages/s\)"
)

ADA = ("ada@example.net", "Ada Lovelace", "commentaries")
ZOE = ("zoe@example.net", "Zoë Ångström", "commentaries")
OHARA = ("ohara@example.net", 'O\'Hara & "Co"', "commentaries;briefings")
GRACE = ("grace@example.net", "Grace Hopper", "commentaries")
FOUR = [ADA, ZOE, OHARA, GRACE]


# Setting up --------------------------------------------------------------------------------------


def add_people(folder: Folder, run: Run, rows: Sequence[tuple[str, str, str]]) -> None:
    path = folder.path / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "name", "lists"])
        writer.writerows(rows)
    result = run("subscribers", "import", str(path), "--create-lists")
    assert result.exit_code == 0, result.output


def many(count: int, domain: str = "example.net") -> list[tuple[str, str, str]]:
    return [(f"reader{n:04d}@{domain}", f"Reader {n}", "commentaries") for n in range(count)]


def use_smtp(
    folder: Folder,
    port: int,
    ca_file: Path | None,
    *,
    username: str = "",
    security: str = "starttls",
    timeout: float = 5,
    max_attempts: int = 3,
    concurrency: int = 2,
) -> None:
    """Point the folder's config.toml at an SMTP server on loopback, retrying quickly."""
    folder.configure('backend = "outbox"', 'backend = "smtp"')
    folder.configure("concurrency = 4", f"concurrency = {concurrency}")
    folder.configure("max_attempts = 5", f"max_attempts = {max_attempts}")
    folder.configure("retry_backoff = 2.0", "retry_backoff = 0.01")
    folder.configure('host = "localhost"\nport = 587', f'host = "127.0.0.1"\nport = {port}')
    folder.configure('security = "starttls"', f'security = "{security}"')
    folder.configure('username = ""', f'username = "{username}"')
    folder.configure("timeout = 30\n", f"timeout = {timeout}\n")
    folder.configure('ca_file = ""', f'ca_file = "{ca_file or ""}"')


def use_server(folder: Folder, server: SmtpServer, **options: object) -> None:
    assert server.certificates is not None
    use_smtp(folder, server.port, server.certificates.ca_file, **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)


def send(run: Run, *options: str) -> tuple[int, str]:
    result = run("send", SLUG, *options)
    return result.exit_code, result.output


@contextmanager
def newsletter_of(folder: Folder) -> Iterator[Newsletter]:
    """The folder's newsletter, reading the environment as `mailer` does; its database closed
    afterwards."""
    newsletter = Newsletter.load(folder.config_path)
    try:
        yield newsletter
    finally:
        if "store" in newsletter.__dict__:
            newsletter.store.close()


@dataclass(frozen=True)
class Logged:
    state: DeliveryState
    attempts: int
    error: str
    message_id: str


def send_log(folder: Folder, campaign_id: int = 1) -> dict[str, Logged]:
    """The send log of a campaign by address."""
    with newsletter_of(folder) as newsletter:
        query = (
            select(
                subscribers.c.email,
                deliveries.c.state,
                deliveries.c.attempts,
                deliveries.c.error,
                deliveries.c.message_id,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.campaign_id == campaign_id)
        )
        with newsletter.store.engine.connect() as connection:
            return {
                row.email: Logged(
                    DeliveryState(row.state), row.attempts, row.error or "", row.message_id
                )
                for row in connection.execute(query)
            }


def status_of(folder: Folder, address: str) -> Status:
    with newsletter_of(folder) as newsletter:
        found = newsletter.store.subscribers.find(address)
        assert found is not None
        return found.status


def campaign_status(folder: Folder, campaign_id: int = 1) -> tuple[CampaignStatus, str]:
    with newsletter_of(folder) as newsletter:
        campaign = newsletter.store.campaigns.get(campaign_id)
        assert campaign is not None
        return campaign.status, campaign.status_detail


def report_numbers(output: str) -> tuple[int, int, int, float, int]:
    found = REPORT.search(output)
    assert found, output
    sent, failed, skipped, elapsed, rate = found.groups()
    return (
        int(sent.replace(",", "")),
        int(failed.replace(",", "")),
        int(skipped.replace(",", "")),
        float(elapsed),
        int(rate.replace(",", "")),
    )


# The happy path ----------------------------------------------------------------------------------


def assert_raw_message_is_clean(message: Received) -> None:
    data = message.data
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "a bare CR"
    assert all(len(line) <= 998 for line in data.split(b"\r\n")), "a line over 998 octets"
    assert message.head.isascii(), "8-bit header bytes without SMTPUTF8"


def test_an_issue_reaches_every_active_subscriber_exactly_once(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(auth=(USER, PASSWORD))
    add_people(
        db_folder,
        run,
        [*FOUR, ("briefings.only@example.net", "Only Briefings", "briefings")],
    )
    assert run("subscribers", "add", "pending@example.net", "--status", "pending").exit_code == 0
    assert run("subscribers", "add", "gone@example.net", "--name", "Gone").exit_code == 0
    assert run("subscribers", "remove", "gone@example.net").exit_code == 0
    use_server(db_folder, server, username=USER)

    code, output = send(run, "--yes")

    assert code == 0, output
    sent, failed, skipped, elapsed, _rate = report_numbers(output)
    assert (sent, failed, skipped) == (4, 0, 0)
    assert elapsed >= 0
    assert "In all: sent 4." in output
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}

    with newsletter_of(db_folder) as newsletter:
        links = Links(SITE, SECRET)
        subject = newsletter.issue([SLUG]).subject
        ids = {a: newsletter.store.subscribers.find(a).id for a, _, _ in FOUR}  # type: ignore[union-attr]
    logged = send_log(db_folder)
    message_ids = set()
    for address, name, _ in FOUR:
        arrived = server.only_message_to(address)
        assert arrived.mail_from == SENDER
        assert arrived.recipients == (address,)
        assert arrived.tls and arrived.login == USER
        assert_raw_message_is_clean(arrived)
        lines = arrived.header_lines
        (unsubscribe,) = [line for line in lines if line.startswith(b"List-Unsubscribe:")]
        found = re.fullmatch(
            rb"List-Unsubscribe: <https://www\.example\.org/commentaries/unsubscribe/"
            rb"([0-9a-f]+\.[0-9a-f]+\.[A-Za-z0-9_-]{22})>",
            unsubscribe,
        )
        assert found, unsubscribe  # one line, not RFC 2047-encoded, not folded
        token = found[1].decode()
        assert links.read(Purpose.UNSUBSCRIBE, token).subscriber_id == ids[address]
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
        for once in (b"From:", b"To:", b"Subject:", b"Date:", b"Message-ID:", b"List-Id:"):
            assert sum(line.startswith(once) for line in lines) == 1, once

        message = arrived.message()
        assert message["From"].addresses[0].addr_spec == SENDER
        assert message["From"].addresses[0].display_name == "IAI Commentaries"
        (to,) = message["To"].addresses
        assert (to.display_name, to.addr_spec) == (name, address)
        assert str(message["Subject"]) == subject
        assert "<commentaries.example.org>" in str(message["List-Id"])
        message_id = str(message["Message-ID"])
        assert re.fullmatch(r"<[^<>@\s]+@example\.org>", message_id)
        message_ids.add(message_id)
        assert logged[address] == Logged(DeliveryState.SENT, 1, "", message_id)

        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
        plain, html = (p.get_content() for p in parts if isinstance(p, EmailMessage))
        url = f"{SITE}unsubscribe/{token}"
        assert url in plain
        assert f'href="{url}"' in html
        assert "Putin" in plain and "Putin" in html
    assert len(message_ids) == 4

    with newsletter_of(db_folder) as newsletter:
        counts = newsletter.store.campaigns.counts(1)
    assert counts[DeliveryState.SENT] == 4 and sum(counts.values()) == 4
    shown = run("campaigns", "show", "1")
    assert shown.exit_code == 0
    assert "status:     done" in shown.output
    assert re.search(r"sent:\s+4\n", shown.output)
    assert re.search(r"failed:\s+0\n", shown.output)
    assert re.search(r"recipients:\s+4\n", shown.output)
    assert "Campaign 1: 4 recipients." in output


def test_with_a_bounce_address_each_message_goes_from_its_recipients_signed_verp_address(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, [ADA, GRACE])
    use_server(folder, server)
    folder.configure(
        'address = ""\n# The mailbox', 'address = "bounces@example.org"\n# The mailbox'
    )

    code, output = send(run, "--yes")

    assert code == 0, output
    links = Links(SITE, SECRET)
    with newsletter_of(folder) as newsletter:
        people = {a: newsletter.store.subscribers.find(a) for a in (ADA[0], GRACE[0])}
    senders = set()
    for address, person in people.items():
        assert person is not None
        arrived = server.only_message_to(address)
        local, _, domain = arrived.mail_from.partition("@")
        assert domain == "example.org" and local.startswith("bounces+")
        senders.add(arrived.mail_from)
        link = links.bounced("bounces@example.org", arrived.mail_from)
        assert link is not None and link.subscriber_id == person.id
        assert links.names(link, person.link_secret, person.created_at)
        # The From address stays the newsletter's; Return-Path is the receiving server's to add.
        assert arrived.message()["From"].addresses[0].addr_spec == SENDER
        assert not any(line.startswith(b"Return-Path:") for line in arrived.header_lines)
    assert len(senders) == 2
    # Ada's token made to name Grace: a forged bounce marks nobody.
    ada, grace = people[ADA[0]], people[GRACE[0]]
    assert ada is not None and grace is not None
    token = server.only_message_to(ADA[0]).mail_from.partition("+")[2].partition("@")[0]
    forged = f"bounces+{grace.id:x}{token[token.index('.') :]}@example.org"
    assert links.bounced("bounces@example.org", forged) is None


def test_implicit_tls_on_port_465_style(folder: Folder, run: Run, smtp_server: StartServer) -> None:
    server = smtp_server(implicit_tls=True, auth=(USER, PASSWORD))
    add_people(folder, run, [ADA])
    use_server(folder, server, username=USER, security="tls")

    code, output = send(run, "--yes")

    assert code == 0, output
    assert server.only_message_to(ADA[0]).login == USER


def test_sending_the_same_issue_again_sends_nothing_and_says_when_it_went(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    assert send(run, "--yes")[0] == 0

    code, output = send(run, "--yes")

    assert code == 0, output
    assert re.search(
        r"This issue went to 'commentaries' on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(campaign 1\); "
        r"nothing was sent\.",
        output,
    )
    assert sum(server.arrivals().values()) == 4
    listed = run("campaigns", "list")
    assert listed.exit_code == 0
    (row,) = [line.split() for line in listed.output.splitlines()[1:]]
    assert row[:5] == ["1", "done", "4", "0", "4"]
    assert f"{SLUG} → commentaries" in listed.output


# Who is and is not a recipient -------------------------------------------------------------------


class LeavesDuringTheCampaign(Backend):
    """The smtp backend, with one subscriber unsubscribing once the first message has gone."""

    def __init__(self, backend: Backend, newsletter: Newsletter, leaver: int) -> None:
        self.backend = backend
        self.newsletter = newsletter
        self.leaver = leaver
        self.name = backend.name
        self.batch_size = backend.batch_size

    def open(self) -> None:
        self.backend.open()

    def send(
        self, template: MessageTemplate, batch: Sequence[Outgoing], settled: Settled = unheard
    ) -> list[Result]:
        results = self.backend.send(template, batch, settled)
        self.newsletter.store.subscribers.change_status(
            self.leaver, Status.UNSUBSCRIBED, Reason.ONE_CLICK
        )
        return results

    def close(self) -> None:
        self.backend.close()


def test_a_subscriber_who_unsubscribes_while_the_campaign_runs_is_skipped(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(db_folder, run, FOUR)
    use_server(db_folder, server)
    with newsletter_of(db_folder) as newsletter:
        store = newsletter.store
        leaver = store.subscribers.find(GRACE[0])
        assert leaver is not None
        issue = newsletter.issue([SLUG])
        template = newsletter.message_template(newsletter.render(issue), "commentaries")
        campaign = store.campaigns.start(SLUG, "commentaries", issue.subject)
        smtp = newsletter.backend_factory()
        engine = Dispatcher(
            store.campaigns,
            template,
            lambda: LeavesDuringTheCampaign(smtp(), newsletter, leaver.id),
            newsletter.outgoing,
            Pace(concurrency=1, batch_size=1, retry_backoff=0.01),
            "test-worker",
            Journal(db_folder.path / ".journal"),
        )

        report = engine.run(campaign)

    assert (report.tally.sent, report.tally.skipped, report.tally.failed) == (3, 1, 0)
    assert report.campaign.status == CampaignStatus.DONE
    assert GRACE[0] not in server.arrivals()
    assert server.arrivals() == {a: 1 for a, _, _ in (ADA, ZOE, OHARA)}
    logged = send_log(db_folder)
    assert logged[GRACE[0]].state == DeliveryState.SKIPPED
    assert "unsubscribed while the campaign ran" in logged[GRACE[0]].error
    shown = run("campaigns", "show", "1").output
    assert re.search(r"skipped:\s+1\n", shown)


class UnsubscribedOnceClaimed(Campaigns):
    """The store, with one subscriber unsubscribing (one click) the moment their batch is
    claimed: the batch is in flight, not yet handed over."""

    def __init__(self, newsletter: Newsletter, leaver: int) -> None:
        super().__init__(newsletter.store.engine)
        self.newsletter = newsletter
        self.leaver = leaver

    def claim(self, campaign_id: int, worker: str, size: int, lease: dt.timedelta) -> list[Claimed]:
        claimed = super().claim(campaign_id, worker, size, lease)
        if any(c.subscriber_id == self.leaver for c in claimed):
            self.newsletter.store.subscribers.change_status(
                self.leaver, Status.UNSUBSCRIBED, Reason.ONE_CLICK
            )
        return claimed


def test_an_unsubscribe_while_the_batch_is_in_flight_wins(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(db_folder, run, FOUR)
    use_server(db_folder, server)
    with newsletter_of(db_folder) as newsletter:
        leaver = newsletter.store.subscribers.find(ZOE[0])
        assert leaver is not None
        issue = newsletter.issue([SLUG])
        template = newsletter.message_template(newsletter.render(issue), "commentaries")
        campaigns = UnsubscribedOnceClaimed(newsletter, leaver.id)
        campaign = campaigns.start(SLUG, "commentaries", issue.subject)
        engine = Dispatcher(
            campaigns,
            template,
            newsletter.backend_factory(),
            newsletter.outgoing,
            Pace(concurrency=1, batch_size=4, retry_backoff=0.01),
            "test-worker",
            Journal(db_folder.path / ".journal"),
        )

        report = engine.run(campaign)

    assert (report.tally.sent, report.tally.skipped) == (3, 1)
    assert ZOE[0] not in server.arrivals(), "mailed after the unsubscribe was answered"
    logged = send_log(db_folder)[ZOE[0]]
    assert logged.state == DeliveryState.SKIPPED and logged.attempts == 0
    assert logged.error == "unsubscribed while the campaign ran"


@pytest.mark.parametrize(
    ("delay", "rate"),
    [(0.12, 0.0), (0.0, 12.0)],
    ids=["slow-server", "rate-limited"],
)
def test_a_batch_that_outlives_its_lease_is_not_sent_twice(
    folder: Folder, run: Run, smtp_server: StartServer, delay: float, rate: float
) -> None:
    """A batch takes longer than its lease: a slow server (10 messages at 0.12 s), or a rate
    limit that makes the third worker wait (30 messages at 12 per second) before sending the batch
    it holds. While its worker still has it, no other worker (here, of the same run) may take it
    over and send it again. The lease is 1 s here, 300 s by default: a slow server or a low
    --rate with a few workers reaches it just the same."""
    server = smtp_server(delay=delay)
    count = 20 if delay else 30
    add_people(folder, run, many(count))
    use_server(folder, server)
    with newsletter_of(folder) as newsletter:
        store = newsletter.store
        issue = newsletter.issue([SLUG])
        template = newsletter.message_template(newsletter.render(issue), "commentaries")
        campaign = store.campaigns.start(SLUG, "commentaries", issue.subject)
        pace = Pace(
            rate=rate,
            concurrency=3,
            batch_size=10,
            retry_backoff=0.01,
            lease=dt.timedelta(seconds=1),
        )
        engine = Dispatcher(
            store.campaigns,
            template,
            newsletter.backend_factory(),
            newsletter.outgoing,
            pace,
            "test-worker",
            Journal(folder.path / ".journal"),
        )

        running = threading.Thread(target=engine.run, args=(campaign,), daemon=True)
        running.start()
        # 1.5 to 2.5 s of sending on an idle machine; generous for a loaded one, and a run
        # that never ends is stopped.
        running.join(timeout=120)
        finished = not running.is_alive()
        engine.stop.set()
        running.join(timeout=10)

    arrivals = server.arrivals()
    twice = sorted(address for address, times in arrivals.items() if times > 1)
    assert not twice, (
        f"{len(twice)} of {count} recipients received the issue more than once (up to "
        f"{max(arrivals.values())} times; the run {'ended' if finished else 'never ended'})"
    )
    assert finished
    assert len(arrivals) == count


# Faults: temporary ones are retried --------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    ["451 4.3.0 Temporary local problem", "452 4.2.2 Mailbox full, try again later"],
)
def test_a_temporary_refusal_is_retried_and_delivered(
    folder: Folder, run: Run, smtp_server: StartServer, reply: str
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    server.refuse(ZOE[0], reply, times=1)

    code, output = send(run, "--yes")

    assert code == 0, output
    assert server.arrivals() == {a: 1 for a, _, _ in FOUR}
    assert server.attempts[ZOE[0]] == 2
    logged = send_log(folder)
    assert logged[ZOE[0]].state == DeliveryState.SENT and logged[ZOE[0]].attempts == 2
    assert {logged[a].attempts for a in (ADA[0], OHARA[0], GRACE[0])} == {1}


def test_a_421_closes_the_connection_and_a_new_one_delivers(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server, concurrency=1)
    server.refuse(ZOE[0], "421 4.7.0 Too many messages on this connection, closing", times=1)

    code, output = send(run, "--yes")

    assert code == 0, output
    assert server.arrivals() == {a: 1 for a, _, _ in FOUR}
    assert server.connections >= 2
    logged = send_log(folder)
    assert logged[ZOE[0]].attempts == 2
    assert logged[OHARA[0]].attempts == 1  # the next message went over a new connection at once


def test_a_connection_dropped_during_data_is_retried(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    server.drop_during_data(OHARA[0], times=1)

    code, output = send(run, "--yes")

    assert code == 0, output
    assert server.dropped == 1
    assert server.arrivals() == {a: 1 for a, _, _ in FOUR}
    assert send_log(folder)[OHARA[0]].attempts == 2


def test_a_stalled_server_times_out_then_retries(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server, timeout=1, max_attempts=2)
    server.stall(ADA[0], 3)  # every time: never delivered
    server.stall(GRACE[0], 3, times=1)  # only the first time

    code, output = send(run, "--yes")

    assert code == 1, output
    assert server.arrivals() == {ZOE[0]: 1, OHARA[0]: 1, GRACE[0]: 1}
    logged = send_log(folder)
    assert logged[GRACE[0]].state == DeliveryState.SENT and logged[GRACE[0]].attempts == 2
    assert logged[ADA[0]].state == DeliveryState.FAILED and logged[ADA[0]].attempts == 2
    assert "gave up after 2 attempts" in logged[ADA[0]].error
    assert "timed out" in logged[ADA[0]].error
    assert status_of(folder, ADA[0]) == Status.ACTIVE
    shown = run("campaigns", "show", "1").output
    assert f"{ADA[0]}: gave up after 2 attempts" in shown


# Faults: permanent ones are recorded -------------------------------------------------------------


def test_a_bad_mailbox_fails_and_marks_the_subscriber_bounced(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(db_folder, run, FOUR)
    use_server(db_folder, server)
    server.refuse(ZOE[0], "550 5.1.1 <zoe@example.net>: Recipient address rejected: User unknown")

    code, output = send(run, "--yes")

    assert code == 1, output
    assert report_numbers(output)[:3] == (3, 1, 0)
    assert "1 address bounced" in output
    assert server.attempts[ZOE[0]] == 1, "a permanent failure is not retried"
    assert ZOE[0] not in server.arrivals()
    logged = send_log(db_folder)
    assert logged[ZOE[0]].state == DeliveryState.FAILED
    assert "550 5.1.1" in logged[ZOE[0]].error and "User unknown" in logged[ZOE[0]].error
    assert status_of(db_folder, ZOE[0]) == Status.BOUNCED
    assert status_of(db_folder, ADA[0]) == Status.ACTIVE
    shown = run("campaigns", "show", "1").output
    assert re.search(r"failed:\s+1\n", shown)
    assert f"{ZOE[0]}: 550 5.1.1" in shown


def test_a_policy_refusal_fails_that_delivery_only(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    server.refuse(ZOE[0], "550 5.7.1 Message rejected by recipient policy")

    code, output = send(run, "--yes")

    assert code == 1, output
    assert "bounced" not in output
    assert server.attempts[ZOE[0]] == 1
    logged = send_log(folder)
    assert logged[ZOE[0]].state == DeliveryState.FAILED and "550 5.7.1" in logged[ZOE[0]].error
    assert status_of(folder, ZOE[0]) == Status.ACTIVE
    assert server.arrivals() == {a: 1 for a, _, _ in (ADA, OHARA, GRACE)}


# Faults: the whole service is unusable: pause, say why, resume later -----------------------------


def test_a_refused_login_pauses_the_campaign_until_the_password_is_fixed(
    db_folder: Folder, run: Run, smtp_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server(auth=(USER, PASSWORD))
    add_people(db_folder, run, FOUR)
    use_server(db_folder, server, username=USER)
    monkeypatch.setenv("SMTP_PASSWORD", "wrong password")

    code, output = send(run, "--yes")

    assert code == 1, output
    assert "Traceback" not in output
    assert "refused the login of 'mailer'" in output and "SMTP_PASSWORD" in output
    assert "Paused:" in output
    assert server.messages() == [] and server.logins and not any(ok for _, ok in server.logins)
    assert campaign_status(db_folder)[0] == CampaignStatus.PAUSED
    assert {entry.state for entry in send_log(db_folder).values()} == {DeliveryState.QUEUED}

    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    code, output = send(run, "--yes")

    assert code == 0, output
    assert "Resuming campaign 1: 4 messages left." in output
    assert server.arrivals() == {a: 1 for a, _, _ in FOUR}
    assert campaign_status(db_folder)[0] == CampaignStatus.DONE


def test_a_certificate_nobody_trusts_pauses_the_campaign(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(auth=(USER, PASSWORD))
    add_people(folder, run, FOUR)
    use_smtp(folder, server.port, None, username=USER)  # no ca_file: the system's CAs only

    code, output = send(run, "--yes")

    assert code == 1, output
    assert "Traceback" not in output
    assert "certificate" in output and "Paused:" in output
    assert server.messages() == []
    assert server.logins == [], "the password went to a server nobody could verify"
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED and "certificate" in detail
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.QUEUED}


def test_nothing_listening_retries_then_pauses_and_resumes_later(
    folder: Folder, run: Run, certificates: Certificates
) -> None:
    port = free_port()
    add_people(folder, run, FOUR)
    server = SmtpServer(certificates, port=port)
    use_smtp(folder, port, certificates.ca_file, max_attempts=3)

    code, output = send(run, "--yes")

    assert code == 1, output
    assert "Traceback" not in output
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED, (
        "a server that cannot be reached must pause the campaign, not fail every delivery: "
        f"{detail!r}, {send_log(folder)}"
    )
    assert DeliveryState.FAILED not in {entry.state for entry in send_log(folder).values()}
    assert "cannot connect" in output

    with server:
        code, output = send(run, "--yes")
        assert code == 0, output
        assert server.arrivals() == {a: 1 for a, _, _ in FOUR}


def test_a_server_refusing_everything_pauses_before_the_list_is_gone(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, many(120))
    use_server(folder, server, concurrency=4)
    server.refuse_everyone("550 5.7.1 Sending from this account is suspended")

    code, output = send(run, "--yes")

    assert code == 1, output
    attempted = sum(server.attempts.values())
    assert attempted < 120, f"{attempted} of 120 were tried against a server refusing everything"
    assert "Paused:" in output and "550 5.7.1" in output
    assert campaign_status(folder)[0] == CampaignStatus.PAUSED
    assert all(status_of(folder, a) == Status.ACTIVE for a, _, _ in many(3))


def test_a_login_refused_after_some_messages_went_never_sends_them_twice(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    """The connection closes (421) after a first message went; the new login is refused. What
    went must be logged as sent, or resuming sends it a second time."""
    server = smtp_server(auth=(USER, PASSWORD))
    add_people(folder, run, FOUR)
    use_server(folder, server, username=USER, concurrency=1)
    server.refuse(ZOE[0], "421 4.7.0 Closing connection", times=1)
    server.max_logins = 1

    code, output = send(run, "--yes")

    assert code == 1, output
    assert "Paused:" in output
    assert server.arrivals() == {ADA[0]: 1}
    assert send_log(folder)[ADA[0]].state == DeliveryState.SENT

    server.max_logins = None
    code, output = send(run, "--yes")

    assert code == 0, output
    assert server.arrivals() == {a: 1 for a, _, _ in FOUR}


# What staff can ask for: a test, a dry run, a confirmation --------------------------------------


def test_a_test_send_goes_only_to_the_test_address_and_records_no_campaign(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)

    code, output = send(run, "--test", "me@example.org")

    assert code == 0, output
    assert "Sent the test to me@example.org" in output
    assert server.arrivals() == {"me@example.org": 1}
    assert run("campaigns", "list").output.startswith("No campaign yet")


def test_a_dry_run_sends_nothing(folder: Folder, run: Run, smtp_server: StartServer) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)

    code, output = send(run, "--dry-run")

    assert code == 0, output
    assert "built 4 messages" in output and "nothing was sent" in output
    assert server.messages() == [] and server.connections == 0
    assert run("campaigns", "list").output.startswith("No campaign yet")


def test_without_yes_and_no_terminal_nothing_is_sent(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)

    code, output = send(run)

    assert code == 2, output
    assert "--yes" in output
    assert server.messages() == [] and server.connections == 0
    assert run("campaigns", "list").output.startswith("No campaign yet")


# Header injection --------------------------------------------------------------------------------


@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r", "\u2028"])
def test_a_name_with_a_line_break_never_adds_a_header(
    db_folder: Folder, run: Run, smtp_server: StartServer, line_break: str
) -> None:
    server = smtp_server()
    eve = "eve@example.net"
    add_people(db_folder, run, [ADA, (eve, "Eve", "commentaries"), GRACE])
    with newsletter_of(db_folder) as newsletter, newsletter.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE subscribers SET name = :name WHERE email = :email"),
            {"name": f"Eve{line_break}Bcc: victim@evil.example", "email": eve},
        )
    use_server(db_folder, server)

    code, output = send(run, "--yes")

    assert "Traceback" not in output
    for message in server.messages():
        assert message.recipients in ((ADA[0],), (GRACE[0],), (eve,))
        assert not any(line.lower().startswith(b"bcc") for line in message.header_lines)
        for line in message.header_lines:
            name = line.split(b":", 1)[0]
            assert re.fullmatch(rb"[A-Za-z-]+", name), line
        assert "Bcc" not in message.message()
    assert server.arrivals()[ADA[0]] == 1 and server.arrivals()[GRACE[0]] == 1
    if line_break in "\r\n":  # refused before anything is built
        assert code == 1, output
        assert eve not in server.arrivals()
        logged = send_log(db_folder)[eve]
        assert logged.state == DeliveryState.FAILED and "line break" in logged.error
        assert eve in run("campaigns", "show", "1").output


def test_a_subject_with_a_line_break_stops_the_send_before_anything_goes(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    path = next(folder.commentaries.glob(f"*{SLUG}.md"))
    content = path.read_text(encoding="utf-8")
    path.write_text(
        content.replace(
            'title = "From Stalemate',
            'title = "Injected\\r\\nBcc: victim@evil.example\\r\\nX: From Stalemate',
        ),
        encoding="utf-8",
    )

    result = run("send", SLUG, "--yes")

    assert result.exit_code == 2, result.output
    assert server.messages() == [] and server.connections == 0


# Internationalised addresses ---------------------------------------------------------------------


@pytest.mark.parametrize("offered", [True, False])
def test_a_non_ascii_mailbox_needs_smtputf8(
    folder: Folder, run: Run, smtp_server: StartServer, offered: bool
) -> None:
    server = smtp_server(smtputf8=offered)
    jurgen = "jürgen@example.net"
    add_people(folder, run, [ADA, (jurgen, "Jürgen", "commentaries")])
    use_server(folder, server)

    code, output = send(run, "--yes")

    assert server.arrivals()[ADA[0]] == 1
    logged = send_log(folder)
    if offered:
        assert code == 0, output
        arrived = server.only_message_to(jurgen)
        assert "SMTPUTF8" in arrived.mail_options
        assert arrived.message()["To"].addresses[0].addr_spec == jurgen
        assert logged[jurgen].state == DeliveryState.SENT
    else:
        assert code == 1, output
        assert jurgen not in server.arrivals()
        assert logged[jurgen].state == DeliveryState.FAILED and "SMTPUTF8" in logged[jurgen].error
        assert server.attempts[jurgen] == 0, "nothing to try: the server cannot take it"
        assert status_of(folder, jurgen) == Status.ACTIVE


def test_a_test_send_to_a_non_ascii_mailbox_arrives(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(smtputf8=True)
    use_server(folder, server)

    code, output = send(run, "--test", "jürgen@example.net")

    assert code == 0, output
    assert "SMTPUTF8" in server.only_message_to("jürgen@example.net").mail_options


def test_an_internationalised_domain_is_delivered_to_its_ascii_form(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(smtputf8=False)
    add_people(folder, run, [("anna@bücher.example", "Anna Bücher", "commentaries")])
    use_server(folder, server)

    code, output = send(run, "--yes")

    assert code == 0, output
    arrived = server.only_message_to("anna@xn--bcher-kva.example")
    assert "SMTPUTF8" not in arrived.mail_options
    assert arrived.message()["To"].addresses[0].addr_spec == "anna@xn--bcher-kva.example"
    assert_raw_message_is_clean(arrived)


# Rate --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "count"), [(20, 30), (10, 15)])
def test_the_rate_limit_spreads_the_messages_over_time(
    folder: Folder, run: Run, smtp_server: StartServer, rate: int, count: int
) -> None:
    """A behaviour check, not a benchmark: `count` messages at `rate` per second cannot all be
    gone before (count - 1) / rate seconds, however fast the server is."""
    server = smtp_server()
    add_people(folder, run, many(count))
    use_server(folder, server)

    code, output = send(run, "--yes", "--rate", str(rate))

    assert code == 0, output
    assert sum(server.arrivals().values()) == count
    times = sorted(message.at for message in server.messages())
    spread = times[-1] - times[0]
    least = (count - 1) / rate
    assert report_numbers(output)[3] >= least * 0.95, output
    assert spread >= least * 0.5, f"all {count} messages arrived within {spread:.2f} s"
