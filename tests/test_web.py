"""The web service (`mailer serve`): every route through Flask's test client, and the conditional
GET and one-click unsubscribe against a real server on a loopback port.

Real parts throughout: the example newsletter built into public/, its SQLite database, and the
outbox backend, whose .eml files hold the confirmation messages the tests follow.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, insert
from werkzeug.test import TestResponse

from mailer.app.newsletter import Newsletter
from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.core.output import GENERATION
from mailer.core.tokens import Links, Purpose
from mailer.store import schema
from mailer.store.subscribers import Subscriber
from mailer.web import create_app
from mailer.web.limits import CHANNEL_TIMEOUT, MAX_REQUEST_BYTES
from mailer.web.pages import MAX_LISTS
from mailer.web.ratelimit import SlidingWindow, address_key, client_key
from mailer.web.service import EXTENSION, Service
from mailer.web.signups import LinkRequest, SignUp, SignUps
from tests.conftest import SECRET, Folder, Run
from tests.smtp_server import StartServer, certificates_fixture, smtp_server_fixture  # noqa: F401
from tests.web_server import mailer_serve, serving

SITE = "https://www.example.org"
BASE = "/commentaries"
ON_ITS_WAY = "a message with a link to confirm the subscription is on its way"
TOKEN_PAGES = ("confirm", "unsubscribe", "preferences")
PAGES = (Purpose.CONFIRM, Purpose.UNSUBSCRIBE, Purpose.PREFERENCES)
"""The purposes of tokens that open a page (a bounce token is an address, not a link)."""


@pytest.fixture
def newsletter(folder: Folder, run: Run) -> Newsletter:
    """The example newsletter, built (feeds and archive in public/)."""
    assert run("build").exit_code == 0
    return folder.newsletter()


@pytest.fixture
def app(newsletter: Newsletter) -> Iterator[Flask]:
    app = create_app(newsletter)
    app.testing = True
    yield app
    newsletter.store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def service_of(app: Flask) -> Service:
    found = app.extensions[EXTENSION]
    assert isinstance(found, Service)
    return found


def add(newsletter: Newsletter, address: str, status: Status = Status.ACTIVE) -> Subscriber:
    """A subscriber on the default list, as an import would add them, moved on to `status`."""
    subscribers = newsletter.store.subscribers
    came_in = status if status in (Status.ACTIVE, Status.PENDING) else Status.ACTIVE
    subscribers.merge(
        [Candidate(address, "", frozenset({"commentaries"}))],
        status=came_in,
        reason=Reason.IMPORT,
    )
    found = subscribers.find(address)
    assert found is not None
    if status != came_in:
        reason = Reason.COMPLAINT if status == Status.COMPLAINED else Reason.STAFF
        assert subscribers.change_status(found.id, status, reason)
    return subscribers.get(found.id) or found


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the form carries no CSRF token"
    return found[1]


def settled(client: FlaskClient, answer: TestResponse) -> TestResponse:
    """The answer, once the request it queued is recorded and its message sent."""
    assert service_of(client.application).signups.drain(60) == 0, "subscribe requests stuck"
    return answer


def subscribe(client: FlaskClient, address: str, **fields: Any) -> TestResponse:
    form = {"email": address, "name": "", "website": "", **fields}
    form.setdefault("csrf_token", csrf_token(client, f"{BASE}/subscribe"))
    return settled(client, client.post(f"{BASE}/subscribe", data=form))


def subscribe_json(client: FlaskClient, body: Any, **options: Any) -> TestResponse:
    return settled(client, client.post(f"{BASE}/subscribe", json=body, **options))


def confirm(client: FlaskClient, link: str) -> TestResponse:
    """Press the button of a confirmation link's page (a form's CSRF token, with its cookie)."""
    return client.post(link, data={"csrf_token": csrf_token(client, f"{BASE}/subscribe")})


def outbox(folder: Folder) -> list[EmailMessage]:
    """Every message in the outbox folder, oldest file name first."""
    messages = []
    for path in sorted((folder.path / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def confirmation_link(message: EmailMessage) -> str:
    """The confirmation link in a message's text part, as a path on this service."""
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(r"https://\S+/confirm/\S+", str(text.get_content()))
    assert found, "no confirmation link in the message"
    html = message.get_body(("html",))
    assert html is not None and found[0] in str(html.get_content())
    return local(found[0])


def local(url: str) -> str:
    """A link from an email as a path on the service under test (the site's path is kept)."""
    assert url.startswith(f"{SITE}{BASE}/"), url
    return url.removeprefix(SITE)


def main_text(response: TestResponse) -> str:
    found = re.search(r"<main>(.*)</main>", response.text, re.S)
    assert found
    return found[1]


def reasons(newsletter: Newsletter, subscriber_id: int) -> list[str]:
    return [change.reason for change in newsletter.store.subscribers.history(subscriber_id)]


def status_of(newsletter: Newsletter, address: str) -> Status | None:
    found = newsletter.store.subscribers.find(address)
    return found.status if found else None


# Subscribing ------------------------------------------------------------------------------------


def test_the_subscribe_form_asks_for_address_name_and_list_with_a_hidden_honeypot(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    newsletter.store.lists.create("briefings")
    newsletter.store.lists.create("commentaries")
    page = client.get(f"{BASE}/subscribe")
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert 'type="email" id="email" name="email"' in page.text
    assert 'name="name"' in page.text
    assert 'name="lists" value="briefings">' in page.text
    assert 'name="lists" value="commentaries" checked>' in page.text
    assert re.search(r'<p class="trap" aria-hidden="true">.*name="website"', page.text, re.S)
    assert ".trap { position: absolute; left: -10000px;" in page.text  # hidden by the CSS
    assert f'action="{BASE}/subscribe"' in page.text
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path={BASE}" in cookie


def test_subscribing_stores_a_pending_address_with_its_consent_and_mails_a_working_link(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    answer = subscribe(client, "Ada@Example.ORG", name="Ada Lovelace")
    assert answer.status_code == 200
    assert ON_ITS_WAY in answer.text

    ada = newsletter.store.subscribers.find("ada@example.org")
    assert ada is not None and ada.status == Status.PENDING
    assert ada.lists == ("commentaries",) and ada.name == "Ada Lovelace"
    assert (ada.joined.reason, ada.joined.detail, ada.joined.ip) == (
        "form",
        "subscribe form",
        "127.0.0.1",
    )
    (message,) = outbox(folder)
    assert message["To"] == "Ada Lovelace <Ada@example.org>"
    assert message["Subject"] == "Confirm your subscription to IAI Commentaries"
    link = confirmation_link(message)

    confirmed = confirm(client, link)
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.text
    assert confirmed.headers["Cache-Control"] == "no-store"
    ada = newsletter.store.subscribers.get(ada.id)
    assert ada is not None and ada.status == Status.ACTIVE
    (change,) = newsletter.store.subscribers.history(ada.id)
    assert (change.old_status, change.new_status, change.reason, change.ip) == (
        "pending",
        "active",
        "confirmation",
        "127.0.0.1",
    )
    again = confirm(client, link)  # confirming twice is harmless
    assert again.status_code == 200 and main_text(again) == main_text(confirmed)
    assert main_text(client.get(link)) == main_text(confirmed)
    assert len(newsletter.store.subscribers.history(ada.id)) == 1


def test_opening_a_confirmation_link_asks_first_and_only_its_button_confirms(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    pending = add(newsletter, "pending@example.org", Status.PENDING)
    link = (
        f"{BASE}/confirm/{newsletter.links.token(Purpose.CONFIRM, pending.id, pending.link_secret)}"
    )

    page = client.get(link)  # what a mail scanner's prefetch does
    assert client.head(link).status_code == 200
    assert page.status_code == 200 and "Confirm your subscription" in page.text
    assert f'<form method="post" action="{link}">' in page.text
    assert '<button class="button" type="submit">Confirm my subscription</button>' in page.text
    assert status_of(newsletter, "pending@example.org") == Status.PENDING

    forged = client.post(link, data={"csrf_token": "é" * 64})  # no cookie, made-up token
    assert forged.status_code == 400 and "Nothing was changed" in forged.text
    assert status_of(newsletter, "pending@example.org") == Status.PENDING
    assert newsletter.store.subscribers.history(pending.id) == []

    token = csrf_token(client, link)  # the page's own form
    confirmed = client.post(link, data={"csrf_token": token})
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert status_of(newsletter, "pending@example.org") == Status.ACTIVE
    assert reasons(newsletter, pending.id) == ["confirmation"]


def test_the_answer_never_reveals_whether_an_address_is_known(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "active@example.org")
    add(newsletter, "complained@example.org", Status.COMPLAINED)
    add(newsletter, "gone@example.org", Status.UNSUBSCRIBED)
    newsletter.store.subscribers.erase("erased@example.org")
    service_of(client.application).address_limit = SlidingWindow(100, 60)
    service_of(client.application).client_limit = SlidingWindow(100, 60)

    unknown = subscribe(client, "new@example.org")
    assert unknown.status_code == 200
    for address in (
        "active@example.org",
        "complained@example.org",
        "gone@example.org",
        "erased@example.org",
        "new@example.org",  # now pending: asking again sends a new link
    ):
        known = subscribe(client, address)
        assert (known.status_code, known.text) == (200, unknown.text), address
        assert "Set-Cookie" not in known.headers

    # Only the unknown, the pending and the unsubscribed address were sent a message.
    sent = sorted(m["To"].addresses[0].addr_spec for m in outbox(folder))
    assert sent == ["gone@example.org", "new@example.org", "new@example.org"]
    assert status_of(newsletter, "active@example.org") == Status.ACTIVE
    assert status_of(newsletter, "complained@example.org") == Status.COMPLAINED
    assert status_of(newsletter, "erased@example.org") is None


def test_an_address_that_left_comes_back_only_through_its_confirmation(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    gone = add(newsletter, "gone@example.org", Status.UNSUBSCRIBED)
    newsletter.store.lists.create("briefings")
    assert subscribe(client, "gone@example.org", lists="briefings").status_code == 200
    pending = newsletter.store.subscribers.get(gone.id)
    assert pending is not None and pending.status == Status.PENDING
    assert pending.lists == ("briefings",)  # the lists of the new consent
    assert reasons(newsletter, gone.id) == ["staff", "form"]

    (message,) = outbox(folder)
    assert confirm(client, confirmation_link(message)).status_code == 200
    assert status_of(newsletter, "gone@example.org") == Status.ACTIVE


def test_the_json_endpoint_answers_a_websites_own_form(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "active@example.org")
    answers = [
        subscribe_json(client, {"email": address, "name": "Jo"})
        for address in ("jo@example.org", "active@example.org")
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.content_type == "application/json"
        assert answer.json == answers[0].json
    assert answers[0].json is not None and answers[0].json["status"] == "ok"
    jo = newsletter.store.subscribers.find("jo@example.org")
    assert jo is not None and jo.status == Status.PENDING
    assert jo.joined.detail == "subscribe endpoint (JSON)"
    assert len(outbox(folder)) == 1

    bad = subscribe_json(client, {"email": "not an address"})
    assert bad.status_code == 400 and bad.json is not None
    assert "is not a valid email address" in bad.json["error"]
    for body in ([1, 2], {"email": ["x@example.org"]}, {"email": "x@example.org", "lists": "a"}):
        assert subscribe_json(client, body).status_code == 400
    assert client.post(
        f"{BASE}/subscribe", json={"email": "x@example.org", "lists": ["nope"]}
    ).json == {"error": "there is no list 'nope'"}


def test_a_filled_in_honeypot_gets_the_same_answer_and_stores_nothing(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    person = subscribe(client, "person@example.org")
    bot = subscribe(client, "bot@example.org", website="https://spam.example")
    assert (bot.status_code, bot.text) == (200, person.text)
    assert newsletter.store.subscribers.find("bot@example.org") is None
    assert len(outbox(folder)) == 1
    as_json = subscribe_json(client, {"email": "bot2@example.org", "website": "x"})
    assert (
        as_json.status_code == 200 and newsletter.store.subscribers.find("bot2@example.org") is None
    )


def test_a_bad_address_or_name_shows_the_form_again_saying_what_is_wrong(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    bad = subscribe(client, "ada@@example", name="Ada")
    assert bad.status_code == 400
    assert "is not a valid email address" in bad.text
    assert 'value="Ada"' in bad.text and 'name="csrf_token"' in bad.text
    broken_name = subscribe(client, "ada@example.org", name="Ada\nBcc: x@example.org")
    assert broken_name.status_code == 400
    assert "line break" in broken_name.text
    assert newsletter.store.subscribers.find("ada@example.org") is None


def test_a_form_posted_without_its_csrf_token_is_refused(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    csrf_token(client, f"{BASE}/subscribe")  # the browser has the cookie, not the field
    refused = client.post(f"{BASE}/subscribe", data={"email": "x@example.org"})
    assert refused.status_code == 400
    assert "This form has expired" in refused.text
    forged = subscribe(client, "x@example.org", csrf_token="0" * 64)
    assert forged.status_code == 400
    fresh = FlaskClient(client.application)  # a field copied from another browser's page
    token = csrf_token(client, f"{BASE}/subscribe")
    assert subscribe(fresh, "x@example.org", csrf_token=token).status_code == 400
    assert newsletter.store.subscribers.find("x@example.org") is None
    assert outbox(folder) == []


def test_too_many_requests_for_one_address_get_429_with_retry_after(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    for _ in range(3):
        assert subscribe(client, "ada@example.org").status_code == 200
    limited = subscribe(client, "ADA@example.org")
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    as_json = subscribe_json(client, {"email": "ada@example.org"})
    assert as_json.status_code == 429 and as_json.headers["Retry-After"]
    assert len(outbox(folder)) == 3
    assert subscribe(client, "bob@example.org").status_code == 200  # others are not held up


def test_too_many_requests_from_one_client_get_429(client: FlaskClient, app: Flask) -> None:
    service_of(app).client_limit = SlidingWindow(2, 600)
    assert subscribe(client, "a@example.org").status_code == 200
    assert subscribe(client, "b@example.org").status_code == 200
    limited = subscribe(client, "c@example.org")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    other = subscribe_json(
        client, {"email": "c@example.org"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
    )
    assert other.status_code == 200


@contextmanager
def queries_in_this_thread(newsletter: Newsletter) -> Iterator[list[str]]:
    """The SQL statements this thread runs meanwhile (the request's, not the queue's)."""
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == me:
            seen.append(statement)

    engine = newsletter.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_request_loads_the_lists_once_and_names_at_most_a_hundred(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    reader = add(newsletter, "reader@example.org")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").preferences_url
    )
    token = csrf_token(client, f"{BASE}/subscribe")
    many = ["commentaries"] * MAX_LISTS

    with queries_in_this_thread(newsletter) as few:
        assert subscribe(client, "ada@example.org", lists=many).status_code == 200
    with queries_in_this_thread(newsletter) as more:
        assert subscribe(client, "bob@example.org", lists=many[:1]).status_code == 200
    assert len(few) == len(more)  # as many queries for a hundred lists as for one

    too_many = [*many, "commentaries"]
    refused = subscribe(client, "cy@example.org", lists=too_many)
    assert refused.status_code == 400 and "at most 100 lists" in refused.text
    as_json = subscribe_json(client, {"email": "cy@example.org", "lists": too_many})
    assert as_json.status_code == 400 and as_json.json == {
        "error": "a request names at most 100 lists"
    }
    saved = client.post(path, data={"lists": too_many, "action": "save", "csrf_token": token})
    assert saved.status_code == 400 and "nothing was changed" in saved.text
    assert status_of(newsletter, "cy@example.org") is None
    assert reasons(newsletter, reader.id) == []


def test_an_active_and_a_new_address_take_the_same_path_and_only_the_new_gets_mail(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "active@example.org")

    with queries_in_this_thread(newsletter) as for_new:
        new = subscribe_json(client, {"email": "new@example.org"})
    with queries_in_this_thread(newsletter) as for_active:
        active = subscribe_json(client, {"email": "active@example.org"})

    assert (new.status_code, new.json) == (active.status_code, active.json)
    # The request itself only reads the lists offered, whoever asks; the rest is queued.
    assert for_new == for_active and all(q.lstrip().startswith("SELECT") for q in for_new)
    assert [m["To"].addresses[0].addr_spec for m in outbox(folder)] == ["new@example.org"]
    assert status_of(newsletter, "new@example.org") == Status.PENDING


def test_the_queued_confirmation_arrives_by_smtp_and_a_failure_is_logged_redacted(
    folder: Folder, run: Run, smtp_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(starttls=False)
    folder.configure('backend = "outbox"', 'backend = "smtp"')
    folder.configure('host = "localhost"\nport = 587', f'host = "127.0.0.1"\nport = {server.port}')
    folder.configure('security = "starttls"', 'security = "none"')
    folder.configure("timeout = 30\n", "timeout = 5\n")
    newsletter = folder.newsletter()
    client = create_app(newsletter).test_client()
    caplog.set_level("INFO", logger="mailer.web")

    assert subscribe(client, "ada.lovelace@example.org").status_code == 200
    received = server.only_message_to("ada.lovelace@example.org")
    assert "/confirm/" in received.message().get_body(("plain",)).get_content()  # type: ignore[union-attr]

    server.refuse("grace.hopper@example.org", "550 5.1.1 no such user")
    assert subscribe(client, "grace.hopper@example.org").status_code == 200
    assert "the confirmation message to g***@example.org was not sent" in caplog.text
    assert "ada.lovelace" not in caplog.text and "grace.hopper" not in caplog.text
    newsletter.store.close()


def test_a_full_queue_is_refused_alike_for_everybody(
    client: FlaskClient, app: Flask, newsletter: Newsletter
) -> None:
    add(newsletter, "active@example.org")
    service = service_of(app)
    signups = service.signups
    service.signups = SignUps(newsletter.store, signups.confirmation, signups.preferences, limit=1)
    working, released = threading.Event(), threading.Event()

    def handle(sign_up: SignUp | LinkRequest) -> None:  # the thread, held on its first request
        working.set()
        released.wait(60)

    service.signups.handle = handle  # type: ignore[method-assign]
    try:
        first = client.post(f"{BASE}/subscribe", json={"email": "first@example.org"})
        assert first.status_code == 200 and working.wait(60)
        queued = client.post(f"{BASE}/subscribe", json={"email": "queued@example.org"})
        busy = [
            client.post(f"{BASE}/subscribe", json={"email": address})
            for address in ("new@example.org", "active@example.org")
        ]
    finally:
        released.set()
    assert service.signups.drain(60) == 0
    assert queued.status_code == 200
    assert [answer.status_code for answer in busy] == [503, 503]
    assert busy[0].json == busy[1].json and "try again in a few minutes" in busy[0].text


def test_rate_limits_count_a_mailbox_and_a_network_not_spellings_and_addresses(
    client: FlaskClient, app: Flask, newsletter: Newsletter
) -> None:
    for spelling in ("ada@example.org", "ADA+news@example.org", "Ada+x@Example.ORG"):
        assert subscribe(client, spelling).status_code == 200, spelling
    assert subscribe(client, "ada+y@example.org").status_code == 429
    for spelling in (
        "grace.hopper@gmail.com",
        "Grace.Hopper+1@gmail.com",
        "gracehopper@googlemail.com",
    ):
        assert subscribe(client, spelling).status_code == 200, spelling
    assert subscribe(client, "g.r.a.c.e.hopper@gmail.com").status_code == 429
    assert subscribe(client, "grace.hopper@example.org").status_code == 200  # another domain

    service_of(app).client_limit = SlidingWindow(2, 600)
    for client_addresses in (
        ["203.0.113.1", "203.0.113.2", "203.0.113.3"],
        ["2001:db8:5:6::1", "2001:db8:5:6:ffff::2", "2001:db8:5:6::3"],
    ):
        answers = [
            subscribe_json(
                client, {"email": f"h{n}@example.net"}, environ_base={"REMOTE_ADDR": ip}
            ).status_code
            for n, ip in enumerate(client_addresses)
        ]
        assert answers == [200, 200, 429], client_addresses
    other = subscribe_json(
        client, {"email": "h9@example.net"}, environ_base={"REMOTE_ADDR": "203.0.114.1"}
    )
    assert other.status_code == 200


def test_rate_limit_keys_are_mailboxes_and_networks() -> None:
    assert address_key("A.Da+tag@Example.ORG") == "a.da@example.org"
    assert address_key("a.d.a+x@googlemail.com") == "ada@gmail.com"
    assert client_key("198.51.100.77") == "198.51.100.0/24"
    assert client_key("::ffff:198.51.100.77") == "198.51.100.0/24"
    assert client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_key("not an address") == "not an address"


def test_the_first_hit_of_a_key_that_triggers_pruning_is_counted() -> None:
    now = [0.0]
    window = SlidingWindow(1, 60, clock=lambda: now[0])
    for number in range(1023):
        assert window.hit(f"idle-{number}") == 0
    now[0] = 1000.0  # every key so far is idle: the next new key prunes them

    assert window.hit("newcomer") == 0
    assert window.hit("newcomer") > 0  # the first hit was counted
    assert list(window.events) == ["newcomer"]


def test_a_sliding_window_lets_requests_through_again_as_old_ones_age() -> None:
    now = [1000.0]
    window = SlidingWindow(2, 60, clock=lambda: now[0])
    assert window.hit("a") == 0 and window.hit("a") == 0
    assert window.hit("a") == 60
    now[0] += 30
    assert window.hit("a") == 30 and window.hit("b") == 0
    now[0] += 30
    assert window.hit("a") == 0


# Signed links -----------------------------------------------------------------------------------


def altered(token: str) -> list[str]:
    """The token changed as a copy, a typo or a forger would: several characters of the
    signature, the subscriber id, the day, a cut, an addition."""
    number, day, signature = token.split(".")
    middle = "".join("A" if c != "A" else "B" for c in signature[8:12])
    return [
        f"{number}.{day}.{signature[:8]}{middle}{signature[12:]}",
        f"{number}.{day}.{signature[::-1]}",
        f"{int(number, 16) + 1:x}.{day}.{signature}",
        f"{number}.{int(day, 16) + 1:x}.{signature}",
        token[:-3],
        token + "x",
        "forged",
    ]


def test_forged_altered_or_expired_links_get_a_clear_page_and_change_nothing(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    pending = add(newsletter, "pending@example.org", Status.PENDING)
    links = newsletter.links
    for purpose in PAGES:
        subscriber = (pending.id, pending.link_secret)
        token = links.token(purpose, *subscriber)
        for bad in altered(token):
            for method in ("GET", "POST"):
                if (purpose, method) == (Purpose.CONFIRM, "POST"):
                    continue
                answer = client.open(f"{BASE}/{purpose.value}/{bad}", method=method)
                assert answer.status_code in (400, 404), (purpose, bad, method)
                assert answer.headers["Cache-Control"] == "no-store"
                if answer.status_code == 400:
                    assert "This link does not work" in answer.text
        old = Links(
            newsletter.config.newsletter.site_url, SECRET, clock=lambda: time.time() - 800 * 86400
        )
        expired = client.get(f"{BASE}/{purpose.value}/{old.token(purpose, *subscriber)}")
        assert expired.status_code == 400 and "This link has expired" in expired.text
        # A real link of another purpose does not open this page.
        other = Purpose.UNSUBSCRIBE if purpose != Purpose.UNSUBSCRIBE else Purpose.CONFIRM
        wrong = client.get(f"{BASE}/{purpose.value}/{links.token(other, *subscriber)}")
        assert wrong.status_code == 400
        unknown = client.get(
            f"{BASE}/{purpose.value}/{links.token(purpose, 999_999, pending.link_secret)}"
        )
        assert unknown.status_code == 404
        assert "We hold no subscription for this link" in unknown.text
    after = newsletter.store.subscribers.get(pending.id)
    assert after is not None and after.status == Status.PENDING and after.lists == pending.lists
    assert newsletter.store.subscribers.history(pending.id) == []


def test_a_confirmation_link_expires_after_a_week(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    pending = add(newsletter, "pending@example.org", Status.PENDING)
    site = newsletter.config.newsletter.site_url
    week_old = Links(site, SECRET, clock=lambda: time.time() - 8 * 86400)
    answer = client.get(
        f"{BASE}/confirm/{week_old.token(Purpose.CONFIRM, pending.id, pending.link_secret)}"
    )
    assert answer.status_code == 400
    assert "Links to confirm a subscription work for 7 days" in answer.text
    assert f'href="{BASE}/subscribe"' in answer.text
    assert status_of(newsletter, "pending@example.org") == Status.PENDING


def test_a_confirmation_link_does_not_bring_back_someone_who_left_since(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    gone = add(newsletter, "gone@example.org", Status.UNSUBSCRIBED)
    link = f"{BASE}/confirm/{newsletter.links.token(Purpose.CONFIRM, gone.id, gone.link_secret)}"
    answer = client.get(link)
    assert answer.status_code == 409 and "This subscription has ended" in answer.text
    assert confirm(client, link).status_code == 409
    assert status_of(newsletter, "gone@example.org") == Status.UNSUBSCRIBED


def test_the_unsubscribe_page_asks_first_and_its_button_unsubscribes(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    reader = add(newsletter, "reader@example.org")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").unsubscribe_url
    )

    page = client.get(path)  # a link scanner's prefetch changes nothing
    assert page.status_code == 200
    assert f'<form method="post" action="{path}">' in page.text
    assert "reader@example.org" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in page.headers
    assert status_of(newsletter, "reader@example.org") == Status.ACTIVE

    done = client.post(path)
    assert done.status_code == 200 and "Location" not in done.headers
    assert "You are unsubscribed" in done.text
    assert status_of(newsletter, "reader@example.org") == Status.UNSUBSCRIBED
    assert reasons(newsletter, reader.id) == ["unsubscribe page"]
    again = client.post(path)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert reasons(newsletter, reader.id) == ["unsubscribe page"]
    assert "You are unsubscribed" in client.get(path).text


@pytest.mark.parametrize("encoding", ["form-urlencoded", "multipart"])
def test_one_click_unsubscribe_through_the_test_client(
    client: FlaskClient, newsletter: Newsletter, encoding: str
) -> None:
    reader = add(newsletter, "reader@example.org")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").unsubscribe_url
    )
    answer = client.post(
        path,
        data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data" if encoding == "multipart" else None,
    )
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert "Set-Cookie" not in answer.headers
    assert reasons(newsletter, reader.id) == ["one-click unsubscribe"]


def test_preferences_choose_lists_and_unsubscribe_from_all_behind_a_csrf_token(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    for name in ("briefings", "events"):
        newsletter.store.lists.create(name)
    reader = add(newsletter, "reader@example.org")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").preferences_url
    )

    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert 'name="lists" value="commentaries" checked>' in page.text
    assert 'name="lists" value="briefings">' in page.text
    token = csrf_token(client, path)

    refused = client.post(path, data={"action": "save", "lists": ["briefings"]})
    assert refused.status_code == 400 and "This form has expired" in refused.text
    wrong = client.post(path, data={"action": "save", "lists": "events", "csrf_token": "x"})
    assert wrong.status_code == 400
    assert newsletter.store.subscribers.get(reader.id).lists == ("commentaries",)  # type: ignore[union-attr]

    saved = client.post(
        path,
        data={"action": "save", "lists": ["briefings", "events", "no-such"], "csrf_token": token},
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert 'value="events" checked>' in saved.text
    after = newsletter.store.subscribers.get(reader.id)
    assert after is not None and after.lists == ("briefings", "events")
    assert after.status == Status.ACTIVE

    left = client.post(path, data={"action": "unsubscribe", "csrf_token": token})
    assert left.status_code == 200 and "You are unsubscribed from every list" in left.text
    assert status_of(newsletter, "reader@example.org") == Status.UNSUBSCRIBED
    assert reasons(newsletter, reader.id) == ["preferences"]
    assert "Subscribe again" in client.get(path).text


def ask_for_preferences_link(client: FlaskClient, address: str, **fields: str) -> TestResponse:
    form = {"email": address, **fields}
    form.setdefault("csrf_token", csrf_token(client, f"{BASE}/preferences/"))
    return settled(client, client.post(f"{BASE}/preferences/", data=form))


def preferences_link(message: EmailMessage) -> str:
    """The preferences link in a message's text part (and its HTML), as a path on this service."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    found = re.search(r"https://\S+/preferences/\S+", str(text.get_content()))
    assert found, "no preferences link in the message"
    assert found[0] in str(html.get_content())
    return local(found[0])


def test_a_lost_preferences_link_is_mailed_again_and_the_new_one_works(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    reader = add(newsletter, "reader@example.org")
    form = client.get(f"{BASE}/preferences/")
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    assert 'type="email" id="email" name="email"' in form.text
    assert '<label for="email">' in form.text

    answer = ask_for_preferences_link(client, "Reader@Example.org")

    assert answer.status_code == 200
    assert "a message with a link to your preferences is on its way" in answer.text
    (message,) = outbox(folder)
    assert message["To"].addresses[0].addr_spec == "reader@example.org"
    assert message["Subject"] == "Your preferences link for IAI Commentaries"
    assert message["List-Unsubscribe"]
    path = preferences_link(message)
    page = client.get(path)
    assert page.status_code == 200 and "reader@example.org" in page.text
    saved = client.post(
        path, data={"action": "unsubscribe", "csrf_token": csrf_token(client, path)}
    )
    assert saved.status_code == 200
    assert status_of(newsletter, "reader@example.org") == Status.UNSUBSCRIBED
    assert reasons(newsletter, reader.id) == ["preferences"]


def test_the_preferences_form_answers_alike_whether_the_address_is_known_or_not(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "active@example.org")
    add(newsletter, "gone@example.org", Status.UNSUBSCRIBED)
    add(newsletter, "bounced@example.org", Status.BOUNCED)
    add(newsletter, "complained@example.org", Status.COMPLAINED)
    service_of(client.application).address_limit = SlidingWindow(100, 60)
    service_of(client.application).client_limit = SlidingWindow(100, 60)

    unknown = ask_for_preferences_link(client, "nobody@example.org")
    assert unknown.status_code == 200
    for address in (
        "active@example.org",
        "gone@example.org",
        "bounced@example.org",
        "complained@example.org",
    ):
        known = ask_for_preferences_link(client, address)
        assert (known.status_code, known.text) == (200, unknown.text), address

    # The unknown address is not stored; a bounced or complained one is sent nothing.
    assert newsletter.store.subscribers.find("nobody@example.org") is None
    sent = sorted(m["To"].addresses[0].addr_spec for m in outbox(folder))
    assert sent == ["active@example.org", "gone@example.org"]


def test_the_preferences_form_refuses_a_missing_csrf_token_and_a_bad_address(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "reader@example.org")

    forged = settled(
        client, client.post(f"{BASE}/preferences/", data={"email": "reader@example.org"})
    )
    assert forged.status_code == 400 and "This form has expired" in forged.text
    wrong = ask_for_preferences_link(client, "reader@example.org", csrf_token="x")
    assert wrong.status_code == 400
    bad = ask_for_preferences_link(client, "not an address")
    assert bad.status_code == 400 and 'value="not an address"' in bad.text
    assert outbox(folder) == []
    too_big = client.post(f"{BASE}/preferences/", data={"email": "x" * (MAX_REQUEST_BYTES + 1)})
    assert too_big.status_code == 413


def test_preferences_links_are_limited_together_with_subscribe_requests(
    client: FlaskClient, app: Flask, newsletter: Newsletter, folder: Folder
) -> None:
    add(newsletter, "ada@example.org")
    assert subscribe(client, "ada@example.org").status_code == 200  # active: nothing sent
    for _ in range(2):
        assert ask_for_preferences_link(client, "ada@example.org").status_code == 200
    limited = ask_for_preferences_link(client, "ADA+news@example.org")
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 3600
    assert len(outbox(folder)) == 2

    service_of(app).client_limit = SlidingWindow(1, 600)
    assert ask_for_preferences_link(client, "bob@example.org").status_code == 200
    from_there = ask_for_preferences_link(client, "carol@example.org")
    assert from_there.status_code == 429
    elsewhere = settled(
        client,
        client.post(
            f"{BASE}/preferences/",
            data={
                "email": "carol@example.org",
                "csrf_token": csrf_token(client, f"{BASE}/preferences/"),
            },
            environ_base={"REMOTE_ADDR": "192.0.2.7"},
        ),
    )
    assert elsewhere.status_code == 200


def test_set_lists_makes_exactly_those_lists_the_subscribers(newsletter: Newsletter) -> None:
    subscribers = newsletter.store.subscribers
    reader = add(newsletter, "reader@example.org")
    newsletter.store.lists.create("briefings")
    assert subscribers.set_lists(reader.id, ["briefings", "commentaries"])
    assert not subscribers.set_lists(reader.id, ["commentaries", "briefings"])
    assert subscribers.set_lists(reader.id, [])
    assert subscribers.get(reader.id).lists == ()  # type: ignore[union-attr]
    with pytest.raises(LookupError, match="there is no list 'nope'"):
        subscribers.set_lists(reader.id, ["nope"])
    with pytest.raises(LookupError):
        subscribers.set_lists(999_999, ["briefings"])


# Feeds, archive, health, headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("rss.xml", "application/rss+xml; charset=utf-8"),
        ("atom.xml", "application/atom+xml; charset=utf-8"),
        ("feed.json", "application/feed+json; charset=utf-8"),
    ],
)
def test_feeds_come_from_the_build_with_validators(
    client: FlaskClient, folder: Folder, name: str, content_type: str
) -> None:
    answer = client.get(f"{BASE}/{name}")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == content_type
    assert answer.data == (folder.output / name).read_bytes()
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    assert re.fullmatch(r'"[0-9a-f]{32}"', answer.headers["ETag"])
    assert answer.headers["Last-Modified"].endswith(" GMT")
    by_etag = client.get(f"{BASE}/{name}", headers={"If-None-Match": answer.headers["ETag"]})
    assert (by_etag.status_code, by_etag.data) == (304, b"")
    by_date = client.get(
        f"{BASE}/{name}", headers={"If-Modified-Since": answer.headers["Last-Modified"]}
    )
    assert by_date.status_code == 304
    stale = client.get(f"{BASE}/{name}", headers={"If-None-Match": '"0123"'})
    assert stale.status_code == 200
    assert client.head(f"{BASE}/{name}").status_code == 200


def test_feeds_answer_404_before_the_first_build(tmp_path: Path, folder: Folder) -> None:
    app = create_app(folder.newsletter())
    assert app.test_client().get(f"{BASE}/rss.xml").status_code == 404


def test_the_archive_index_and_pages_and_a_404_for_unknown_slugs(
    client: FlaskClient, folder: Folder
) -> None:
    index = client.get(f"{BASE}/archive/")
    assert index.status_code == 200 and index.content_type == "text/html; charset=utf-8"
    assert index.data == (folder.output / "archive" / "index.html").read_bytes()
    slug = sorted(p.name for p in (folder.output / "archive").iterdir() if p.is_dir())[0]
    page = client.get(f"{BASE}/archive/{slug}/")
    assert page.status_code == 200 and "ETag" in page.headers
    assert client.get(f"{BASE}/archive/{slug}").status_code == 308  # to the address with a /
    missing = client.get(f"{BASE}/archive/no-such-commentary/")
    assert missing.status_code == 404 and "Page not found" in missing.text
    (folder.path / "secret.txt").write_text("not for the web")
    for path in (
        "/archive/..%2F..%2Fsecret.txt/",
        "/archive/%2e%2e/",
        "/archive/../../secret.txt",
        "/archive/..%5C..%5Csecret.txt/",
    ):
        answer = client.get(f"{BASE}{path}")
        assert answer.status_code == 404, path
        assert b"not for the web" not in answer.data


def test_healthz_says_ok_when_the_database_answers(client: FlaskClient) -> None:
    answer = client.get(f"{BASE}/healthz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})


def test_every_answer_carries_the_security_headers(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    reader = add(newsletter, "reader@example.org")
    paths = [
        f"{BASE}/subscribe",
        f"{BASE}/rss.xml",
        f"{BASE}/archive/",
        f"{BASE}/healthz",
        f"{BASE}/nowhere",
        "/outside-the-site",
        local(
            newsletter.recipient(reader.id, reader.link_secret, reader.email, "").unsubscribe_url
        ),
    ]
    for path in paths:
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        for rule in (
            "default-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ):
            assert rule in policy, (path, rule)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_routes_live_under_the_path_of_site_url(folder: Folder, run: Run) -> None:
    folder.configure(
        'site_url = "https://www.example.org/commentaries/"',
        'site_url = "https://news.example.org/"',
    )
    assert run("build").exit_code == 0
    client = create_app(folder.newsletter()).test_client()
    assert client.get("/rss.xml").status_code == 200
    assert client.get("/subscribe").status_code == 200
    assert client.get(f"{BASE}/rss.xml").status_code == 404


def test_logs_name_nobody_by_full_address_or_token(
    client: FlaskClient, newsletter: Newsletter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="mailer.web")
    subscribe(client, "ada.lovelace@example.org")
    reader = add(newsletter, "reader@example.org")
    unsubscribe_url = newsletter.recipient(
        reader.id, reader.link_secret, reader.email, ""
    ).unsubscribe_url
    token = unsubscribe_url.rsplit("/", 1)[1]
    client.post(local(unsubscribe_url))
    client.get(f"{BASE}/unsubscribe/{token[:-4]}AAAA")
    ask_for_preferences_link(client, "reader@example.org")
    ask_for_preferences_link(client, "grace.hopper@example.org")
    logged = caplog.text
    assert "a***@example.org" in logged and "unsubscribed" in logged
    assert "preferences: preferences link sent to r***@example.org" in logged
    assert "preferences: g***@example.org is unknown" in logged
    assert "ada.lovelace" not in logged and "reader@" not in logged
    assert "grace.hopper" not in logged
    assert token not in logged and token[:-4] not in logged and token[:6] in logged


# A real server on a loopback port ---------------------------------------------------------------


def test_conditional_get_on_a_real_server(app: Flask, folder: Folder, run: Run) -> None:
    with serving(app) as base:
        first = requests.get(f"{base}{BASE}/atom.xml", timeout=10)
        assert first.status_code == 200
        assert first.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        by_etag = requests.get(
            f"{base}{BASE}/atom.xml", headers={"If-None-Match": etag}, timeout=10
        )
        assert (by_etag.status_code, by_etag.content) == (304, b"")
        assert by_etag.headers["ETag"] == etag
        by_date = requests.get(
            f"{base}{BASE}/atom.xml", headers={"If-Modified-Since": modified}, timeout=10
        )
        assert by_date.status_code == 304

        assert run("build").exit_code == 0  # nothing changed: the validators hold
        assert requests.get(f"{base}{BASE}/atom.xml", timeout=10).headers["ETag"] == etag

        newest = sorted(folder.commentaries.glob("*.md"))[-1]
        newest.write_text(
            newest.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8"
        )
        assert run("build").exit_code == 0
        changed = requests.get(
            f"{base}{BASE}/atom.xml", headers={"If-None-Match": etag}, timeout=10
        )
        assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_built_files_are_held_until_a_build_changes_them(
    client: FlaskClient, folder: Folder, run: Run
) -> None:
    marker = folder.output / GENERATION
    first = client.get(f"{BASE}/rss.xml")
    generation = marker.read_bytes()
    assert run("build").exit_code == 0
    assert marker.read_bytes() == generation, "a build that changed nothing moved the marker"
    (folder.output / "rss.xml").write_bytes(b"edited by hand, which builds never do")
    assert client.get(f"{BASE}/rss.xml").data == first.data, "held files were re-read"

    newest = sorted(folder.commentaries.glob("*.md"))[-1]
    newest.write_text(newest.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    assert run("build").exit_code == 0
    assert marker.read_bytes() != generation
    again = client.get(f"{BASE}/rss.xml")
    assert again.data == (folder.output / "rss.xml").read_bytes() != first.data
    assert again.headers["ETag"] != first.headers["ETag"]


def test_without_the_marker_each_file_is_checked_on_every_request(
    client: FlaskClient, folder: Folder
) -> None:
    (folder.output / GENERATION).unlink()  # as an output folder an older mailer built
    first = client.get(f"{BASE}/archive/")
    assert first.status_code == 200
    (folder.output / "archive" / "index.html").write_bytes(b"<p>a new index</p>")
    again = client.get(f"{BASE}/archive/")
    assert (again.status_code, again.data) == (200, b"<p>a new index</p>")
    assert again.headers["ETag"] != first.headers["ETag"]


def test_a_range_request_for_a_feed_is_answered_by_flask_with_the_same_validators(
    client: FlaskClient, folder: Folder
) -> None:
    whole = client.get(f"{BASE}/atom.xml")
    part = client.get(f"{BASE}/atom.xml", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == whole.data[:100]
    assert part.headers["ETag"] == whole.headers["ETag"]
    assert part.headers["Content-Security-Policy"] == whole.headers["Content-Security-Policy"]


@pytest.mark.parametrize("encoding", ["form-urlencoded", "multipart"])
def test_one_click_unsubscribe_on_a_real_server(
    app: Flask, newsletter: Newsletter, encoding: str
) -> None:
    reader = add(newsletter, "reader@example.org")
    url = newsletter.recipient(reader.id, reader.link_secret, reader.email, "").unsubscribe_url
    with serving(app) as base:
        target = base + local(url)
        if encoding == "multipart":
            answer = requests.post(
                target,
                files={"List-Unsubscribe": (None, "One-Click")},
                allow_redirects=False,
                timeout=10,
            )
            assert answer.request.headers["Content-Type"].startswith("multipart/form-data")
        else:
            answer = requests.post(
                target, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10
            )
            assert answer.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert "Cookie" not in answer.request.headers
    assert answer.status_code == 200
    assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers
    assert status_of(newsletter, "reader@example.org") == Status.UNSUBSCRIBED
    assert reasons(newsletter, reader.id) == ["one-click unsubscribe"]


def test_mailer_serve_has_help_with_an_example(run: Run) -> None:
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "mailer serve --host" in result.output
    assert "serve" in run("--help").output


def test_subscribe_confirm_choose_lists_and_unsubscribe_on_each_database(
    db_folder: Folder, run: Run
) -> None:
    newsletter = db_folder.newsletter()
    newsletter.store.lists.create("briefings")
    client = create_app(newsletter).test_client()
    subscribers = newsletter.store.subscribers

    assert subscribe(client, "ada@example.org", lists="commentaries").status_code == 200
    assert subscribe(client, "ada@example.org", lists="briefings").status_code == 200
    ada = subscribers.find("ada@example.org")
    assert ada is not None and ada.status == Status.PENDING
    assert ada.lists == ("briefings", "commentaries")
    messages = outbox(db_folder)
    assert len(messages) == 2  # a new link each time, and either works
    assert confirm(client, confirmation_link(messages[0])).status_code == 200

    path = local(newsletter.recipient(ada.id, ada.link_secret, ada.email, "").preferences_url)
    token = csrf_token(client, path)
    saved = client.post(path, data={"lists": "briefings", "action": "save", "csrf_token": token})
    assert saved.status_code == 200
    assert subscribers.get(ada.id).lists == ("briefings",)  # type: ignore[union-attr]

    unsubscribe_path = local(
        newsletter.recipient(ada.id, ada.link_secret, ada.email, "").unsubscribe_url
    )
    FlaskClient(client.application).post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"})
    assert reasons(newsletter, ada.id) == ["confirmation", "one-click unsubscribe"]
    assert client.get(f"{BASE}/healthz").json == {"status": "ok"}
    newsletter.store.close()


def test_mailer_serve_serves_the_site_on_the_port_given(folder: Folder, run: Run) -> None:
    assert run("build").exit_code == 0
    with mailer_serve(folder.config_path, f"{BASE}/healthz") as served:
        answer = requests.get(f"http://127.0.0.1:{served.port}{BASE}/rss.xml", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert f"Serving IAI Commentaries at http://127.0.0.1:{served.port}{BASE}/" in served.output


def test_mailer_serve_refuses_an_oversized_body_before_reading_it(folder: Folder) -> None:
    with (
        mailer_serve(folder.config_path, f"{BASE}/healthz") as served,
        socket.create_connection(("127.0.0.1", served.port), timeout=30) as connection,
    ):
        connection.sendall(  # the headers only: the body is never sent
            b"POST /commentaries/subscribe HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_REQUEST_BYTES + 1)
        )
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def test_mailer_serve_closes_a_silent_connection_and_serves_others_meanwhile(
    folder: Folder,
) -> None:
    with mailer_serve(folder.config_path, f"{BASE}/healthz", threads=1) as served:
        silent = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
        try:
            for connection in silent:  # a request begun and never finished
                connection.sendall(b"GET /commentaries/healthz HTTP/1.1\r\nHost: loc")
            answer = requests.get(f"http://127.0.0.1:{served.port}{BASE}/healthz", timeout=30)
            assert answer.status_code == 200  # one thread, three clients stalled: still served
            for connection in silent:
                connection.settimeout(CHANNEL_TIMEOUT * 6)  # generous: it closes after ~10 s
                assert connection.recv(4096) == b"", "the server kept a silent connection"
        finally:
            for connection in silent:
                connection.close()


# Links and the people they were made for ---------------------------------------------------------


def links_of(newsletter: Newsletter, person: Subscriber) -> dict[Purpose, str]:
    """The paths of a person's confirm, unsubscribe and preferences links, as mailed to them."""
    return {
        purpose: local(newsletter.links.url(purpose, person.id, person.link_secret))
        for purpose in PAGES
    }


def assert_names_nobody(client: FlaskClient, paths: dict[Purpose, str]) -> None:
    for purpose, path in paths.items():
        for method in ("GET", "POST"):
            data = {"List-Unsubscribe": "One-Click"} if method == "POST" else None
            answer = client.open(path, method=method, data=data)
            if method == "POST" and answer.status_code == 405:
                continue  # a page that takes no POST (confirm, today)
            assert answer.status_code == 404, (purpose, method, answer.status_code)
            assert "We hold no subscription for this link" in answer.text


def test_a_link_of_an_erased_subscriber_never_acts_on_the_next_one(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    add(newsletter, "first@example.org")
    erased = add(newsletter, "erased@example.org", Status.PENDING)
    old_links = links_of(newsletter, erased)
    assert newsletter.store.subscribers.erase("erased@example.org").found

    newcomer = add(newsletter, "newcomer@example.org", Status.PENDING)

    assert newcomer.id > erased.id, "SQLite gave the erased subscriber's id to the next one"
    assert_names_nobody(client, old_links)
    after = newsletter.store.subscribers.get(newcomer.id)
    assert after is not None and after.status == Status.PENDING
    assert after.lists == ("commentaries",)
    assert newsletter.store.subscribers.history(newcomer.id) == []
    for purpose, path in links_of(newsletter, newcomer).items():  # their own links work
        assert client.get(path).status_code == 200, purpose


def test_a_link_names_nobody_once_another_person_holds_its_id_on_each_database(
    db_folder: Folder, database_url: str
) -> None:
    """What a restored backup or a re-import can do: the id of a link's person now held by
    someone else. The link was bound to its person's own secret, so it names nobody."""
    newsletter = db_folder.newsletter()
    client = create_app(newsletter).test_client()
    subscribers = newsletter.store.subscribers
    ada = add(newsletter, "ada@example.org", Status.PENDING)
    old_links = links_of(newsletter, ada)
    subscribers.erase("ada@example.org")
    with newsletter.store.engine.begin() as connection:
        now = dt.datetime.now(dt.UTC)
        connection.execute(
            insert(schema.subscribers).values(
                id=ada.id,
                email="bob@example.org",
                email_key="bob@example.org",
                name="",
                status=Status.PENDING.value,
                source="import",
                source_detail="",
                source_ip="",
                created_at=now,
                updated_at=now,
            )
        )

    assert_names_nobody(client, old_links)
    after = subscribers.get(ada.id)
    assert after is not None and after.email == "bob@example.org"
    assert after.status == Status.PENDING
    newsletter.store.close()


def test_someone_who_left_signs_up_again_for_the_default_list_before_it_exists(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    subscribers = newsletter.store.subscribers
    subscribers.merge(
        [Candidate("back@example.org", "", frozenset({"briefings"}))],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    back = subscribers.find("back@example.org")
    assert back is not None
    assert subscribers.change_status(back.id, Status.UNSUBSCRIBED, Reason.STAFF)
    assert "commentaries" not in newsletter.store.lists.names()

    answer = subscribe(client, "back@example.org", lists="commentaries")

    assert answer.status_code == 200, answer.text
    assert ON_ITS_WAY in answer.text
    after = subscribers.get(back.id)
    assert after is not None and after.status == Status.PENDING
    assert after.lists == ("commentaries",)
    assert [m["To"] for m in outbox(folder)] == ["back@example.org"]


# Languages ---------------------------------------------------------------------------------------


def test_a_reader_chooses_a_language_when_subscribing_and_changes_it_in_preferences(
    client: FlaskClient, newsletter: Newsletter, folder: Folder
) -> None:
    page = client.get(f"{BASE}/subscribe")
    assert '<option value="en-GB" lang="en-GB" selected>' in page.text
    assert '<option value="it" lang="it">italiano</option>' in page.text
    answer = subscribe(client, "lia@example.org", language="it")
    assert answer.status_code == 200, answer.text
    assert confirm(client, confirmation_link(outbox(folder)[-1])).status_code == 200
    lia = newsletter.store.subscribers.find("lia@example.org")
    assert lia is not None and lia.status == Status.ACTIVE and lia.language == "it"

    refused = subscribe(client, "max@example.org", language="klingon")
    assert refused.status_code == 400 and "no such language" in refused.text
    assert newsletter.store.subscribers.find("max@example.org") is None

    path = local(newsletter.recipient(lia.id, lia.link_secret, lia.email, "").preferences_url)
    assert '<option value="it" lang="it" selected>' in client.get(path).text
    token = csrf_token(client, path)
    unchecked = client.post(
        path, data={"action": "save", "lists": ["commentaries"], "language": "en-GB"}
    )
    assert unchecked.status_code == 400
    assert newsletter.store.subscribers.get(lia.id).language == "it"  # type: ignore[union-attr]
    saved = client.post(
        path,
        data={
            "action": "save",
            "lists": ["commentaries"],
            "language": "en-GB",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    after = newsletter.store.subscribers.get(lia.id)
    assert after is not None and after.language == "" and after.lists == ("commentaries",)


# The weekly digest, chosen on the web ------------------------------------------------------------


def frequencies(newsletter: Newsletter, address: str) -> dict[str, Frequency]:
    found = newsletter.store.subscribers.find(address)
    assert found is not None
    return found.frequencies


def test_the_subscribe_form_offers_the_weekly_digest_and_keeps_the_choice(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    page = client.get(f"{BASE}/subscribe")
    assert 'name="frequency" value="weekly"' in page.text
    assert subscribe(client, "weekly@example.org", frequency="weekly").status_code == 200
    assert subscribe(client, "every@example.org").status_code == 200
    assert frequencies(newsletter, "weekly@example.org") == {"commentaries": Frequency.WEEKLY}
    assert frequencies(newsletter, "every@example.org") == {"commentaries": Frequency.IMMEDIATE}


def test_the_json_endpoint_takes_a_frequency_and_refuses_another_word(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    body = {"email": "api@example.org", "frequency": "weekly"}
    assert subscribe_json(client, body).status_code == 200
    assert frequencies(newsletter, "api@example.org") == {"commentaries": Frequency.WEEKLY}
    wrong = subscribe_json(client, {"email": "odd@example.org", "frequency": "daily"})
    assert wrong.status_code == 400
    assert wrong.json == {"error": 'frequency is "immediate" or "weekly"'}
    assert newsletter.store.subscribers.find("odd@example.org") is None


def test_the_preferences_page_switches_between_every_issue_and_the_digest(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    reader = add(newsletter, "reader@example.org")
    path = local(
        newsletter.recipient(reader.id, reader.link_secret, reader.email, "").preferences_url
    )
    assert 'name="weekly" value="commentaries">' in client.get(path).text
    token = csrf_token(client, path)
    refused = client.post(path, data={"action": "save", "lists": "commentaries", "weekly": "x"})
    assert refused.status_code == 400
    assert frequencies(newsletter, reader.email) == {"commentaries": Frequency.IMMEDIATE}
    form = {"action": "save", "lists": "commentaries", "csrf_token": token}
    saved = client.post(path, data={**form, "weekly": "commentaries"})
    assert saved.status_code == 200
    assert 'name="weekly" value="commentaries" checked>' in saved.text
    assert frequencies(newsletter, reader.email) == {"commentaries": Frequency.WEEKLY}
    client.post(path, data=form)
    assert frequencies(newsletter, reader.email) == {"commentaries": Frequency.IMMEDIATE}


def test_without_a_digest_time_nothing_offers_it(folder: Folder) -> None:
    folder.configure('digest = "monday 08:00"', 'digest = ""')
    without = folder.newsletter()
    page = create_app(without).test_client().get(f"{BASE}/subscribe")
    assert page.status_code == 200 and "weekly" not in page.text
    without.store.close()


def test_an_active_address_keeps_its_frequency_and_one_that_left_comes_back_with_its_choice(
    client: FlaskClient, newsletter: Newsletter
) -> None:
    active = add(newsletter, "active@example.org")
    gone = add(newsletter, "gone@example.org", Status.UNSUBSCRIBED)
    assert subscribe(client, active.email, frequency="weekly").status_code == 200
    assert subscribe(client, gone.email, frequency="weekly").status_code == 200
    assert frequencies(newsletter, active.email) == {"commentaries": Frequency.IMMEDIATE}
    assert frequencies(newsletter, gone.email) == {"commentaries": Frequency.WEEKLY}
