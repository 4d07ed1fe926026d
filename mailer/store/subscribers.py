"""Subscribers: who they are, which lists they are on, their consent and every change of status.

An address is one person whatever its case (`email_key` is the whole address case-folded); it is
stored as given. Erasing a subscriber deletes everything about them and leaves only a hash of the
address on the suppression list, so that an old export re-imported by mistake cannot bring it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from mailer.core.addresses import Candidate, SuppressionHash, as_stored, key
from mailer.core.lifecycle import CONSENT, LEFT, Frequency, Reason, Status, can_become
from mailer.store.audience import counted_at_once
from mailer.store.bulk import bulk_insert, insert_for_ids, inserted_ids, one_of
from mailer.store.lists import Lists, list_key
from mailer.store.schema import (
    driver_time,
    history,
    lists,
    memberships,
    new_link_secrets,
    subscribers,
    utcnow,
)
from mailer.store.suppressions import Erased, erase, erased_keys


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    joined: Change
    """How they came in: when, by which means (form, import, staff, API), from where."""
    created_at: dt.datetime
    updated_at: dt.datetime
    link_secret: str
    """Their own value in the MAC of their links (links.py): never shown, never exported."""
    lists: tuple[str, ...] = ()
    language: str = ""
    """The language they read; empty: the newsletter's."""
    weekly: tuple[str, ...] = ()
    """Those of `lists` they get as the weekly digest; the others, every issue as it goes."""

    def frequency(self, list_name: str) -> Frequency:
        return Frequency.WEEKLY if list_name in self.weekly else Frequency.IMMEDIATE

    @property
    def frequencies(self) -> dict[str, Frequency]:
        """Their frequency on each of their lists, by list name."""
        return {name: self.frequency(name) for name in self.lists}


@dataclass
class Merged:
    """What adding a batch of candidates did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_out: int = 0
    """Addresses that unsubscribed, bounced, complained or were erased: left as they are."""
    lists_created: list[str] = field(default_factory=list)

    def __iadd__(self, other: Merged) -> Merged:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.kept_out += other.kept_out
        self.lists_created += other.lists_created
        return self


@dataclass(frozen=True)
class Change:
    """One change of status; one with no old status is how the person came in."""

    at: dt.datetime
    old_status: str | None
    new_status: str
    reason: str
    detail: str
    ip: str

    @property
    def is_consent(self) -> bool:
        gave = self.old_status is None or self.new_status in (Status.ACTIVE, Status.PENDING)
        return self.reason in CONSENT and gave


_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email,
    subscribers.c.name,
    subscribers.c.status,
    subscribers.c.language,
    subscribers.c.source,
    subscribers.c.source_detail,
    subscribers.c.source_ip,
    subscribers.c.created_at,
    subscribers.c.updated_at,
    subscribers.c.link_secret,
)


def _subscriber(row: Any, member_of: Sequence[tuple[str, str]] = ()) -> Subscriber:
    """The subscriber of a row of _COLUMNS, on the lists `member_of` (name, frequency)."""
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=Status(row.status),
        joined=Change(row.created_at, None, "", row.source, row.source_detail, row.source_ip),
        created_at=row.created_at,
        updated_at=row.updated_at,
        link_secret=row.link_secret,
        lists=tuple(sorted(name for name, _ in member_of)),
        language=row.language,
        weekly=tuple(sorted(name for name, chosen in member_of if chosen == Frequency.WEEKLY)),
    )


EVERY_ISSUE = memberships.c.frequency == Frequency.IMMEDIATE
"""A list's members who get every issue as it goes (the others get the weekly digest)."""


def reading(
    languages: Sequence[str] | None, which: ColumnElement[bool] = EVERY_ISSUE
) -> list[ColumnElement[bool]]:
    """Whom of a list's members (memberships joined to subscribers) a campaign goes to: the
    active ones `which` chooses (by default those who get every issue), and with `languages`
    only those reading one of them ("" is the newsletter's). One definition for the campaign,
    its dry run and the count staff are asked to confirm."""
    where = [subscribers.c.status == Status.ACTIVE, which]
    if languages is not None:
        where.append(subscribers.c.language.in_(list(languages)))
    return where


def _on_list(query: Select[Any], list_name: str) -> Select[Any]:
    """`query` of subscribers joined to their membership of the list (the join is walked along
    the (list_id, subscriber_id) index from the last page on; an IN (subquery) was evaluated
    whole for every page)."""
    return query.join_from(
        subscribers,
        memberships,
        and_(
            memberships.c.subscriber_id == subscribers.c.id,
            memberships.c.list_id
            == select(lists.c.id).where(lists.c.name_key == list_key(list_name)).scalar_subquery(),
        ),
    )


class Subscribers:
    def __init__(self, engine: Engine, hashes: SuppressionHash) -> None:
        self.engine = engine
        self.hashes = hashes

    # Reading -----------------------------------------------------------------------------------

    def find(self, email: str) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_COLUMNS).where(subscribers.c.email_key == key(as_stored(email)))
            ).first()
            return _subscriber(row, _lists_of(connection, [row.id])[row.id]) if row else None

    def get(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_COLUMNS).where(subscribers.c.id == subscriber_id)
            ).first()
            return _subscriber(row, _lists_of(connection, [row.id])[row.id]) if row else None

    def history(self, subscriber_id: int) -> list[Change]:
        """Every change of status since they came in, oldest first."""
        columns = (
            history.c[name] for name in ("at", "old_status", "new_status", "reason", "detail", "ip")
        )
        query = (
            select(*columns).where(history.c.subscriber_id == subscriber_id).order_by(history.c.id)
        )
        with self.engine.connect() as connection:
            return [Change(*row) for row in connection.execute(query)]

    def each(
        self,
        statuses: Sequence[Status] = (),
        list_name: str | None = None,
        search: str = "",
        page: int = 2000,
    ) -> Iterator[Subscriber]:
        """Every subscriber matching the filters, by id, a page at a time (memory stays flat)."""
        query = select(*_COLUMNS)
        if statuses:
            query = query.where(subscribers.c.status.in_([s.value for s in statuses]))
        if list_name is not None:
            query = _on_list(query, list_name)
        if search:
            query = query.where(subscribers.c.email_key.contains(key(search), autoescape=True))
        return self._paged(query, page)

    def readers(
        self, list_name: str, languages: Sequence[str] | None = None, page: int = 2000
    ) -> Iterator[Subscriber]:
        """Whom an issue to the list would go to now (see `reading`), by id, a page at a time."""
        return self._paged(_on_list(select(*_COLUMNS), list_name).where(*reading(languages)), page)

    def count_readers(self, list_name: str, languages: Sequence[str] | None = None) -> int:
        """How many an issue to the list would go to now (see `reading`)."""
        query = _on_list(select(func.count()), list_name)
        with self.engine.connect() as connection:
            return int(connection.execute(query.where(*reading(languages))).scalar_one())

    def _paged(self, query: Select[Any], page: int) -> Iterator[Subscriber]:
        query = query.order_by(subscribers.c.id).limit(page)
        last = 0
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(query.where(subscribers.c.id > last)).all()
                if not rows:
                    return
                names = _lists_of(connection, [row.id for row in rows])
            for row in rows:
                yield _subscriber(row, names[row.id])
            last = rows[-1].id

    def counts(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """(subscribers by status, and by list then status)."""
        with self.engine.connect() as connection:
            by_status: dict[str, int] = {
                status: count
                for status, count in connection.execute(
                    select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
                )
            }
            by_list: dict[str, dict[str, int]] = {}
            rows = connection.execute(
                select(lists.c.name, subscribers.c.status, func.count())
                .select_from(lists)
                .join(memberships, memberships.c.list_id == lists.c.id)
                .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
                .group_by(lists.c.name, subscribers.c.status)
            )
            for name, status, count in rows:
                by_list.setdefault(name, {})[status] = count
        return by_status, by_list

    # Changing ----------------------------------------------------------------------------------

    def merge(
        self,
        candidates: Sequence[Candidate],
        *,
        status: Status,
        reason: Reason,
        detail: str = "",
        ip: str = "",
        replace_names: bool = True,
    ) -> Merged:
        """Add new people, merge names and lists into existing ones, in one commit.

        New people get their candidate's status, else `status`. An existing person gets the
        candidate's lists, and its name when `replace_names` (an import only fills an empty
        name, so that importing a file twice changes nothing). A candidate marked unsubscribed,
        bounced or complained (an exported list imported back) takes that status. Nothing ever
        brings back an address that left or was erased: those are kept out, untouched.
        """
        merged = Merged()
        by_key = _united(candidates, merged)
        with self.engine.begin() as connection:
            consent = _Consent(connection, status, reason, detail, ip)
            suppressed = erased_keys(connection, list(by_key), self.hashes)
            merged.kept_out += len(suppressed)
            for k in suppressed:
                del by_key[k]
            list_ids, merged.lists_created = Lists.ensure(
                connection, {n for c in by_key.values() for n in c.lists}
            )
            new_members = _NewMembers(consent.stamp)
            consent.update_existing(by_key, list_ids, replace_names, merged, new_members)
            if by_key:
                consent.insert(by_key, list_ids, new_members)
                merged.added += len(by_key)
            new_members.write(connection)
        return merged

    def change_status(
        self, subscriber_id: int, new: Status, reason: Reason, detail: str = "", ip: str = ""
    ) -> bool:
        """Move a subscriber to `new` if the lifecycle allows it; False when it does not apply."""
        with self.engine.begin() as connection:
            return change_status(connection, subscriber_id, new, reason, detail, ip)

    def erase(self, email: str, reason: str = "erased") -> Erased:
        """Delete everything held on this address, keeping only its hash (suppressions.py)."""
        return erase(self.engine, self.hashes, email, reason)

    def set_language(self, subscriber_id: int, language: str) -> None:
        """The language they read ("" for the newsletter's), as a preferences page saves it."""
        with self.engine.begin() as connection:
            connection.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id, subscribers.c.language != language)
                .values(language=language, updated_at=utcnow())
            )

    def set_lists(self, subscriber_id: int, names: Iterable[str]) -> bool:
        """Make exactly these lists the subscriber's (a preferences page saving its choice);
        True when anything changed. LookupError names a list or subscriber that does not exist."""
        wanted = sorted(set(names))
        with self.engine.begin() as connection:
            exists = connection.scalar(
                select(subscribers.c.id).where(subscribers.c.id == subscriber_id)
            )
            if exists is None:
                raise LookupError(f"there is no subscriber {subscriber_id}")
            ids: dict[str, int] = {}
            if wanted:
                rows = connection.execute(
                    select(lists.c.name_key, lists.c.id).where(
                        lists.c.name_key.in_([list_key(name) for name in wanted])
                    )
                )
                found = {k: v for k, v in rows}
                ids = {name: found[list_key(name)] for name in wanted if list_key(name) in found}
            unknown = [name for name in wanted if name not in ids]
            if unknown:
                raise LookupError(f"there is no list '{unknown[0]}'")
            return _set_lists(connection, subscriber_id, set(ids.values()))

    def come_back(
        self, subscriber_id: int, names: Iterable[str], reason: Reason, detail: str, ip: str
    ) -> bool:
        """Someone who left asks again (the form): pending once more, on exactly these lists,
        made if they do not exist yet (the default list before its first member), in one
        commit. False, and nothing changed, when the lifecycle does not allow it."""
        with self.engine.begin() as connection:
            if not change_status(connection, subscriber_id, Status.PENDING, reason, detail, ip):
                return False
            ids, _created = Lists.ensure(connection, set(names))
            _set_lists(connection, subscriber_id, set(ids.values()))
            return True

    def set_frequency(
        self, subscriber_id: int, list_name: str, frequency: Frequency, at: dt.datetime
    ) -> bool:
        """Choose, at `at`, how often the subscriber gets this list; True when it changed.
        LookupError when they are not on the list."""
        with self.engine.begin() as connection:
            return set_frequency(connection, subscriber_id, list_name, frequency, at)


def _set_lists(connection: Connection, subscriber_id: int, target: set[int]) -> bool:
    """Within a transaction: exactly these lists the subscriber's; True when anything changed."""
    now = utcnow()
    current = _list_ids_of(connection, [subscriber_id])[subscriber_id]
    gone, new = sorted(current - target), sorted(target - current)
    if gone:
        connection.execute(
            delete(memberships).where(
                memberships.c.subscriber_id == subscriber_id,
                memberships.c.list_id.in_(gone),
            )
        )
    if new:
        connection.execute(
            insert(memberships),
            [
                {"subscriber_id": subscriber_id, "list_id": list_id, "created_at": now}
                for list_id in new
            ],
        )
    if gone or new:
        connection.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(updated_at=now)
        )
    return bool(gone or new)


def _united(candidates: Sequence[Candidate], merged: Merged) -> dict[str, Candidate]:
    """The candidates by key; the same person twice in a batch is one, their lists united."""
    by_key: dict[str, Candidate] = {}
    for candidate in candidates:
        k = key(candidate.email)
        earlier = by_key.get(k)
        if earlier is not None:
            merged.unchanged += 1
            candidate = earlier._replace(
                name=earlier.name or candidate.name,
                lists=earlier.lists | candidate.lists,
                frequency=candidate.frequency or earlier.frequency,
            )
        by_key[k] = candidate
    return by_key


class _Consent:
    """One merge's writes, within its transaction: how the people came in, and when."""

    def __init__(
        self, connection: Connection, status: Status, reason: Reason, detail: str, ip: str
    ) -> None:
        self.connection = connection
        self.status, self.reason, self.detail, self.ip = status, reason, detail, ip
        self.now = utcnow()
        self.stamp = driver_time(self.now, connection.dialect.name)

    def update_existing(
        self,
        by_key: dict[str, Candidate],
        list_ids: dict[str, int],
        replace_names: bool,
        merged: Merged,
        new_members: _NewMembers,
    ) -> None:
        """Merge the candidates who are subscribers already (taking them out of `by_key`):
        lists added (to `new_members`), names filled or replaced, a status of having left
        taken. Those who left are kept out, untouched."""
        connection = self.connection
        existing = connection.execute(
            select(
                subscribers.c.id,
                subscribers.c.email_key,
                subscribers.c.name,
                subscribers.c.status,
                subscribers.c.language,
            ).where(one_of(connection, subscribers.c.email_key, list(by_key)))
        ).all()
        member_of = _list_ids_of(connection, [row.id for row in existing])
        renamed: list[dict[str, Any]] = []
        for row in existing:
            candidate = by_key.pop(row.email_key)
            if Status(row.status) in LEFT:
                merged.kept_out += 1
                continue
            missing = {
                list_ids[n]: n
                for n in sorted(candidate.lists)
                if list_ids[n] not in member_of[row.id]
            }
            for list_id, n in sorted(missing.items()):
                new_members.add([row.id], list_id, candidate.frequency_on(n))
            rechosen = any(
                [  # a list, not a generator: every list is changed, not just the first
                    set_frequency(connection, row.id, n, chosen, self.now)
                    for n in sorted(candidate.lists)
                    if list_ids[n] in member_of[row.id]
                    and (chosen := candidate.frequency_on(n)) is not None
                ]
            )
            rename = candidate.name != row.name and (
                (replace_names and candidate.name) or not row.name
            )
            relanguage = bool(candidate.language) and candidate.language != row.language
            if rename or relanguage:
                renamed.append(
                    {
                        "key": row.email_key,
                        "name": candidate.name if rename else row.name,
                        "language": candidate.language or row.language,
                        "now": self.now,
                    }
                )
            left = candidate.status in LEFT and change_status(
                connection, row.id, candidate.status, self.reason, self.detail, self.ip
            )
            if missing or rename or relanguage or left or rechosen:
                merged.updated += 1
            else:
                merged.unchanged += 1
        if renamed:
            connection.execute(
                update(subscribers)
                .where(subscribers.c.email_key == bindparam("key"))
                .values(
                    name=bindparam("name"),
                    language=bindparam("language"),
                    updated_at=bindparam("now"),
                ),
                renamed,
            )

    def insert(
        self, by_key: dict[str, Candidate], list_ids: dict[str, int], new_members: _NewMembers
    ) -> None:
        """Insert new subscribers with how they came in (their consent), their memberships
        added to `new_members`."""
        default, reason, stamp = self.status.value, self.reason.value, self.stamp
        detail, ip = self.detail, self.ip
        bulk_insert(
            self.connection,
            subscribers,
            (
                "email",
                "email_key",
                "name",
                "status",
                "language",
                "source",
                "source_detail",
                "source_ip",
                "created_at",
                "updated_at",
                "link_secret",
            ),
            [
                (
                    c.email,
                    k,
                    c.name,
                    c.status or default,
                    c.language,
                    reason,
                    detail,
                    ip,
                    stamp,
                    stamp,
                    link_secret,
                )
                for (k, c), link_secret in zip(
                    by_key.items(), new_link_secrets(len(by_key)), strict=True
                )
            ],
        )
        ids = inserted_ids(self.connection, subscribers, subscribers.c.email_key, list(by_key))
        # Most people of a batch share one set of lists and choose no frequency: they are
        # gathered by that set (one frozenset object, its hash kept), not list by list.
        by_lists: dict[frozenset[str], list[int]] = {}
        for subscriber_id, candidate in zip(ids, by_key.values(), strict=True):
            if candidate.frequency is None:
                by_lists.setdefault(candidate.lists, []).append(subscriber_id)
                continue
            for name in sorted(candidate.lists):
                new_members.add([subscriber_id], list_ids[name], candidate.frequency_on(name))
        for names, subscriber_ids in by_lists.items():
            for name in sorted(names):
                new_members.add(subscriber_ids, list_ids[name], None)


class _NewMembers:
    """The memberships a merge inserts, gathered by list and frequency: one statement each,
    the database making the rows (bulk.insert_for_ids)."""

    def __init__(self, stamp: Any) -> None:
        self.stamp = stamp
        """The time as the driver takes it (schema.driver_time)."""
        self.ids: dict[tuple[int, Frequency | None], list[int]] = {}

    def add(self, subscriber_ids: Sequence[int], list_id: int, frequency: Frequency | None) -> None:
        """These subscribers join the list, getting it as `frequency` chose (None: every issue
        as it goes, since they never chose)."""
        self.ids.setdefault((list_id, frequency), []).extend(subscriber_ids)

    def write(self, connection: Connection) -> None:
        """Insert them, counted into the audience at once (audience.counted_at_once)."""
        if not self.ids:
            return
        with counted_at_once(connection, self.stamp) as joined:
            for (list_id, frequency), subscriber_ids in self.ids.items():
                chosen, since = (
                    (Frequency.IMMEDIATE.value, None)
                    if frequency is None
                    else (frequency.value, self.stamp)
                )
                insert_for_ids(
                    connection,
                    memberships,
                    ("subscriber_id", "list_id", "created_at", "frequency", "frequency_since"),
                    subscriber_ids,
                    (list_id, self.stamp, chosen, since),
                )
                joined(list_id, subscriber_ids)


def set_frequency(
    connection: Connection,
    subscriber_id: int,
    list_name: str,
    frequency: Frequency,
    at: dt.datetime,
) -> bool:
    list_id = connection.scalar(select(lists.c.id).where(lists.c.name_key == list_key(list_name)))
    member = and_(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
    current = connection.scalar(select(memberships.c.frequency).where(member))
    if current is None:
        raise LookupError(f"subscriber {subscriber_id} is not on the list '{list_name}'")
    if current == frequency.value:
        return False
    connection.execute(
        update(memberships).where(member).values(frequency=frequency.value, frequency_since=at)
    )
    return True


def change_status(
    connection: Connection,
    subscriber_id: int,
    new: Status,
    reason: Reason,
    detail: str = "",
    ip: str = "",
) -> bool:
    """Within a transaction: the status change and its record, or nothing if not allowed."""
    old = connection.scalar(select(subscribers.c.status).where(subscribers.c.id == subscriber_id))
    if old is None or old == new.value or not can_become(Status(old), new):
        return False
    now = utcnow()
    changed = connection.execute(
        update(subscribers)
        .where(subscribers.c.id == subscriber_id, subscribers.c.status == old)
        .values(status=new.value, updated_at=now)
    ).rowcount
    if not changed:  # somebody else changed it first
        return False
    connection.execute(
        insert(history).values(
            subscriber_id=subscriber_id,
            at=now,
            old_status=old,
            new_status=new.value,
            reason=reason.value,
            detail=detail,
            ip=ip,
        )
    )
    return True


def _list_ids_of(connection: Connection, ids: Sequence[int]) -> dict[int, set[int]]:
    result: dict[int, set[int]] = {i: set() for i in ids}
    if ids:
        rows = connection.execute(
            select(memberships.c.subscriber_id, memberships.c.list_id).where(
                one_of(connection, memberships.c.subscriber_id, ids)
            )
        )
        for subscriber_id, list_id in rows:
            result[subscriber_id].add(list_id)
    return result


def _lists_of(connection: Connection, ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """The (list name, frequency) of each membership of these subscribers."""
    result: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
    if ids:
        rows = connection.execute(
            select(memberships.c.subscriber_id, lists.c.name, memberships.c.frequency)
            .join(lists, lists.c.id == memberships.c.list_id)
            .where(memberships.c.subscriber_id.in_(ids))
        )
        for subscriber_id, name, frequency in rows:
            result[subscriber_id].append((name, frequency))
    return result
