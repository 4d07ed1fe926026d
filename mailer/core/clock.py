"""The time now, given to whatever decides by it, so that tests can set it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]
"""Returns the time now, aware."""


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(text: str, zone: dt.tzinfo) -> dt.datetime:
    """A time as staff type it: `2026-12-02 09:00` in `zone`, or with its own offset
    (`2026-12-02T09:00+01:00`, `…Z`). Raises ValueError saying how to write it."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"'{text}' is not a time; write it like 2026-12-02 09:00 (the newsletter's time "
            "zone) or 2026-12-02T09:00+01:00"
        ) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
