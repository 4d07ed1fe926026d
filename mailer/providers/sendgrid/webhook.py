"""SendGrid's signed Event Webhook: a JSON array of events, signed with ECDSA.

`X-Twilio-Email-Event-Webhook-Signature` is the base64 DER ECDSA (P-256, SHA-256) signature of
the `X-Twilio-Email-Event-Webhook-Timestamp` header's value followed by the raw body; the public
key, from SendGrid's Mail Settings, is base64 DER (SubjectPublicKeyInfo). A stale timestamp is
refused like the other signed webhooks'. Events: `bounce` (`type` bounce is hard, blocked soft),
`dropped` (by the reason SendGrid gives), `spamreport`, `unsubscribe` / `group_unsubscribe`,
`delivered`; others (processed, deferred, open, click…) are ignored.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
from mailer.webhooks.signatures import check_fresh, require

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

DROPPED = {
    # SendGrid drops a message to an address on one of its suppression lists, and says which.
    "bounced address": (Kind.BOUNCED, Severity.HARD),
    "invalid": (Kind.BOUNCED, Severity.HARD),
    "spam reporting address": (Kind.COMPLAINED, None),
    "unsubscribed address": (Kind.UNSUBSCRIBED, None),
}


def receive(incoming: Incoming, public_key: str, now: float) -> Received:
    verify(incoming, public_key, now)
    return Received(events=parse(json_body(incoming.body)))


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER as its settings page shows it (PEM also taken)."""
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise Refused("[delivery.sendgrid] webhook_public_key is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise Refused("[delivery.sendgrid] webhook_public_key is not an ECDSA P-256 key")
    return key


def verify(incoming: Incoming, public_key: str, now: float) -> None:
    key = load_public_key(require(public_key, "[delivery.sendgrid] webhook_public_key"))
    signature = incoming.header(SIGNATURE_HEADER)
    timestamp = incoming.header(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise Refused(f"no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        decoded = base64.b64decode(signature, validate=True)
        key.verify(decoded, timestamp.encode("utf-8") + incoming.body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        raise Refused("bad signature") from None
    check_fresh(timestamp, now)


def parse(body: Any) -> list[Event]:
    if not isinstance(body, list):
        raise Malformed("the body is not a JSON array of events")
    events = []
    for item in body:
        if not isinstance(item, dict):
            raise Malformed("an event is not a JSON object")
        event = one(item)
        if event is not None:
            events.append(event)
    return events


def one(item: dict[str, Any]) -> Event | None:
    name = text_at(item, "event")
    reason = text_at(item, "reason") or text_at(item, "response") or name
    severity: Severity | None = None
    if name == "delivered":
        kind = Kind.DELIVERED
    elif name == "bounce":
        kind = Kind.BOUNCED
        severity = Severity.SOFT if text_at(item, "type") == "blocked" else Severity.HARD
        status = text_at(item, "status")
        reason = f"{status} {reason}" if status else reason
    elif name == "dropped":
        kind, severity = DROPPED.get(reason.strip().lower(), (Kind.BOUNCED, Severity.SOFT))
        reason = f"dropped: {reason}"
    elif name == "spamreport":
        kind = Kind.COMPLAINED
    elif name in ("unsubscribe", "group_unsubscribe"):
        kind = Kind.UNSUBSCRIBED
    else:
        return None
    recipient = text_at(item, "email")
    if not recipient:
        raise Malformed("an event names no email")
    return Event(
        provider=PROVIDER,
        kind=kind,
        recipient=recipient,
        event_id=event_id(item.get("sg_event_id"), item),
        message_id=batch_id(text_at(item, "sg_message_id")),
        at=unix_time(item.get("timestamp")),
        reason=reason,
        raw=item,
        severity=severity,
    )


def batch_id(sg_message_id: str) -> str:
    """The X-Message-Id SendGrid answered the send with (what the send log holds): the
    sg_message_id of an event is that id followed by `.filter…` or `.recvd…` and more."""
    for marker in (".filter", ".recvd"):
        if marker in sg_message_id:
            return sg_message_id.split(marker, 1)[0]
    return sg_message_id
