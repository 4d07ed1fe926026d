"""The HTTP provider backends against a real HTTP server on loopback.

For each provider the server plays the service: it checks every request against the provider's
documented format (method, path, credentials, content type, fields, one recipient entry each,
per-recipient variables and headers), then fills in each recipient's message as the service
would, so the tests can look at what every subscriber would receive. It answers with the
provider's documented responses: success, per-message results, refusals, 429 with and without
Retry-After, 5xx, and no answer at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mailer.delivery.base import BackendError, Outcome, Outgoing, Reconciler, Result
from mailer.delivery.http import HttpBackend
from mailer.providers.generic.backend import GenericHttpBackend
from mailer.providers.mailgun.backend import MailgunBackend
from mailer.providers.postmark.backend import PostmarkBackend
from mailer.providers.sendgrid.backend import SendgridBackend
from mailer.render.message import MessageTemplate, idna_address
from tests.conftest import Folder

LONGEST = "stalemate-to-escalation"
MAILGUN_KEY = "key-0123456789abcdef"
SENDGRID_KEY = "SG.test-key"
POSTMARK_TOKEN = "postmark-server-token"
HTTP_TOKEN = "generic-token"
SIGNING_SECRET = "generic-signing-secret"
ONE_CLICK = "List-Unsubscribe=One-Click"
LABEL = re.compile(r"mailer-(mailgun|postmark)-[0-9a-f]{16}")
"""What a batch's label looks like: the same for every service that takes one."""


@dataclass(frozen=True)
class Delivered:
    """One recipient's message as the service would write it from the request."""

    address: str
    headers: dict[str, str]
    text: str
    html: str


@pytest.fixture
def template(folder: Folder) -> MessageTemplate:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([LONGEST]))
    return newsletter.message_template(rendered, "commentaries")


@pytest.fixture
def batch(folder: Folder, template: MessageTemplate) -> list[Outgoing]:
    newsletter = folder.newsletter()
    people = [
        (1, "ada@example.net", "Ada Lovelace"),
        (2, "zoe@example.net", "Zoë Ångström"),
        (3, "o'hara&co@example.net", 'O\'Hara & "Co" <b>'),
        (4, "juergen@bücher.example", "Jürgen"),
    ]
    return [
        Outgoing(number, newsletter.recipient(number, "", address, name), template.message_id())
        for number, address, name in people
    ]


def header_text(value: str) -> str:
    return str(make_header(decode_header(value)))


# The services, as their documentation describes them: check the request, then write each
# recipient's message from it.


def mailgun_messages(request: Request) -> list[Delivered]:
    assert request.method == "POST"
    assert request.path == "/v3/mg.example.org/messages"
    expected = base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.mimetype == "multipart/form-data"
    form = request.form
    for required in ("from", "to", "subject", "text", "html", "recipient-variables"):
        assert form.get(required), f"Mailgun requires {required}"
    addresses = [a for _, a in email.utils.getaddresses(form.getlist("to"))]
    assert len(addresses) <= 1000
    variables = json.loads(form["recipient-variables"])
    assert sorted(variables) == sorted(addresses), "recipient-variables keyed by plain address"
    mailgun_label(request)
    headers = {name[2:]: value for name, value in form.items(multi=True) if name.startswith("h:")}
    assert "Message-Id" not in headers and "Message-ID" not in headers
    delivered = []
    for address in addresses:
        values = variables[address]

        def fill(text: str, values: dict[str, str] = values) -> str:
            # A %recipient.KEY% with no value would be sent as it is: every one must be there.
            return re.sub(r"%recipient\.([\w.:-]+)%", lambda found: values[found[1]], text)

        filled = {name: header_text(fill(value)) for name, value in headers.items()}
        delivered.append(Delivered(address, filled, fill(form["text"]), fill(form["html"])))
    return delivered


def mailgun_label(request: Request) -> str:
    """The batch's label: its one tag, also its user variable mailer-batch."""
    tags = request.form.getlist("o:tag")
    assert len(tags) == 1 and LABEL.fullmatch(tags[0]), tags
    assert request.form.getlist("v:mailer-batch") == tags
    return tags[0]


def mailgun_events(request: Request, taken: dict[str, list[str]]) -> Response:
    """GET /v3/<domain>/events as Mailgun documents it, for the events of taking each recipient
    of a tagged batch, two per page (fewer than `limit`, as Mailgun may give), then an empty
    page. `taken`: the recipients the service took, by batch label."""
    assert request.method == "GET"
    assert request.path == "/v3/mg.example.org/events"
    expected = base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    query = request.args
    assert query["event"] == "accepted OR delivered OR failed"
    assert 1 <= int(query["limit"]) <= 300
    label = query["tags"]
    page = int(query.get("page", "0"))
    recipients = taken.get(label, [])[page * 2 : page * 2 + 2]
    items = [
        {
            "event": "accepted",
            "recipient": address,
            "tags": [label],
            "user-variables": {"mailer-batch": label},
            "timestamp": 1759312800.0 + number,
            "message": {"headers": {"message-id": "20251001.1234@mg.example.org"}},
        }
        for number, address in enumerate(recipients)
    ]
    base = request.base_url
    answer = {
        "items": items,
        "paging": {
            "next": f"{base}?tags={label}&event=accepted+OR+delivered+OR+failed&limit=300"
            f"&page={page + 1}",
            "previous": f"{base}?page={max(page - 1, 0)}",
        },
    }
    return Response(json.dumps(answer), status=200, content_type="application/json")


def sendgrid_messages(request: Request) -> list[Delivered]:
    assert request.method == "POST"
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {SENDGRID_KEY}"
    assert request.mimetype == "application/json"
    body = json.loads(request.get_data())
    assert body["from"]["email"] and body["subject"]
    content = body["content"]
    assert [part["type"] for part in content] == ["text/plain", "text/html"], "text/plain first"
    assert all(part["value"] for part in content)
    assert body["reply_to"]["email"]
    reserved = {"reply-to", "from", "to", "subject", "cc", "bcc", "content-type", "received"}
    personalizations = body["personalizations"]
    assert 1 <= len(personalizations) <= 1000
    emails = [p["to"][0]["email"] for p in personalizations]
    assert len(set(emails)) == len(emails), "each address only once"
    delivered = []
    for personalization in personalizations:
        assert len(personalization["to"]) == 1, "one recipient per personalization"
        substitutions = personalization["substitutions"]
        assert all(isinstance(value, str) for value in substitutions.values())
        assert len(json.dumps(substitutions).encode()) < 10_000
        headers = {**body["headers"], **personalization["headers"]}
        assert not {name.lower() for name in headers} & reserved

        def fill(text: str, substitutions: dict[str, str] = substitutions) -> str:
            for tag, value in substitutions.items():
                text = text.replace(tag, value)
            return text

        text, html_part = (fill(part["value"]) for part in content)
        delivered.append(Delivered(personalization["to"][0]["email"], headers, text, html_part))
    return delivered


def postmark_messages(request: Request) -> list[Delivered]:
    assert request.method == "POST"
    assert request.path == "/email/batch"
    assert request.headers["X-Postmark-Server-Token"] == POSTMARK_TOKEN
    assert request.headers["Accept"] == "application/json"
    assert request.mimetype == "application/json"
    messages = json.loads(request.get_data())
    assert isinstance(messages, list) and 1 <= len(messages) <= 500
    postmark_label(request)
    delivered = []
    for message in messages:
        assert message["From"] and message["Subject"] and message["ReplyTo"]
        assert message["MessageStream"] == "broadcast"
        assert message["TextBody"] and message["HtmlBody"]
        assert len(email.utils.getaddresses([message["To"]])) == 1, "one recipient per message"
        headers = {header["Name"]: header["Value"] for header in message["Headers"]}
        address = email.utils.parseaddr(message["To"])[1]
        delivered.append(Delivered(address, headers, message["TextBody"], message["HtmlBody"]))
    return delivered


def postmark_label(request: Request) -> str:
    """The batch's label: the one Tag every message of the batch carries."""
    tags = {message.get("Tag") for message in json.loads(request.get_data())}
    assert len(tags) == 1, tags
    label = tags.pop()
    assert isinstance(label, str) and LABEL.fullmatch(label), label
    return label


def postmark_search(request: Request, taken: dict[str, list[str]]) -> Response:
    """GET /messages/outbound as Postmark documents it: the messages of a tag, `count` from
    `offset`, with the TotalCount. `taken`: the recipients the service took, by batch label."""
    assert request.method == "GET"
    assert request.path == "/messages/outbound"
    assert request.headers["X-Postmark-Server-Token"] == POSTMARK_TOKEN
    assert request.headers["Accept"] == "application/json"
    query = request.args
    count, offset = int(query["count"]), int(query["offset"])
    assert 1 <= count <= 500 and offset >= 0 and count + offset <= 10_000
    label = query["tag"]
    everyone = taken.get(label, [])
    messages = [
        {
            "Tag": label,
            "MessageID": f"0a129aee-e1cd-480d-b08d-{number:012d}",
            "To": [{"Email": address, "Name": None}],
            "Cc": [],
            "Bcc": [],
            "Recipients": [address],
            "ReceivedAt": "2025-10-01T12:00:00.0000000-04:00",
            "From": "commentaries@example.org",
            "Subject": "From stalemate to escalation",
            "Attachments": [],
            "Status": "Sent",
            "MessageStream": "broadcast",
        }
        for number, address in enumerate(everyone)
    ][offset : offset + count]
    answer = {"TotalCount": len(everyone), "Messages": messages}
    return Response(json.dumps(answer), status=200, content_type="application/json")


def http_messages(request: Request) -> list[Delivered]:
    assert request.method == "POST"
    assert request.path == "/deliver"
    assert request.mimetype == "application/json"
    assert request.headers["Authorization"] == f"Bearer {HTTP_TOKEN}"
    timestamp = request.headers["X-Mailer-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 300
    signed = timestamp.encode() + b"." + request.get_data()
    digest = hmac.new(SIGNING_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Mailer-Signature"], f"sha256={digest}")
    body = json.loads(request.get_data())
    assert body["from"]["email"] and body["subject"] and body["reply_to"]["email"]
    delivered = []
    for recipient in body["recipients"]:
        assert set(recipient) == {"email", "name", "message_id", "variables", "headers"}
        variables = recipient["variables"]

        def fill(text: str, variables: dict[str, str] = variables) -> str:
            return re.sub(r"\{\{(\w+)\}\}", lambda found: variables[found[1]], text)

        headers = {**body["headers"], **recipient["headers"]}
        delivered.append(
            Delivered(recipient["email"], headers, fill(body["text"]), fill(body["html"]))
        )
    return delivered


def mailgun_accepts(request: Request) -> Response:
    return Response(
        json.dumps({"id": "<20251001.1234@mg.example.org>", "message": "Queued. Thank you."}),
        status=200,
        content_type="application/json",
    )


def sendgrid_accepts(request: Request) -> Response:
    return Response("", status=202, headers={"X-Message-Id": "W1sgYjAxMzEuMDAx"})


def postmark_accepts(request: Request) -> Response:
    answer = [
        {
            "ErrorCode": 0,
            "Message": "OK",
            "MessageID": f"0a129aee-e1cd-480d-b08d-4f48548ff48{number}",
            "SubmittedAt": "2025-10-01T12:00:00.0000000-04:00",
            "To": message["To"],
        }
        for number, message in enumerate(json.loads(request.get_data()))
    ]
    return Response(json.dumps(answer), status=200, content_type="application/json")


def http_accepts(request: Request) -> Response:
    recipients = json.loads(request.get_data())["recipients"]
    answer = {
        "results": [
            {"email": one["email"], "status": "sent", "id": f"gen-{number}"}
            for number, one in enumerate(recipients)
        ]
    }
    return Response(json.dumps(answer), status=200, content_type="application/json")


@dataclass(frozen=True)
class Provider:
    name: str
    path: str
    backend: Callable[[str, float], HttpBackend]
    """Made from the server's base URL and a timeout."""
    messages: Callable[[Request], list[Delivered]]
    accepts: Callable[[Request], Response]
    sent_ids: Callable[[list[Outgoing]], list[str]]
    refusal: Response
    refusal_reason: str
    credentials: str
    label: Callable[[Request], str] | None = None
    """The label a request's batch carries, for a provider that can be asked about it later."""
    search_path: str = ""
    """Where the service is asked which recipients of a labelled batch it took."""
    search: Callable[[Request, dict[str, list[str]]], Response] | None = None
    """Its answer, from the recipients it took by batch label."""


PROVIDERS = [
    Provider(
        "mailgun",
        "/v3/mg.example.org/messages",
        lambda url, timeout: MailgunBackend(
            f"{url}/v3", "mg.example.org", MAILGUN_KEY, timeout=timeout
        ),
        mailgun_messages,
        mailgun_accepts,
        lambda batch: ["<20251001.1234@mg.example.org>"] * len(batch),
        Response(
            json.dumps(
                {"message": "'to' parameter is not a valid address. please check documentation"}
            ),
            status=400,
            content_type="application/json",
        ),
        "'to' parameter is not a valid address",
        "[delivery.mailgun] api_key",
        mailgun_label,
        "/v3/mg.example.org/events",
        mailgun_events,
    ),
    Provider(
        "sendgrid",
        "/v3/mail/send",
        lambda url, timeout: SendgridBackend(f"{url}/v3", SENDGRID_KEY, timeout=timeout),
        sendgrid_messages,
        sendgrid_accepts,
        lambda batch: ["W1sgYjAxMzEuMDAx"] * len(batch),
        Response(
            json.dumps(
                {
                    "errors": [
                        {
                            "message": "The from email does not contain a valid address.",
                            "field": "from.email",
                            "help": None,
                        },
                        {"message": "The subject is required.", "field": "subject", "help": None},
                    ]
                }
            ),
            status=400,
            content_type="application/json",
        ),
        "The from email does not contain a valid address.; The subject is required.",
        "[delivery.sendgrid] api_key",
    ),
    Provider(
        "postmark",
        "/email/batch",
        lambda url, timeout: PostmarkBackend(url, POSTMARK_TOKEN, timeout=timeout),
        postmark_messages,
        postmark_accepts,
        lambda batch: [f"0a129aee-e1cd-480d-b08d-4f48548ff48{n}" for n in range(len(batch))],
        Response(
            json.dumps(
                {
                    "ErrorCode": 300,
                    "Message": "Invalid 'From' address: 'commentaries@example.org' is not a "
                    "verified sender signature.",
                }
            ),
            status=422,
            content_type="application/json",
        ),
        "300: Invalid 'From' address",
        "[delivery.postmark] server_token",
        postmark_label,
        "/messages/outbound",
        postmark_search,
    ),
    Provider(
        "http",
        "/deliver",
        lambda url, timeout: GenericHttpBackend(
            f"{url}/deliver", HTTP_TOKEN, SIGNING_SECRET, timeout=timeout
        ),
        http_messages,
        http_accepts,
        lambda batch: [f"gen-{n}" for n in range(len(batch))],
        Response(
            json.dumps({"error": "sender commentaries@example.org is not allowed"}),
            status=400,
            content_type="application/json",
        ),
        "sender commentaries@example.org is not allowed",
        "[delivery.http] token",
    ),
]


@pytest.fixture(params=PROVIDERS, ids=[p.name for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    found: Provider = request.param
    return found


@pytest.fixture
def server(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    yield httpserver
    httpserver.check_assertions()


def serve(
    server: HTTPServer, provider: Provider, answer: Callable[[Request], Response]
) -> list[Request]:
    """Answer the provider's path: every request is checked first, then answered."""
    seen: list[Request] = []

    def handle(request: Request) -> Response:
        request.get_data()  # keep the body for the test to read after the answer
        provider.messages(request)
        seen.append(request)
        return answer(request)

    server.expect_request(provider.path, method="POST").respond_with_handler(handle)
    return seen


def backend_for(server: HTTPServer, provider: Provider, timeout: float = 10.0) -> HttpBackend:
    return provider.backend(server.url_for("").rstrip("/"), timeout)


def send(
    server: HTTPServer, backend: HttpBackend, template: MessageTemplate, batch: list[Outgoing]
) -> list[Result]:
    try:
        return backend.send(template, batch)
    finally:
        backend.close()
        server.check_assertions()


def refused(
    server: HTTPServer, backend: HttpBackend, template: MessageTemplate, batch: list[Outgoing]
) -> BackendError:
    with pytest.raises(BackendError) as raised:
        send(server, backend, template, batch)
    return raised.value


def answering(status: int, headers: dict[str, str] | None = None) -> Callable[[Request], Response]:
    return lambda request: Response("busy", status=status, headers=headers or {})


# What every recipient receives.


def test_a_batch_is_one_request_in_the_documented_format(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
) -> None:
    seen = serve(server, provider, provider.accepts)

    results = send(server, backend_for(server, provider), template, batch)

    assert len(seen) == 1
    assert results == [Result(Outcome.SENT, message_id=i) for i in provider.sent_ids(batch)]


def test_every_recipient_gets_their_own_links_and_list_headers(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
) -> None:
    seen = serve(server, provider, provider.accepts)
    send(server, backend_for(server, provider), template, batch)

    delivered = provider.messages(seen[0])
    assert len(delivered) == len(batch)
    for message, outgoing in zip(delivered, batch, strict=True):
        recipient = outgoing.recipient
        assert message.address in (recipient.email, idna_address(recipient.email))
        url = recipient.unsubscribe_url
        assert url in message.text
        assert recipient.preferences_url in message.text
        assert html.escape(url, quote=True) in message.html
        assert message.headers["List-Unsubscribe"] == f"<{url}>"
        assert message.headers["List-Unsubscribe-Post"] == ONE_CLICK
        assert message.headers["List-Id"].endswith("<commentaries.example.org>")
        others = [o.recipient.unsubscribe_url for o in batch if o is not outgoing]
        assert not any(other in message.text + message.html for other in others)


def test_no_placeholder_of_the_theme_reaches_the_provider(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
) -> None:
    seen = serve(server, provider, provider.accepts)
    send(server, backend_for(server, provider), template, batch)

    marker = template.rendered.marker
    assert marker.encode() not in seen[0].get_data()
    for message in provider.messages(seen[0]):
        assert marker not in message.text + message.html + "".join(message.headers.values())


def test_values_in_the_html_are_escaped(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
) -> None:
    seen = serve(server, provider, provider.accepts)
    send(server, backend_for(server, provider), template, batch)

    quoted = next(m for m in provider.messages(seen[0]) if m.address.startswith("o'hara"))
    assert "o&#x27;hara&amp;co@example.net" in quoted.html
    assert "o'hara&co@example.net" not in quoted.html
    assert "o'hara&co@example.net" in quoted.text


def test_a_recipient_who_would_forge_a_header_fails_alone(
    server: HTTPServer,
    provider: Provider,
    folder: Folder,
    template: MessageTemplate,
    batch: list[Outgoing],
) -> None:
    forger = folder.newsletter().recipient(9, "", "eve@example.net", "Eve\r\nBcc: all@example.net")
    mixed = [batch[0], Outgoing(9, forger, template.message_id()), batch[1]]
    seen = serve(server, provider, provider.accepts)

    results = send(server, backend_for(server, provider), template, mixed)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert "line break" in results[1].reason
    assert b"eve@example.net" not in seen[0].get_data()
    assert b"all@example.net" not in seen[0].get_data()


# What fails the whole batch, and how.


def test_429_with_retry_after_in_seconds_is_temporary(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    serve(server, provider, answering(429, {"Retry-After": "7"}))

    error = refused(server, backend_for(server, provider), template, batch)

    assert error.temporary
    assert error.retry_after == 7


def test_429_with_retry_after_as_a_date_is_temporary(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    serve(
        server,
        provider,
        answering(429, {"Retry-After": email.utils.format_datetime(when, usegmt=True)}),
    )

    error = refused(server, backend_for(server, provider), template, batch)

    assert error.temporary
    assert error.retry_after is not None and 100 < error.retry_after <= 120


def test_429_without_retry_after_is_temporary(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    serve(server, provider, answering(429))

    error = refused(server, backend_for(server, provider), template, batch)

    assert error.temporary
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_temporary(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
    status: int,
) -> None:
    serve(server, provider, answering(status))

    error = refused(server, backend_for(server, provider), template, batch)

    assert error.temporary
    assert str(status) in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_permanent_and_say_which(
    server: HTTPServer,
    provider: Provider,
    template: MessageTemplate,
    batch: list[Outgoing],
    status: int,
) -> None:
    serve(server, provider, answering(status))

    error = refused(server, backend_for(server, provider), template, batch)

    assert not error.temporary
    assert "refused the credentials" in str(error)
    assert provider.credentials in str(error)


def test_a_wrong_endpoint_is_permanent(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    server.expect_request(re.compile(".*"), method="POST").respond_with_data("", status=404)
    backend = provider.backend(server.url_for("/wrong").rstrip("/"), 10.0)

    error = refused(server, backend, template, batch)

    assert not error.temporary
    assert "404" in str(error)


def test_a_refused_request_fails_every_recipient_with_the_reason(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    serve(server, provider, lambda request: provider.refusal)

    results = send(server, backend_for(server, provider), template, batch)

    assert [r.outcome for r in results] == [Outcome.FAILED] * len(batch)
    assert all(provider.refusal_reason in r.reason for r in results)
    assert all(str(provider.refusal.status_code) in r.reason for r in results)


def test_no_answer_in_time_is_uncertain_for_every_recipient(
    server: HTTPServer, provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    """The whole request went: the service may have taken it, so it is not retried."""
    released = threading.Event()

    def stall(request: Request) -> Response:
        released.wait(10)
        return provider.accepts(request)

    seen = serve(server, provider, stall)
    try:
        results = provider.backend(server.url_for("").rstrip("/"), 0.3).send(template, batch)
    finally:
        released.set()

    assert [r.outcome for r in results] == [Outcome.UNCERTAIN] * len(batch)
    assert [r.message_id for r in results] == [outgoing.message_id for outgoing in batch]
    assert all("no answer came within 0.3 s" in r.reason for r in results)
    # The label the batch went under, for asking the service later; none where it cannot be.
    label = provider.label(seen[0]) if provider.label else ""
    assert {r.batch for r in results} == {label}


# Asking the service afterwards which recipients of a batch it took.

ASKABLE = [provider for provider in PROVIDERS if provider.search]


def reconciler_for(server: HTTPServer, provider: Provider) -> Reconciler:
    backend = backend_for(server, provider)
    assert isinstance(backend, Reconciler)
    return backend


@pytest.mark.parametrize("provider", ASKABLE, ids=[p.name for p in ASKABLE])
def test_asking_about_a_batch_finds_exactly_the_recipients_the_service_took(
    server: HTTPServer, provider: Provider, batch: list[Outgoing]
) -> None:
    """Every page of the answer is read; an address the service writes in IDNA or in another
    case is the recipient as mailer has it; another batch's recipients are not counted."""
    assert provider.search
    addresses = [outgoing.recipient.email for outgoing in batch]
    ours, another = (f"mailer-{provider.name}-00000000000000{n}" for n in ("aa", "bb"))
    taken = {ours: [idna_address(a).upper() for a in addresses[1:]], another: [addresses[0]]}
    search = provider.search
    server.expect_request(provider.search_path, method="GET").respond_with_handler(
        lambda request: search(request, taken)
    )
    reconciler = reconciler_for(server, provider)

    try:
        found = reconciler.accepted(ours, addresses)
    finally:
        reconciler.close()
        server.check_assertions()

    assert found == set(addresses[1:])
    others = [other.name for other in ASKABLE if other is not provider]
    assert reconciler.sent_through(ours)
    assert not any(reconciler.sent_through(f"mailer-{o}-00000000000000aa") for o in others), (
        "a batch that went to another service is not asked about here"
    )


@pytest.mark.parametrize("provider", ASKABLE, ids=[p.name for p in ASKABLE])
def test_a_service_that_cannot_be_asked_says_why(
    server: HTTPServer, provider: Provider, batch: list[Outgoing]
) -> None:
    server.expect_request(provider.search_path, method="GET").respond_with_data(
        "internal error", status=500
    )
    reconciler = reconciler_for(server, provider)

    with pytest.raises(BackendError) as raised:
        reconciler.accepted(f"mailer-{provider.name}-00000000000000aa", [batch[0].recipient.email])

    assert "500" in str(raised.value) and raised.value.temporary


def test_mailgun_never_follows_a_next_page_to_another_host(
    server: HTTPServer, batch: list[Outgoing]
) -> None:
    """The API key goes with every page: a paging link elsewhere is refused, not followed."""
    mailgun = PROVIDERS[0]
    answer = {
        "items": [{"event": "accepted", "recipient": "ada@example.net", "tags": ["x"]}],
        "paging": {"next": "http://127.0.0.1:9/v3/mg.example.org/events?page=1"},
    }
    server.expect_request(mailgun.search_path, method="GET").respond_with_json(answer)
    reconciler = reconciler_for(server, mailgun)

    with pytest.raises(BackendError) as raised:
        reconciler.accepted("x", ["ada@example.net"])

    assert "not followed" in str(raised.value)


def test_a_service_that_cannot_be_reached_is_temporary(
    provider: Provider, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    with pytest.raises(BackendError) as raised:
        provider.backend("http://127.0.0.1:9", 2.0).send(template, batch)

    assert raised.value.temporary
    assert "cannot reach" in str(raised.value)


# Postmark checks each message's result.


def test_postmark_reports_each_message_of_a_partly_refused_batch(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    postmark = PROVIDERS[2]

    def partly(request: Request) -> Response:
        messages = json.loads(request.get_data())
        answer = [
            {"ErrorCode": 0, "Message": "OK", "MessageID": "id-ada", "To": messages[0]["To"]},
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive. "
                "Found inactive addresses: zoe@example.net. Inactive recipients are ones that "
                "have generated a hard bounce, a spam complaint, or a manual suppression.",
            },
            {"ErrorCode": 300, "Message": "Invalid 'To' address: 'o'hara&co@example.net'."},
            {"ErrorCode": 0, "Message": "OK", "MessageID": "id-juergen", "To": messages[3]["To"]},
        ]
        return Response(json.dumps(answer), status=200, content_type="application/json")

    serve(server, postmark, partly)

    results = send(server, backend_for(server, postmark), template, batch)

    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.BOUNCED,
        Outcome.FAILED,
        Outcome.SENT,
    ]
    assert [results[0].message_id, results[3].message_id] == ["id-ada", "id-juergen"]
    assert "inactive" in results[1].reason
    assert results[2].reason == "300: Invalid 'To' address: 'o'hara&co@example.net'."


@pytest.mark.parametrize(
    "answer",
    [
        "not json",
        json.dumps({"ErrorCode": 0, "Message": "OK"}),
        json.dumps([{"ErrorCode": 0, "Message": "OK", "MessageID": "only-one"}]),
    ],
    ids=["not-json", "not-a-list", "too-short"],
)
def test_postmark_answer_that_cannot_be_read_is_failed_never_sent(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing], answer: str
) -> None:
    postmark = PROVIDERS[2]
    serve(server, postmark, lambda request: Response(answer, status=200))

    results = send(server, backend_for(server, postmark), template, batch)

    assert [r.outcome for r in results] == [Outcome.FAILED] * len(batch)
    assert all(r.reason.startswith("malformed answer") for r in results)


def test_personal_parts_are_the_parts_filled_in_for_one_recipient(
    template: MessageTemplate, batch: list[Outgoing]
) -> None:
    recipient = batch[2].recipient
    text, html_part = template.personal_parts(recipient)
    values = template.personal_values(recipient)
    text_with, html_with = template.parts_with(lambda field: f"\0{field}\0")
    for field, value in values.items():
        text_with = text_with.replace(f"\0{field}\0", value)
        html_with = html_with.replace(f"\0{field}\0", value)
    assert (text, html_part) == (text_with, html_with)
    assert "\0" not in text_with + html_with, "a placeholder the parts use has no value"
    assert {"unsubscribe_url", "unsubscribe_url_html"} <= values.keys()


# Mailgun answers once for the batch.


def test_mailgun_answer_without_an_id_is_failed_never_sent(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    mailgun = PROVIDERS[0]
    serve(server, mailgun, lambda request: Response("Mailgun Magnificent API", status=200))

    results = send(server, backend_for(server, mailgun), template, batch)

    assert [r.outcome for r in results] == [Outcome.FAILED] * len(batch)
    assert all(r.reason.startswith("malformed answer") for r in results)


# The generic backend: mailer's own format.


def test_http_backend_without_a_token_or_secret_sends_neither(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    seen: list[Request] = []

    def plain(request: Request) -> Response:
        request.get_data()
        seen.append(request)
        return http_accepts(request)

    server.expect_request("/deliver", method="POST").respond_with_handler(plain)

    results = send(server, GenericHttpBackend(server.url_for("/deliver")), template, batch)

    assert [r.outcome for r in results] == [Outcome.SENT] * len(batch)
    assert not {"Authorization", "X-Mailer-Signature", "X-Mailer-Timestamp"} & set(
        seen[0].headers.keys()
    )


def test_http_backend_gives_each_recipient_the_status_the_service_reports(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    generic = PROVIDERS[3]

    def mixed(request: Request) -> Response:
        recipients = json.loads(request.get_data())["recipients"]
        statuses: list[dict[str, Any]] = [
            {"status": "sent"},
            {"status": "retry", "reason": "mailbox busy", "retry_after": 30},
            {"status": "failed", "reason": "policy refusal"},
            {"status": "bounced", "reason": "no such mailbox"},
        ]
        results = [
            {"email": one["email"], **status}
            for one, status in zip(recipients, statuses, strict=True)
        ]
        return Response(json.dumps({"results": results}), content_type="application/json")

    serve(server, generic, mixed)

    results = send(server, backend_for(server, generic), template, batch)

    assert results == [
        Result(Outcome.SENT, message_id=batch[0].message_id),
        Result(Outcome.RETRY, reason="mailbox busy", retry_after=30.0),
        Result(Outcome.FAILED, reason="policy refusal"),
        Result(Outcome.BOUNCED, reason="no such mailbox"),
    ]


def test_http_backend_sends_our_message_ids(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    seen = serve(server, PROVIDERS[3], http_accepts)
    send(server, backend_for(server, PROVIDERS[3]), template, batch)

    body = json.loads(seen[0].get_data())
    assert [r["message_id"] for r in body["recipients"]] == [o.message_id for o in batch]
    assert [r["email"] for r in body["recipients"]] == [o.recipient.email for o in batch]


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "<html>OK</html>",
        json.dumps({"ok": True}),
        json.dumps({"results": "all sent"}),
        json.dumps({"results": [{"email": "ada@example.net", "status": "sent"}]}),
    ],
    ids=["empty", "not-json", "no-results", "results-not-a-list", "too-few-results"],
)
def test_http_backend_malformed_answer_is_failed_never_sent(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing], answer: str
) -> None:
    generic = PROVIDERS[3]
    serve(server, generic, lambda request: Response(answer, status=200))

    results = send(server, backend_for(server, generic), template, batch)

    assert [r.outcome for r in results] == [Outcome.FAILED] * len(batch)
    assert all(r.reason.startswith("malformed answer") for r in results)


def test_http_backend_result_for_another_address_or_status_is_failed(
    server: HTTPServer, template: MessageTemplate, batch: list[Outgoing]
) -> None:
    generic = PROVIDERS[3]

    def confused(request: Request) -> Response:
        recipients = json.loads(request.get_data())["recipients"]
        results = [
            {"email": recipients[0]["email"], "status": "sent"},
            {"email": "somebody@else.example", "status": "sent"},
            {"email": recipients[2]["email"], "status": "delivered-maybe"},
            {"email": recipients[3]["email"].upper(), "status": "sent", "id": "x-4"},
        ]
        return Response(json.dumps({"results": results}), content_type="application/json")

    serve(server, generic, confused)

    results = send(server, backend_for(server, generic), template, batch)

    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.SENT,
    ]
    assert results[1].reason.startswith("malformed answer")
    assert results[3].message_id == "x-4"


def test_an_empty_batch_makes_no_request(
    server: HTTPServer, provider: Provider, template: MessageTemplate
) -> None:
    assert send(server, backend_for(server, provider), template, []) == []
    assert server.log == []
