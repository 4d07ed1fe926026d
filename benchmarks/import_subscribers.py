"""Importing a generated CSV of subscribers: rows per second and peak memory, SQLite and
PostgreSQL, against a straightforward importer measured in the same run.

mailer's import runs as the real command (`mailer subscribers import`) in a subprocess; its peak
memory is the largest proportional set size (PSS) of that process and its reader process
together, sampled every 20 ms. The straightforward importer validates every address with
email-validator and inserts each batch with SQLAlchemy's executemany, in one process.

    python benchmarks/import_subscribers.py [--rows 1000000] [--baseline-rows 100000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from email_validator import validate_email
from sqlalchemy import create_engine, insert, text

from mailer.store.database import Store
from mailer.store.schema import subscribers, utcnow

MAILER = Path(sys.executable).parent / "mailer"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as stream:
        stream.write("email,name,lists\n")
        for number in range(rows):
            stream.write(f"reader{number}@domain{number % 5000}.example.org,Reader {number},news\n")


def tree_memory(pid: int) -> int:
    """Proportional set size (bytes) of a process and its children: the memory they use, with
    the pages a forked child shares with its parent counted once, not twice as RSS would."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += int(rollup.split("\nPss:")[1].split()[0]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
    return total


def run_import(folder: Path, csv_path: Path, url: str) -> tuple[float, int, float]:
    """Seconds, peak memory (bytes) and CPU seconds (both processes, user and system) of one
    import: on a busy machine the CPU time per row is what stays comparable."""
    config = folder / "config.toml"
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config.write_text(
        example.read_text().replace('url = "sqlite:///subscribers/mailer.db"', f'url = "{url}"')
    )
    env = {**os.environ, "MAILER_SECRET": "benchmark-secret-0123456789"}
    command = [
        *(str(MAILER), "--config", str(config), "subscribers", "import", str(csv_path)),
        "--create-lists",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_memory(process.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"import failed: {out.decode()} {err.decode()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, peak, cpu


def straightforward(csv_path: Path, url: str, rows: int) -> tuple[float, float]:
    """Validate each address with email-validator, insert batches with executemany: rows per
    second, and CPU seconds per row."""
    store = Store.open(url, csv_path.parent, lambda: "benchmark-secret-0123456789")
    started, cpu = time.perf_counter(), time.process_time()
    batch = []
    with csv_path.open(encoding="utf-8") as stream, store.engine.begin() as connection:
        next(stream)
        for number, line in enumerate(stream):
            if number == rows:
                break
            email, name, _ = line.rstrip("\n").split(",")
            address = validate_email(email, check_deliverability=False).normalized
            now = utcnow()
            batch.append(
                {
                    "email": address,
                    "email_key": address.lower(),
                    "name": name,
                    "status": "active",
                    "source": "import",
                    "source_detail": "",
                    "source_ip": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 5000:
                connection.execute(insert(subscribers), batch)
                batch = []
        if batch:
            connection.execute(insert(subscribers), batch)
    store.close()
    return rows / (time.perf_counter() - started), (time.process_time() - cpu) / rows


def postgres_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with create_engine(base).begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    with create_engine(base).begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("MAILER_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        csv_path = folder / "subscribers.csv"
        write_csv(csv_path, args.rows)
        print(f"file: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB")
        elapsed, peak, cpu = run_import(folder, csv_path, f"sqlite:///{folder / 'mailer.db'}")
        print(
            f"SQLite, mailer:          {args.rows / elapsed:9,.0f} rows/s "
            f"({elapsed:.1f} s, peak memory {peak / 1e6:.0f} MB, "
            f"CPU {cpu / args.rows * 1e6:.1f} µs/row)"
        )
        baseline, cpu_row = straightforward(
            csv_path, f"sqlite:///{folder / 'baseline.db'}", args.baseline_rows
        )
        print(
            f"SQLite, straightforward: {baseline:9,.0f} rows/s ({args.baseline_rows:,} rows, "
            f"CPU {cpu_row * 1e6:.1f} µs/row)"
        )
        if args.postgres:
            url, schema = postgres_schema(args.postgres)
            try:
                elapsed, peak, cpu = run_import(folder, csv_path, url)
            finally:
                drop_schema(args.postgres, schema)
            print(
                f"PostgreSQL, mailer:      {args.rows / elapsed:9,.0f} rows/s "
                f"({elapsed:.1f} s, peak memory {peak / 1e6:.0f} MB, "
                f"CPU here {cpu / args.rows * 1e6:.1f} µs/row)"
            )
            url, schema = postgres_schema(args.postgres)
            try:
                baseline, cpu_row = straightforward(csv_path, url, args.baseline_rows)
            finally:
                drop_schema(args.postgres, schema)
            rows = f"{args.baseline_rows:,} rows, CPU here {cpu_row * 1e6:.1f} µs/row"
            print(f"PostgreSQL, straightforward: {baseline:9,.0f} rows/s ({rows})")


if __name__ == "__main__":
    main()
