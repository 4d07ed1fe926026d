"""The web service under a burst: requests per second for the feed and one-click unsubscribes.

A newsletter made from this repository's example in a temporary folder, built, with --subscribers
active subscribers (SQLite), served by waitress with --threads threads on a loopback port. A
second process (benchmarks/web_burst.py: threads with `requests`, connections kept alive) sends
--feed-requests GETs of rss.xml (half of them conditional, answered 304) and one one-click
unsubscribe POST per subscriber (form-urlencoded and multipart in turn). Then it checks that
every unsubscribe was recorded exactly once and that nothing failed.

    python benchmarks/web_load.py [--subscribers 1000] [--feed-requests 1000] [--threads 8]
        [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from example import example_folder
from sqlalchemy import func, select

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from mailer.app.newsletter import Newsletter  # noqa: E402
from mailer.core.addresses import Candidate  # noqa: E402
from mailer.core.lifecycle import Reason, Status  # noqa: E402
from mailer.core.tokens import Purpose  # noqa: E402
from mailer.store.schema import history  # noqa: E402
from mailer.web import create_app  # noqa: E402
from tests.web_server import serving  # noqa: E402

SECRET = "benchmark-secret-0123456789"


def newsletter_in(root: Path) -> Newsletter:
    example_folder(root)
    newsletter = Newsletter.load(root / "config.toml", {"MAILER_SECRET": SECRET})
    newsletter.build()
    return newsletter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--feed-requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    options = parser.parse_args()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" at every burst

    with tempfile.TemporaryDirectory() as folder:
        newsletter = newsletter_in(Path(folder))
        subscribers = newsletter.store.subscribers
        subscribers.merge(
            [
                Candidate(f"reader{n}@example.org", "", frozenset({"commentaries"}))
                for n in range(options.subscribers)
            ],
            status=Status.ACTIVE,
            reason=Reason.IMPORT,
        )
        paths = [
            urlsplit(newsletter.links.url(Purpose.UNSUBSCRIBE, s.id, s.link_secret)).path
            for s in subscribers.each()
        ]
        with serving(create_app(newsletter), threads=options.threads) as base:
            job = {
                "base": base,
                "feed": "/commentaries/rss.xml",
                "feed_requests": options.feed_requests,
                "unsubscribe": paths,
                "threads": options.clients,
            }
            client = subprocess.run(
                [sys.executable, str(REPOSITORY / "benchmarks" / "web_burst.py")],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                check=True,
            )
        result = json.loads(client.stdout)
        with newsletter.store.engine.connect() as connection:
            counts = set(
                connection.scalars(
                    select(func.count()).select_from(history).group_by(history.c.subscriber_id)
                )
            )
            recorded = connection.scalar(select(func.count()).select_from(history))
        newsletter.store.close()

    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; waitress {options.threads} threads, {options.clients} client "
        f"threads in a second process"
    )
    print(
        f"{result['requests']:,} requests in {result['seconds']:.2f} s: "
        f"{result['per_second']:,.0f} requests/s"
    )
    for name, number in result["statuses"].items():
        print(f"  {name}: {number:,}")
    ok = (
        result["error_count"] == 0
        and not any(" 5" in name for name in result["statuses"])
        and recorded == len(paths)
        and counts == {1}
    )
    print(
        f"unsubscribes recorded: {recorded:,} of {len(paths):,}, once each: {counts == {1}}; "
        f"errors: {result['error_count']}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
