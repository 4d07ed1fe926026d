"""Postmark's webhooks: one JSON record per request, authenticated by HTTP basic auth.

Postmark signs nothing; the webhook's URL carries a user name and password
(`https://USER:PASSWORD@host/…/webhooks/postmark`), sent as basic auth and compared here in
constant time. Records: `Bounce` (its `Type` says which: HardBounce and BadEmailAddress are hard,
SpamNotification a complaint, most others soft), `SpamComplaint`, `SubscriptionChange` (a
suppression: unsubscribed, or the hard bounce or complaint that caused it), `Delivery`.
"""

from __future__ import annotations

import base64
import binascii
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
)
from mailer.webhooks.signatures import equal_in_constant_time, require

PROVIDER = "postmark"

HARD = frozenset({"HardBounce", "BadEmailAddress"})
COMPLAINT = frozenset({"SpamComplaint", "SpamNotification"})
UNSUBSCRIBE = frozenset({"Unsubscribe", "ManualSuppression"})
NOT_A_BOUNCE = frozenset(
    {"Subscribe", "AutoResponder", "AddressChange", "ChallengeVerification", "OpenRelayTest"}
)
"""Bounce types that are replies or tests, not failures: ignored."""


def receive(incoming: Incoming, username: str, password: str) -> Received:
    verify(incoming, username, password)
    return Received(events=parse(json_body(incoming.body)))


def verify(incoming: Incoming, username: str, password: str) -> None:
    user = require(username, "[delivery.postmark] webhook_username")
    secret = require(password, "[delivery.postmark] webhook_password")
    scheme, _, encoded = incoming.header("Authorization").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Refused("no basic auth")
    try:
        given_user, _, given_password = (
            base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise Refused("unreadable basic auth") from None
    # Both compared, always, so the time taken does not tell which one was wrong.
    right_user = equal_in_constant_time(given_user, user)
    right_password = equal_in_constant_time(given_password, secret)
    if not (right_user and right_password):
        raise Refused("wrong user name or password")


def parse(record: Any) -> list[Event]:
    if not isinstance(record, dict):
        raise Malformed("the body is not a JSON object")
    record_type = text_at(record, "RecordType")
    kind: Kind | None
    severity: Severity | None = None
    if record_type == "Delivery":
        kind = Kind.DELIVERED
    elif record_type in ("Bounce", "SpamComplaint"):
        kind, severity = bounce_kind(text_at(record, "Type") or record_type)
    elif record_type == "SubscriptionChange":
        kind, severity = suppression_kind(record)
    else:
        return []
    if kind is None:
        return []
    recipient = text_at(record, "Email") or text_at(record, "Recipient")
    if not recipient:
        raise Malformed("the record names no Email or Recipient")
    at = next(
        filter(None, (iso_time(record.get(f)) for f in ("BouncedAt", "DeliveredAt", "ChangedAt"))),
        None,
    )
    reason = (
        text_at(record, "Details")
        or text_at(record, "Description")
        or text_at(record, "SuppressionReason")
        or text_at(record, "Type")
        or record_type
    )
    return [
        Event(
            provider=PROVIDER,
            kind=kind,
            recipient=recipient,
            event_id=event_id(record.get("ID"), record),
            message_id=text_at(record, "MessageID"),
            at=at,
            reason=reason,
            raw=record,
            severity=severity,
        )
    ]


def bounce_kind(bounce_type: str) -> tuple[Kind | None, Severity | None]:
    if bounce_type in HARD:
        return Kind.BOUNCED, Severity.HARD
    if bounce_type in COMPLAINT:
        return Kind.COMPLAINED, None
    if bounce_type in UNSUBSCRIBE:
        return Kind.UNSUBSCRIBED, None
    if bounce_type in NOT_A_BOUNCE:
        return None, None
    return Kind.BOUNCED, Severity.SOFT


def suppression_kind(record: dict[str, Any]) -> tuple[Kind | None, Severity | None]:
    """A SubscriptionChange: Postmark stopped (or resumed) sending to the address."""
    if record.get("SuppressSending") is not True:
        return None, None  # reactivated: nothing for mailer to do
    reason = text_at(record, "SuppressionReason")
    if reason == "HardBounce":
        return Kind.BOUNCED, Severity.HARD
    if reason == "SpamComplaint":
        return Kind.COMPLAINED, None
    return Kind.UNSUBSCRIBED, None
