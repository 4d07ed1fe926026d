"""A real `mailer send` and a real `mailer serve`, asked to stop (SIGTERM, as systemd and Docker
ask, or Ctrl-C) while messages are in flight: each waits for the messages it has in hand, records
them, says so and ends, and the next run sends the rest to everyone exactly once.

The SMTP test server holds every message at the end of DATA when the signal goes, so the signal
always lands with a message in flight on each connection, however fast or slow the machine; a
process that died at the signal would leave those messages unrecorded, to go again.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
import time
from typing import IO

import pytest

from mailer.delivery.smtp import SmtpBackend
from mailer.store.campaigns import DeliveryState
from tests.conftest import Folder, Run
from tests.processes import run_mailer, start_mailer, wait_until_logged_as_sent
from tests.smtp_server import (
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import SLUG, add_people, many, send_log, use_server

CONCURRENCY = 2
DEADLINE = 120
"""Seconds any one wait may take: generous, a loaded machine is slow, not wrong."""


class Said:
    """Every line a process writes to one of its pipes, read as it comes."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.ended = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def wait_for(self, text: str) -> None:
        """Until a line holding `text` has come; fails if the pipe closes first."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: self.ended or any(text in line for line in self.lines), DEADLINE
            )
            assert found and any(text in line for line in self.lines), (
                f"never said {text!r}:\n{self}"
            )

    def wait_for_end(self) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.ended, DEADLINE), "the pipe stayed open"

    def __str__(self) -> str:
        with self.changed:
            return "".join(self.lines)


def held_on_every_connection(server: SmtpServer, process: subprocess.Popen[str]) -> None:
    """Hold the server's answers until each connection has a message waiting for one."""
    server.hold()
    give_up = time.monotonic() + DEADLINE
    while server.held < CONCURRENCY:
        assert process.poll() is None, "the process ended with messages to send"
        assert time.monotonic() < give_up, f"only {server.held} messages in flight"
        time.sleep(0.01)


def ended(process: subprocess.Popen[str], out: Said, err: Said) -> int:
    """The process's exit status once it ends by itself, its pipes read to their end."""
    try:
        code = process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running after {DEADLINE} s: {out}{err}") from None
    out.wait_for_end()
    err.wait_for_end()
    return code


def assert_in_flight_recorded_and_the_rest_sent_once(
    folder: Folder, server: SmtpServer, count: int
) -> None:
    """What arrived is what the send log says was sent, nothing is left in flight, and the next
    run sends the rest: everyone exactly once, with nothing for it to fold from the journal."""
    logged = send_log(folder)
    sent = {address for address, entry in logged.items() if entry.state == DeliveryState.SENT}
    assert {entry.state for entry in logged.values()} <= {DeliveryState.SENT, DeliveryState.QUEUED}
    assert set(server.arrivals()) == sent, "a message arrived that the send log does not know"
    assert 0 < len(sent) < count, "it did not stop part-way"

    again = run_mailer(folder, "send", SLUG, "--yes")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "interrupted run had handed over" not in again.stdout
    assert server.arrivals() == {address: 1 for address, _, _ in many(count)}


def people_and_server(folder: Folder, run: Run, smtp_server: StartServer) -> tuple[SmtpServer, int]:
    count = 4 * CONCURRENCY * SmtpBackend.batch_size  # batches recorded, in hand, untouched
    server = smtp_server()
    add_people(folder, run, many(count))
    use_server(folder, server, concurrency=CONCURRENCY)
    return server, count


@pytest.mark.parametrize("asking", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_send_asked_to_stop_records_the_messages_in_flight_and_ends(
    db_folder: Folder, run: Run, smtp_server: StartServer, asking: signal.Signals
) -> None:
    server, count = people_and_server(db_folder, run, smtp_server)
    sending = start_mailer(db_folder, "send", SLUG, "--yes")
    out, err = Said(sending.stdout), Said(sending.stderr)
    try:
        wait_until_logged_as_sent(db_folder, sending, SmtpBackend.batch_size)
        held_on_every_connection(server, sending)
        sending.send_signal(asking)
        err.wait_for("Stopping once the messages in hand are recorded")
        assert sending.poll() is None, "it ended with messages in flight"
    finally:
        server.release()
    code = ended(sending, out, err)

    assert code == 1, f"{out}{err}"  # not done: a script must not take it for a whole send
    assert "Stopped as asked" in str(err)
    assert "Traceback" not in str(err)
    assert_in_flight_recorded_and_the_rest_sent_once(db_folder, server, count)


def test_mailer_serve_asked_to_stop_lets_its_scheduler_record_the_messages_in_flight(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server, count = people_and_server(folder, run, smtp_server)
    folder.configure("interval = 30", "interval = 1")
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    assert run("send", SLUG, "--at", at.isoformat(), "--yes").exit_code == 0
    serving = start_mailer(folder, "serve", "--port", str(free_port()))
    out, err = Said(serving.stdout), Said(serving.stderr)
    try:
        wait_until_logged_as_sent(folder, serving, SmtpBackend.batch_size)
        held_on_every_connection(server, serving)
        serving.send_signal(signal.SIGTERM)
        err.wait_for("Stopping once the scheduler has recorded the messages in hand")
        assert serving.poll() is None, "it ended with messages in flight"
    finally:
        server.release()
    code = ended(serving, out, err)

    assert code == 0, f"{out}{err}"
    assert "Stopped." in str(out)
    assert "stopped as asked, the next scheduler continues it" in str(err)
    assert "Traceback" not in str(err)
    assert_in_flight_recorded_and_the_rest_sent_once(folder, server, count)
