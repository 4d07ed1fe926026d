"""What the console's sending desk keeps: who saved each commentary, the approvals given to it
(`[console] approval`), and the saved test addresses.

An approval is of a commentary as its file was then (the SHA-256 of its bytes, as the editor's
conflict check computes it): a save after it needs a new approval, so what goes out is what was
approved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select, update

from mailer.core.addresses import key
from mailer.store.schema import approvals, commentary_writers, test_addresses

MAX_TEST_ADDRESSES = 20
"""Saved test addresses at most: a test goes to each of them."""


@dataclass(frozen=True)
class Approval:
    slug: str
    version: str
    approved_by: str
    approved_at: dt.datetime


class Approvals:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def wrote(self, slug: str, email: str, at: dt.datetime) -> None:
        """`email` saved the commentary `slug` at `at`."""
        where = (commentary_writers.c.slug == slug, commentary_writers.c.email_key == key(email))
        with self.engine.begin() as connection:
            if not connection.execute(
                update(commentary_writers).where(*where).values(saved_at=at)
            ).rowcount:
                connection.execute(
                    insert(commentary_writers).values(
                        slug=slug, email_key=key(email), email=email, saved_at=at
                    )
                )

    def writers(self, slug: str) -> list[str]:
        """The addresses that saved the commentary in the console, the first first."""
        query = (
            select(commentary_writers.c.email)
            .where(commentary_writers.c.slug == slug)
            .order_by(commentary_writers.c.saved_at)
        )
        with self.engine.connect() as connection:
            return list(connection.scalars(query))

    def approve(self, slug: str, version: str, email: str, at: dt.datetime) -> Approval:
        with self.engine.begin() as connection:
            connection.execute(
                insert(approvals).values(
                    slug=slug, version=version, approved_by=email, approved_at=at
                )
            )
        return Approval(slug, version, email, at)

    def approval(self, slug: str, version: str) -> Approval | None:
        """The first approval of the commentary as it is in `version`, if any."""
        query = (
            select(approvals.c.approved_by, approvals.c.approved_at)
            .where(approvals.c.slug == slug, approvals.c.version == version)
            .order_by(approvals.c.id)
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return Approval(slug, version, row.approved_by, row.approved_at) if row else None


class TooManyAddresses(Exception):
    """The saved test addresses are at MAX_TEST_ADDRESSES already."""


class SavedTestAddresses:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.scalars(select(test_addresses.c.email).order_by(test_addresses.c.email))
            )

    def add(self, email: str, added_by: str, at: dt.datetime) -> bool:
        """Save `email` (already normalised); False when it was saved already."""
        with self.engine.begin() as connection:
            if connection.scalar(
                select(test_addresses.c.email).where(test_addresses.c.email_key == key(email))
            ):
                return False
            saved = connection.execute(
                select(func.count()).select_from(test_addresses)
            ).scalar_one()
            if saved >= MAX_TEST_ADDRESSES:
                raise TooManyAddresses
            connection.execute(
                insert(test_addresses).values(
                    email_key=key(email), email=email, added_by=added_by, added_at=at
                )
            )
        return True

    def remove(self, email: str) -> bool:
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    delete(test_addresses).where(test_addresses.c.email_key == key(email))
                ).rowcount
            )
