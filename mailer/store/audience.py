"""A list's audience week by week, from the counts the database keeps and the history of
status changes.

The members who joined in each week, by their status now, are kept in `audience_joins` (by
triggers: migration 0016), so nothing here counts memberships. The active count at a week's
end is then those who had joined by it and are active now, less every change of status since,
of a member who had joined by then; the changes are read from history for the weeks shown only
(an index range over `history.at`), grouped in the database.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, func, select

from mailer.core.audience import ListAudience, Week, week_of
from mailer.core.lifecycle import Status
from mailer.store.lists import Lists
from mailer.store.schema import (
    AUDIENCE_WEEK_SQLITE,
    audience_joins,
    history,
    lists,
    memberships,
)

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
            weeks = _Weeks.starting(week_of(since), now)
            joined = _joined(connection, list_id)
            members = sum(joined.values())
            changes = _status_changes(connection, list_id, weeks, members)
        statuses: Counter[str] = Counter()
        for (_, status), count in joined.items():
            statuses[status] += count
        return ListAudience(
            name=str(shown),
            weeks=_weeks(weeks, joined, changes),
            statuses={status: count for status, count in statuses.items() if count},
        )

    def all(self, since: dt.date, now: dt.datetime) -> list[ListAudience]:
        with self.engine.connect() as connection:
            names = list(connection.scalars(select(lists.c.name).order_by(lists.c.name_key)))
        return [self.of(name, since, now) for name in names]


def _joined(connection: Connection, list_id: int) -> Counter[tuple[dt.date, str]]:
    """The list's members by the week they joined and their status now."""
    rows = connection.execute(
        select(audience_joins.c.week, audience_joins.c.status, audience_joins.c.members).where(
            audience_joins.c.list_id == list_id
        )
    )
    return Counter({(week, status): members for week, status, members in rows})


@dataclass(frozen=True)
class _Weeks:
    """The weeks shown, and how a day or, in the database, a moment falls into one of them
    (by index: -1 before the first, one past the last after them)."""

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
        """The index of the week holding `moment`."""
        ends = [dt.datetime.combine(day, dt.time(), dt.UTC) + _WEEK for day in self.starts]
        return case(
            (moment < self.start, -1),
            *((moment < end, index) for index, end in enumerate(ends)),
            else_=len(ends),
        )

    def index(self, monday: dt.date) -> int:
        """The index of the week starting on `monday`."""
        if monday < self.starts[0]:
            return -1
        return min((monday - self.starts[0]).days // 7, len(self.starts))


_WEEK = dt.timedelta(days=7)


def _status_changes(
    connection: Connection, list_id: int, weeks: _Weeks, members: int
) -> list[tuple[int, int, str | None, str, bool, int]]:
    """(week, week the member joined, old status, new status, whether they were a member
    then, how many) of the changes since the first week."""
    week = weeks.of(history.c.at).label("week")
    joined = weeks.of(memberships.c.created_at).label("joined")
    member = case((history.c.at >= memberships.c.created_at, 1), else_=0).label("member")
    on_list: ColumnElement[bool] = memberships.c.list_id == list_id
    if connection.dialect.name == "sqlite" and members > _changes_since(connection, weeks):
        # SQLite, without statistics, walks the list's members and looks up each one's
        # history (a million lookups for a million members); when fewer changes than members
        # are in the weeks shown, start from those instead: `+ 0` keeps it from using the list
        # as the index to start from. (PostgreSQL's planner knows the sizes itself.)
        on_list = memberships.c.list_id + 0 == list_id
    rows = connection.execute(
        select(week, joined, history.c.old_status, history.c.new_status, member, func.count())
        .join(memberships, memberships.c.subscriber_id == history.c.subscriber_id)
        .where(on_list, history.c.at >= weeks.start)
        .group_by(week, joined, history.c.old_status, history.c.new_status, member)
    )
    return [(w, j, old, new, bool(was), count) for w, j, old, new, was, count in rows]


def _changes_since(connection: Connection, weeks: _Weeks) -> int:
    """Every list's changes of status in the weeks shown (counted in the index on their time)."""
    found = connection.scalar(select(func.count()).where(history.c.at >= weeks.start))
    return int(found or 0)


def _weeks(
    weeks: _Weeks,
    joined: Counter[tuple[dt.date, str]],
    changes: list[tuple[int, int, str | None, str, bool, int]],
) -> list[Week]:
    shown = len(weeks.starts)
    signups, active = Counter[int](), Counter[int]()  # active: of those who joined, active now
    for (week, status), count in joined.items():
        index = weeks.index(week)
        signups[index] += count
        if status == _ACTIVE:
            active[index] += count
    left = {Status.UNSUBSCRIBED.value: Counter[int](), Status.BOUNCED.value: Counter[int]()}
    # What changed after a week, by the week the member joined (-1: before the first shown).
    later: Counter[tuple[int, int]] = Counter()
    for index, joined_in, old, new, member, count in changes:
        if member and new in left:
            left[new][index] += count
        later[(index, joined_in)] += count * ((new == _ACTIVE) - (old == _ACTIVE))
    found = []
    joined_active = sum(count for index, count in active.items() if index < 0)
    for index in range(shown):
        joined_active += active[index]
        since = sum(c for (w, j), c in later.items() if w > index and j <= index)
        found.append(
            Week(
                starts=weeks.starts[index],
                active=joined_active - since,
                signups=signups[index],
                unsubscribes=left[Status.UNSUBSCRIBED.value][index],
                bounces=left[Status.BOUNCED.value][index],
            )
        )
    return found


# The memberships of one list inserted by counted_at_once's caller (the list's id, their common
# created_at, the subscribers' ids as a JSON array), counted in by their subscribers' status
# now. One statement a list: json_extract over a group holding the ids would parse them all
# again for every id. CROSS JOIN keeps the order (else the planner may scan every subscriber).
_COUNT_IN_SQLITE = f"""
    INSERT INTO audience_joins (list_id, week, status, members)
    SELECT ?, {AUDIENCE_WEEK_SQLITE.format("?")}, s.status, count(*)
    FROM json_each(?) AS member CROSS JOIN subscribers s
    WHERE s.id = member.value
    GROUP BY 1, 2, 3
    ON CONFLICT (list_id, week, status) DO UPDATE SET members = members + excluded.members"""


@contextmanager
def counted_at_once(
    connection: Connection, created_at: Any
) -> Iterator[Callable[[int, Sequence[int]], None]]:
    """Memberships inserted within, all at `created_at` (as the driver takes it), are counted
    into audience_joins at the end, a statement a list, rather than row by row by the trigger
    (SQLite: half an import's time). Call the function given after each insert: `joined(list_id,
    ids)`.

    On SQLite a row in audience_bulk turns the trigger off for this transaction only (the one
    writer: no other connection inserts meanwhile); the counts come in the same transaction,
    so they are committed, or rolled back, with the memberships. Whatever happens within, the
    row goes and what was inserted is counted. On PostgreSQL the trigger counts a statement
    at once already: nothing changes there."""
    if connection.dialect.name != "sqlite":
        yield lambda _list_id, _ids: None
        return
    groups: list[tuple[int, Sequence[int]]] = []
    connection.exec_driver_sql("INSERT INTO audience_bulk (id) VALUES (1)")
    try:
        yield lambda list_id, ids: groups.append((list_id, ids))
    finally:
        connection.exec_driver_sql("DELETE FROM audience_bulk")
        for list_id, ids in groups:
            connection.exec_driver_sql(_COUNT_IN_SQLITE, (list_id, created_at, json.dumps(ids)))
