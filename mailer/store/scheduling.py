"""What the scheduler keeps: its marks (what it last did of each kind of recurring work, and
when), and the lock that lets one scheduler act at a time.

The lock is an flock on a file beside a SQLite database, or a session advisory lock on
PostgreSQL (keyed by the schema, so newsletters sharing a database keep apart). Both go when the
process ends however it ends, so a scheduler that died never blocks the next one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, insert, select, text, update

from mailer.store.schema import scheduler_marks

_LOCK_NAME = ".mailer-scheduler"


class Schedule:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def mark(self, name: str) -> dt.datetime | None:
        with self.engine.connect() as connection:
            at: dt.datetime | None = connection.execute(
                select(scheduler_marks.c.at).where(scheduler_marks.c.name == name)
            ).scalar()
        return at

    def set_mark(self, name: str, at: dt.datetime) -> None:
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(scheduler_marks).where(scheduler_marks.c.name == name).values(at=at)
            ).rowcount
            if not changed:
                connection.execute(insert(scheduler_marks).values(name=name, at=at))

    @contextlib.contextmanager
    def acting_alone(self) -> Iterator[bool]:
        """True while this is the only scheduler acting on the database; False when another
        one is (this one should then do nothing)."""
        if self.engine.dialect.name == "sqlite":
            with _flock(Path(f"{self.engine.url.database}.scheduler")) as alone:
                yield alone
            return
        key = text("SELECT hashtext(current_schema() || :name)")
        with self.engine.connect() as connection:
            number = connection.execute(key, {"name": _LOCK_NAME}).scalar_one()
            alone = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": number}
                ).scalar_one()
            )
            connection.commit()  # a session lock: it outlives the transaction that took it
            try:
                yield alone
            finally:
                if alone:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": number})
                    connection.commit()


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[bool]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
