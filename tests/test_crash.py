"""A real `mailer send` process killed with SIGKILL part-way, then run again to completion.

The promise: every recipient receives the issue, nobody logged as sent receives it twice, and the
only duplicates are messages that were in flight at the kill: each message's fate is journaled
the moment the server answers, so at most one message per connection (the one between its 250
and its journal line). On PostgreSQL the second run takes the dead worker's batches over once
their lease runs out, so the lease is set short here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from mailer.delivery.smtp import SmtpBackend
from mailer.store.campaigns import DeliveryState
from mailer.store.schema import deliveries
from tests.conftest import SECRET, Folder, Run
from tests.smtp_server import (
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import PASSWORD, SLUG, add_people, many, newsletter_of, send_log, use_server

MAILER = Path(sys.executable).parent / "mailer"
CONCURRENCY = 2
LEASE_SECONDS = 8
"""Long enough for a batch to finish well within it, short enough for the resumed run to wait."""


def wait_until_logged_as_sent(folder: Folder, process: subprocess.Popen[bytes], count: int) -> None:
    """Until `count` deliveries are logged as sent by the running `mailer send`."""
    query = select(func.count()).where(deliveries.c.state == DeliveryState.SENT.value)
    deadline = time.monotonic() + 300  # generous: a loaded machine is slow, not wrong
    with newsletter_of(folder) as newsletter:
        while True:
            with newsletter.store.engine.connect() as connection:
                if connection.execute(query).scalar_one() >= count:
                    return
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first send made no progress"
            time.sleep(0.01)


def test_a_killed_send_resumes_without_losing_anybody_or_repeating_what_was_logged(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    batch = SmtpBackend.batch_size
    in_flight_at_most = CONCURRENCY * batch
    count = max(300, 3 * in_flight_at_most)  # some batches recorded, some held, some untouched
    server = smtp_server(delay=0.001)
    add_people(db_folder, run, many(count))
    use_server(db_folder, server, concurrency=CONCURRENCY, max_attempts=5)
    db_folder.configure("lease = 300", f"lease = {LEASE_SECONDS}")
    command = [str(MAILER), "--config", str(db_folder.config_path), "send", SLUG, "--yes"]
    environment = {**os.environ, "MAILER_SECRET": SECRET, "SMTP_PASSWORD": PASSWORD}
    environment.pop("MAILER_CONFIG", None)

    first = subprocess.Popen(
        command,
        env=environment,
        cwd=db_folder.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_logged_as_sent(db_folder, first, batch)  # a batch recorded, the rest not yet
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL

    before = server.arrivals()
    logged = send_log(db_folder)
    sent_before = {
        address for address, entry in logged.items() if entry.state == DeliveryState.SENT
    }
    held = {address for address, entry in logged.items() if entry.state == DeliveryState.SENDING}
    assert sent_before and len(before) < count, "the kill did not land part-way"
    assert sent_before <= set(before), "logged as sent but never arrived"
    assert len(held) <= in_flight_at_most

    second = subprocess.run(
        command,
        env=environment,
        cwd=db_folder.path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Traceback" not in second.stderr
    assert "Resuming campaign 1" in second.stdout
    arrivals = server.arrivals()
    everyone = {address for address, _, _ in many(count)}
    assert set(arrivals) == everyone, f"{len(everyone - set(arrivals))} recipients lost"
    twice = {address for address, times in arrivals.items() if times > 1}
    assert not twice & sent_before, "somebody logged as sent received it again"
    assert twice <= held, "a duplicate that was not in flight at the kill"
    assert len(twice) <= CONCURRENCY, f"{len(twice)} went twice: more than one per connection"
    assert max(arrivals.values()) == (2 if twice else 1)
    final = send_log(db_folder)
    assert {entry.state for entry in final.values()} == {DeliveryState.SENT}
    assert len(final) == len(arrivals) == count
    assert sum(arrivals.values()) == count + len(twice)
