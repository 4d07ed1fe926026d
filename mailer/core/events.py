"""What a sending service reports about a message, one normalised type whatever the source.

A webhook and the bounce mailbox turn what they receive into Events; the store applies
them to subscribers and the send log. Each keeps the provider's own record (`raw`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


class Severity(StrEnum):
    """How bad a bounce is: hard (no such mailbox or domain: never send again) or soft."""

    HARD = "hard"
    SOFT = "soft"


@dataclass(frozen=True)
class Event:
    provider: str
    kind: Kind
    recipient: str
    """The address the event is about, as the provider wrote it."""
    event_id: str
    """The provider's id of this event; derived from the event itself when it has none."""
    message_id: str
    """The provider's id of the message (what the backend logged in the send log), or ""."""
    at: dt.datetime | None
    reason: str
    raw: dict[str, Any]
    """The provider's own record of the event, as received."""
    severity: Severity | None = None
    """For bounces only: hard or soft."""

    @property
    def hard_bounce(self) -> bool:
        return self.kind is Kind.BOUNCED and self.severity is Severity.HARD

    @property
    def label(self) -> str:
        """`hard bounce`, `complained`…: the kind as a person reads it."""
        if self.kind is Kind.BOUNCED:
            return f"{self.severity or Severity.SOFT} bounce"
        return self.kind.value


@dataclass(frozen=True)
class SoftBounces:
    """When soft bounces make a subscriber bounced: `limit` of them within `days` days, with no
    delivery reported since the first of them."""

    limit: int = 5
    days: int = 7


MAILMAN_DEFAULTS = SoftBounces()
"""Mailman's bounce_score_threshold (5) and bounce_info_stale_after (7 days)."""
