"""Console page times from a real `mailer serve`, with the public RSS feed's in the same run.

A temporary newsletter gets N commentaries (copies of the examples under new names), M
subscribers on its list (imported from a generated CSV) and one finished campaign to all of
them (its send log written as a send would leave it, rather than M messages sent through the
outbox); `mailer serve` runs it in a process of its own, its scheduler beside the web service
as in production, and each page is fetched sequentially by a signed-in staff client, after one
warm-up request. Timing starts once the scheduler's first look (which builds the feeds and
archive, a one-off at start) is over; its later looks, every [schedule] interval (30 s; see
--interval), run during the timing.

    python benchmarks/console_pages.py [--commentaries 500] [--subscribers 1000000] [--requests 30]
        [--interval SECONDS]

It prints the median and the 90th percentile per page, in milliseconds, and the load average.
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from example import example_folder

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from tests.web_server import mailer_serve  # noqa: E402

SECRET = "benchmark-secret-0123456789"
CONSOLE = "/commentaries/console"
MAILER = [sys.executable, "-m", "mailer"]


def newsletter(root: Path, commentaries: int, subscribers: int, interval: int = 0) -> Path:
    example_folder(root)
    examples = sorted((REPOSITORY / "commentaries").glob("*.md"))
    for number in range(commentaries - len(examples)):
        source = examples[number % len(examples)]
        target = root / "commentaries" / f"2024-01-01-copy-{number:04d}-{source.stem[11:]}.md"
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        files = source.parent / source.stem[11:]  # its PDF and images, in a folder of its slug
        if files.is_dir():
            shutil.copytree(files, target.parent / target.stem[11:])
    people = root / "people.csv"
    with people.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "name", "lists"])
        writer.writerows(
            (f"reader{n:07d}@example.net", f"Reader {n}", "commentaries")
            for n in range(subscribers)
        )
    config = root / "config.toml"
    if interval:
        text = config.read_text(encoding="utf-8")
        assert "[schedule]\n" in text
        config.write_text(
            text.replace("[schedule]\n", f"[schedule]\ninterval = {interval}\n", 1),
            encoding="utf-8",
        )
    for command in (["subscribers", "import", str(people)], ["build"]):
        subprocess.run(
            [*MAILER, "--config", str(config), *command], check=True, capture_output=True
        )
    sent_campaign(config)
    return config


def sent_campaign(config: Path) -> None:
    """A campaign of the example issue to every subscriber, its send log all sent and done."""
    from sqlalchemy import update

    from mailer.app.newsletter import Newsletter
    from mailer.store.campaigns import CampaignStatus, DeliveryState
    from mailer.store.schema import deliveries

    loaded = Newsletter.load(config)
    store = loaded.store
    campaign = store.campaigns.start("stalemate-to-escalation", "commentaries", "Stalemate")
    with store.engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.campaign_id == campaign.id)
            .values(state=DeliveryState.SENT.value)
        )
    store.campaigns.set_status(campaign.id, CampaignStatus.DONE)
    store.close()


def session_cookie(config: Path) -> str:
    """A signed-in staff session, made in the store as signing in would make it."""
    from mailer.app.newsletter import Newsletter
    from mailer.console.accounts import Accounts, token_hash, utc_now
    from mailer.store.staff import Role

    loaded = Newsletter.load(config)
    account, _ = Accounts(loaded.store, "https://www.example.org/").add(
        "bench@example.org", Role.ADMIN
    )
    token = secrets.token_urlsafe(32)
    loaded.store.staff_sessions.open(account, token_hash(token), utc_now(), "", "bench")
    loaded.store.close()
    return token


def first_look(config: Path, timeout: float = 1800) -> float:
    """Wait for the scheduler of `mailer serve` to end its first look (it builds, and marks
    that it did); how long that took, in seconds."""
    from mailer.app.newsletter import Newsletter
    from mailer.scheduler.due import BUILT

    start = time.monotonic()
    loaded = Newsletter.load(config)
    try:
        while loaded.store.schedule.mark(BUILT) is None:
            assert time.monotonic() - start < timeout, "the scheduler's first look did not end"
            time.sleep(0.5)
    finally:
        loaded.store.close()
    return time.monotonic() - start


def load() -> str:
    return "{:.2f}, {:.2f}, {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


def timed(session: requests.Session, url: str, count: int) -> list[float]:
    session.get(url, timeout=120).raise_for_status()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        session.get(url, timeout=120).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commentaries", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--interval", type=int, default=0, help="[schedule] interval (default: the config's)"
    )
    options = parser.parse_args()
    os.environ["MAILER_SECRET"] = SECRET
    os.environ.pop("MAILER_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="mailer-console-bench-") as folder:
        print(
            f"Preparing {options.commentaries} commentaries and {options.subscribers:,} "
            "subscribers…",
            flush=True,
        )
        config = newsletter(
            Path(folder), options.commentaries, options.subscribers, options.interval
        )
        cookie = session_cookie(config)
        with mailer_serve(config, "/commentaries/rss.xml") as served:
            print(f"The scheduler's first look (a build) took {first_look(config):.1f} s.")
            base = f"http://127.0.0.1:{served.port}"
            session = requests.Session()
            session.cookies.set("mailer_console", cookie, path=f"{CONSOLE}/")
            pages = {
                "public feed (baseline)": "/commentaries/rss.xml",
                "console dashboard": f"{CONSOLE}/",
                "commentaries list": f"{CONSOLE}/commentaries",
                "editor": f"{CONSOLE}/commentaries/stalemate-to-escalation",
                "campaigns": f"{CONSOLE}/campaigns",
                "campaign page": f"{CONSOLE}/campaigns/1",
                "campaign progress": f"{CONSOLE}/campaigns/1/progress",
                "send confirmation": f"{CONSOLE}/commentaries/sahel-after-the-juntas/send",
                "test addresses": f"{CONSOLE}/test-addresses",
                "subscriber preview": f"{CONSOLE}/commentaries/stalemate-to-escalation/preview",
                "audit log": f"{CONSOLE}/audit",
                "a list's page, its chart": f"{CONSOLE}/lists/commentaries",
            }
            print(f"load average at the start: {load()}")
            print(f"{'page':26} {'median ms':>10} {'p90 ms':>8}")
            for name, path in pages.items():
                times = sorted(timed(session, base + path, options.requests))
                p90 = times[int(len(times) * 0.9) - 1]
                print(f"{name:26} {statistics.median(times):10.1f} {p90:8.1f}", flush=True)
        print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
