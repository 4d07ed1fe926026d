"""The counts the database keeps for the audience chart (schema.audience_joins, kept by
triggers) stay right on every path that changes a list's members or their statuses: an import
(COPY on PostgreSQL), one person added, status changes, lists changed, an erasure's cascade,
plain SQL over many rows, and a week closing. After each step the chart and the lists' counts
are compared with a recount from the memberships and history themselves, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select, text

from mailer.core.addresses import Candidate
from mailer.core.audience import ListAudience, Week, week_of
from mailer.core.lifecycle import Reason, Status
from mailer.store.database import Store
from mailer.store.importing.writer import import_csv
from mailer.store.schema import (
    audience_bulk,
    audience_joins,
    history,
    lists,
    memberships,
    subscribers,
)

WEEK = dt.timedelta(days=7)
IMPORTED = {"status": Status.ACTIVE, "reason": Reason.IMPORT}


def recount(store: Store, name: str, since: dt.date, now: dt.datetime) -> ListAudience:
    """The list's weeks by their definition, member by member: who had joined by each week's
    end and was active then (the old status of their first change after it, else their status
    now), who joined in it, who left in it while a member."""
    with store.engine.connect() as connection:
        list_id = connection.scalar(select(lists.c.id).where(lists.c.name == name))
        members = dict(
            connection.execute(
                select(memberships.c.subscriber_id, memberships.c.created_at).where(
                    memberships.c.list_id == list_id
                )
            ).all()
        )
        status = dict(connection.execute(select(subscribers.c.id, subscribers.c.status)).all())
        changes = connection.execute(
            select(
                history.c.subscriber_id, history.c.at, history.c.old_status, history.c.new_status
            )
            .where(history.c.subscriber_id.in_(list(members)))
            .order_by(history.c.at, history.c.id)
        ).all()
    weeks = []
    start = week_of(since)
    while start <= now.date():
        begins = dt.datetime.combine(start, dt.time(), dt.UTC)
        ends = begins + WEEK

        def status_at(person: int, moment: dt.datetime = ends) -> str:
            after = [old for who, at, old, _ in changes if who == person and at >= moment]
            return after[0] if after else status[person]

        def left(kind: str, begins: dt.datetime = begins, ends: dt.datetime = ends) -> int:
            return sum(
                1
                for who, at, _, new in changes
                if new == kind and begins <= at < ends and at >= members[who]
            )

        weeks.append(
            Week(
                starts=start,
                active=sum(
                    1 for p, joined in members.items() if joined < ends and status_at(p) == "active"
                ),
                signups=sum(1 for joined in members.values() if begins <= joined < ends),
                unsubscribes=left("unsubscribed"),
                bounces=left("bounced"),
            )
        )
        start += WEEK
    return ListAudience(name, weeks, dict(Counter(status[p] for p in members)))


def kept(store: Store) -> dict[tuple[int, dt.date, str], int]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(audience_joins)).all()
    return {(list_id, week, status): members for list_id, week, status, members in rows if members}


def counted(store: Store) -> dict[tuple[int, dt.date, str], int]:
    """What `audience_joins` should hold, counted from the memberships."""
    found: Counter[tuple[int, dt.date, str]] = Counter()
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(memberships.c.list_id, memberships.c.created_at, subscribers.c.status).join(
                subscribers, subscribers.c.id == memberships.c.subscriber_id
            )
        )
        for list_id, joined, status in rows:
            found[(list_id, week_of(joined.date()), status)] += 1
    return dict(found)


def assert_right(store: Store, now: dt.datetime) -> None:
    assert kept(store) == counted(store)
    since = (now - 4 * WEEK).date()
    for name in ("news", "other"):
        assert store.audience.of(name, since, now) == recount(store, name, since, now)
    expected = {
        name: (a.statuses.get("active", 0), sum(a.statuses.values()))
        for name in ("news", "other")
        for a in [recount(store, name, since, now)]
    }
    assert {s.name: (s.active, s.total) for s in store.lists.summaries()} == expected


def people(numbers: range, lists: frozenset[str], status: Status | None = None) -> list[Candidate]:
    return [Candidate(f"p{n}@example.org", f"P {n}", lists, status=status) for n in numbers]


def subscriber_id(store: Store, n: int) -> int:
    found = store.subscribers.find(f"p{n}@example.org")
    assert found is not None
    return found.id


def test_the_kept_counts_follow_every_change_to_the_audience(store: Store) -> None:
    news, both = frozenset({"news"}), frozenset({"news", "other"})
    store.lists.create("news")
    store.lists.create("other")
    now = dt.datetime.now(dt.UTC)
    assert_right(store, now)

    # An import: new people, some on both lists, some bounced already (an exported file).
    store.subscribers.merge(
        people(range(0, 20), news) + people(range(20, 30), both, Status.BOUNCED),
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    store.subscribers.merge(people(range(30, 40), both), status=Status.PENDING, reason=Reason.FORM)
    assert kept(store) != {}
    assert_right(store, now)

    # Some joined weeks ago (plain SQL over many rows), and changed status since.
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE memberships SET created_at = :at WHERE subscriber_id <= :last"),
            {"at": now - 3 * WEEK, "last": subscriber_id(store, 9)},
        )
    for n, new, reason in [
        (1, Status.UNSUBSCRIBED, Reason.ONE_CLICK),
        (2, Status.BOUNCED, Reason.BOUNCE),
        (12, Status.UNSUBSCRIBED, Reason.STAFF),
        (31, Status.ACTIVE, Reason.CONFIRMATION),
        (32, Status.ACTIVE, Reason.CONFIRMATION),
    ]:
        assert store.subscribers.change_status(subscriber_id(store, n), new, reason)
    with store.engine.begin() as connection:  # history as if the changes came a week ago
        connection.execute(
            text("UPDATE history SET at = :at WHERE subscriber_id IN (:a, :b)"),
            {"at": now - 2 * WEEK, "a": subscriber_id(store, 1), "b": subscriber_id(store, 31)},
        )
    assert_right(store, now)

    # Lists changed (a membership deleted, another made), someone erased (the cascade), an
    # exported row bringing a status, and statuses changed over many rows at once.
    assert store.subscribers.set_lists(subscriber_id(store, 3), ["other"])
    assert store.subscribers.set_lists(subscriber_id(store, 33), [])
    store.subscribers.erase("p4@example.org")
    store.subscribers.erase("p32@example.org")
    store.subscribers.merge(
        people(range(5, 7), news, Status.UNSUBSCRIBED), status=Status.ACTIVE, reason=Reason.IMPORT
    )
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE subscribers SET status = 'complained' WHERE email LIKE 'p1_@example.org'")
        )
        connection.execute(
            text("DELETE FROM memberships WHERE subscriber_id IN (:a, :b)"),
            {"a": subscriber_id(store, 21), "b": subscriber_id(store, 22)},
        )
    assert_right(store, now)
    before = store.audience.of("news", (now - 4 * WEEK).date(), now)

    # A week closes: the weeks shown move on, the closed ones keep their numbers.
    later = now + WEEK
    assert_right(store, later)
    after = store.audience.of("news", (now - 4 * WEEK).date(), later)
    assert list(after.weeks[: len(before.weeks)]) == list(before.weeks)
    assert after.weeks[-1].signups == 0
    assert after.weeks[-1].active == before.weeks[-1].active


def test_deleting_a_list_takes_its_counts_with_it(store: Store) -> None:
    store.lists.create("news")
    store.lists.create("other")
    store.subscribers.merge(
        people(range(0, 5), frozenset({"news", "other"})),
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM lists WHERE name = 'other'"))
    assert [(s.name, s.active, s.total) for s in store.lists.summaries()] == [("news", 5, 5)]
    assert kept(store) == counted(store)


def test_an_import_counts_its_new_members_by_list_and_status(store: Store, tmp_path: Path) -> None:
    """On SQLite an import's memberships skip the per-row trigger and are counted in at once
    (audience.counted_at_once): new people on two lists with several statuses and frequencies,
    and an existing person joining another list, each counted once, under their status."""
    store.lists.create("news")
    store.lists.create("other")
    store.subscribers.merge(people(range(0, 1), frozenset({"news"})), **IMPORTED)
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,lists,status,frequency\n"
        "p0@example.org,news;other,,\n"  # existing: joins other
        "p1@example.org,news;other,,\n"
        "p2@example.org,news;other,unsubscribed,\n"
        "p3@example.org,other,bounced,weekly\n"
        "p4@example.org,news,bounced,\n"
        "p5@example.org,news,,weekly\n",
        encoding="utf-8",
    )
    report = import_csv(csv, store.subscribers, lists=[], default_list="news")
    assert (report.merged.added, report.merged.updated, report.rejected) == (5, 1, [])
    with store.engine.connect() as connection:
        ids = dict(connection.execute(select(lists.c.name, lists.c.id)).all())
        assert connection.scalar(select(func.count()).select_from(audience_bulk)) == 0
    this_week = week_of(dt.datetime.now(dt.UTC).date())
    assert kept(store) == {
        (ids["news"], this_week, "active"): 3,  # p0 (before), p1, p5
        (ids["news"], this_week, "unsubscribed"): 1,
        (ids["news"], this_week, "bounced"): 1,
        (ids["other"], this_week, "active"): 2,  # p0, p1
        (ids["other"], this_week, "unsubscribed"): 1,
        (ids["other"], this_week, "bounced"): 1,
    }
    assert_right(store, dt.datetime.now(dt.UTC))

    # The trigger is back on for what comes after: plain SQL is counted again.
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO memberships (subscriber_id, list_id, created_at, frequency) "
                "VALUES (:who, :list, :at, 'immediate')"
            ),
            {"who": subscriber_id(store, 4), "list": ids["other"], "at": dt.datetime.now(dt.UTC)},
        )
    assert kept(store)[(ids["other"], this_week, "bounced")] == 2
    assert kept(store) == counted(store)
