"""Waiting out a database that went away: retried with backoff for a bounded time.

A PostgreSQL server restarting, a SQLite file locked a while, a disk that filled up: each is a
pause in the campaign, not the end of the process. Every call the dispatcher makes to the store
goes through `patiently`, which tries it again (0.1 s, doubling to 2 s) while the error is of
that kind, and gives up with DatabaseUnavailable, naming what the database said, once `patience`
seconds have gone by. A mistake in a query is not waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from mailer.core.errors import DatabaseUnavailable
from mailer.store.outage import transient, unavailable

P = ParamSpec("P")
T = TypeVar("T")
FIRST_WAIT = 0.1
LONGEST_WAIT = 2.0


def patiently(patience: float, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    since: float | None = None
    wait = FIRST_WAIT
    while True:
        try:
            return call(*args, **kwargs)
        except SQLAlchemyError as error:
            if not transient(error):
                raise
            now = time.monotonic()
            since = now if since is None else since
            if now - since >= patience:
                raise DatabaseUnavailable(
                    f"the database has been unavailable for {now - since:.0f} s "
                    f"({unavailable(error)}); once it is back, the same command continues"
                ) from None
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)
