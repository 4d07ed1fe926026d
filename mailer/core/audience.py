"""A list's audience over time, week by week: what the store counts and the chart draws."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Week:
    """One week (Monday to Sunday, UTC) of a list."""

    starts: dt.date
    active: int
    """Active members at the week's end (or now, for the week under way)."""
    signups: int
    """People who joined the list that week."""
    unsubscribes: int
    bounces: int


@dataclass(frozen=True)
class ListAudience:
    name: str
    weeks: Sequence[Week]
    statuses: Mapping[str, int]
    """Members by status now."""

    def share(self, status: str) -> float:
        """The fraction of members with this status now (0 when the list has none)."""
        total = sum(self.statuses.values())
        return self.statuses.get(status, 0) / total if total else 0.0


def week_of(day: dt.date) -> dt.date:
    """The Monday of the week holding `day`."""
    return day - dt.timedelta(days=day.weekday())
