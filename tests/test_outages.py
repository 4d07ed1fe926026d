"""The database going away in the middle of a send is a pause, not a crash.

A PostgreSQL server of the test's own (initdb and pg_ctl in a temporary folder) is restarted while
`mailer send` runs: the send waits for it and carries on, nobody lost, nobody sent twice. Stopped
for longer than [database] patience, the send stops with the reason and no traceback, and the same
command continues once the server is back. SQLite on a small tmpfs that fills up: the same.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailer.store.campaigns import CampaignStatus, DeliveryState
from tests.conftest import Folder, Run, skip_or_fail
from tests.processes import finish, run_mailer, start_mailer
from tests.smtp_server import (
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import SLUG, add_people, campaign_status, many, use_server
from tests.test_workers import in_all, logged_as_sent, wait_for

POSTGRESQL = Path("/usr/lib/postgresql/15/bin")
RECIPIENTS = 300


@dataclass
class OwnPostgres:
    """A PostgreSQL server in a folder of its own, run as the `postgres` user when we are root."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        command = [str(POSTGRESQL / "pg_ctl"), "-D", str(self.folder / "data"), *args]
        subprocess.run(as_postgres(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")


def as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not (POSTGRESQL / "initdb").exists():
        skip_or_fail(f"no PostgreSQL server programs in {POSTGRESQL}")
    folder = Path(tempfile.mkdtemp(prefix="mailer-postgres-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = OwnPostgres(folder, free_port())
    subprocess.run(
        as_postgres(
            [
                str(POSTGRESQL / "initdb"),
                "-D",
                str(folder / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.pg_ctl("-m", "immediate", "-w", "stop")
    shutil.rmtree(folder, ignore_errors=True)


def sending_to(folder: Folder, run: Run, smtp_server: StartServer, url: str) -> SmtpServer:
    folder.configure('url = "sqlite:///subscribers/mailer.db"', f'url = "{url}"')
    folder.configure("patience = 60", "patience = 3")
    folder.configure("lease = 300", "lease = 5")  # a server just restarted trusts no lock yet
    add_people(folder, run, many(RECIPIENTS))
    server = smtp_server(delay=0.02)  # a send of some seconds, so that the outage lands in it
    use_server(folder, server, concurrency=2)
    return server


def sending(folder: Folder) -> subprocess.Popen[str]:
    """`mailer send`, once it has logged some messages as sent."""
    process = start_mailer(folder, "send", SLUG, "--yes")
    wait_for(lambda: logged_as_sent(folder) >= 20, "the send to start", [process])
    return process


def assert_everyone_once(server: SmtpServer) -> None:
    arrivals = server.arrivals()
    assert set(arrivals) == {address for address, _, _ in many(RECIPIENTS)}, "somebody lost"
    assert set(arrivals.values()) == {1}, "somebody got the issue twice"


def test_a_postgresql_restart_in_the_middle_of_a_send_is_waited_out(
    folder: Folder, run: Run, smtp_server: StartServer, own_postgres: OwnPostgres
) -> None:
    server = sending_to(folder, run, smtp_server, own_postgres.url)

    running = sending(folder)
    own_postgres.stop()
    time.sleep(1)  # the outage: every claim and record in it fails
    own_postgres.start()
    code, out, err = finish(running)

    assert code == 0, out + err
    assert "Traceback" not in err
    assert in_all(out)[DeliveryState.SENT] == RECIPIENTS
    assert_everyone_once(server)


def test_a_postgresql_outage_longer_than_the_patience_stops_with_the_reason_then_resumes(
    folder: Folder, run: Run, smtp_server: StartServer, own_postgres: OwnPostgres
) -> None:
    server = sending_to(folder, run, smtp_server, own_postgres.url)

    running = sending(folder)
    own_postgres.stop()
    code, out, err = finish(running)
    own_postgres.start()

    assert code == 1, out + err
    assert "Traceback" not in err
    assert "the database has been unavailable" in err and "same command" in err, err

    again = run_mailer(folder, "send", SLUG, "--yes")

    assert again.returncode == 0, again.stdout + again.stderr
    assert in_all(again.stdout)[DeliveryState.SENT] == RECIPIENTS
    assert_everyone_once(server)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MB tmpfs, mounted for the test and unmounted after it."""
    folder = Path(tempfile.mkdtemp(prefix="mailer-small-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        skip_or_fail(f"cannot mount a tmpfs to fill up: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)
    folder.rmdir()


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte with one file; it is what to remove to make room."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_sqlite_on_a_disk_that_fills_up_stops_with_the_reason_then_resumes(
    folder: Folder, run: Run, smtp_server: StartServer, small_disk: Path
) -> None:
    server = sending_to(folder, run, smtp_server, f"sqlite:///{small_disk / 'mailer.db'}")

    running = sending(folder)
    filler = fill(small_disk)
    code, out, err = finish(running)

    assert code == 1, out + err
    assert "Traceback" not in err
    assert "full" in err and "same command" in err, err
    filler.unlink()
    assert campaign_status(folder)[0] == CampaignStatus.PAUSED

    again = run_mailer(folder, "send", SLUG, "--yes")

    assert again.returncode == 0, again.stdout + again.stderr
    assert in_all(again.stdout)[DeliveryState.SENT] == RECIPIENTS
    assert_everyone_once(server)
