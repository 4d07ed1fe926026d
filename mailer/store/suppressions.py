"""The suppression list: erased addresses, kept as hashes so that nothing brings them back.

Erasing a subscriber deletes every row about them (the foreign keys cascade to memberships,
history, the send log and webhook events) and leaves only a hash of the address here, so that an
old export re-imported by mistake, a form or a provider's late report cannot bring it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select

from mailer.core.addresses import SuppressionHash, as_stored, key
from mailer.store.bulk import one_of
from mailer.store.schema import events, subscribers, suppressions, utcnow


@dataclass(frozen=True)
class Erased:
    found: bool
    """Whether a subscriber had the address (its hash is suppressed either way)."""
    log_cleared: bool
    """False when another process kept SQLite from emptying its write-ahead log at once: the
    old pages there go at its next checkpoint."""


def erase(engine: Engine, hashes: SuppressionHash, email: str, reason: str) -> Erased:
    """Delete everything held on this address, keeping only its hash on the suppression list.

    On SQLite the deleted rows are overwritten (secure_delete, database.py) and the
    write-ahead log, which still holds the pages as they were, is emptied into the database
    and cut to nothing, so that the address is in no file of the database afterwards.
    """
    email = as_stored(email)
    with engine.begin() as connection:
        subscriber_id = connection.scalar(
            select(subscribers.c.id).where(subscribers.c.email_key == key(email))
        )
        hashed = hashes(email)
        # Webhook events about the address from before it was a subscriber's (theirs go
        # with the subscriber row), hashed either way.
        connection.execute(
            delete(events).where(events.c.email_hash.in_([hashed, hashes.unkeyed(email)]))
        )
        if not erased_keys(connection, [key(email)], hashes):
            connection.execute(
                insert(suppressions).values(
                    email_hash=hashed, reason=reason, at=utcnow(), keyed=True
                )
            )
        if subscriber_id is not None:
            connection.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
    return Erased(found=subscriber_id is not None, log_cleared=_clear_log(engine))


def _clear_log(engine: Engine) -> bool:
    """On SQLite, copy the write-ahead log into the database and cut it to nothing, so that
    pages as they were before a deletion are no longer in it; False when a reader kept it
    from finishing. PostgreSQL keeps its own log, out of mailer's reach."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        busy, _pages, _copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        connection.commit()
    return not busy


def erased_keys(connection: Connection, keys: Sequence[str], hashes: SuppressionHash) -> set[str]:
    """The keys among these whose address was erased. Hashing every key is skipped when no
    address ever was (as in a newsletter's first import), the unkeyed form when no hash of that
    form is left."""
    if not keys or connection.scalar(select(suppressions.c.keyed).limit(1)) is None:
        return set()
    by_hash = {hashes(k): k for k in keys}
    if (
        connection.scalar(select(suppressions.c.keyed).where(~suppressions.c.keyed).limit(1))
        is not None
    ):
        by_hash.update({hashes.unkeyed(k): k for k in keys})
    found = connection.execute(
        select(suppressions.c.email_hash).where(
            one_of(connection, suppressions.c.email_hash, list(by_hash))
        )
    ).scalars()
    return {by_hash[h] for h in found}
