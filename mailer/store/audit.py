"""The audit log: every staff action, in the console or on the command line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from mailer.store.schema import audit_log


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    actor: str
    """The staff address, or `command line` for `mailer staff` run on the server."""
    action: str
    detail: str
    address: str
    """The client address the request came from; empty on the command line."""


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        actor: str,
        action: str,
        detail: str = "",
        address: str = "",
        at: dt.datetime | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(audit_log).values(
                    at=at or dt.datetime.now(dt.UTC),
                    actor=actor,
                    action=action,
                    detail=detail,
                    address=address,
                )
            )

    def latest(self, limit: int = 100, actor: str | None = None) -> list[Entry]:
        """The newest entries first."""
        query = select(
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.detail,
            audit_log.c.address,
        ).order_by(audit_log.c.id.desc())
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        with self.engine.connect() as connection:
            return [Entry(*row) for row in connection.execute(query.limit(limit))]
