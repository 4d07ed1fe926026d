"""Opening the database, and keeping its schema current through Alembic migrations.

A new, empty database gets the current schema on first use. A database made by an older mailer is
never changed behind anybody's back: mailer stops and asks for `mailer db upgrade`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from mailer.core.addresses import SuppressionHash
from mailer.core.errors import DatabaseError
from mailer.core.events import MAILMAN_DEFAULTS, SoftBounces
from mailer.store.approvals import Approvals, SavedTestAddresses
from mailer.store.audience import Audience
from mailer.store.audit import AuditLog
from mailer.store.campaigns import Campaigns
from mailer.store.clicks import Clicks
from mailer.store.directory import Directory
from mailer.store.events import Events
from mailer.store.lists import Lists
from mailer.store.outage import keep_room
from mailer.store.scheduling import Schedule
from mailer.store.staff import LoginFailures, Staff, StaffSessions
from mailer.store.subscribers import Subscribers

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_SECONDS = 30


def resolve_url(url: str, folder: Path) -> str:
    """A SQLite path relative to the config file's folder made absolute; other URLs as given."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return url
    path = Path(parsed.database)
    if not path.is_absolute():
        path = folder / path
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def open_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _create_private(path: Path) -> None:
    """A new database file readable by its owner alone, in a folder only they can open. SQLite
    gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@contextlib.contextmanager
def only_sender(url: str) -> Iterator[None]:
    """On SQLite, make sure this is the only process sending from the database.

    SQLite serves one machine and one sending process; several workers need PostgreSQL. The
    lock is an flock on a file beside the database, released by the system when the process
    ends however it ends, so a crashed send can be resumed at once. PostgreSQL needs no lock:
    workers there claim rows with FOR UPDATE SKIP LOCKED.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    lock_path = Path(f"{parsed.database}.sending")
    keep_room(Path(parsed.database))
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseError(
                f"another `mailer send` is already sending from {parsed.database}; SQLite allows "
                "one sending process: wait for it, or move to PostgreSQL "
                '([database] url = "postgresql+psycopg://…") to run several workers'
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # A deleted row's bytes are overwritten with zeros, not merely marked free: an erased
    # address must not stay readable in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-8192")  # 8 MB (2 by default): imports touch big indexes
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


def _alembic(connection: Any) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _migrations() -> ScriptDirectory:
    """The migrations, read once a process (they do not change while mailer runs): every open
    asks for the head revision, and reading every migration's file took longer than the open."""
    return ScriptDirectory.from_config(_alembic(None))


def head_revision() -> str:
    head = _migrations().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every migration not yet applied; returns (revision before, revision after)."""
    before = current_revision(engine)
    if before is not None and not _known(before):
        raise DatabaseError(_unknown_revision(before))
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                command.upgrade(_alembic(connection), "head")
            return before, head_revision()
        # Migrations rebuild tables on SQLite (a copy, then the old one dropped): with foreign
        # keys on, dropping it would first delete every row referring to it, cascading. SQLite's
        # own procedure for such changes: keys off, the change, a check, keys on again.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        try:
            with connection.begin():
                command.upgrade(_alembic(connection), "head")
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise DatabaseError(
                        f"the migration left {len(broken)} rows referring to nothing (the first "
                        f"in {broken[0][0]}): restore the backup made before the upgrade"
                    )
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
    return before, head_revision()


def _known(revision: str) -> bool:
    return any(r.revision == revision for r in _migrations().walk_revisions())


def _unknown_revision(revision: str) -> str:
    return (
        f"the database is at revision {revision}, which this mailer does not know: it was made "
        "or migrated by a newer mailer; install that version (or newer) to use it"
    )


def ensure_current(engine: Engine, shown_url: str) -> None:
    """Create the schema in a new database; refuse an old one until `mailer db upgrade`."""
    try:
        revision = current_revision(engine)
        if revision == head_revision():
            return
        if revision is None and not inspect(engine).get_table_names():
            upgrade(engine)
            return
    except OperationalError as error:
        raise DatabaseError(f"cannot open the database {shown_url}: {error.orig}") from None
    except SQLAlchemyError as error:
        raise DatabaseError(f"the database {shown_url} failed: {error}") from None
    if revision is not None and not _known(revision):
        raise DatabaseError(f"{shown_url}: {_unknown_revision(revision)}")
    found = f"revision {revision}" if revision else "tables mailer did not make"
    raise DatabaseError(
        f"the database {shown_url} holds {found}, not the current revision {head_revision()}: "
        "run `mailer db upgrade` to migrate it (back it up first)"
    )


class Store:
    def __init__(
        self,
        engine: Engine,
        secret: Callable[[], str],
        soft_bounces: SoftBounces = MAILMAN_DEFAULTS,
    ) -> None:
        """`secret` gives the newsletter's secret, which keys the hashes of erased addresses;
        it is asked for only when an address is hashed."""
        self.engine = engine
        hashes = SuppressionHash(secret)
        self.subscribers = Subscribers(engine, hashes)
        self.lists = Lists(engine)
        self.campaigns = Campaigns(engine)
        self.events = Events(engine, hashes, soft_bounces)
        self.audience = Audience(engine)
        self.directory = Directory(engine, self.subscribers, self.events)
        self.schedule = Schedule(engine)
        self.staff = Staff(engine)
        self.staff_sessions = StaffSessions(engine)
        self.login_failures = LoginFailures(engine)
        self.audit = AuditLog(engine)
        self.clicks = Clicks(engine)
        self.approvals = Approvals(engine)
        self.test_addresses = SavedTestAddresses(engine)

    @classmethod
    def open(
        cls,
        url: str,
        folder: Path,
        secret: Callable[[], str],
        soft_bounces: SoftBounces = MAILMAN_DEFAULTS,
    ) -> Store:
        """The database at `url` (SQLite paths relative to `folder`), its schema made current."""
        resolved = resolve_url(url, folder)
        engine = open_engine(resolved)
        ensure_current(engine, make_url(resolved).render_as_string(hide_password=True))
        return cls(engine, secret, soft_bounces)

    @property
    def single_worker(self) -> bool:
        """SQLite: one sending process at a time (see only_sender)."""
        return self.engine.dialect.name == "sqlite"

    def only_sender(self) -> contextlib.AbstractContextManager[None]:
        return only_sender(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        self.engine.dispose()
