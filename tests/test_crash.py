"""A real `mailer send` process killed with SIGKILL part-way, then run again to completion.

The promise: every recipient receives the issue, nobody logged as sent receives it twice, and the
only duplicates are messages that were in flight at the kill: each message's fate is journaled
the moment the server answers, so at most one message per connection (the one between its 250
and its journal line). On PostgreSQL the second run takes the dead worker's batches over once
their lease runs out, so the lease is set short here.
"""

from __future__ import annotations

from mailer.delivery.smtp import SmtpBackend
from mailer.store.campaigns import DeliveryState
from tests.conftest import Folder, Run
from tests.processes import (
    assert_nobody_lost_nor_sent_again,
    kill,
    run_mailer,
    start_mailer,
    wait_until_logged_as_sent,
)
from tests.smtp_server import (
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import SLUG, add_people, many, send_log, use_server

CONCURRENCY = 2
LEASE_SECONDS = 8
"""Long enough for a batch to finish well within it, short enough for the resumed run to wait."""


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
    first = start_mailer(db_folder, "send", SLUG, "--yes")
    try:
        wait_until_logged_as_sent(db_folder, first, batch)  # a batch recorded, the rest not yet
    finally:
        kill(first)

    before = server.arrivals()
    logged = send_log(db_folder)
    sent_before = {
        address for address, entry in logged.items() if entry.state == DeliveryState.SENT
    }
    held = {address for address, entry in logged.items() if entry.state == DeliveryState.SENDING}
    assert sent_before and len(before) < count, "the kill did not land part-way"
    assert sent_before <= set(before), "logged as sent but never arrived"
    assert len(held) <= in_flight_at_most

    second = run_mailer(db_folder, "send", SLUG, "--yes")

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Traceback" not in second.stderr
    assert "Resuming campaign 1" in second.stdout
    arrivals = server.arrivals()
    everyone = {address for address, _, _ in many(count)}
    twice = assert_nobody_lost_nor_sent_again(arrivals, everyone, sent_before)
    assert twice <= held, "a duplicate that was not in flight at the kill"
    assert len(twice) <= CONCURRENCY, f"{len(twice)} went twice: more than one per connection"
    assert max(arrivals.values()) == (2 if twice else 1)
    final = send_log(db_folder)
    assert {entry.state for entry in final.values()} == {DeliveryState.SENT}
    assert len(final) == len(arrivals) == count
    assert sum(arrivals.values()) == count + len(twice)
