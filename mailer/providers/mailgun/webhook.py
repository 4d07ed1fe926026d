"""Mailgun's webhooks: one JSON event per request, signed inside the body.

`signature` holds `timestamp`, `token` and `signature`, the hex HMAC-SHA256 of timestamp and
token (no separator) keyed with the webhook signing key. The signature covers neither the body
nor the event, so it proves only that Mailgun sent some request recently: a stale timestamp is
refused, and each token is accepted once (the store remembers the tokens it has seen, so several
processes agree). `event-data` is the event: `failed` with `severity` permanent (a hard bounce,
but see `failure`) or temporary, `complained`, `unsubscribed`, `delivered`; others (opened,
clicked…) are ignored.
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
    json_body,
    unix_time,
)
from mailer.webhooks.signatures import check_fresh, equal_in_constant_time, hmac_sha256_hex, require

PROVIDER = "mailgun"
MAX_TOKEN = 255

KINDS = {
    "delivered": Kind.DELIVERED,
    "failed": Kind.BOUNCED,
    "complained": Kind.COMPLAINED,
    "unsubscribed": Kind.UNSUBSCRIBED,
}


def receive(incoming: Incoming, signing_key: str, now: float) -> Received:
    # The signature is inside the body, so the body is parsed first; the key is checked before.
    key = require(signing_key, "[delivery.mailgun] webhook_signing_key")
    body = json_body(incoming.body)
    if not isinstance(body, dict):
        raise Malformed("the body is not a JSON object")
    token = verify(body.get("signature"), key, now)
    return Received(events=parse(body.get("event-data")), replay_token=token)


def verify(signature: Any, key: str, now: float) -> str:
    """Check the signature block; returns its token, which must not have been seen before."""
    timestamp = text_at(signature, "timestamp")
    token = text_at(signature, "token")
    given = text_at(signature, "signature")
    if not (timestamp and token and given) or len(token) > MAX_TOKEN:
        raise Refused("no signature (timestamp, token and signature are needed)")
    if not equal_in_constant_time(
        given.lower(), hmac_sha256_hex(key, (timestamp + token).encode("utf-8"))
    ):
        raise Refused("bad signature")
    check_fresh(timestamp, now)
    return token


def failure(data: dict[str, Any], status: Any) -> tuple[Kind, Severity | None]:
    """A `failed` event: a permanent one is a hard bounce, unless Mailgun dropped the message
    because the address is on its unsubscribe or complaint list (then it is that), gave up after
    temporary failures (`old`), or the server refused it by policy (enhanced code 5.7.x)."""
    reason = text_at(data, "reason")
    if text_at(data, "severity") != "permanent":
        return Kind.BOUNCED, Severity.SOFT
    if reason == "suppress-unsubscribe":
        return Kind.UNSUBSCRIBED, None
    if reason == "suppress-complaint":
        return Kind.COMPLAINED, None
    if reason == "old" or text_at(status, "enhanced-code").startswith("5.7."):
        return Kind.BOUNCED, Severity.SOFT
    return Kind.BOUNCED, Severity.HARD


def parse(data: Any) -> list[Event]:
    if not isinstance(data, dict):
        raise Malformed("no event-data object")
    kind = KINDS.get(text_at(data, "event"))
    if kind is None:
        return []
    recipient = text_at(data, "recipient")
    if not recipient:
        raise Malformed("the event names no recipient")
    status = data.get("delivery-status")
    severity = None
    if kind is Kind.BOUNCED:
        kind, severity = failure(data, status)
    reason = (
        text_at(status, "description")
        or text_at(status, "message")
        or text_at(data, "reason")
        or text_at(data, "event")
    )
    code = text_at(status, "code")
    if code and kind is Kind.BOUNCED:
        reason = f"{code} {reason}"
    # Mailgun's event id is unique only within a day: with the event's own time, for good.
    provider_id = text_at(data, "id")
    unique = f"{provider_id}/{text_at(data, 'timestamp')}" if provider_id else None
    return [
        Event(
            provider=PROVIDER,
            kind=kind,
            recipient=recipient,
            event_id=event_id(unique, data),
            message_id=text_at(data, "message", "headers", "message-id"),
            at=unix_time(data.get("timestamp")),
            reason=reason,
            raw=data,
            severity=severity,
        )
    ]
