"""A subscriber's life: the statuses, what moves them, and which moves are allowed.

pending → active → unsubscribed | bounced | complained. Only active subscribers receive issues.
Nothing but the subscriber's own confirmation brings back an address that left; an import or a
staff member adding it again never does.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Reason(StrEnum):
    """Why a status changed (and how consent was given, for the first one)."""

    FORM = "form"
    CONFIRMATION = "confirmation"
    IMPORT = "import"
    API = "api"
    STAFF = "staff"
    ONE_CLICK = "one-click unsubscribe"
    UNSUBSCRIBE_PAGE = "unsubscribe page"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    PROVIDER = "provider"
    """The sending provider reported it (an unsubscription through the provider's own link)."""


CONSENT = frozenset({Reason.FORM, Reason.CONFIRMATION, Reason.IMPORT, Reason.API, Reason.STAFF})
"""Reasons that record a person's consent when they make someone pending or active."""

LEFT = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})
"""Statuses an import or a staff `add` never reverses."""

_ALLOWED = {
    Status.PENDING: {Status.ACTIVE, Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED},
    Status.ACTIVE: {Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED},
    Status.UNSUBSCRIBED: {Status.PENDING, Status.BOUNCED, Status.COMPLAINED},
    Status.BOUNCED: {Status.PENDING, Status.UNSUBSCRIBED, Status.COMPLAINED},
    Status.COMPLAINED: {Status.UNSUBSCRIBED},
}
"""From each status, where it may go. Coming back from unsubscribed or bounced goes through
pending (a fresh double opt-in); a complaint is final but for unsubscribing."""


def can_become(old: Status, new: Status) -> bool:
    return new in _ALLOWED[old]


class Frequency(StrEnum):
    """How often a subscriber gets a list's issues: each as it goes, or a weekly digest."""

    IMMEDIATE = "immediate"
    WEEKLY = "weekly"
