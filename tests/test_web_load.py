"""A bounded burst against the web service under a multi-threaded waitress server: about 2,000
requests from a second process at the RSS feed (plain and conditional) and one-click unsubscribes
for 1,000 distinct subscribers, some of them twice at once. No errors, and every unsubscribe is
recorded exactly once. The rate is printed, not asserted (benchmarks/web_load.py measures it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import urlsplit

from sqlalchemy import func, select

from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.core.tokens import Purpose
from mailer.store.schema import history
from mailer.web import create_app
from tests.conftest import REPOSITORY, Folder, Run
from tests.web_server import serving

SUBSCRIBERS = 1000
FEED_REQUESTS = 1000
TWICE = 100
"""Subscribers whose one-click unsubscribe arrives twice (a provider retrying)."""


def test_a_burst_of_feed_requests_and_one_click_unsubscribes(folder: Folder, run: Run) -> None:
    assert run("build").exit_code == 0
    newsletter = folder.newsletter()
    subscribers = newsletter.store.subscribers
    subscribers.merge(
        [
            Candidate(f"reader{n:04d}@example.org", "", frozenset({"commentaries"}))
            for n in range(SUBSCRIBERS)
        ],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    people = [(s.id, s.link_secret) for s in subscribers.each()]
    assert len(people) == SUBSCRIBERS
    paths = [urlsplit(newsletter.links.url(Purpose.UNSUBSCRIBE, *p)).path for p in people]
    paths += paths[:TWICE]

    with serving(create_app(newsletter), threads=8) as base:
        job = {
            "base": base,
            "feed": "/commentaries/rss.xml",
            "feed_requests": FEED_REQUESTS,
            "unsubscribe": paths,
            "threads": 16,
        }
        client = subprocess.run(
            [sys.executable, str(REPOSITORY / "benchmarks" / "web_burst.py")],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    result = json.loads(client.stdout)
    print(
        f"\n{result['requests']:,} requests in {result['seconds']} s: "
        f"{result['per_second']:,.0f} requests/s; {result['statuses']}"
    )
    assert result["error_count"] == 0, result["errors"]
    assert result["redirects"] == 0
    half = FEED_REQUESTS // 2
    unsubscribes = SUBSCRIBERS + TWICE
    assert result["statuses"] == {
        "feed conditional 304": half,
        "feed plain 200": FEED_REQUESTS - half,
        "unsubscribe form 200": unsubscribes - unsubscribes // 2,
        "unsubscribe multipart 200": unsubscribes // 2,
    }

    with newsletter.store.engine.connect() as connection:
        recorded: dict[str, int] = dict(
            connection.execute(
                select(history.c.reason, func.count()).group_by(history.c.reason)
            ).all()
        )
        per_subscriber = set(
            connection.scalars(
                select(func.count()).select_from(history).group_by(history.c.subscriber_id)
            )
        )
    assert recorded == {Reason.ONE_CLICK.value: SUBSCRIBERS}
    assert per_subscriber == {1}
    assert not any(True for _ in subscribers.each(statuses=[Status.ACTIVE]))
