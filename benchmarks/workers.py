"""Throughput of one campaign shared by 1, 2 and 4 `mailer worker` processes on PostgreSQL.

For each number of workers: a campaign of --recipients (a list of its own, so each starts
fresh) to the same Postfix smtp-sink on loopback, sent by that many `mailer worker` processes,
each with --concurrency SMTP connections. The workers start while the benchmark holds every row
of the campaign locked, so they claim nothing until all of them are up; the clock starts when
the rows are let go and stops when the send log has nothing left queued or sending. Process
start-up is left out; claiming, building, handing over and recording every message is in.

Figures only, no verdict: on a machine with fewer cores than workers × connections the workers
compete for the same CPUs.

    python benchmarks/workers.py [--recipients 20000] [--concurrency 4] [--database URL]

The database URL defaults to $MAILER_TEST_POSTGRES_URL; the benchmark works in a schema of its
own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from example import example_folder
from send_campaign import MAILER, SECRET, SMTP_SINK, free_port, longest_slug, wait_for_port
from sqlalchemy import Connection, create_engine, func, select, text

from mailer.app.newsletter import Newsletter
from mailer.store.campaigns import DeliveryState
from mailer.store.schema import deliveries

WORKERS = (1, 2, 4)
SENT = re.compile(r"this run sent ([\d,]+),")


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({model or 'unknown CPU'}), "
        f"{memory:.0f} GB, Linux {platform.release()}, Python {sys.version.split()[0]}"
    )


def newsletter_folder(root: Path, database_url: str, port: int, concurrency: int) -> Path:
    return example_folder(
        root / "newsletter",
        lambda settings: (
            settings.replace('url = "sqlite:///subscribers/mailer.db"', f'url = "{database_url}"')
            .replace('backend = "outbox"', 'backend = "smtp"')
            .replace("concurrency = 4", f"concurrency = {concurrency}")
            .replace('host = "localhost"\nport = 587', f'host = "127.0.0.1"\nport = {port}')
            .replace('security = "starttls"', 'security = "none"')
        ),
    )


def environment() -> dict[str, str]:
    return {**os.environ, "MAILER_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}


def mailer(folder: Path, *args: str) -> str:
    command = [str(MAILER), "--config", str(folder / "config.toml"), *args]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mailer {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def import_people(folder: Path, recipients: int) -> None:
    """Every subscriber on one list per run (`w1`, `w2`, `w4`)."""
    lists = ";".join(f"w{count}" for count in WORKERS)
    people = folder / "people.csv"
    with people.open("w", encoding="utf-8") as stream:
        stream.write("email,name,lists\n")
        for number in range(recipients):
            stream.write(f"reader{number}@example{number % 100}.org,Reader {number},{lists}\n")
    mailer(folder, "subscribers", "import", str(people), "--create-lists")


def left(connection: Connection, campaign_id: int) -> int:
    query = select(func.count()).where(
        deliveries.c.campaign_id == campaign_id,
        deliveries.c.state.in_([DeliveryState.QUEUED.value, DeliveryState.SENDING.value]),
    )
    return int(connection.execute(query).scalar_one())


def send_with_workers(
    folder: Path, newsletter: Newsletter, slug: str, count: int
) -> tuple[float, list[int]]:
    """(messages per second, messages each worker sent) of a new campaign to list `w<count>`."""
    store = newsletter.store
    subject = newsletter.issue([slug]).subject
    campaign = store.campaigns.start(slug, f"w{count}", subject)
    command = [str(MAILER), "--config", str(folder / "config.toml"), "worker", str(campaign.id)]
    with store.engine.connect() as holding:
        # Every row locked: the workers' FOR UPDATE SKIP LOCKED finds nothing until all are up.
        holding.execute(
            select(deliveries.c.subscriber_id)
            .where(deliveries.c.campaign_id == campaign.id)
            .with_for_update()
        ).all()
        workers = [
            subprocess.Popen(
                command,
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if not line.startswith("Joining campaign"):
                raise SystemExit(f"a worker did not start: {line}{worker.communicate()}")
        time.sleep(1.0)  # from "Joining" to waiting for rows: the engine's threads start
        holding.rollback()
        started = time.perf_counter()
    with store.engine.connect() as connection:
        while left(connection, campaign.id):
            connection.rollback()
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    sent = []
    for worker in workers:
        out, err = worker.communicate()
        found = SENT.search(out)
        if worker.returncode != 0 or not found:
            raise SystemExit(f"a worker failed: {out}{err}")
        sent.append(int(found[1].replace(",", "")))
    counts = store.campaigns.counts(campaign.id)
    if counts[DeliveryState.SENT] != campaign.recipients:
        raise SystemExit(f"campaign {campaign.id} ended with {counts}")
    return campaign.recipients / elapsed, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4, help="connections per worker")
    parser.add_argument("--database", default=os.environ.get("MAILER_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    if not args.database.startswith("postgresql"):
        raise SystemExit("several workers need PostgreSQL: pass --database postgresql+psycopg://…")

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(args.database)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
        version = connection.execute(text("SHOW server_version")).scalar_one()
    separator = "&" if "?" in args.database else "?"
    database_url = f"{args.database}{separator}options=-csearch_path%3D{schema}"
    port = free_port()
    sink = subprocess.Popen(
        [SMTP_SINK, "-u", "postfix", f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL
    )
    try:
        with tempfile.TemporaryDirectory() as temporary:
            wait_for_port(port)
            folder = newsletter_folder(Path(temporary), database_url, port, args.concurrency)
            slug = longest_slug()
            import_people(folder, args.recipients)
            newsletter = Newsletter.load(folder / "config.toml", {"MAILER_SECRET": SECRET})
            print(f"machine: {machine()}; PostgreSQL {version}")
            print(
                f"campaign: {slug}, {args.recipients:,} recipients, to Postfix smtp-sink on "
                f"loopback; each worker {args.concurrency} SMTP connections"
            )
            rates = {}
            for count in WORKERS:
                rate, sent = send_with_workers(folder, newsletter, slug, count)
                rates[count] = rate
                shares = " + ".join(f"{one:,}" for one in sent)
                print(
                    f"  {count} worker{'s' if count > 1 else ' '}: {rate:7,.0f} messages/s  "
                    f"({rate / rates[1]:.2f} × 1 worker)  sent {shares}"
                )
            newsletter.store.close()
    finally:
        sink.terminate()
        sink.wait()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
