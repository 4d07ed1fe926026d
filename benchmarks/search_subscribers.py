"""The console's subscriber search at 1,000,000 subscribers, SQLite and PostgreSQL: the median
and 95th percentile of a page of 50, by address, by name, by status, by list, and the next page,
against today's `mailer subscribers list --search` (a substring scan) measured in the same run.
Then the same searches as console pages (`GET /subscribers?...`, and a subscriber's page) from a
real `mailer serve` on that database, fetched by a signed-in client, beside the console's
sign-in page (no database work) as the baseline of the same run.

    python benchmarks/search_subscribers.py [--people 1000000] [--no-pages]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from console_pages import CONSOLE, REPOSITORY, SECRET, session_cookie
from import_subscribers import drop_schema, postgres_schema

from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.store.database import Store
from tests.web_server import mailer_serve

BATCH = 20_000


def secret() -> str:
    return SECRET


def fill(store: Store, people: int) -> None:
    for start in range(0, people, BATCH):
        store.subscribers.merge(
            [
                Candidate(
                    f"reader{n}@domain{n % 5000}.example.org",
                    f"Reader {n} Surname{n % 997}",
                    frozenset({"news", "briefings"} if n % 10 == 0 else {"news"}),
                    status=Status.BOUNCED if n % 50 == 7 else None,
                )
                for n in range(start, min(start + BATCH, people))
            ],
            status=Status.ACTIVE,
            reason=Reason.IMPORT,
        )


def timed(query: Callable[[], object], times: int = 21) -> tuple[float, float]:
    """(median, 95th percentile) in milliseconds."""
    query()  # warm the cache, as a console in use is
    took = []
    for _ in range(times):
        started = time.perf_counter()
        query()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


def measure(store: Store, label: str) -> None:
    directory = store.directory
    second = directory.search("reader5").after or ""
    cases: dict[str, Callable[[], object]] = {
        "address prefix 'reader5'": lambda: directory.search("reader5"),
        "address prefix 'reader987654'": lambda: directory.search("reader987654"),
        "name prefix 'Reader 42'": lambda: directory.search("Reader 42"),
        "status bounced": lambda: directory.search(statuses=[Status.BOUNCED]),
        "list briefings": lambda: directory.search(list_name="briefings"),
        "list briefings, bounced, 'reader1'": lambda: directory.search(
            "reader1", statuses=[Status.BOUNCED], list_name="briefings"
        ),
        "next page of 'reader5'": lambda: directory.search("reader5", after=second),
    }
    medians = []
    for name, query in cases.items():
        median, p95 = timed(query)
        medians.append(median)
        print(f"{label}, {name}: median {median:.1f} ms, p95 {p95:.1f} ms")
    print(f"{label}, median over the searches: {statistics.median(medians):.1f} ms")
    base, p95 = timed(
        lambda: list(itertools.islice(store.subscribers.each(search="reader987654"), 50)),
        times=5,
    )
    print(f"{label}, today's `subscribers list --search` substring: median {base:.1f} ms")


def measure_pages(store: Store, url: str, label: str) -> None:
    """The searches as console pages from `mailer serve` on the database at `url`."""
    second = store.directory.search("reader5").after or ""
    reader = store.subscribers.find("reader5@domain5.example.org")
    assert reader is not None
    pages = {
        "own account page (baseline: no subscriber data)": "/account",
        "'reader5'": "/subscribers?q=reader5",
        "'reader987654'": "/subscribers?q=reader987654",
        "'Reader 42'": "/subscribers?q=Reader+42",
        "status bounced": "/subscribers?status=bounced",
        "list briefings": "/subscribers?list=briefings",
        "list briefings, bounced, 'reader1'": "/subscribers?"
        + urlencode({"q": "reader1", "status": "bounced", "list": "briefings"}),
        "next page of 'reader5'": "/subscribers?" + urlencode({"q": "reader5", "after": second}),
        "a subscriber's page": f"/subscribers/{reader.id}",
        "list page with its chart (not a search)": "/lists/briefings",
        "dashboard with each list's chart (not a search)": "/",
        "the dashboard's chart of news, 1,000,000 members (htmx fragment)": "/lists/news",
    }
    fragments = {name for name in pages if "htmx fragment" in name}
    searches = [name for name in pages if name.startswith(("'", "status", "list b", "next"))]
    os.environ["MAILER_SECRET"] = SECRET
    os.environ.pop("MAILER_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="mailer-search-pages-") as folder:
        root = Path(folder)
        config = root / "config.toml"
        example = (REPOSITORY / "config.example.toml").read_text(encoding="utf-8")
        config.write_text(
            example.replace('url = "sqlite:///subscribers/mailer.db"', f'url = "{url}"'),
            encoding="utf-8",
        )
        shutil.copytree(REPOSITORY / "commentaries", root / "commentaries")
        (root / "subscribers").mkdir()
        cookie = session_cookie(config)
        with mailer_serve(config, f"{CONSOLE}/login") as served:
            session = requests.Session()
            session.cookies.set("mailer_console", cookie, path=f"{CONSOLE}/")
            base = f"http://127.0.0.1:{served.port}{CONSOLE}"
            medians = []
            for name, path in pages.items():

                def fetch(path: str = path, name: str = name) -> None:
                    headers = {"HX-Request": "true"} if name in fragments else {}
                    answer = session.get(base + path, headers=headers, timeout=120)
                    answer.raise_for_status()
                    assert "Please sign in" not in answer.text

                median, p95 = timed(fetch, 21 if name in searches else 5)
                if name in searches:
                    medians.append(median)
                print(f"{label} console page, {name}: median {median:.1f} ms, p95 {p95:.1f} ms")
            over = statistics.median(medians)
            print(f"{label} console pages, median over the searches: {over:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("MAILER_TEST_POSTGRES_URL", ""))
    parser.add_argument("--no-pages", action="store_true", help="Only the store's searches.")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as temporary:
        sqlite = f"sqlite:///{Path(temporary) / 'mailer.db'}"
        store = Store.open(sqlite, Path(temporary), secret)
        started = time.perf_counter()
        fill(store, args.people)
        print(f"SQLite: {args.people:,} subscribers in {time.perf_counter() - started:.0f} s")
        measure(store, "SQLite")
        if not args.no_pages:
            measure_pages(store, sqlite, "SQLite")
        store.close()
    if args.postgres:
        url, schema = postgres_schema(args.postgres)
        try:
            store = Store.open(url, Path("."), secret)
            fill(store, args.people)
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
            measure(store, "PostgreSQL")
            if not args.no_pages:
                measure_pages(store, url, "PostgreSQL")
            store.close()
        finally:
            drop_schema(args.postgres, schema)


if __name__ == "__main__":
    main()
