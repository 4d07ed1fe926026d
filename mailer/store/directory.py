"""Finding subscribers (the console's search) and everything held on one of them.

A search matches the beginning of the address, then of the name, whatever the case, and pages
after the last one shown (keyset paging): each page walks the address index, then the index of
the lower-cased name, from where the last page stopped, so a page costs about the same at a
million subscribers as at a thousand. Prefix ranges compare bytes, as SQLite and a PostgreSQL
database in the C collation do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, func, select, tuple_

from mailer.core.addresses import key
from mailer.core.lifecycle import Frequency, Status
from mailer.store.events import Events, StoredEvent
from mailer.store.lists import list_key
from mailer.store.schema import campaigns, deliveries, lists, memberships, subscribers
from mailer.store.subscribers import (
    _COLUMNS,
    Change,
    Subscriber,
    Subscribers,
    _lists_of,
    _subscriber,
)

PAGE = 50


@dataclass(frozen=True)
class Found:
    """A page of subscribers, and the address to pass as `after` for the next (None: last)."""

    subscribers: Sequence[Subscriber]
    after: str | None


@dataclass(frozen=True)
class Sent:
    """One entry of a subscriber's send log: an issue's delivery to them."""

    campaign_id: int
    issue: str
    subject: str
    state: str
    attempts: int
    message_id: str | None
    error: str | None
    updated_at: dt.datetime


@dataclass(frozen=True)
class Record:
    """Everything held on one subscriber."""

    subscriber: Subscriber
    history: Sequence[Change]
    events: Sequence[StoredEvent]
    sent: Sequence[Sent]

    @property
    def language(self) -> str:
        """The language they read; empty: the newsletter's."""
        return self.subscriber.language

    @property
    def frequencies(self) -> dict[str, Frequency]:
        """Every issue (`immediate`) or the weekly digest, on each of their lists by name."""
        return self.subscriber.frequencies


class Directory:
    def __init__(self, engine: Engine, subscribers: Subscribers, events: Events) -> None:
        self.engine = engine
        self.subscribers = subscribers
        self.events = events

    def search(
        self,
        text: str = "",
        *,
        statuses: Sequence[Status] = (),
        list_name: str | None = None,
        after: str = "",
        page: int = PAGE,
    ) -> Found:
        """Subscribers whose address begins with `text` (by address), then those whose name
        does (by name), a page at a time; `after` is the previous page's Found.after."""
        wanted = text.strip()
        stream, _, last = after.partition(":")
        found: list[Any] = []
        with self.engine.connect() as connection:
            if stream in ("", "address"):
                query = self._filtered(statuses, list_name).order_by(subscribers.c.email_key)
                if wanted:
                    query = query.where(_begins(subscribers.c.email_key, key(wanted)))
                if last:
                    query = query.where(subscribers.c.email_key > last)
                found = list(connection.execute(query.limit(page + 1)))
                if len(found) > page or not wanted:
                    return self._page(
                        connection, found, page, lambda row: f"address:{row.email_key}"
                    )
                last = ""
            by_name = func.lower(subscribers.c.name)
            query = (
                self._filtered(statuses, list_name)
                .add_columns(by_name.label("name_key"))
                .where(
                    _begins(by_name, wanted.lower()), ~_begins(subscribers.c.email_key, key(wanted))
                )
                .order_by(by_name, subscribers.c.email_key)
            )
            if last:
                name, _, email_key = last.partition("\0")
                query = query.where(
                    tuple_(by_name, subscribers.c.email_key) > tuple_(name, email_key)
                )
            found += connection.execute(query.limit(page + 1 - len(found)))
            return self._page(connection, found, page, _name_cursor)

    @staticmethod
    def _filtered(statuses: Sequence[Status], list_name: str | None) -> Select[Any]:
        query = select(*_COLUMNS, subscribers.c.email_key)
        if statuses:
            query = query.where(subscribers.c.status.in_([s.value for s in statuses]))
        if list_name is not None:
            query = query.where(
                select(memberships.c.list_id)
                .join(lists, lists.c.id == memberships.c.list_id)
                .where(
                    memberships.c.subscriber_id == subscribers.c.id,
                    lists.c.name_key == list_key(list_name),
                )
                .exists()
            )
        return query

    @staticmethod
    def _page(
        connection: Connection, rows: list[Any], page: int, cursor: Callable[[Any], str]
    ) -> Found:
        shown = rows[:page]
        names = _lists_of(connection, [row.id for row in shown])
        return Found(
            [_subscriber(row, names[row.id]) for row in shown],
            cursor(shown[-1]) if len(rows) > page else None,
        )

    def record(self, subscriber_id: int) -> Record | None:
        """The subscriber, their changes of status, webhook events and send log; None if gone."""
        found = self.subscribers.get(subscriber_id)
        if found is None:
            return None
        query = (
            select(
                campaigns.c.id,
                campaigns.c.issue,
                campaigns.c.subject,
                deliveries.c.state,
                deliveries.c.attempts,
                deliveries.c.message_id,
                deliveries.c.error,
                deliveries.c.updated_at,
            )
            .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
            .where(deliveries.c.subscriber_id == subscriber_id)
            .order_by(campaigns.c.id)
        )
        with self.engine.connect() as connection:
            sent = [Sent(*row) for row in connection.execute(query)]
        return Record(
            subscriber=found,
            history=self.subscribers.history(subscriber_id),
            events=self.events.of_subscriber(subscriber_id),
            sent=sent,
        )


def _name_cursor(row: Any) -> str:
    """Where the next page starts: after this name, or at the first name when the page ended
    on an address match."""
    if "name_key" not in row._fields:
        return "name:"
    return f"name:{row.name_key}\0{row.email_key}"


def _begins(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """`column` begins with `prefix`, as a range an index answers (LIKE would not, on SQLite)."""
    return and_(column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1))
