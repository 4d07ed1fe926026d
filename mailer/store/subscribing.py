"""What a subscribe request does to the database, apart from HTTP: double opt-in.

A new address is stored pending, with its consent (form, time, client address); an address that
unsubscribed or bounced becomes pending again through this new consent; either way nobody receives
an issue before following the link in the confirmation message. An active address, a complaint
and an erased address are left as they are and get no message, and the person asking is told the
same as everybody else, so the form never reveals who is subscribed.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.store.database import Store
from mailer.store.schema import utcnow, welcomes
from mailer.store.subscribers import Subscriber, change_status

COME_BACK = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED})
"""Statuses a new subscription through the form moves back to pending."""


def request_subscription(
    store: Store, candidate: Candidate, detail: str, ip: str
) -> Subscriber | None:
    """Record the request; the subscriber to send a confirmation message to, or None."""
    subscribers = store.subscribers
    for _attempt in range(2):  # a second try when another request added the address meanwhile
        found = subscribers.find(candidate.email)
        try:
            if found is None:
                merged = subscribers.merge(
                    [candidate], status=Status.PENDING, reason=Reason.FORM, detail=detail, ip=ip
                )
                return subscribers.find(candidate.email) if merged.added else None  # erased
        except IntegrityError:
            continue
        if found.status == Status.PENDING:
            subscribers.merge(
                [candidate],
                status=Status.PENDING,
                reason=Reason.FORM,
                detail=detail,
                ip=ip,
                replace_names=False,
            )
        elif found.status in COME_BACK:
            if not subscribers.come_back(found.id, candidate.lists, Reason.FORM, detail, ip):
                return None
            for list_name in sorted(candidate.lists):  # come_back made them immediate
                chosen = candidate.frequency_on(list_name)
                if chosen is not None:
                    subscribers.set_frequency(found.id, list_name, chosen, utcnow())
        else:
            return None
        return subscribers.get(found.id)
    return None


def confirm_subscription(store: Store, subscriber_id: int, ip: str, welcome: bool) -> bool:
    """Pending → active through the confirmation link, owing them a welcome email when
    `welcome`; False when it did not apply (they were not pending)."""
    with store.engine.begin() as connection:
        if not change_status(
            connection, subscriber_id, Status.ACTIVE, Reason.CONFIRMATION, "confirmation link", ip
        ):
            return False
        owed = select(welcomes.c.subscriber_id).where(welcomes.c.subscriber_id == subscriber_id)
        if welcome and connection.scalar(owed) is None:  # one welcome, however often they come
            connection.execute(
                insert(welcomes).values(subscriber_id=subscriber_id, confirmed_at=utcnow())
            )
    return True
