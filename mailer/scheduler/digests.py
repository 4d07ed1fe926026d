"""When the weekly digest is due, and who gets which commentaries in it.

A digest at time T holds what came out since the last digest was due (the scheduler's first
look starts the count, so a new scheduler sends no digest of what came before it). A subscriber
who chose weekly during that week already had what came out before their choice as immediate
issues, so they get only what came after: subscribers are put in groups by when they chose,
one campaign per group, at most one group per commentary of the week.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from mailer.content.commentary import Commentary
from mailer.core.config import weekly_time

WEEK = dt.timedelta(days=7)


def latest_slot(when: str, zone: zoneinfo.ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The latest time at or before `now` matching `when` ("monday 08:00") in `zone`."""
    weekday, hour, minute = weekly_time(when)
    local = now.astimezone(zone)
    day = local.date() - dt.timedelta(days=(local.weekday() - weekday) % 7)
    slot = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
    if slot > local:
        slot = dt.datetime.combine(day - WEEK, dt.time(hour, minute), tzinfo=zone)
    return slot.astimezone(dt.UTC)


@dataclass(frozen=True)
class Group:
    """Weekly subscribers who chose weekly in [chosen_from, chosen_until), and their issue."""

    chosen_from: dt.datetime | None
    chosen_until: dt.datetime | None
    commentaries: tuple[Commentary, ...]
    """Newest first: the newest leads, the others follow as summaries."""


def groups(week: Sequence[Commentary]) -> list[Group]:
    """The groups of a week's commentaries (any order), those who chose first first."""
    releases = sorted({c.public_at for c in week})
    bounds: list[dt.datetime | None] = [None, *releases]
    found = []
    for start, end in zip(bounds, [*releases, None], strict=True):
        after = [c for c in week if start is None or c.public_at > start]
        if after:
            newest = sorted(after, key=lambda c: (c.public_at, c.slug), reverse=True)
            found.append(Group(start, end, tuple(newest)))
    return found
