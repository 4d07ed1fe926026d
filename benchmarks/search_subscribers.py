"""The console's subscriber search at 1,000,000 subscribers, SQLite and PostgreSQL: the median
and 95th percentile of a page of 50, by address, by name, by status, by list, and the next page,
against today's `mailer subscribers list --search` (a substring scan) measured in the same run.

    python benchmarks/search_subscribers.py [--people 1000000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_subscribers import drop_schema, postgres_schema

from mailer.core.addresses import Candidate
from mailer.core.lifecycle import Reason, Status
from mailer.store.database import Store

BATCH = 20_000


def secret() -> str:
    return "benchmark-secret-0123456789"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("MAILER_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as temporary:
        store = Store.open(f"sqlite:///{Path(temporary) / 'mailer.db'}", Path(temporary), secret)
        started = time.perf_counter()
        fill(store, args.people)
        print(f"SQLite: {args.people:,} subscribers in {time.perf_counter() - started:.0f} s")
        measure(store, "SQLite")
        store.close()
    if args.postgres:
        url, schema = postgres_schema(args.postgres)
        try:
            store = Store.open(url, Path("."), secret)
            fill(store, args.people)
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
            measure(store, "PostgreSQL")
            store.close()
        finally:
            drop_schema(args.postgres, schema)


if __name__ == "__main__":
    main()
