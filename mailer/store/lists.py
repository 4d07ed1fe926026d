"""Lists: the named groups subscribers belong to, and an issue is sent to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, select, update

from mailer.core.addresses import clean_list_name
from mailer.core.errors import RequestError
from mailer.core.lifecycle import Status
from mailer.store.schema import lists, memberships, subscribers, utcnow


@dataclass(frozen=True)
class ListSummary:
    name: str
    created_at: dt.datetime
    active: int
    total: int


class Lists:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def summaries(self) -> list[ListSummary]:
        active = func.count().filter(subscribers.c.status == Status.ACTIVE.value)
        query = (
            select(lists.c.name, lists.c.created_at, active, func.count(subscribers.c.id))
            .select_from(lists)
            .outerjoin(memberships, memberships.c.list_id == lists.c.id)
            .outerjoin(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .group_by(lists.c.id, lists.c.name, lists.c.created_at)
            .order_by(lists.c.name)
        )
        with self.engine.connect() as connection:
            return [ListSummary(*row) for row in connection.execute(query)]

    def names(self) -> list[str]:
        """Every list's name, alphabetically (without counting anybody, unlike summaries)."""
        with self.engine.connect() as connection:
            return list(connection.scalars(select(lists.c.name).order_by(lists.c.name)))

    def create(self, name: str) -> None:
        name = clean_list_name(name)
        with self.engine.begin() as connection:
            if self.find(connection, name) is not None:
                raise RequestError(f"the list '{name}' already exists")
            connection.execute(insert(lists).values(name=name, created_at=utcnow()))

    def rename(self, old: str, new: str) -> None:
        new = clean_list_name(new)
        with self.engine.begin() as connection:
            found = self.find(connection, old)
            if found is None:
                raise RequestError(f"there is no list '{old}'; `mailer lists` shows them")
            if self.find(connection, new) is not None:
                raise RequestError(f"the list '{new}' already exists")
            connection.execute(update(lists).where(lists.c.id == found).values(name=new))

    @staticmethod
    def find(connection: Connection, name: str) -> int | None:
        return connection.scalar(select(lists.c.id).where(lists.c.name == name))

    @staticmethod
    def ensure(connection: Connection, names: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """Ids of these lists, creating the missing ones; returns (ids by name, names created)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}, []
        rows = connection.execute(select(lists.c.name, lists.c.id).where(lists.c.name.in_(wanted)))
        ids: dict[str, int] = {name: list_id for name, list_id in rows}
        created = [name for name in wanted if name not in ids]
        now = utcnow()
        for name in created:
            ids[name] = connection.execute(
                insert(lists).values(name=name, created_at=now).returning(lists.c.id)
            ).scalar_one()
        return ids, created
