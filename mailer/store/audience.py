"""A list's audience week by week, from memberships and the history of status changes.

Only what happened since the first week is read: the active count at each week's end is the
count now less every change after that week (a member joining while active, a member's status
moving into or out of active), so the cost follows the recent activity, not the list's size.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from mailer.core.audience import ListAudience, Week, week_of
from mailer.core.lifecycle import Status
from mailer.store.lists import Lists
from mailer.store.schema import history, lists, memberships, subscribers

_ACTIVE = Status.ACTIVE.value


@dataclass(frozen=True)
class _Change:
    at: dt.datetime
    active: int
    """+1 when a member became active (or joined while active), -1 when one stopped."""


class Audience:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def of(self, name: str, since: dt.date, now: dt.datetime) -> ListAudience:
        """The list's weeks from the one holding `since` to the one holding `now`."""
        with self.engine.connect() as connection:
            list_id = Lists.find(connection, name)
            if list_id is None:
                raise LookupError(f"there is no list '{name}'")
            shown = connection.scalar(select(lists.c.name).where(lists.c.id == list_id))
            statuses = _statuses(connection, list_id)
            first = week_of(since)
            start = dt.datetime.combine(first, dt.time(), dt.UTC)
            joined = _joined(connection, list_id, start)
            changes = _status_changes(connection, list_id, start)
        return ListAudience(
            name=str(shown),
            weeks=_weeks(first, now, statuses.get(_ACTIVE, 0), joined, changes),
            statuses=statuses,
        )

    def all(self, since: dt.date, now: dt.datetime) -> list[ListAudience]:
        with self.engine.connect() as connection:
            names = list(connection.scalars(select(lists.c.name).order_by(lists.c.name_key)))
        return [self.of(name, since, now) for name in names]


def _statuses(connection: Connection, list_id: int) -> dict[str, int]:
    rows = connection.execute(
        select(subscribers.c.status, func.count())
        .select_from(memberships)
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(memberships.c.list_id == list_id)
        .group_by(subscribers.c.status)
    )
    return {status: count for status, count in rows}


def _joined(connection: Connection, list_id: int, start: dt.datetime) -> list[_Change]:
    """Members who joined since `start`, each counted active if they were when they joined: the
    old status of their first change after joining, else their status now."""
    first_change = (
        select(history.c.old_status)
        .where(
            history.c.subscriber_id == memberships.c.subscriber_id,
            history.c.at >= memberships.c.created_at,
        )
        .order_by(history.c.at, history.c.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = connection.execute(
        select(memberships.c.created_at, func.coalesce(first_change, subscribers.c.status))
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(memberships.c.list_id == list_id, memberships.c.created_at >= start)
    )
    return [_Change(at, 1 if status == _ACTIVE else 0) for at, status in rows]


def _status_changes(
    connection: Connection, list_id: int, start: dt.datetime
) -> list[tuple[dt.datetime, str | None, str, bool]]:
    """(when, old status, new status, whether they were a member then) of each change since."""
    rows = connection.execute(
        select(
            history.c.at,
            history.c.old_status,
            history.c.new_status,
            history.c.at >= memberships.c.created_at,
        )
        .join(memberships, memberships.c.subscriber_id == history.c.subscriber_id)
        .where(memberships.c.list_id == list_id, history.c.at >= start)
    )
    return [(at, old, new, bool(member)) for at, old, new, member in rows]


def _weeks(
    first: dt.date,
    now: dt.datetime,
    active_now: int,
    joined: list[_Change],
    changes: list[tuple[dt.datetime, str | None, str, bool]],
) -> list[Week]:
    starts = [first]
    while starts[-1] + dt.timedelta(days=7) <= now.date():
        starts.append(starts[-1] + dt.timedelta(days=7))
    signups = Counter(week_of(c.at.date()) for c in joined)
    left = {
        status: Counter(
            week_of(at.date()) for at, _, new, member in changes if new == status and member
        )
        for status in (Status.UNSUBSCRIBED.value, Status.BOUNCED.value)
    }
    net = Counter(week_of(c.at.date()) for c in joined if c.active)
    for at, old, new, member in changes:
        if member:
            net[week_of(at.date())] += (new == _ACTIVE) - (old == _ACTIVE)
    weeks = []
    # Changes after the week under way: none, unless clocks disagree.
    later = sum(net.values()) - sum(net[day] for day in starts)
    for day in reversed(starts):  # the count at a week's end: now, less what came after it
        weeks.append(
            Week(
                starts=day,
                active=active_now - later,
                signups=signups[day],
                unsubscribes=left[Status.UNSUBSCRIBED.value][day],
                bounces=left[Status.BOUNCED.value][day],
            )
        )
        later += net[day]
    return weeks[::-1]
