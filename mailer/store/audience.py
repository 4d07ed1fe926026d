"""A list's audience week by week, from memberships and the history of status changes.

Only what happened since the first week is read, counted by week in the database: the active
count at each week's end is the count now less every change after that week (a member joining
while active, a member's status moving into or out of active).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, case, func, select

from mailer.core.audience import ListAudience, Week, week_of
from mailer.core.lifecycle import Status
from mailer.store.lists import Lists
from mailer.store.schema import history, lists, memberships, subscribers

_ACTIVE = Status.ACTIVE.value


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
            weeks = _Weeks.starting(week_of(since), now)
            joined = _joined(connection, list_id, weeks)
            changes = _status_changes(connection, list_id, weeks)
        return ListAudience(
            name=str(shown),
            weeks=_weeks(weeks, statuses.get(_ACTIVE, 0), joined, changes),
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


@dataclass(frozen=True)
class _Weeks:
    """The weeks shown, and how the database puts a moment into one of them (counting there,
    so that a million members who joined this week cost one row, not a million)."""

    starts: list[dt.date]

    @classmethod
    def starting(cls, first: dt.date, now: dt.datetime) -> _Weeks:
        starts = [first]
        while starts[-1] + dt.timedelta(days=7) <= now.date():
            starts.append(starts[-1] + dt.timedelta(days=7))
        return cls(starts)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.starts[0], dt.time(), dt.UTC)

    def of(self, moment: ColumnElement[dt.datetime]) -> ColumnElement[int]:
        """The index of the week holding `moment` (one past the last: after them)."""
        ends = [dt.datetime.combine(day, dt.time(), dt.UTC) + _WEEK for day in self.starts]
        return case(*((moment < end, index) for index, end in enumerate(ends)), else_=len(ends))


_WEEK = dt.timedelta(days=7)


def _joined(
    connection: Connection, list_id: int, weeks: _Weeks
) -> tuple[Counter[int], Counter[int]]:
    """Sign-ups by week since the first, and how many of them were active when they joined.

    Counted by their status now, then corrected for the few who changed since: they were
    active at joining if the old status of their first change after joining says so."""
    week = weeks.of(memberships.c.created_at).label("week")
    active = case((subscribers.c.status == _ACTIVE, 1), else_=0).label("active")
    joined = (
        select(week, active, func.count())
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(memberships.c.list_id == list_id, memberships.c.created_at >= weeks.start)
        .group_by(week, active)
    )
    signups: Counter[int] = Counter()
    net: Counter[int] = Counter()
    for index, active_now, count in connection.execute(joined):
        signups[index] += count
        net[index] += count * active_now
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
    changed = select(history.c.subscriber_id).where(history.c.at >= weeks.start).distinct()
    corrections = connection.execute(
        select(week, first_change, subscribers.c.status)
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
        .where(
            memberships.c.list_id == list_id,
            memberships.c.created_at >= weeks.start,
            memberships.c.subscriber_id.in_(changed),
        )
    )
    for index, first_old, status in corrections:
        if first_old is not None:
            net[index] += (first_old == _ACTIVE) - (status == _ACTIVE)
    return signups, net


def _status_changes(
    connection: Connection, list_id: int, weeks: _Weeks
) -> list[tuple[int, str | None, str, bool, int]]:
    """(week, old status, new status, whether they were a member then, how many) of the
    changes since the first week."""
    week = weeks.of(history.c.at).label("week")
    member = case((history.c.at >= memberships.c.created_at, 1), else_=0)
    rows = connection.execute(
        select(week, history.c.old_status, history.c.new_status, member, func.count())
        .join(memberships, memberships.c.subscriber_id == history.c.subscriber_id)
        .where(memberships.c.list_id == list_id, history.c.at >= weeks.start)
        .group_by(week, history.c.old_status, history.c.new_status, member)
    )
    return [(index, old, new, bool(was), count) for index, old, new, was, count in rows]


def _weeks(
    weeks: _Weeks,
    active_now: int,
    joined: tuple[Counter[int], Counter[int]],
    changes: list[tuple[int, str | None, str, bool, int]],
) -> list[Week]:
    signups, net = joined
    left = {Status.UNSUBSCRIBED.value: Counter[int](), Status.BOUNCED.value: Counter[int]()}
    for index, old, new, member, count in changes:
        if member:
            if new in left:
                left[new][index] += count
            net[index] += count * ((new == _ACTIVE) - (old == _ACTIVE))
    shown = len(weeks.starts)
    # Changes after the week under way: none, unless clocks disagree.
    later = net[shown]
    found = []
    for index in reversed(range(shown)):  # the count at a week's end: now, less what came after
        found.append(
            Week(
                starts=weeks.starts[index],
                active=active_now - later,
                signups=signups[index],
                unsubscribes=left[Status.UNSUBSCRIBED.value][index],
                bounces=left[Status.BOUNCED.value][index],
            )
        )
        later += net[index]
    return found[::-1]
