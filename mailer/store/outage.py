"""A database that went away for a while: telling it from a query that is wrong, and keeping
room on a SQLite database's disk for saying that the send paused."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def transient(error: SQLAlchemyError) -> bool:
    """Whether the database may well be back in a moment: the connection was lost, the server
    is restarting, the file is locked, the disk is full. Not a mistake in a query."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def unavailable(error: SQLAlchemyError) -> str:
    """What the driver said, on one line, without SQLAlchemy's statement and parameters."""
    said = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return " ".join(str(said).split()) or type(said).__name__


ROOM_BYTES = 256 * 1024
"""What a file beside a SQLite database keeps free on its disk, for pausing a send when the disk
fills up: a campaign is never left `running` for want of the few pages that say it paused."""


def _room(database: Path) -> Path:
    return Path(f"{database}.room")


def keep_room(database: Path) -> None:
    """Keep ROOM_BYTES beside the database, if there is that much now."""
    path = _room(database)
    if path.exists():
        return
    # No room to keep: the send goes on without.
    with contextlib.suppress(OSError), path.open("wb") as file:
        file.write(b"\0" * ROOM_BYTES)


def make_room(url: str) -> None:
    """Give back the room kept beside a SQLite database (nothing for other databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        _room(Path(parsed.database)).unlink(missing_ok=True)
