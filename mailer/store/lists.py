"""Lists: the named groups subscribers belong to, and an issue is sent to.

A list's name compares without case ("Commentaries" is "commentaries"), through `name_key`, so
that a file or a form spelling it otherwise reaches the same people; it is shown as created.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, select, update

from mailer.core.addresses import clean_list_name
from mailer.core.errors import RequestError
from mailer.core.lifecycle import Status
from mailer.store.schema import audience_joins, lists, utcnow


@dataclass(frozen=True)
class ListSummary:
    name: str
    created_at: dt.datetime
    active: int
    total: int
    title: str
    description: str
    public: bool
    archived: bool


@dataclass(frozen=True)
class Offered:
    """A list as subscribers see it on the subscribe and preferences pages."""

    name: str
    title: str
    """The list's title, or its name when it has none."""
    description: str
    public: bool


class Lists:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def summaries(self, name: str | None = None) -> list[ListSummary]:
        """Every list with its counts, by name; only the list `name` (any case) if given.

        The counts are the ones the database keeps by week of joining (schema.audience_joins),
        summed: a few rows a list, not a row a member."""
        members = func.coalesce(func.sum(audience_joins.c.members), 0)
        active = func.coalesce(
            func.sum(audience_joins.c.members).filter(
                audience_joins.c.status == Status.ACTIVE.value
            ),
            0,
        )
        query = (
            select(
                lists.c.name,
                lists.c.created_at,
                active,
                members,
                lists.c.title,
                lists.c.description,
                lists.c.public,
                lists.c.archived_at.is_not(None),
            )
            .select_from(lists)
            .outerjoin(audience_joins, audience_joins.c.list_id == lists.c.id)
            .group_by(lists.c.id)
            .order_by(lists.c.name)
        )
        if name is not None:
            query = query.where(lists.c.name_key == list_key(name))
        with self.engine.connect() as connection:
            return [ListSummary(*row) for row in connection.execute(query)]

    def offered(self, *, private: bool = False) -> list[Offered]:
        """The lists not archived, public ones only unless `private`, by title."""
        query = select(lists.c.name, lists.c.title, lists.c.description, lists.c.public).where(
            lists.c.archived_at.is_(None)
        )
        if not private:
            query = query.where(lists.c.public)
        with self.engine.connect() as connection:
            found = [
                Offered(name, title or name, description, public)
                for name, title, description, public in connection.execute(query)
            ]
        return sorted(found, key=lambda offered: offered.title.casefold())

    def titles(self, names: Sequence[str]) -> list[str]:
        """What subscribers see of these lists, in their order: each one's title, or its name
        when it has none (or is unknown)."""
        query = select(lists.c.name, lists.c.title).where(lists.c.name.in_(list(names)))
        with self.engine.connect() as connection:
            found = {name: title for name, title in connection.execute(query) if title}
        return [found.get(name, name) for name in names]

    def names(self) -> list[str]:
        """Every list's name, alphabetically (without counting anybody, unlike summaries)."""
        with self.engine.connect() as connection:
            return list(connection.scalars(select(lists.c.name).order_by(lists.c.name)))

    def by_key(self) -> dict[str, str]:
        """Every list's name by its key (what a name typed otherwise is matched against)."""
        with self.engine.connect() as connection:
            return {
                k: name for k, name in connection.execute(select(lists.c.name_key, lists.c.name))
            }

    def create(
        self, name: str, *, title: str = "", description: str = "", public: bool = True
    ) -> None:
        name = clean_list_name(name)
        with self.engine.begin() as connection:
            if self.find(connection, name) is not None:
                raise RequestError(f"the list '{name}' already exists")
            connection.execute(
                insert(lists).values(
                    name=name,
                    name_key=list_key(name),
                    created_at=utcnow(),
                    title=clean_title(title),
                    description=clean_description(description),
                    public=public,
                )
            )

    def describe(
        self,
        name: str,
        *,
        title: str | None = None,
        description: str | None = None,
        public: bool | None = None,
    ) -> None:
        """Change what subscribers see of a list; a value left None stays as it is."""
        values: dict[str, object] = {}
        if title is not None:
            values["title"] = clean_title(title)
        if description is not None:
            values["description"] = clean_description(description)
        if public is not None:
            values["public"] = public
        self._change(name, values)

    def archive(self, name: str, *, archived: bool = True) -> None:
        """Offer a list nowhere any more (or again); its members and campaigns stay."""
        self._change(name, {"archived_at": utcnow() if archived else None})

    def _change(self, name: str, values: dict[str, object]) -> None:
        with self.engine.begin() as connection:
            found = self.find(connection, name)
            if found is None:
                raise RequestError(
                    f"{unknown_list(name, self._names(connection))}; `mailer lists` shows them"
                )
            if values:
                connection.execute(update(lists).where(lists.c.id == found).values(**values))

    @staticmethod
    def _names(connection: Connection) -> list[str]:
        return list(connection.scalars(select(lists.c.name)))

    def rename(self, old: str, new: str) -> None:
        new = clean_list_name(new)
        with self.engine.begin() as connection:
            found = self.find(connection, old)
            if found is None:
                raise RequestError(
                    f"{unknown_list(old, self._names(connection))}; `mailer lists` shows them"
                )
            if self.find(connection, new) not in (None, found):  # a change of case is a rename
                raise RequestError(f"the list '{new}' already exists")
            connection.execute(
                update(lists).where(lists.c.id == found).values(name=new, name_key=list_key(new))
            )

    @staticmethod
    def find(connection: Connection, name: str) -> int | None:
        return connection.scalar(select(lists.c.id).where(lists.c.name_key == list_key(name)))

    @staticmethod
    def ensure(connection: Connection, names: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """Ids of these lists, creating the missing ones; returns (ids by each name as given,
        names created). Names differing only by case are one list, made once."""
        wanted = sorted(set(names))
        if not wanted:
            return {}, []
        keys = sorted({list_key(name) for name in wanted})
        rows = connection.execute(
            select(lists.c.name_key, lists.c.id).where(lists.c.name_key.in_(keys))
        )
        by_key: dict[str, int] = {k: v for k, v in rows}
        created: list[str] = []
        now = utcnow()
        for name in wanted:
            if list_key(name) not in by_key:
                by_key[list_key(name)] = connection.execute(
                    insert(lists)
                    .values(name=name, name_key=list_key(name), created_at=now)
                    .returning(lists.c.id)
                ).scalar_one()
                created.append(name)
        return {name: by_key[list_key(name)] for name in wanted}, created


def list_key(name: str) -> str:
    """What a list's name is compared by: the trimmed name case-folded."""
    return name.strip().casefold()


MAX_TITLE_LENGTH = 200


def clean_title(title: str) -> str:
    """A list's title as typed: trimmed, one line, at most MAX_TITLE_LENGTH characters."""
    cleaned = title.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in cleaned):
        raise ValueError("a list's title is one line without control characters")
    if len(cleaned) > MAX_TITLE_LENGTH:
        raise ValueError(f"a list's title has at most {MAX_TITLE_LENGTH} characters")
    return cleaned


MAX_DESCRIPTION_LENGTH = 2000


def clean_description(description: str) -> str:
    """A list's description: trimmed, at most MAX_DESCRIPTION_LENGTH characters (a paragraph)."""
    cleaned = description.strip()
    if len(cleaned) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"a list's description has at most {MAX_DESCRIPTION_LENGTH} characters")
    return cleaned


def unknown_list(name: str, known: Iterable[str]) -> str:
    """Why a list name matches no list, with the closest existing name if one is close."""
    names = {list_key(n): n for n in known}
    close = difflib.get_close_matches(list_key(name), names, n=1, cutoff=0.75)
    hint = f" (did you mean '{names[close[0]]}'?)" if close else ""
    return f"there is no list '{name}'{hint}"
