"""The `http` backend's webhook: mailer's own event format, signed like its requests.

Documented in docs/http-backend.md ("Webhook"): `X-Mailer-Timestamp` and `X-Mailer-Signature:
sha256=HEX`, the HMAC-SHA256 of `<timestamp>.<raw body>` keyed with the shared secret; the body is
`{"events": [{"id", "type", "email", "message_id", "reason", "at"}, …]}`.
"""

from __future__ import annotations

from typing import Any

from mailer.core.events import Event, Kind, Severity
from mailer.core.json_text import text_at
from mailer.webhooks.base import (
    Incoming,
    Malformed,
    Received,
    Refused,
    event_id,
    iso_time,
    json_body,
    unix_time,
)
from mailer.webhooks.signatures import check_fresh, equal_in_constant_time, hmac_sha256_hex, require

PROVIDER = "generic"
TIMESTAMP_HEADER = "X-Mailer-Timestamp"
SIGNATURE_HEADER = "X-Mailer-Signature"

TYPES = {
    "delivered": (Kind.DELIVERED, None),
    "bounced": (Kind.BOUNCED, Severity.HARD),
    "soft_bounced": (Kind.BOUNCED, Severity.SOFT),
    "complained": (Kind.COMPLAINED, None),
    "unsubscribed": (Kind.UNSUBSCRIBED, None),
}


def receive(incoming: Incoming, secret: str, now: float) -> Received:
    verify(incoming, secret, now)
    return Received(events=parse(json_body(incoming.body)))


def verify(incoming: Incoming, secret: str, now: float) -> None:
    key = require(secret, "[delivery.http] webhook_secret (or signing_secret)")
    timestamp = incoming.header(TIMESTAMP_HEADER)
    given = incoming.header(SIGNATURE_HEADER)
    if not timestamp or not given:
        raise Refused(f"no {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    expected = "sha256=" + hmac_sha256_hex(key, timestamp.encode("utf-8") + b"." + incoming.body)
    if not equal_in_constant_time(given.strip(), expected):
        raise Refused("bad signature")
    check_fresh(timestamp, now)


def parse(body: Any) -> list[Event]:
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise Malformed('the body is not {"events": [...]}')
    return [one(item, number) for number, item in enumerate(items, 1)]


def one(item: Any, number: int) -> Event:
    if not isinstance(item, dict):
        raise Malformed(f"event {number} is not a JSON object")
    type_name = text_at(item, "type")
    if type_name not in TYPES:
        raise Malformed(f"event {number}: type is not one of {', '.join(TYPES)}")
    email = text_at(item, "email")
    if not email:
        raise Malformed(f"event {number} has no email")
    at = item.get("at")
    kind, severity = TYPES[type_name]
    return Event(
        provider=PROVIDER,
        kind=kind,
        recipient=email,
        event_id=event_id(item.get("id"), item),
        message_id=text_at(item, "message_id"),
        at=iso_time(at) if isinstance(at, str) else unix_time(at),
        reason=text_at(item, "reason"),
        raw=item,
        severity=severity,
    )
