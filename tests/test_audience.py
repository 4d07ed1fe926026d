"""A list's audience week by week, from a known history, on SQLite and PostgreSQL: the numbers
`mailer subscribers stats --since` prints and the SVG chart draws."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

from sqlalchemy import insert

from mailer.core.audience import Week
from mailer.render.audience import chart
from mailer.store.database import Store
from mailer.store.schema import history, lists, memberships, subscribers
from tests.conftest import Folder, Run

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)  # a Wednesday
SINCE = dt.date(2026, 11, 4)  # the week of Monday 2 November


def at(day: int, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, 9, 30, tzinfo=dt.UTC)


# Who joined "news" when, as what, and how their status changed since.
HISTORY = {
    "a@example.org": (at(20, 10), "active", []),  # before the first week; stays
    "b@example.org": (at(3), "active", [(at(17), "active", "unsubscribed")]),
    "c@example.org": (at(10), "active", [(at(24), "active", "bounced")]),
    "d@example.org": (at(11), "pending", [(at(12), "pending", "active")]),
}


def known_history(store: Store) -> None:
    with store.engine.begin() as connection:
        news, other = (
            connection.execute(
                insert(lists)
                .values(name=name, name_key=name, created_at=at(1, 10))
                .returning(lists.c.id)
            ).scalar_one()
            for name in ("news", "other")
        )
        people = {**HISTORY, "e@example.org": (at(18), "active", [])}
        for email, (joined, status, changes) in people.items():
            now_status = changes[-1][2] if changes else status
            subscriber = connection.execute(
                insert(subscribers)
                .values(
                    email=email,
                    email_key=email,
                    name="",
                    status=now_status,
                    source="import",
                    source_detail="",
                    source_ip="",
                    created_at=joined,
                    updated_at=joined,
                )
                .returning(subscribers.c.id)
            ).scalar_one()
            list_id = other if email.startswith("e") else news
            connection.execute(
                insert(memberships).values(
                    subscriber_id=subscriber, list_id=list_id, created_at=joined
                )
            )
            for when, old, new in changes:
                connection.execute(
                    insert(history).values(
                        subscriber_id=subscriber,
                        at=when,
                        old_status=old,
                        new_status=new,
                        reason="staff",
                        detail="",
                        ip="",
                    )
                )


EXPECTED = [
    Week(dt.date(2026, 11, 2), active=2, signups=1, unsubscribes=0, bounces=0),
    Week(dt.date(2026, 11, 9), active=4, signups=2, unsubscribes=0, bounces=0),
    Week(dt.date(2026, 11, 16), active=3, signups=0, unsubscribes=1, bounces=0),
    Week(dt.date(2026, 11, 23), active=2, signups=0, unsubscribes=0, bounces=1),
]


def test_a_lists_weeks_follow_its_history(store: Store) -> None:
    known_history(store)

    audience = store.audience.of("NEWS", SINCE, NOW)  # any case names the list

    assert audience.name == "news"
    assert list(audience.weeks) == EXPECTED
    assert audience.statuses == {"active": 2, "unsubscribed": 1, "bounced": 1}
    assert audience.share("active") == 0.5


def test_the_chart_draws_the_numbers_it_was_given(store: Store) -> None:
    known_history(store)
    svg = ET.fromstring(chart(store.audience.of("news", SINCE, NOW)))

    drawn = {
        (mark.get("data-kind"), mark.get("data-week") or mark.get("data-status")): mark
        for mark in svg.iter()
        if mark.get("data-kind")
    }
    for week in EXPECTED:
        day = week.starts.isoformat()
        for kind in ("active", "signups", "unsubscribes", "bounces"):
            assert drawn[(kind, day)].get("data-value") == str(getattr(week, kind))
    # Bars are drawn to scale: the busiest week's two sign-ups reach the top, one is half.
    tallest = float(drawn[("signups", "2026-11-09")].get("height") or 0)
    assert tallest > 0
    assert float(drawn[("signups", "2026-11-02")].get("height") or 0) == tallest / 2
    assert float(drawn[("signups", "2026-11-16")].get("height") or 0) == 0
    # The line is highest where most were active.
    heights = {
        w.starts: float(drawn[("active", w.starts.isoformat())].get("cy") or 0) for w in EXPECTED
    }
    assert min(heights, key=heights.__getitem__) == dt.date(2026, 11, 9)
    assert drawn[("share", "active")].get("data-value") == "0.5000"
    assert drawn[("share", "complained")].get("data-value") == "0.0000"
    assert "script" not in ET.tostring(svg, encoding="unicode")


def test_stats_since_prints_the_weeks_and_draws_the_chart(
    db_folder: Folder, run: Run, tmp_path: Path
) -> None:
    assert run("lists", "create", "news").exit_code == 0
    path = tmp_path / "people.csv"
    path.write_text("email,lists\nada@example.org,news\nbob@example.org,news\n")
    assert run("subscribers", "import", str(path)).exit_code == 0
    assert run("subscribers", "remove", "bob@example.org").exit_code == 0
    today = dt.datetime.now(dt.UTC).date()

    result = run(
        "subscribers",
        "stats",
        "--since",
        f"{today:%Y-%m-%d}",
        "--list",
        "News",
        "--chart",
        str(tmp_path / "charts"),
    )

    assert result.exit_code == 0, result.output
    week = f"{today - dt.timedelta(days=today.weekday()):%Y-%m-%d}"
    assert [line.split() for line in result.stdout.splitlines()[:3]] == [
        ["news"],
        ["WEEK", "OF", "ACTIVE", "SIGN-UPS", "UNSUBSCRIBES", "BOUNCES"],
        [week, "1", "2", "1", "0"],
    ]
    assert "now: pending 0.0%, active 50.0%, unsubscribed 50.0%" in result.stdout
    drawn = ET.parse(tmp_path / "charts" / "news.svg").getroot()
    values = {m.get("data-kind"): m.get("data-value") for m in drawn.iter() if m.get("data-week")}
    assert values == {"active": "1", "signups": "2", "unsubscribes": "1", "bounces": "0"}


def test_stats_since_names_a_list_that_does_not_exist(db_folder: Folder, run: Run) -> None:
    result = run("subscribers", "stats", "--since", "2026-01-01", "--list", "nothing")
    assert result.exit_code == 2
    assert "there is no list 'nothing'" in result.output
    assert run("subscribers", "stats", "--chart", "x").exit_code == 2
