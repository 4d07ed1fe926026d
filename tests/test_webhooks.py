"""Providers' webhooks, with real cryptography, through the web app, on SQLite and PostgreSQL.

Keys, certificates and signatures are made here: HMACs for Mailgun and the generic backend, an
ECDSA P-256 key pair for SendGrid, basic auth for Postmark, and for Amazon SNS an RSA signing
certificate served over https by a server on a loopback port, whose own TLS certificate comes from
a throwaway CA the test trusts. Each provider's event applies (the subscriber's status and
history, the send log); each way of forging or replaying a request is answered 401 and leaves
every table of the database as it was; the same event delivered twice changes nothing more.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url

from mailer.app.newsletter import Newsletter
from mailer.cli import main
from mailer.core.addresses import Candidate
from mailer.core.errors import ConfigError
from mailer.core.lifecycle import Reason, Status
from mailer.providers.ses import webhook as ses
from mailer.store.campaigns import DeliveryRecord, DeliveryState
from mailer.store.database import Store
from mailer.store.schema import deliveries
from mailer.store.suppressions import Erased
from mailer.web import create_app
from tests.conftest import Folder
from tests.smtp_server import make_certificates

PREFIX = "/commentaries/webhooks"
LIST = "commentaries"
ALICE = "alice@example.org"
BOB = "bob@example.org"
MAILGUN_KEY = "key-" + "m" * 32
POSTMARK_USER = "postmark-hooks"
POSTMARK_PASSWORD = "pm-" + "p" * 24
GENERIC_SECRET = "generic-" + "g" * 24
TOPIC = "arn:aws:sns:eu-west-1:123456789012:mailer-ses"


# The database, as a whole -----------------------------------------------------------------------


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a refused request changed nothing at all."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(
                    (tuple(str(v) for v in row) for row in connection.execute(select(table))),
                )
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


# SNS: a signing certificate served over https on loopback ---------------------------------------


@dataclass
class SnsServer:
    """Serves the SNS signing certificate (and answers subscription confirmations) over https,
    remembering every path asked for."""

    port: int
    key: rsa.RSAPrivateKey
    ca_file: Path
    requests: list[str] = field(default_factory=list)

    @property
    def cert_url(self) -> str:
        return f"https://localhost:{self.port}/SimpleNotificationService-test.pem"

    def subscribe_url(self, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t0k"


def signing_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnsServer]:
    tls = make_certificates(tmp_path_factory.mktemp("sns-tls"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = signing_certificate(key)
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.endswith(".pem"):
                body, kind = pem, "application/x-pem-file"
            elif self.path.startswith("/?Action=ConfirmSubscription"):
                body, kind = b"<ConfirmSubscriptionResponse/>", "text/xml"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SnsServer(server.server_address[1], key, tls.ca_file, seen)
    finally:
        server.shutdown()
        server.server_close()


def sns_string_to_sign(message: dict[str, str]) -> bytes:
    """As AWS documents it: `Name\\nvalue\\n` for these fields in this order (Subject only when
    present), different for notifications and for (un)subscription confirmations."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def sns_message(
    server: SnsServer,
    kind: str,
    message: str,
    *,
    version: str = "2",
    topic: str = TOPIC,
    cert_url: str | None = None,
    key: rsa.RSAPrivateKey | None = None,
    **extra: str,
) -> dict[str, str]:
    body = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2026-11-29T10:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": cert_url or server.cert_url,
        **extra,
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = (key or server.key).sign(sns_string_to_sign(body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def ses_bounce(address: str, bounce_type: str = "Permanent") -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": "2026-11-29T09:59:58.000Z",
                "feedbackId": "0100018c-feedback",
            },
            "mail": {"messageId": "0100018c-ses-message", "destination": [address]},
        }
    )


def ses_complaint(address: str) -> str:
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": address}],
                "complaintFeedbackType": "abuse",
                "timestamp": "2026-11-29T09:59:58.000Z",
                "feedbackId": "0100018c-complaint",
            },
            "mail": {"messageId": "0100018c-ses-message", "destination": [address]},
        }
    )


# The site: a newsletter with two subscribers who were sent an issue ------------------------------


@dataclass
class Site:
    folder: Folder
    url: str
    newsletter: Newsletter
    app: Flask
    client: FlaskClient
    sendgrid_key: ec.EllipticCurvePrivateKey
    sns: SnsServer

    @property
    def store(self) -> Store:
        return self.newsletter.store

    def post(self, provider: str, body: bytes | str, **headers: str) -> Any:
        data = body.encode() if isinstance(body, str) else body
        return self.client.post(f"{PREFIX}/{provider}", data=data, headers=headers)

    def status(self, email: str) -> Status:
        found = self.store.subscribers.find(email)
        assert found is not None
        return found.status

    def changes(self, email: str) -> list[tuple[str | None, str, str]]:
        found = self.store.subscribers.find(email)
        assert found is not None
        return [
            (c.old_status, c.new_status, c.reason) for c in self.store.subscribers.history(found.id)
        ]

    def delivery(self, email: str) -> tuple[str, str | None]:
        """(state, error) of the subscriber's delivery in the campaign."""
        found = self.store.subscribers.find(email)
        assert found is not None
        with self.store.engine.connect() as connection:
            row = connection.execute(
                select(deliveries.c.state, deliveries.c.error).where(
                    deliveries.c.subscriber_id == found.id
                )
            ).one()
        return row.state, row.error

    def send_issue(self, message_ids: dict[str, str]) -> None:
        """A campaign to the list, logged as sent with these provider message ids."""
        campaigns = self.store.campaigns
        campaign = campaigns.start("stalemate", LIST, "An issue")
        claimed = campaigns.claim(campaign.id, "test", 100, dt.timedelta(minutes=5))
        campaigns.record(
            campaign.id,
            "test",
            [
                DeliveryRecord(c.subscriber_id, DeliveryState.SENT, 1, message_ids[c.email])
                for c in claimed
            ],
        )


def public_key_base64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def configure(folder: Folder, sendgrid_key: str, sns: SnsServer, topic: str) -> None:
    folder.configure(
        'webhook_signing_key = "${MAILGUN_WEBHOOK_SIGNING_KEY}"',
        f'webhook_signing_key = "{MAILGUN_KEY}"',
    )
    folder.configure(
        'webhook_public_key = "${SENDGRID_WEBHOOK_PUBLIC_KEY}"',
        f'webhook_public_key = "{sendgrid_key}"',
    )
    folder.configure('webhook_username = "postmark"', f'webhook_username = "{POSTMARK_USER}"')
    folder.configure(
        'webhook_password = "${POSTMARK_WEBHOOK_PASSWORD}"',
        f'webhook_password = "{POSTMARK_PASSWORD}"',
    )
    folder.configure('webhook_secret = ""', f'webhook_secret = "{GENERIC_SECRET}"')
    folder.configure('topic_arn = ""', f'topic_arn = "{topic}"')
    folder.configure('sns_hosts = "sns.*.amazonaws.com"', 'sns_hosts = "localhost:*"')
    folder.configure(
        'for those fetches (tests only).\nca_file = ""',
        f'for those fetches (tests only).\nca_file = "{sns.ca_file}"',
    )


MakeSite = Callable[..., Site]


@pytest.fixture
def make_site(db_folder: Folder, database_url: str, sns_server: SnsServer) -> Iterator[MakeSite]:
    opened: list[Store] = []
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    configured = False

    def make(topic: str = TOPIC) -> Site:
        nonlocal configured
        if not configured:
            configure(db_folder, public_key_base64(sendgrid_key), sns_server, topic)
            configured = True
        newsletter = db_folder.newsletter()
        store = newsletter.store
        opened.append(store)
        if store.subscribers.find(ALICE) is None:
            store.subscribers.merge(
                [
                    Candidate(ALICE, "Alice Rossi", frozenset({LIST})),
                    Candidate(BOB, "Bob", frozenset({LIST})),
                ],
                status=Status.ACTIVE,
                reason=Reason.STAFF,
            )
        app = create_app(newsletter)
        return Site(
            db_folder, database_url, newsletter, app, app.test_client(), sendgrid_key, sns_server
        )

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def site(make_site: MakeSite) -> Site:
    return make_site()


def assert_refused(site: Site, provider: str, body: bytes | str, **headers: str) -> None:
    before = dump(site.url)
    response = site.post(provider, body, **headers)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert dump(site.url) == before


# Mailgun ----------------------------------------------------------------------------------------


def mailgun_body(
    event: dict[str, Any],
    *,
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
) -> str:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": event,
        }
    )


def mailgun_event(
    event: str, recipient: str = ALICE, severity: str = "permanent", **extra: Any
) -> dict[str, Any]:
    return {
        "event": event,
        "severity": severity,
        "id": extra.pop("id", uuid.uuid4().hex[:22]),
        "timestamp": time.time(),
        "recipient": recipient,
        "reason": "bounce",
        "message": {"headers": {"message-id": "20261129.batch1@mg.example.org"}},
        "delivery-status": {"code": 550, "description": "5.1.1 The email account does not exist"},
        **extra,
    }


def test_a_mailgun_hard_bounce_marks_the_subscriber_bounced_and_fails_the_delivery(
    site: Site,
) -> None:
    site.send_issue(
        {ALICE: "<20261129.batch1@mg.example.org>", BOB: "<20261129.batch1@mg.example.org>"}
    )

    response = site.post("mailgun", mailgun_body(mailgun_event("failed")))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": 1, "recorded": 1, "duplicates": 0}
    assert site.status(ALICE) == Status.BOUNCED
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    state, error = site.delivery(ALICE)
    assert state == "failed" and error is not None
    assert "mailgun hard bounce" in error and "does not exist" in error
    assert site.delivery(BOB) == ("sent", None)
    assert site.status(BOB) == Status.ACTIVE
    found = site.store.subscribers.find(ALICE)
    assert found is not None
    [recorded] = site.store.events.of_subscriber(found.id)
    assert (recorded.provider, recorded.kind, recorded.severity) == ("mailgun", "bounced", "hard")
    assert recorded.raw["delivery-status"]["code"] == 550


@pytest.mark.parametrize(
    "event, status, reason",
    [
        pytest.param(mailgun_event("complained"), Status.COMPLAINED, "complaint", id="complained"),
        pytest.param(mailgun_event("unsubscribed"), Status.UNSUBSCRIBED, "provider", id="unsub"),
        pytest.param(
            mailgun_event("failed", reason="suppress-unsubscribe"),
            Status.UNSUBSCRIBED,
            "provider",
            id="dropped-unsubscribed",
        ),
    ],
)
def test_mailgun_complaints_and_unsubscriptions_change_the_status(
    site: Site, event: dict[str, Any], status: Status, reason: str
) -> None:
    response = site.post("mailgun", mailgun_body(event))

    assert response.status_code == 200
    assert site.status(ALICE) == status
    assert site.changes(ALICE) == [("active", status.value, reason)]


def test_a_mailgun_temporary_failure_and_a_delivery_are_recorded_only(site: Site) -> None:
    site.send_issue({ALICE: "<m1@mg>", BOB: "<m1@mg>"})

    for event in (mailgun_event("failed", severity="temporary"), mailgun_event("delivered")):
        assert site.post("mailgun", mailgun_body(event)).status_code == 200

    assert site.status(ALICE) == Status.ACTIVE
    assert site.changes(ALICE) == []
    assert site.delivery(ALICE) == ("sent", None)
    found = site.store.subscribers.find(ALICE)
    assert found is not None
    kinds = [(e.kind, e.severity) for e in site.store.events.of_subscriber(found.id)]
    assert kinds == [("bounced", "soft"), ("delivered", None)]


def test_mailgun_events_it_does_not_act_on_are_taken_and_ignored(site: Site) -> None:
    before = dump(site.url)
    response = site.post("mailgun", mailgun_body(mailgun_event("opened")))

    assert response.status_code == 200 and response.get_json()["received"] == 0
    changed = dump(site.url)
    assert changed.pop("webhook_tokens") != before.pop("webhook_tokens")  # the token is spent
    assert changed == before


def test_the_same_mailgun_event_twice_changes_nothing_more(site: Site) -> None:
    event = mailgun_event("failed", id="same-event-id")
    first = site.post("mailgun", mailgun_body(event))
    after_first = dump(site.url)

    again = site.post("mailgun", mailgun_body(event))  # a new token: Mailgun resending it

    assert first.status_code == again.status_code == 200
    assert again.get_json() == {"received": 1, "recorded": 0, "duplicates": 1}
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    now = dump(site.url)
    assert now.pop("webhook_tokens") != after_first.pop("webhook_tokens")
    assert now == after_first


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: mailgun_body(mailgun_event("failed"), key="key-wrong"), id="bad-key"),
        pytest.param(
            lambda: mailgun_body(mailgun_event("failed"), timestamp=int(time.time()) - 600),
            id="stale",
        ),
        pytest.param(
            lambda: mailgun_body(mailgun_event("failed"), timestamp=int(time.time()) + 600),
            id="future",
        ),
        pytest.param(
            lambda: json.dumps({"event-data": mailgun_event("failed")}), id="no-signature"
        ),
        pytest.param(
            lambda: mailgun_body(mailgun_event("failed")).replace(
                '"signature": "', '"signature": "0'
            ),
            id="altered-signature",
        ),
    ],
)
def test_a_forged_or_stale_mailgun_request_is_refused(site: Site, body: Callable[[], str]) -> None:
    assert_refused(site, "mailgun", body())
    assert site.status(ALICE) == Status.ACTIVE


def test_a_replayed_mailgun_token_is_refused_even_by_another_process(
    site: Site, make_site: MakeSite
) -> None:
    token = secrets.token_hex(25)
    stamp = int(time.time())
    first = site.post(
        "mailgun", mailgun_body(mailgun_event("delivered"), token=token, timestamp=stamp)
    )
    assert first.status_code == 200
    other = make_site()  # a second app (and engine) on the same database: another process

    replay = mailgun_body(mailgun_event("failed"), token=token, timestamp=stamp)

    before = dump(site.url)
    assert other.post("mailgun", replay).status_code == 401
    assert site.post("mailgun", replay).status_code == 401
    assert dump(site.url) == before
    assert site.status(ALICE) == Status.ACTIVE


def test_mailgun_logs_name_no_address_and_no_token(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    token = secrets.token_hex(25)
    caplog.set_level(logging.INFO)
    body = mailgun_body(mailgun_event("failed"), token=token)

    site.post("mailgun", body)
    site.post("mailgun", body)  # refused: a replay

    assert "webhook mailgun" in caplog.text and "refused" in caplog.text
    assert ALICE not in caplog.text and token not in caplog.text
    assert MAILGUN_KEY not in caplog.text


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark", "ses", "generic"])
def test_the_webhook_of_a_provider_that_is_not_configured_is_not_found(
    folder: Folder, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    newsletter = folder.newsletter()  # the example: keys from ${VARIABLES} not set, no topic
    app = create_app(newsletter)
    before = dump(f"sqlite:///{folder.path / 'subscribers' / 'mailer.db'}")

    response = app.test_client().post(
        f"{PREFIX}/{provider}",
        data=mailgun_body(mailgun_event("failed")),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 404
    assert f"webhook {provider} is not configured" in caplog.text
    setting = {
        "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
        "sendgrid": "SENDGRID_WEBHOOK_PUBLIC_KEY",
        "postmark": "POSTMARK_WEBHOOK_PASSWORD",
        "ses": "topic_arn",
        "generic": "signing_secret",
    }[provider]
    assert setting in caplog.text
    assert dump(f"sqlite:///{folder.path / 'subscribers' / 'mailer.db'}") == before
    newsletter.store.close()


def test_an_unknown_provider_is_not_found(site: Site) -> None:
    assert site.post("mandrill", "{}").status_code == 404


# SendGrid ---------------------------------------------------------------------------------------


def sendgrid_headers(
    site: Site, body: bytes, *, timestamp: int | None = None, key: Any = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signer = key or site.sendgrid_key
    signature = signer.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def sendgrid_event(event: str, email: str = ALICE, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": extra.pop("sg_event_id", uuid.uuid4().hex),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **extra,
    }


def test_sendgrid_events_apply_a_bounce_and_a_complaint(site: Site) -> None:
    site.send_issue({ALICE: "14c5d75ce93.dfd.64b469", BOB: "14c5d75ce93.dfd.64b469"})
    body = json.dumps(
        [
            sendgrid_event("processed"),
            sendgrid_event(
                "bounce", type="bounce", status="5.1.1", reason="550 5.1.1 no such user"
            ),
            sendgrid_event("spamreport", BOB),
        ]
    ).encode()

    response = site.post("sendgrid", body, **sendgrid_headers(site, body))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": 2, "recorded": 2, "duplicates": 0}
    assert site.status(ALICE) == Status.BOUNCED
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    state, error = site.delivery(ALICE)
    assert state == "failed" and error is not None and "no such user" in error
    assert site.status(BOB) == Status.COMPLAINED
    assert site.changes(BOB) == [("active", "complained", "complaint")]
    state, note = site.delivery(BOB)  # it did arrive: still sent, with the complaint noted
    assert state == "sent" and note is not None and "complained" in note


def test_a_sendgrid_blocked_bounce_is_soft_and_changes_no_status(site: Site) -> None:
    body = json.dumps([sendgrid_event("bounce", type="blocked", reason="blocked by policy")])

    response = site.post("sendgrid", body, **sendgrid_headers(site, body.encode()))

    assert response.status_code == 200
    assert site.status(ALICE) == Status.ACTIVE and site.changes(ALICE) == []


def test_the_same_sendgrid_event_twice_changes_nothing_more(site: Site) -> None:
    body = json.dumps([sendgrid_event("unsubscribe", sg_event_id="sg-event-1")]).encode()
    assert site.post("sendgrid", body, **sendgrid_headers(site, body)).status_code == 200
    before = dump(site.url)

    again = site.post("sendgrid", body, **sendgrid_headers(site, body))  # signed anew

    assert again.status_code == 200 and again.get_json()["duplicates"] == 1
    assert dump(site.url) == before
    assert site.changes(ALICE) == [("active", "unsubscribed", "provider")]


def test_forged_altered_or_stale_sendgrid_requests_are_refused(site: Site) -> None:
    body = json.dumps([sendgrid_event("bounce", type="bounce")]).encode()
    other_key = ec.generate_private_key(ec.SECP256R1())
    altered = body.replace(ALICE.encode(), BOB.encode())

    assert_refused(site, "sendgrid", body, **sendgrid_headers(site, body, key=other_key))
    assert_refused(site, "sendgrid", altered, **sendgrid_headers(site, body))
    stale = sendgrid_headers(site, body, timestamp=int(time.time()) - 600)
    assert_refused(site, "sendgrid", body, **stale)
    headers = sendgrid_headers(site, body)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(time.time()) + 1)
    assert_refused(site, "sendgrid", body, **headers)  # the timestamp is signed too
    assert_refused(site, "sendgrid", body, **{"Content-Type": "application/json"})
    assert site.status(ALICE) == Status.ACTIVE and site.status(BOB) == Status.ACTIVE


def test_a_signed_sendgrid_body_that_is_not_events_is_a_bad_request(site: Site) -> None:
    body = b'{"not": "a list"}'
    before = dump(site.url)

    response = site.post("sendgrid", body, **sendgrid_headers(site, body))

    assert response.status_code == 400
    assert dump(site.url) == before


# Postmark ---------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}", "Content-Type": "application/json"}


def postmark_bounce(bounce_type: str, email: str = ALICE, **extra: Any) -> str:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "ID": extra.pop("ID", secrets.randbelow(10**9)),
            "Type": bounce_type,
            "TypeCode": 1,
            "Name": "Hard bounce",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Description": "The server was unable to deliver your message",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email,
            "BouncedAt": "2026-11-29T10:00:00.123456Z",
            "Inactive": True,
            "MessageStream": "broadcast",
            **extra,
        }
    )


def test_a_postmark_hard_bounce_marks_the_subscriber_and_the_delivery(site: Site) -> None:
    site.send_issue(
        {ALICE: "883953f4-6105-42a2-a16a-77a8eac79483", BOB: "0b1d2e3f-0000-4000-8000-000000000000"}
    )

    response = site.post(
        "postmark", postmark_bounce("HardBounce"), **basic(POSTMARK_USER, POSTMARK_PASSWORD)
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert site.status(ALICE) == Status.BOUNCED
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    assert site.delivery(ALICE)[0] == "failed"
    assert site.delivery(BOB) == ("sent", None)


@pytest.mark.parametrize(
    "body, status",
    [
        pytest.param(postmark_bounce("SoftBounce"), Status.ACTIVE, id="soft"),
        pytest.param(postmark_bounce("Transient"), Status.ACTIVE, id="transient"),
        pytest.param(postmark_bounce("BadEmailAddress"), Status.BOUNCED, id="bad-address"),
        pytest.param(
            json.dumps(
                {
                    "RecordType": "SpamComplaint",
                    "ID": 42,
                    "Type": "SpamComplaint",
                    "Email": ALICE,
                    "MessageID": "m",
                    "BouncedAt": "2026-11-29T10:00:00Z",
                }
            ),
            Status.COMPLAINED,
            id="spam-complaint",
        ),
        pytest.param(
            json.dumps(
                {
                    "RecordType": "SubscriptionChange",
                    "MessageID": "m",
                    "ChangedAt": "2026-11-29T10:00:00Z",
                    "Recipient": ALICE,
                    "Origin": "Recipient",
                    "SuppressSending": True,
                    "SuppressionReason": "ManualSuppression",
                }
            ),
            Status.UNSUBSCRIBED,
            id="unsubscribed",
        ),
        pytest.param(
            json.dumps(
                {
                    "RecordType": "Delivery",
                    "MessageID": "m",
                    "Recipient": ALICE,
                    "DeliveredAt": "2026-11-29T10:00:00Z",
                    "Details": "250 OK",
                }
            ),
            Status.ACTIVE,
            id="delivery",
        ),
    ],
)
def test_postmark_records_change_what_they_should(site: Site, body: str, status: Status) -> None:
    response = site.post("postmark", body, **basic(POSTMARK_USER, POSTMARK_PASSWORD))

    assert response.status_code == 200
    assert site.status(ALICE) == status
    found = site.store.subscribers.find(ALICE)
    assert found is not None and len(site.store.events.of_subscriber(found.id)) == 1


def test_the_same_postmark_record_twice_and_one_without_id_change_nothing_more(
    site: Site,
) -> None:
    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    unsubscribed = json.dumps(  # SubscriptionChange has no ID: one is derived from the record
        {
            "RecordType": "SubscriptionChange",
            "MessageID": "m",
            "ChangedAt": "2026-11-29T10:00:00Z",
            "Recipient": BOB,
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        }
    )
    for body in (postmark_bounce("HardBounce", ID=777), unsubscribed):
        assert site.post("postmark", body, **auth).status_code == 200
    before = dump(site.url)

    for body in (postmark_bounce("HardBounce", ID=777), unsubscribed):
        again = site.post("postmark", body, **auth)
        assert again.status_code == 200 and again.get_json()["duplicates"] == 1

    assert dump(site.url) == before
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    assert site.changes(BOB) == [("active", "unsubscribed", "provider")]


def test_postmark_without_the_right_basic_auth_is_refused(site: Site) -> None:
    body = postmark_bounce("HardBounce")

    assert_refused(site, "postmark", body, **{"Content-Type": "application/json"})
    assert_refused(site, "postmark", body, **basic(POSTMARK_USER, "wrong-password"))
    assert_refused(site, "postmark", body, **basic("someone", POSTMARK_PASSWORD))
    assert_refused(site, "postmark", body, Authorization="Bearer " + POSTMARK_PASSWORD)
    challenge = site.post("postmark", body)
    assert challenge.headers["WWW-Authenticate"].startswith("Basic")
    assert site.status(ALICE) == Status.ACTIVE


# Amazon SES through SNS -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_ses_permanent_bounce_signed_by_sns_applies(site: Site, version: str) -> None:
    site.send_issue({ALICE: "other-id-1", BOB: "other-id-2"})  # SES's id matches none: latest
    message = sns_message(site.sns, "Notification", ses_bounce(ALICE), version=version)

    response = site.post("ses", json.dumps(message), **{"x-amz-sns-message-type": "Notification"})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert site.status(ALICE) == Status.BOUNCED
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    state, error = site.delivery(ALICE)
    assert state == "failed" and error is not None and "550 5.1.1" in error
    assert site.delivery(BOB) == ("sent", None)


def test_an_ses_transient_bounce_and_a_complaint(site: Site) -> None:
    transient = sns_message(site.sns, "Notification", ses_bounce(ALICE, "Transient"))
    complaint = sns_message(site.sns, "Notification", ses_complaint(BOB), Subject="Complaint")

    assert site.post("ses", json.dumps(transient)).status_code == 200
    assert site.post("ses", json.dumps(complaint)).status_code == 200

    assert site.status(ALICE) == Status.ACTIVE and site.changes(ALICE) == []
    assert site.changes(BOB) == [("active", "complained", "complaint")]


def test_the_same_sns_message_twice_changes_nothing_more(site: Site) -> None:
    message = json.dumps(sns_message(site.sns, "Notification", ses_bounce(ALICE)))
    assert site.post("ses", message).status_code == 200
    before = dump(site.url)

    again = site.post("ses", message)

    assert again.status_code == 200 and again.get_json()["duplicates"] == 1
    assert dump(site.url) == before
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]


def test_a_subscription_confirmation_for_our_topic_is_confirmed(site: Site) -> None:
    url = site.sns.subscribe_url()
    message = sns_message(
        site.sns,
        "SubscriptionConfirmation",
        f"You have chosen to subscribe to the topic {TOPIC}.",
        SubscribeURL=url,
        Token="t0k",
    )
    before = dump(site.url)

    response = site.post("ses", json.dumps(message))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert url.split(str(site.sns.port), 1)[1] in site.sns.requests
    assert dump(site.url) == before


def test_an_ses_webhook_set_up_without_its_topic_stops_the_service_from_starting(
    folder: Folder, sns_server: SnsServer
) -> None:
    configure(folder, "", sns_server, topic="")  # SNS hosts and CA set, topic_arn empty
    newsletter = folder.newsletter()

    with pytest.raises(ConfigError, match=r"\[webhooks.ses\] topic_arn is empty") as raised:
        create_app(newsletter)

    assert "anybody's SNS topic" in str(raised.value)
    newsletter.store.close()


def test_messages_of_each_topic_named_are_taken_and_of_no_other(
    make_site: MakeSite,
) -> None:
    second = TOPIC.replace("mailer-ses", "mailer-ses-eu")
    site = make_site(topic=f"{TOPIC} {second}")
    stranger = TOPIC.replace("123456789012", "210987654321")  # anybody's topic, really signed

    assert_refused(
        site,
        "ses",
        json.dumps(sns_message(site.sns, "Notification", ses_bounce(ALICE), topic=stranger)),
    )
    bob = sns_message(site.sns, "Notification", ses_complaint(BOB), topic=second)
    alice = sns_message(site.sns, "Notification", ses_bounce(ALICE), topic=TOPIC)

    assert site.post("ses", json.dumps(bob)).status_code == 200
    assert site.post("ses", json.dumps(alice)).status_code == 200
    assert site.status(BOB) == Status.COMPLAINED and site.status(ALICE) == Status.BOUNCED


def test_a_topic_arn_that_is_not_one_is_a_config_error(folder: Folder) -> None:
    folder.configure('topic_arn = ""', 'topic_arn = "arn:aws:sns:eu-west-1:1234:x mailer-ses"')

    with pytest.raises(ConfigError, match="is not an SNS topic ARN") as raised:
        folder.newsletter()

    assert "config.toml:" in str(raised.value)


def test_forged_sns_messages_are_refused_without_fetching_anything_they_name(site: Site) -> None:
    server = site.sns
    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = sns_message(server, "Notification", ses_bounce(ALICE))
    port = server.port
    cases = {
        "bad signature": sns_message(server, "Notification", ses_bounce(ALICE), key=wrong_key),
        "altered message": {**good, "Message": ses_bounce(BOB)},
        "another topic": sns_message(server, "Notification", ses_bounce(ALICE), topic=TOPIC + "x"),
        "http certificate URL": sns_message(
            server,
            "Notification",
            ses_bounce(ALICE),
            cert_url=f"http://localhost:{port}/SimpleNotificationService-test.pem",
        ),
        "certificate on another host": sns_message(  # the same server, by another name
            server,
            "Notification",
            ses_bounce(ALICE),
            cert_url=f"https://127.0.0.1:{port}/SimpleNotificationService-test.pem",
        ),
        "not a .pem": sns_message(
            server, "Notification", ses_bounce(ALICE), cert_url=f"https://localhost:{port}/x"
        ),
        "user in the certificate URL": sns_message(
            server,
            "Notification",
            ses_bounce(ALICE),
            cert_url=f"https://evil.example@localhost:{port}/SimpleNotificationService-test.pem",
        ),
        "unknown signature version": sns_message(
            server, "Notification", ses_bounce(ALICE), version="3"
        ),
        "confirmation naming another host": sns_message(
            server,
            "SubscriptionConfirmation",
            "subscribe?",
            SubscribeURL=server.subscribe_url(host="127.0.0.1") + "&elsewhere=1",
            Token="t0k",
        ),
    }
    for name, message in cases.items():
        fetched = len(server.requests)
        assert_refused(site, "ses", json.dumps(message))
        assert all(
            "127.0.0.1" not in p and "elsewhere" not in p for p in server.requests[fetched:]
        ), name
    assert_refused(site, "ses", json.dumps(good), **{"x-amz-sns-message-type": "Whatever"})
    assert site.status(ALICE) == Status.ACTIVE and site.status(BOB) == Status.ACTIVE


def test_sns_certificate_urls_are_restricted_to_sns_hosts_by_default() -> None:
    def allowed(url: str) -> bool:
        return ses.allowed_url(url, ses.SNS_HOSTS, certificate=True)

    assert allowed("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem")
    assert allowed("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem")
    for url in (
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com.evil.org/SimpleNotificationService-abc.pem",
        "https://evil.org/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://evil.org/?https://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com\\@evil.org/x.pem",
        "https://sns.evil.org.amazonaws.com.evil.org/x.pem",
        "https://sns.a.b.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt",
        "https://SNS.US-EAST-1.AMAZONAWS.COM.evil.org/x.pem",
    ):
        assert not allowed(url), url


# The generic backend's webhook ------------------------------------------------------------------


def generic_headers(
    body: bytes, *, secret: str = GENERIC_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "X-Mailer-Timestamp": stamp,
        "X-Mailer-Signature": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def generic_body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_generic_events_apply(site: Site) -> None:
    site.send_issue({ALICE: "relay-4711", BOB: "relay-4712"})
    body = generic_body(
        {
            "id": "evt-1",
            "type": "bounced",
            "email": ALICE,
            "message_id": "relay-4711",
            "reason": "550 5.1.1 no such mailbox",
            "at": "2026-11-29T10:00:00Z",
        },
        {"id": "evt-2", "type": "soft_bounced", "email": BOB, "reason": "452 mailbox full"},
        {"id": "evt-3", "type": "delivered", "email": "ghost@example.net", "at": 1795000000},
    )

    response = site.post("generic", body, **generic_headers(body))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": 3, "recorded": 3, "duplicates": 0}
    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    assert site.delivery(ALICE)[0] == "failed"
    assert site.status(BOB) == Status.ACTIVE and site.delivery(BOB) == ("sent", None)


def test_generic_events_without_ids_are_still_applied_once(site: Site) -> None:
    body = generic_body({"type": "complained", "email": ALICE, "reason": "abuse"})
    assert site.post("generic", body, **generic_headers(body)).status_code == 200
    before = dump(site.url)

    again = site.post("generic", body, **generic_headers(body))

    assert again.status_code == 200 and again.get_json()["duplicates"] == 1
    assert dump(site.url) == before
    assert site.changes(ALICE) == [("active", "complained", "complaint")]


def test_forged_altered_or_stale_generic_requests_are_refused(site: Site) -> None:
    body = generic_body({"id": "e", "type": "bounced", "email": ALICE})

    assert_refused(site, "generic", body, **generic_headers(body, secret="another-secret"))
    assert_refused(
        site, "generic", body.replace(b"bounced", b"complained"), **generic_headers(body)
    )
    stale = generic_headers(body, timestamp=int(time.time()) - 301 - 60)
    assert_refused(site, "generic", body, **stale)
    assert_refused(site, "generic", body, **{"Content-Type": "application/json"})
    assert site.status(ALICE) == Status.ACTIVE


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"events": {"type": "bounced"}}',
        generic_body({"id": "e", "type": "exploded", "email": ALICE}),
        generic_body({"id": "e", "type": "bounced"}),
    ],
)
def test_a_signed_generic_body_that_is_not_the_format_is_a_bad_request(
    site: Site, body: bytes
) -> None:
    before = dump(site.url)

    response = site.post("generic", body, **generic_headers(body))

    assert response.status_code == 400
    assert dump(site.url) == before


def test_concurrent_requests_are_all_taken_and_each_event_applied_once(site: Site) -> None:
    """Ten threads post at once, each event twice over: every request is answered 200, every
    event recorded once."""
    bodies = [
        generic_body(
            {"id": f"burst-{n}", "type": "delivered", "email": ALICE},
            {"id": f"burst-{n + 1}", "type": "delivered", "email": BOB},
        )
        for n in range(10)
    ]
    statuses: list[int] = []

    def post(body: bytes) -> None:
        client = site.app.test_client()
        response = client.post(f"{PREFIX}/generic", data=body, headers=generic_headers(body))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [200] * 10
    assert len(dump(site.url)["events"]) == 11  # burst-0 … burst-10


# Erasing ----------------------------------------------------------------------------------------


def test_erasing_removes_every_event_about_the_address(site: Site) -> None:
    ghost = "ghost@example.net"
    body = generic_body(
        {"id": "a", "type": "bounced", "email": ALICE, "reason": "no such user"},
        {"id": "g", "type": "bounced", "email": ghost, "reason": "no such user"},
    )
    assert site.post("generic", body, **generic_headers(body)).status_code == 200

    assert site.store.subscribers.erase(ALICE).found
    assert not site.store.subscribers.erase(ghost).found

    content = json.dumps(dump(site.url)).lower()
    assert "alice" not in content and "ghost" not in content
    assert dump(site.url)["events"] == []


def show_of(site: Site, email: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["--config", str(site.folder.config_path), "subscribers", "show", email]
    )
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def test_show_includes_the_send_log_and_the_webhook_events(site: Site) -> None:
    site.send_issue({ALICE: "<m-alice@example.org>", BOB: "<m-bob@example.org>"})
    body = generic_body(
        {"id": "c1", "type": "complained", "email": ALICE, "message_id": "<m-alice@example.org>"}
    )
    assert site.post("generic", body, **generic_headers(body)).status_code == 200

    alice = show_of(site, ALICE)

    [delivery] = alice["deliveries"]
    assert (delivery["issue"], delivery["state"], delivery["message_id"]) == (
        "stalemate",
        "sent",
        "<m-alice@example.org>",
    )
    [event] = alice["webhook_events"]
    assert (event["provider"], event["event_id"], event["kind"]) == ("generic", "c1", "complained")
    assert event["raw"]["email"] == ALICE


def test_after_an_erase_the_address_is_in_no_file_of_the_database_and_late_events_keep_nothing(
    site: Site,
) -> None:
    site.send_issue({ALICE: "<m-alice@example.org>", BOB: "<m-bob@example.org>"})
    body = generic_body(
        {"id": "b1", "type": "bounced", "email": ALICE, "reason": f"<{ALICE}>: no such user"}
    )
    assert site.post("generic", body, **generic_headers(body)).status_code == 200

    assert site.store.subscribers.erase(ALICE) == Erased(found=True, log_cleared=True)
    late = generic_body(
        {"id": "b2", "type": "bounced", "email": ALICE.upper(), "reason": f"<{ALICE}>: gone"}
    )
    assert site.post("generic", late, **generic_headers(late)).status_code == 200

    content = json.dumps(dump(site.url), default=str).lower()
    assert "alice" not in content and "rossi" not in content
    assert show_of(site, BOB)["deliveries"][0]["state"] == "sent"
    url = make_url(site.url)
    if url.get_backend_name() != "sqlite" or url.database is None:
        return  # PostgreSQL: no row holds it; its files are PostgreSQL's to reuse (README)
    database = url.database
    files = [Path(database), Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert Path(database).stat().st_size > 0
    for path in files:
        if path.exists():
            data = path.read_bytes().lower()
            assert b"alice" not in data and b"rossi" not in data, f"{path.name} holds the address"


# Soft bounces, scored --------------------------------------------------------------------------


def soft_bounce(event_id: str, email: str, days_ago: float) -> dict[str, Any]:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return {
        "id": event_id,
        "type": "soft_bounced",
        "email": email,
        "reason": "452 4.2.2 mailbox full",
        "at": at.isoformat().replace("+00:00", "Z"),
    }


def post_generic(site: Site, *events: dict[str, Any]) -> None:
    body = generic_body(*events)
    response = site.post("generic", body, **generic_headers(body))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_soft_bounces_within_the_window_mark_a_subscriber_bounced(
    db_folder: Folder, make_site: MakeSite
) -> None:
    db_folder.configure("soft_bounces = 5", "soft_bounces = 3")
    db_folder.configure("soft_bounce_days = 7", "soft_bounce_days = 10")
    site = make_site()
    site.send_issue({ALICE: "relay-1", BOB: "relay-2"})

    # Alice: three within ten days. Bob: two of his three are older than ten days.
    post_generic(site, soft_bounce("a1", ALICE, 9), soft_bounce("b1", BOB, 30))
    post_generic(site, soft_bounce("a2", ALICE, 4), soft_bounce("b2", BOB, 11))
    assert site.status(ALICE) == Status.ACTIVE
    post_generic(site, soft_bounce("a3", ALICE, 0), soft_bounce("b3", BOB, 0))

    assert site.changes(ALICE) == [("active", "bounced", "bounce")]
    history = site.store.subscribers.history(site.store.subscribers.find(ALICE).id)  # type: ignore[union-attr]
    assert "3 soft bounces within 10 days" in history[0].detail
    assert site.status(BOB) == Status.ACTIVE
    post_generic(site, soft_bounce("a3", ALICE, 0))  # the same event again changes nothing
    assert len(site.changes(ALICE)) == 1


def test_a_delivery_between_soft_bounces_resets_the_score(
    db_folder: Folder, make_site: MakeSite
) -> None:
    db_folder.configure("soft_bounces = 5", "soft_bounces = 3")
    site = make_site()
    delivered = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()

    post_generic(site, soft_bounce("s1", ALICE, 4), soft_bounce("s2", ALICE, 3))
    post_generic(site, {"id": "d1", "type": "delivered", "email": ALICE, "at": delivered})
    post_generic(site, soft_bounce("s3", ALICE, 1), soft_bounce("s4", ALICE, 0))
    assert site.status(ALICE) == Status.ACTIVE
    post_generic(site, soft_bounce("s5", ALICE, 0))
    assert site.status(ALICE) == Status.BOUNCED
