"""Fault injection: `mailer send` killed at random moments, and services that misbehave.

The kill loop: for every backend (smtp to the test server, each HTTP provider played by a real
HTTP server that records every recipient it accepted, and the outbox), `mailer send` is killed
with SIGKILL at a random moment (once a random number of messages has arrived, a little later
still) and run again to completion, `--kill-runs` times per backend (3 by default, 20 for the
full loop). In every run: nobody is lost, nobody logged as sent before the kill gets a second
copy, the only duplicates are messages the killed process held, and at most one message per
connection for SMTP and the outbox (each message's fate is journaled as soon as it is known), one
request per connection for the HTTP providers; and the report of the resumed run adds up with
the send log.

Server faults, at the level of the whole campaign (`mailer send` against a real server that
answers with the fault for the first requests, then as the service does): each ends as the
README's Guarantees say (retried, failed with its reason, or the campaign paused with the
reason), never with a traceback, and never with somebody silently dropped.

Faults covered elsewhere, and not repeated here (tests/test_sending.py): nothing listening
(test_nothing_listening_retries_then_pauses_and_resumes_later), a certificate nobody trusts on
STARTTLS (test_a_certificate_nobody_trusts_pauses_the_campaign), a refused login
(test_a_refused_login_pauses_the_campaign_until_the_password_is_fixed,
test_a_login_refused_after_some_messages_went_never_sends_them_twice), 421 in the middle of a
session (test_a_421_closes_the_connection_and_a_new_one_delivers), 451 and 452 per recipient
(test_a_temporary_refusal_is_retried_and_delivered), 550 per recipient
(test_a_bad_mailbox_fails_and_marks_the_subscriber_bounced,
test_a_policy_refusal_fails_that_delivery_only), everything refused
(test_a_server_refusing_everything_pauses_before_the_list_is_gone), a connection dropped in DATA
(test_a_connection_dropped_during_data_is_retried), a stall past the timeout
(test_a_stalled_server_times_out_then_retries). Each HTTP backend's answer to every fault, one
batch at a time: tests/test_providers.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mailer.app.campaigns import journal_of, pace, reconcile, run_campaign, template_of
from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Status
from mailer.delivery.outbox import OutboxBackend
from mailer.delivery.smtp import SmtpBackend
from mailer.providers.generic.backend import GenericHttpBackend
from mailer.providers.mailgun.backend import MailgunBackend
from mailer.providers.postmark.backend import PostmarkBackend
from mailer.providers.sendgrid.backend import SendgridBackend
from mailer.store.campaigns import CampaignStatus, DeliveryState
from tests.conftest import Folder, Run
from tests.processes import finish, kill, run_mailer, start_mailer
from tests.smtp_server import (
    HOST,
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_providers import (
    HTTP_TOKEN,
    MAILGUN_KEY,
    POSTMARK_TOKEN,
    PROVIDERS,
    SENDGRID_KEY,
    SIGNING_SECRET,
    Provider,
)
from tests.test_sending import (
    FOUR,
    PASSWORD,
    SLUG,
    USER,
    add_people,
    campaign_status,
    many,
    newsletter_of,
    report_numbers,
    send_log,
    status_of,
    use_server,
    use_smtp,
)
from tests.test_workers import in_all, this_run_sent

CONCURRENCY = 2
KILL_RECIPIENTS = 300
BATCH_SIZES = {
    "smtp": SmtpBackend.batch_size,
    "mailgun": MailgunBackend.batch_size,
    "sendgrid": SendgridBackend.batch_size,
    "postmark": PostmarkBackend.batch_size,
    "http": GenericHttpBackend.batch_size,
    "outbox": OutboxBackend.batch_size,
}
TWICE_PER_CONNECTION = {**BATCH_SIZES, "smtp": 1, "outbox": 1}
"""The most messages one connection can send twice when killed: the one message (SMTP, the
outbox) or the one request (a batch, HTTP) between its answer and its journal line."""
BY_NAME = {provider.name: provider for provider in PROVIDERS}
PROVIDER_NAMES = [provider.name for provider in PROVIDERS]
ASKABLE = [provider.name for provider in PROVIDERS if provider.search]
"""The providers whose service can be asked afterwards what it took of a batch."""
UNASKABLE = [provider.name for provider in PROVIDERS if not provider.search]
SETTLE = {"mailgun": MailgunBackend.settle, "postmark": PostmarkBackend.settle}


def send(run: Run, *options: str) -> tuple[int, str]:
    result = run("send", SLUG, "--yes", *options)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def log_counts(folder: Folder, campaign_id: int = 1) -> dict[DeliveryState, int]:
    counts = Counter(entry.state for entry in send_log(folder, campaign_id).values())
    return {state: counts[state] for state in DeliveryState}


# A provider played by a real HTTP server ---------------------------------------------------------

Answer = Callable[[Request, list[str]], tuple[Response, list[str]]]
"""An answer to a request carrying these recipients: the response, and the recipients the service
took (and would deliver)."""


def accepting(provider: Provider) -> Answer:
    return lambda request, addresses: (provider.accepts(request), addresses)


def refusing(status: int, headers: dict[str, str] | None = None) -> Answer:
    return lambda request, addresses: (
        Response("busy, try later", status=status, headers=headers or {}),
        [],
    )


@dataclass(frozen=True)
class Seen:
    at: float
    """time.monotonic() when the request arrived."""
    addresses: list[str]
    status: int


@dataclass
class FakeService:
    """The provider's endpoint on a real HTTP server: every request is checked against the
    provider's documented format (tests/test_providers.py), then answered by the next scripted
    answer, or by `always`, or as the provider accepts. Records each request and every recipient
    the service took."""

    server: HTTPServer
    provider: Provider
    delay: float = 0.0
    """At most this many seconds (at random) between taking a request and answering it: the
    moment a killed client has handed a batch over without hearing back."""
    script: list[Answer] = field(default_factory=list)
    always: Answer | None = None
    accepted: Counter[str] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: dict[str, list[str]] = field(default_factory=dict)
    """The recipients the service took, by the label of their batch (for a service that can be
    asked, in its search's documented format: tests/test_providers.py)."""
    search_answer: Callable[[Request], Response] | None = None
    """How the service answers when asked about a batch, instead of saying what it took."""
    questions: list[str] = field(default_factory=list)
    """The batch label of each request asking the service (one per page of its answer)."""

    def __post_init__(self) -> None:
        self.server.expect_request(self.provider.path, method="POST").respond_with_handler(
            self.handle
        )
        if self.provider.search:
            self.server.expect_request(
                self.provider.search_path, method="GET"
            ).respond_with_handler(self.answer_search)

    def answer_search(self, request: Request) -> Response:
        assert self.provider.search
        with self.lock:
            self.questions.append(request.args.get("tags") or request.args.get("tag") or "")
            if self.search_answer:
                return self.search_answer(request)
            return self.provider.search(request, {k: list(v) for k, v in self.taken.items()})

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def handle(self, request: Request) -> Response:
        request.get_data()
        addresses = [one.address.lower() for one in self.provider.messages(request)]
        with self.lock:
            answer = self.script.pop(0) if self.script else self.always or accepting(self.provider)
            response, taken = answer(request, addresses)
            self.seen.append(Seen(time.monotonic(), addresses, response.status_code))
            self.accepted.update(taken)
            if self.provider.label:
                self.taken.setdefault(self.provider.label(request), []).extend(taken)
        if self.delay:
            time.sleep(random.uniform(0, self.delay))
        return response

    def arrivals(self) -> Counter[str]:
        with self.lock:
            return Counter(self.accepted)

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)

    def reset(self) -> None:
        with self.lock:
            self.accepted.clear()
            self.seen.clear()


@pytest.fixture
def http_server(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """pytest-httpserver's server; what went wrong in a handler fails the test afterwards."""
    yield httpserver
    httpserver.check()


def use_provider(
    folder: Folder,
    service: FakeService,
    monkeypatch: pytest.MonkeyPatch,
    *,
    max_attempts: int = 3,
) -> None:
    """Point the folder's config.toml at the fake service, retrying quickly."""
    name, url = service.provider.name, service.url
    folder.configure('backend = "outbox"', f'backend = "{name}"')
    folder.configure("concurrency = 4", f"concurrency = {CONCURRENCY}")
    folder.configure("max_attempts = 5", f"max_attempts = {max_attempts}")
    folder.configure("retry_backoff = 2.0", "retry_backoff = 0.01")
    if name == "mailgun":
        folder.configure('endpoint = "https://api.mailgun.net/v3"', f'endpoint = "{url}/v3"')
        monkeypatch.setenv("MAILGUN_API_KEY", MAILGUN_KEY)
    elif name == "sendgrid":
        folder.configure('endpoint = "https://api.sendgrid.com/v3"', f'endpoint = "{url}/v3"')
        monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)
    elif name == "postmark":
        folder.configure('endpoint = "https://api.postmarkapp.com"', f'endpoint = "{url}"')
        monkeypatch.setenv("POSTMARK_SERVER_TOKEN", POSTMARK_TOKEN)
    else:
        folder.configure('url = "https://mail.example.org/api/batch"', f'url = "{url}/deliver"')
        folder.configure('signing_secret = ""', f'signing_secret = "{SIGNING_SECRET}"')
        monkeypatch.setenv("MAILER_HTTP_TOKEN", HTTP_TOKEN)


# The kill loop -----------------------------------------------------------------------------------


class Destination(Protocol):
    """Where messages arrive, counted per recipient address (lower case)."""

    def arrivals(self) -> Counter[str]: ...

    def reset(self) -> None: ...


class SmtpDestination:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.before: Counter[str] = Counter()

    def arrivals(self) -> Counter[str]:
        return self.server.arrivals() - self.before

    def reset(self) -> None:
        self.before = self.server.arrivals()


class OutboxDestination:
    """The outbox folder: `<subscriber id>-<hash>.eml` per message (a partly written file has a
    hidden temporary name and is not a message)."""

    def __init__(self, folder: Path, addresses: dict[int, str]) -> None:
        self.folder = folder
        self.addresses = addresses

    def arrivals(self) -> Counter[str]:
        if not self.folder.is_dir():
            return Counter()
        return Counter(
            self.addresses[int(entry.name.split("-", 1)[0])]
            for entry in os.scandir(self.folder)
            if entry.name.endswith(".eml") and not entry.name.startswith(".")
        )

    def reset(self) -> None:
        for path in self.folder.glob("*"):
            path.unlink()


def destination_for(
    backend: str, folder: Folder, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Destination:
    if backend == "smtp":
        start: StartServer = request.getfixturevalue("smtp_server")
        server = start(delay=0.002)
        use_server(folder, server, concurrency=CONCURRENCY, max_attempts=5)
        return SmtpDestination(server)
    if backend == "outbox":
        folder.configure("concurrency = 4", f"concurrency = {CONCURRENCY}")
        with newsletter_of(folder) as newsletter:
            addresses = {s.id: s.email for s in newsletter.store.subscribers.each()}
        return OutboxDestination(folder.path / "outbox", addresses)
    service = FakeService(request.getfixturevalue("http_server"), BY_NAME[backend], delay=0.03)
    use_provider(folder, service, monkeypatch, max_attempts=5)
    return service


def wait_for_arrivals(
    destination: Destination, process: subprocess.Popen[str], count: int, context: str
) -> None:
    deadline = time.monotonic() + 300  # generous: a loaded machine is slow, not wrong
    while sum(destination.arrivals().values()) < count:
        assert process.poll() is None, f"{context}: {finish(process)}"
        assert time.monotonic() < deadline, f"{context}: no progress"
        time.sleep(0.005)


@pytest.mark.parametrize("backend", ["smtp", *PROVIDER_NAMES, "outbox"])
def test_a_send_killed_at_random_moments_loses_nobody_and_repeats_only_what_was_in_flight(
    folder: Folder,
    run: Run,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kill_runs: int,
    backend: str,
) -> None:
    lists = ";".join(f"run{number}" for number in range(kill_runs))
    people = [(address, name, lists) for address, name, _ in many(KILL_RECIPIENTS)]
    add_people(folder, run, people)
    everyone = {address for address, _, _ in people}
    destination = destination_for(backend, folder, request, monkeypatch)
    in_flight_at_most = CONCURRENCY * BATCH_SIZES[backend]

    for number in range(kill_runs):
        list_name = f"run{number}"
        after, later = random.randrange(1, KILL_RECIPIENTS), random.uniform(0, 0.02)
        context = f"{backend}, run {number} (killed {later * 1000:.0f} ms after {after} arrivals)"
        destination.reset()

        first = start_mailer(folder, "send", SLUG, "--list", list_name, "--yes")
        try:
            wait_for_arrivals(destination, first, after, context)
            time.sleep(later)
        finally:
            kill(first)

        with newsletter_of(folder) as newsletter:
            campaign = newsletter.store.campaigns.latest(SLUG, list_name)
        assert campaign is not None, context
        logged = send_log(folder, campaign.id)
        sent_before = {
            address for address, entry in logged.items() if entry.state == DeliveryState.SENT
        }
        held = {
            address for address, entry in logged.items() if entry.state == DeliveryState.SENDING
        }
        arrived_before = destination.arrivals()
        assert sent_before <= set(arrived_before), f"{context}: logged as sent, never arrived"
        assert len(held) <= in_flight_at_most, context

        resumed = run_mailer(folder, "send", SLUG, "--list", list_name, "--yes")

        assert resumed.returncode == 0, f"{context}: {resumed.stdout}{resumed.stderr}"
        assert "Traceback" not in resumed.stderr, context
        if campaign.status == CampaignStatus.DONE:  # killed on its way out: nothing is left
            assert "nothing was sent" in resumed.stdout, f"{context}: {resumed.stdout}"
        else:
            assert f"Resuming campaign {campaign.id}" in resumed.stdout, context
            counts = {state: 0 for state in DeliveryState} | {DeliveryState.SENT: KILL_RECIPIENTS}
            assert in_all(resumed.stdout) == counts, f"{context}: {resumed.stdout}"
            left = re.search(r"Resuming campaign \d+: ([\d,]+) message", resumed.stdout)
            assert left, resumed.stdout
            assert this_run_sent(resumed.stdout) == int(left[1]), context
            assert int(left[1]) <= KILL_RECIPIENTS - len(sent_before), context
        arrivals = destination.arrivals()
        lost = everyone - set(arrivals)
        assert not lost, f"{context}: {len(lost)} recipients lost"
        twice = {address for address, times in arrivals.items() if times > 1}
        assert not twice & sent_before, f"{context}: somebody logged as sent received it again"
        assert twice <= held, f"{context}: a duplicate that was not in flight at the kill"
        assert len(twice) <= CONCURRENCY * TWICE_PER_CONNECTION[backend], f"{context}: {twice}"
        assert max(arrivals.values()) <= 2, context
        assert sum(arrivals.values()) == KILL_RECIPIENTS + len(twice), context
        final = send_log(folder, campaign.id)
        assert {entry.state for entry in final.values()} == {DeliveryState.SENT}, context
        assert len(final) == KILL_RECIPIENTS, context


# SMTP: 421 on connect, TLS handshake failures --------------------------------------------------


class FrontDoor:
    """A listening port in front of an SMTP server that answers the first `refusals` connections
    with a 421 greeting and closes them (a server shutting down, or over its connection limit),
    and relays the later ones to the server untouched, STARTTLS and all. `refusals` None refuses
    every connection."""

    def __init__(self, upstream: int, refusals: int | None) -> None:
        self.upstream = upstream
        self.refusals = refusals
        self.refused = 0
        self.relayed = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                with self.lock:
                    refuse = self.refusals is None or self.refused < self.refusals
                    if refuse:
                        self.refused += 1
                    else:
                        self.relayed += 1
                if refuse:
                    with client:
                        client.sendall(b"421 4.3.2 Service not available, closing channel\r\n")
                    continue
                server = socket.create_connection((HOST, self.upstream))
                for source, target in ((client, server), (server, client)):
                    threading.Thread(target=_pipe, args=(source, target), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def front_doors() -> Iterator[list[FrontDoor]]:
    opened: list[FrontDoor] = []
    yield opened
    for door in opened:
        door.close()


def test_a_421_greeting_is_retried_and_a_later_connection_delivers(
    folder: Folder, run: Run, smtp_server: StartServer, front_doors: list[FrontDoor]
) -> None:
    server = smtp_server()
    door = FrontDoor(server.port, refusals=2)
    front_doors.append(door)
    add_people(folder, run, FOUR)
    use_server(folder, server, concurrency=1, max_attempts=5)
    folder.configure(f"port = {server.port}", f"port = {door.port}")

    code, output = send(run)

    assert code == 0, output
    assert door.refused == 2 and door.relayed >= 1
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}
    logged = send_log(folder)
    assert {(entry.state, entry.attempts) for entry in logged.values()} == {
        (DeliveryState.SENT, 1)
    }, "the service was unavailable; the messages were not tried, so no attempt is counted"
    assert campaign_status(folder)[0] == CampaignStatus.DONE


def test_a_421_greeting_every_time_pauses_then_resumes(
    folder: Folder, run: Run, smtp_server: StartServer, front_doors: list[FrontDoor]
) -> None:
    server = smtp_server()
    door = FrontDoor(server.port, refusals=None)
    front_doors.append(door)
    add_people(folder, run, FOUR)
    use_server(folder, server, max_attempts=3)
    folder.configure(f"port = {server.port}", f"port = {door.port}")

    code, output = send(run)

    assert code == 1, output
    assert "Paused:" in output and "421 4.3.2" in output
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED and "421" in detail
    assert log_counts(folder)[DeliveryState.QUEUED] == len(FOUR), "nobody failed or went missing"
    assert server.messages() == []

    door.refusals = door.refused
    code, output = send(run)

    assert code == 0, output
    assert "Resuming campaign 1: 4 messages left." in output
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # TLS from the start
def test_a_certificate_nobody_trusts_on_implicit_tls_pauses_before_the_login(
    folder: Folder, run: Run, smtp_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    server = smtp_server(implicit_tls=True, auth=(USER, PASSWORD))
    add_people(folder, run, FOUR)
    use_smtp(folder, server.port, None, security="tls", username=USER)  # the system's CAs only

    code, output = send(run)

    assert code == 1, output
    assert "Paused:" in output and "certificate" in output
    assert server.logins == [], "the password went to a server nobody could verify"
    assert server.messages() == []
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED and "certificate" in detail
    assert log_counts(folder)[DeliveryState.QUEUED] == len(FOUR)


def test_a_server_without_tls_on_the_implicit_tls_port_pauses_and_says_what_to_check(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(starttls=False)  # speaks plain SMTP where TLS is expected
    add_people(folder, run, FOUR)
    use_server(folder, server, security="tls", max_attempts=3)

    code, output = send(run)

    assert code == 1, output
    assert "Paused:" in output
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED
    assert "TLS handshake" in detail and "security" in detail, detail
    assert server.messages() == []
    assert log_counts(folder)[DeliveryState.QUEUED] == len(FOUR)

    folder.configure('security = "tls"', 'security = "none"')  # what the message says to fix
    code, output = send(run)

    assert code == 0, output
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}


def test_a_secret_missing_from_the_environment_stops_the_send_before_a_campaign_starts(
    folder: Folder, run: Run, smtp_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server(auth=(USER, PASSWORD))
    add_people(folder, run, FOUR)
    use_server(folder, server, username=USER)
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)

    code, output = send(run)

    assert code == 2, output
    assert "SMTP_PASSWORD" in output
    assert "Campaign 1" not in output
    assert run("campaigns", "list").output.startswith("No campaign yet")
    assert server.connections == 0


# HTTP providers: the campaign through each fault -------------------------------------------------


@pytest.fixture(params=PROVIDER_NAMES)
def service(
    request: pytest.FixtureRequest,
    http_server: HTTPServer,
    folder: Folder,
    monkeypatch: pytest.MonkeyPatch,
) -> FakeService:
    """Each provider, played by a real HTTP server, with the example newsletter using it."""
    fake = FakeService(http_server, BY_NAME[request.param])
    use_provider(folder, fake, monkeypatch)
    return fake


def gap_after_first(service: FakeService) -> float:
    seen = service.requests()
    assert len(seen) >= 2, seen
    return seen[1].at - seen[0].at


def assert_delivered_once(service: FakeService, folder: Folder, people: list[str]) -> None:
    assert service.arrivals() == {address: 1 for address in people}
    logged = send_log(folder)
    assert {(entry.state, entry.attempts) for entry in logged.values()} == {(DeliveryState.SENT, 1)}
    assert campaign_status(folder)[0] == CampaignStatus.DONE


def retry_after_date(seconds: int) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return email.utils.format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    "retry_after",
    [lambda: "1", lambda: retry_after_date(2)],
    ids=["seconds", "http-date"],
)
def test_429_is_retried_no_sooner_than_retry_after(
    folder: Folder, run: Run, service: FakeService, retry_after: Callable[[], str]
) -> None:
    """`Retry-After: 1`, or a date one to two seconds ahead (a date has whole seconds)."""
    add_people(folder, run, FOUR)
    service.script.append(
        lambda request, addresses: refusing(429, {"Retry-After": retry_after()})(request, addresses)
    )

    code, output = send(run)

    assert code == 0, output
    assert_delivered_once(service, folder, [address for address, _, _ in FOUR])
    assert service.requests()[0].status == 429
    gap = gap_after_first(service)
    assert gap >= 0.95, f"retried {gap:.2f} s after a 429 asking for at least 1 s"


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_retried_and_delivers(
    folder: Folder, run: Run, service: FakeService, status: int
) -> None:
    add_people(folder, run, FOUR)
    service.script.append(refusing(status))

    code, output = send(run)

    assert code == 0, output
    assert service.requests()[0].status == status
    assert_delivered_once(service, folder, [address for address, _, _ in FOUR])


def test_a_service_down_every_time_pauses_the_campaign_then_resumes(
    folder: Folder, run: Run, service: FakeService
) -> None:
    add_people(folder, run, FOUR)
    service.always = refusing(503)

    code, output = send(run)

    assert code == 1, output
    assert "Paused:" in output and "503" in output and "3 times in a row" in output
    status, detail = campaign_status(folder)
    assert status == CampaignStatus.PAUSED and "503" in detail
    assert log_counts(folder)[DeliveryState.QUEUED] == len(FOUR), "nobody failed or went missing"
    assert len(service.requests()) == 3
    assert not service.arrivals()

    service.always = None
    code, output = send(run)

    assert code == 0, output
    assert "Resuming campaign 1: 4 messages left." in output
    assert_delivered_once(service, folder, [address for address, _, _ in FOUR])


MALFORMED = {
    # A success whose body cannot be read: the batch may or may not have gone, so each of its
    # messages fails with the reason (recorded, never retried, never taken for sent).
    "mailgun": (200, '{"id": "<20251001.1234@mg.example.org>", "mess', "malformed answer"),
    "postmark": (200, '[{"ErrorCode": 0, "Message": "OK", "MessageID": "0a12', "malformed answer"),
    "http": (200, '{"results": [{"email": "reader0000@example.net", "sta', "malformed answer"),
    # SendGrid's success (202) carries no body to read; a refusal whose body cannot be read
    # fails the batch with the start of that body as the reason.
    "sendgrid": (400, '{"errors": [{"message": "The subject is req', "sendgrid answered 400"),
}


def test_a_malformed_answer_fails_that_batch_with_the_reason_and_the_rest_goes(
    folder: Folder, run: Run, service: FakeService
) -> None:
    count = 30
    add_people(folder, run, many(count))
    status, body, reason = MALFORMED[service.provider.name]

    def malformed(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        response = Response(body, status=status, content_type="application/json")
        return response, addresses if status < 300 else []

    service.script.append(malformed)

    code, output = send(run)

    assert code == 1, output
    seen = service.requests()
    spoiled = set(seen[0].addresses)
    assert spoiled, seen
    tried = Counter(address for one in seen for address in one.addresses)
    assert set(tried) == {address for address, _, _ in many(count)}
    assert set(tried.values()) == {1}, "a failed message is never retried"
    logged = send_log(folder)
    failed = {address for address, entry in logged.items() if entry.state == DeliveryState.FAILED}
    assert failed == spoiled
    assert all(reason in logged[address].error for address in failed)
    assert {entry.state for address, entry in logged.items() if address not in failed} == {
        DeliveryState.SENT
    }
    assert report_numbers(output)[:3] == (count - len(spoiled), len(spoiled), 0)
    assert in_all(output) == log_counts(folder)
    shown = run("campaigns", "show", "1").output
    assert f"{min(spoiled)}: " in shown and reason in shown
    assert all(status_of(folder, address) == Status.ACTIVE for address in failed)


# Partial batch failures: each recipient's own result ---------------------------------------------


def test_postmark_partial_batch_failure_is_recorded_per_recipient(
    folder: Folder, run: Run, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = FakeService(http_server, BY_NAME["postmark"])
    use_provider(folder, service, monkeypatch)
    people = [address for address, _, _ in many(8)]
    add_people(folder, run, many(8))
    inactive, invalid = people[1], people[2]

    def partly(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        answer: list[dict[str, object]] = []
        for number, address in enumerate(addresses):
            if address == inactive:
                answer.append(
                    {
                        "ErrorCode": 406,
                        "Message": "You tried to send to recipient(s) that have been marked as "
                        f"inactive. Found inactive addresses: {address}.",
                    }
                )
            elif address == invalid:
                answer.append({"ErrorCode": 300, "Message": f"Invalid 'To' address: '{address}'."})
            else:
                answer.append(
                    {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{number}", "To": address}
                )
        taken = [a for a in addresses if a not in (inactive, invalid)]
        return Response(json.dumps(answer), content_type="application/json"), taken

    service.script.append(partly)

    code, output = send(run)

    assert code == 1, output
    assert report_numbers(output)[:3] == (6, 2, 0)
    assert "1 address bounced" in output
    logged = send_log(folder)
    assert logged[inactive].state == DeliveryState.FAILED and "inactive" in logged[inactive].error
    assert status_of(folder, inactive) == Status.BOUNCED
    assert logged[invalid].state == DeliveryState.FAILED
    assert logged[invalid].error == f"300: Invalid 'To' address: '{invalid}'."
    assert status_of(folder, invalid) == Status.ACTIVE
    others = [address for address in people if address not in (inactive, invalid)]
    assert all(logged[a].state == DeliveryState.SENT and logged[a].message_id for a in others)
    assert service.arrivals() == {address: 1 for address in others}
    assert sum(len(seen.addresses) for seen in service.requests()) == 8, "nothing retried"
    assert in_all(output) == log_counts(folder)


def test_http_partial_batch_failure_retries_fails_and_bounces_per_recipient(
    folder: Folder, run: Run, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = FakeService(http_server, BY_NAME["http"])
    use_provider(folder, service, monkeypatch)
    people = [address for address, _, _ in many(8)]
    add_people(folder, run, many(8))
    busy, refused, gone = people[1], people[2], people[3]
    statuses: dict[str, dict[str, object]] = {
        busy: {"status": "retry", "reason": "mailbox busy", "retry_after": 1},
        refused: {"status": "failed", "reason": "policy refusal"},
        gone: {"status": "bounced", "reason": "no such mailbox"},
    }

    def partly(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        results = [
            {"email": address, **statuses.get(address, {"status": "sent", "id": f"g-{n}"})}
            for n, address in enumerate(addresses)
        ]
        taken = [address for address in addresses if address not in statuses]
        return Response(json.dumps({"results": results}), content_type="application/json"), taken

    service.script.append(partly)

    code, output = send(run)

    assert code == 1, output
    assert report_numbers(output)[:3] == (6, 2, 0)
    logged = send_log(folder)
    assert logged[busy].state == DeliveryState.SENT and logged[busy].attempts == 2
    assert (
        logged[refused].state == DeliveryState.FAILED and logged[refused].error == "policy refusal"
    )
    assert status_of(folder, refused) == Status.ACTIVE
    assert logged[gone].state == DeliveryState.FAILED and logged[gone].error == "no such mailbox"
    assert status_of(folder, gone) == Status.BOUNCED
    assert service.arrivals() == {a: 1 for a in people if a not in (refused, gone)}
    seen = service.requests()
    assert [one.addresses for one in seen[1:]] == [[busy]], "only the busy one is retried"
    assert seen[1].at - seen[0].at >= 0.95, "retried before its retry_after"
    assert in_all(output) == log_counts(folder)


def test_a_send_clears_the_temporary_files_a_killed_send_left_in_the_outbox_long_ago(
    folder: Folder, run: Run
) -> None:
    """The engine opens its backend: the outbox's clean-up runs in a real `mailer send`."""
    from mailer.delivery.outbox import STALE_SECONDS

    outbox = folder.path / "outbox"
    outbox.mkdir()
    old = outbox / ".000000001-abc.eml.x1y2.tmp"
    fresh = outbox / ".000000002-def.eml.z3w4.tmp"
    for path in (old, fresh):
        path.write_bytes(b"partial")
    long_ago = time.time() - STALE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    assert run("subscribers", "add", "ada@example.org").exit_code == 0

    code, output = send(run)

    assert code == 0, output
    assert not old.exists(), "the stale temporary file is still there"
    assert fresh.exists(), "a temporary file that may still be written was removed"
    assert len(list(outbox.glob("*.eml"))) == 1


# Uncertain deliveries: handed over whole, no answer ----------------------------------------------


def uncertain_ones(folder: Folder) -> set[str]:
    return {a for a, entry in send_log(folder).items() if entry.state == DeliveryState.UNCERTAIN}


def assert_uncertain_never_resent_until_asked(
    folder: Folder, run: Run, destination: Destination, people: list[str], uncertain: set[str]
) -> None:
    """After a send that left `uncertain`: the same command sends nobody again; asking with
    --resend-uncertain sends those, and only those, a second time."""
    assert destination.arrivals() == {address: 1 for address in people}, "lost or repeated"
    shown = run("campaigns", "show", "1").output
    assert "Uncertain" in shown and all(f"{address}: " in shown for address in uncertain), shown

    code, output = send(run)

    assert code == 1, output
    assert destination.arrivals() == {address: 1 for address in people}, "re-sent unasked"
    assert uncertain_ones(folder) == uncertain

    code, output = send(run, "--resend-uncertain")

    assert code == 0, output
    assert f"Sending {len(uncertain)} uncertain message" in output
    expected = {address: 2 if address in uncertain else 1 for address in people}
    assert destination.arrivals() == expected
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}
    assert campaign_status(folder)[0] == CampaignStatus.DONE


@pytest.mark.parametrize("fault", ["late", "hang up"])
def test_an_smtp_message_whose_reply_never_comes_is_uncertain_and_never_resent_unasked(
    folder: Folder, run: Run, smtp_server: StartServer, fault: str
) -> None:
    """The final dot went and the server took the message, but its reply came after the wait
    for it (data_timeout), or never (the connection dropped): nobody gets a second copy, the
    report and the exit status say so, and only --resend-uncertain sends them again."""
    people = many(12)
    add_people(folder, run, people)
    server = smtp_server()
    use_server(folder, server, max_attempts=5)
    folder.configure("data_timeout = 600", "data_timeout = 0.5")
    addresses = [address for address, _, _ in people]
    uncertain = {addresses[3], addresses[8]}
    for address in uncertain:
        if fault == "late":
            server.answer_late(address, 3, times=1)
        else:
            server.drop_after_data(address, times=1)

    code, output = send(run)

    assert code == 1, output
    assert "2 messages uncertain" in output and "--resend-uncertain" in output
    assert in_all(output)[DeliveryState.UNCERTAIN] == 2
    assert uncertain_ones(folder) == uncertain
    assert {send_log(folder)[address].attempts for address in uncertain} == {1}
    assert_uncertain_never_resent_until_asked(
        folder, run, SmtpDestination(server), addresses, uncertain
    )


def test_campaigns_resume_sends_the_uncertain_ones_again_only_when_asked(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    add_people(folder, run, FOUR)
    server = smtp_server()
    use_server(folder, server)
    folder.configure("data_timeout = 600", "data_timeout = 0.5")
    server.drop_after_data(FOUR[1][0])
    assert send(run)[0] == 1

    unasked = run("campaigns", "resume", "1", "--yes")

    assert unasked.exit_code == 1, unasked.output
    assert "is done" in unasked.output and "1 message uncertain" in unasked.output
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}

    asked = run("campaigns", "resume", "1", "--yes", "--resend-uncertain")

    assert asked.exit_code == 0, asked.output
    assert server.arrivals() == {a: 2 if a == FOUR[1][0] else 1 for a, _, _ in FOUR}
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}


def test_a_slow_reply_within_data_timeout_is_waited_for_though_commands_time_out_sooner(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    """RFC 5321's wait for the reply to the final dot is not the command time-out."""
    add_people(folder, run, FOUR)
    server = smtp_server()
    use_server(folder, server, timeout=0.5)
    folder.configure("data_timeout = 600", "data_timeout = 10")
    server.answer_late(FOUR[0][0], 1.5)

    code, output = send(run)

    assert code == 0, output
    assert server.arrivals() == {address: 1 for address, _, _ in FOUR}
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}


def test_an_smtp_relay_slow_on_every_message_sends_nobody_twice(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    people = many(16)
    add_people(folder, run, people)
    server = smtp_server()
    use_server(folder, server)
    folder.configure("data_timeout = 600", "data_timeout = 0.3")
    server.answer_late("*", 1)

    for _ in range(2):
        code, output = send(run)

        assert code == 1, output
        assert "Traceback" not in output
        arrivals = server.arrivals()
        assert set(arrivals.values()) == {1}, "somebody got the issue twice"
        assert uncertain_ones(folder) == set(arrivals), "every message that went is uncertain"


def provider_timeout(folder: Folder, name: str, seconds: float) -> None:
    if name == "mailgun":
        folder.configure("table).\ntimeout = 30", f"table).\ntimeout = {seconds}")
    else:
        folder.configure(f"[delivery.{name}]\n", f"[delivery.{name}]\ntimeout = {seconds}\n")


def late(seconds: float, provider: Provider) -> Answer:
    """Take the batch, then say nothing for `seconds` before answering as the provider does."""

    def answer(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        accepted = provider.accepts(request)

        def body() -> Iterator[bytes]:
            time.sleep(seconds)
            yield accepted.get_data()

        return Response(body(), accepted.status_code, content_type=accepted.content_type), addresses

    return answer


def cut_short(provider: Provider) -> Answer:
    """Take the batch, then answer with half the body its Content-Length announces, and hang up."""

    def answer(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        accepted = provider.accepts(request)
        whole = accepted.get_data() or b'{"message": "Queued. Thank you."}'
        headers = {"Content-Length": str(len(whole)), "Connection": "close"}
        cut = iter([whole[: len(whole) // 2]])
        return Response(cut, accepted.status_code, headers, accepted.content_type), addresses

    return answer


@pytest.fixture
def threaded_http_server() -> Iterator[HTTPServer]:
    """A server answering each request in its own thread: one stalled answer holds no other."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.check()
    server.stop()


@pytest.mark.parametrize("fault", ["late", "cut short"])
@pytest.mark.parametrize("name", UNASKABLE)
def test_an_http_batch_whose_answer_does_not_come_whole_is_uncertain_and_never_resent_unasked(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    fault: str,
) -> None:
    """The whole request went and the service took it, but its answer came after the time-out,
    or was cut short of its Content-Length: that batch is uncertain, the rest goes once. (These
    services cannot be asked afterwards what they took; those that can are asked, below.)"""
    people = many(30)
    add_people(folder, run, people)
    service = FakeService(threaded_http_server, BY_NAME[name])
    use_provider(folder, service, monkeypatch)
    provider_timeout(folder, name, 1)
    service.script.append(
        late(3, service.provider) if fault == "late" else cut_short(service.provider)
    )

    code, output = send(run)

    assert code == 1, output
    uncertain = set(service.requests()[0].addresses)
    assert uncertain and uncertain_ones(folder) == uncertain
    assert f"{len(uncertain)} messages uncertain" in output
    assert_uncertain_never_resent_until_asked(
        folder, run, service, [address for address, _, _ in people], uncertain
    )


# Asking the service what an uncertain batch was ------------------------------------------------


def uncertain_start(
    folder: Folder, run: Run, server: HTTPServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[FakeService, list[str]]:
    """Thirty people, and a service whose first answer comes after the client's time-out of 1 s."""
    people = many(30)
    add_people(folder, run, people)
    service = FakeService(server, BY_NAME[name])
    use_provider(folder, service, monkeypatch)
    provider_timeout(folder, name, 1)
    return service, [address for address, _, _ in people]


def once_settled(folder: Folder, name: str) -> Newsletter:
    """The folder's newsletter by a clock a minute past the time the service's record takes to
    settle: what the service does not know of by then, it never had."""
    later = dt.datetime.now(dt.UTC) + SETTLE[name] + dt.timedelta(minutes=1)
    return Newsletter.load(folder.config_path, dict(os.environ), clock=lambda: later)


def taking_half(answer: Answer) -> Answer:
    """Answer as `answer` does, the service having taken only the first half of the batch."""

    def half(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        return answer(request, addresses)[0], addresses[: len(addresses) // 2]

    return half


def label_of(service: FakeService, addresses: set[str]) -> str:
    """The label of the batch these recipients went in."""
    return next(label for label, taken in service.taken.items() if addresses <= set(taken))


@pytest.mark.parametrize("fault", ["late", "cut short"])
@pytest.mark.parametrize("name", ASKABLE)
def test_an_uncertain_batch_the_service_took_is_logged_sent_once_asked(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    fault: str,
) -> None:
    """The service took the batch but its answer came too late, or cut short: asked about the
    batch by its label (Mailgun's events, Postmark's message search), it says it took every
    recipient, who are then logged as sent. Nobody twice, and the run ends well."""
    service, people = uncertain_start(folder, run, threaded_http_server, monkeypatch, name)
    answer = late(3, service.provider) if fault == "late" else cut_short(service.provider)
    service.script.append(answer)

    code, output = send(run)

    assert code == 0, output
    first = set(service.requests()[0].addresses)
    assert f"Asked {name} about {len(first)} uncertain messages: it took {len(first)}" in output
    assert set(service.questions) == {label_of(service, first)}, "asked of that batch alone"
    assert service.arrivals() == {address: 1 for address in people}
    assert log_counts(folder)[DeliveryState.SENT] == len(people)
    assert campaign_status(folder)[0] == CampaignStatus.DONE


@pytest.mark.parametrize("name", ASKABLE)
def test_recipients_the_service_never_had_stay_uncertain_until_its_record_settles_then_go_once(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """The service took only half of a batch whose answer never came, and says so: that half is
    sent. Of the other half it knows nothing, which proves nothing while its record may still be
    incomplete: they stay uncertain, and the exit status says so. Asked again once the record has
    settled (the clock moved on), they are queued and go, each once."""
    service, people = uncertain_start(folder, run, threaded_http_server, monkeypatch, name)
    service.script.append(taking_half(late(3, service.provider)))

    code, output = send(run)

    assert code == 1, output
    first = service.requests()[0].addresses
    taken, never = set(first[: len(first) // 2]), set(first[len(first) // 2 :])
    assert f"it took {len(taken)} (logged as sent), never had 0" in output
    assert f"cannot tell yet of {len(never)}" in output
    assert uncertain_ones(folder) == never
    assert service.arrivals() == {address: 1 for address in people if address not in never}

    newsletter = once_settled(folder, name)
    campaign = newsletter.store.campaigns.get(1)
    assert campaign is not None
    asked = reconcile(newsletter, campaign)
    assert (asked.asked, asked.taken, asked.again) == (len(never), 0, len(never))

    code, output = send(run)

    assert code == 0, output
    assert service.arrivals() == {address: 1 for address in people}
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}
    assert campaign_status(folder)[0] == CampaignStatus.DONE


@pytest.mark.parametrize("name", ASKABLE)
def test_a_run_whose_clock_says_the_record_settled_sends_again_what_the_service_never_had(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """Asked at the end of the run, by a clock past the service's settling time, the service
    says it took half the uncertain batch: the other half is queued again and the same run sends
    it, once; the campaign ends done with nobody uncertain."""
    service, people = uncertain_start(folder, run, threaded_http_server, monkeypatch, name)
    service.script.append(taking_half(late(3, service.provider)))
    newsletter = once_settled(folder, name)
    campaign = newsletter.store.campaigns.start(SLUG, "commentaries", "a subject")
    journal, _ = journal_of(newsletter)

    report = run_campaign(
        newsletter,
        template_of(newsletter, campaign),
        campaign,
        pace(newsletter),
        newsletter.backend_factory(),
        journal,
    )

    first = service.requests()[0].addresses
    half = len(first) // 2
    assert (report.reconciled.taken, report.reconciled.again) == (half, len(first) - half)
    assert report.campaign.status == CampaignStatus.DONE
    assert (
        report.counts[DeliveryState.SENT] == len(people)
        and not report.counts[DeliveryState.UNCERTAIN]
    )
    assert service.arrivals() == {address: 1 for address in people}


@pytest.mark.parametrize("name", ASKABLE)
def test_a_service_that_cannot_be_asked_leaves_them_uncertain_until_it_can(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """Its events API (or message search) fails: the batch stays uncertain, listed, with exit
    status 1, and nothing is sent again. The next run asks again and, answered, logs them sent."""
    service, people = uncertain_start(folder, run, threaded_http_server, monkeypatch, name)
    service.script.append(late(3, service.provider))
    service.search_answer = lambda request: Response("internal error", status=500)

    code, output = send(run)

    assert code == 1, output
    first = set(service.requests()[0].addresses)
    assert f"Could not ask {name} about {len(first)} uncertain messages" in output
    assert "500" in output and "they stay uncertain" in output
    assert uncertain_ones(folder) == first
    assert service.arrivals() == {address: 1 for address in people}
    shown = run("campaigns", "show", "1").output
    assert f"first asks {name} which it took" in shown
    assert all(f"{address}: " in shown for address in first), shown

    service.search_answer = None
    code, output = send(run)

    assert code == 0, output
    assert f"Asked {name} about {len(first)} uncertain messages: it took {len(first)}" in output
    assert service.arrivals() == {address: 1 for address in people}
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}


# Pauses judge the service, not a connection ------------------------------------------------------


def all_at_once(status: int, count: int) -> Answer:
    """Refuse with `status`, answering only once `count` requests have come: they fail at the
    same moment, however the machine schedules the connections."""
    together = threading.Barrier(count)

    def answer(request: Request, addresses: list[str]) -> tuple[Response, list[str]]:
        def body() -> Iterator[bytes]:
            together.wait(timeout=30)
            yield b"busy, try later"

        return Response(body(), status=status), []

    return answer


@pytest.mark.parametrize("name", ["mailgun", "http"])
def test_failures_at_once_on_every_connection_count_once_and_do_not_pause(
    folder: Folder,
    run: Run,
    threaded_http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """Four connections meet the same 500 at the same moment: one failure of the service, not
    four in a row (which, with max_attempts = 3, paused the campaign)."""
    people = many(80)
    add_people(folder, run, people)
    service = FakeService(threaded_http_server, BY_NAME[name])
    use_provider(folder, service, monkeypatch, max_attempts=3)
    folder.configure(f"concurrency = {CONCURRENCY}", "concurrency = 4")
    service.script += [all_at_once(500, 4)] * 4

    code, output = send(run)

    assert code == 0, output
    assert [seen.status for seen in service.requests()[:4]] == [500] * 4
    assert_delivered_once(service, folder, [address for address, _, _ in people])


def test_a_retry_after_holds_every_connection(
    folder: Folder, run: Run, threaded_http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection is told to wait 2 s; the other waits too. Each connection left alone
    sends a batch every few milliseconds, doubling its size: five or more in those 2 s."""
    people = many(400)
    add_people(folder, run, people)
    service = FakeService(threaded_http_server, BY_NAME["http"])
    use_provider(folder, service, monkeypatch)
    service.script.append(refusing(429, {"Retry-After": "2"}))

    code, output = send(run)

    assert code == 0, output
    seen = service.requests()
    asked = next(one.at for one in seen if one.status == 429)
    meanwhile = [round(one.at - asked, 2) for one in seen if asked < one.at < asked + 1.9]
    # The other connection's request already sent, and one it may send before this connection
    # has read the answer; nothing after that.
    assert len(meanwhile) <= CONCURRENCY, meanwhile
    assert_delivered_once(service, folder, [address for address, _, _ in people])
