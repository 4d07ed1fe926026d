"""A real `mailer` in a process of its own, as the crash, worker and `mailer serve` tests run it:
its command and environment, started or run to the end, and killed with SIGKILL part-way through
a campaign once some of it is logged as sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailer.store.campaigns import DeliveryState
from mailer.store.schema import deliveries
from tests.conftest import SECRET, Folder
from tests.smtp_server import SmtpServer
from tests.test_sending import PASSWORD, newsletter_of, send_log

MAILER = Path(sys.executable).parent / "mailer"


def mailer_command(folder: Folder, *args: str) -> list[str]:
    return [str(MAILER), "--config", str(folder.config_path), *args]


def mailer_environment() -> dict[str, str]:
    """The test's environment with the newsletter's secret and the SMTP test server's password,
    and no MAILER_CONFIG: the command names its config file."""
    environment = {**os.environ, "MAILER_SECRET": SECRET, "SMTP_PASSWORD": PASSWORD}
    environment.pop("MAILER_CONFIG", None)
    return environment


def start_mailer(folder: Folder, *args: str) -> subprocess.Popen[str]:
    """`mailer ARGS...` as a process of its own, its output captured."""
    return subprocess.Popen(
        mailer_command(folder, *args),
        env=mailer_environment(),
        cwd=folder.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_mailer(
    folder: Folder, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailer_command(folder, *args),
        env=mailer_environment(),
        cwd=folder.path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kill(process: subprocess.Popen[Any]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def finish(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running after {timeout} s: {out}{err}") from None
    return process.returncode, out, err


def wait_until_logged_as_sent(
    folder: Folder, process: subprocess.Popen[Any], count: int, deadline: float = 300
) -> None:
    """Until `count` deliveries are logged as sent by the running `process` (a `mailer send`,
    `scheduler` or `serve`); `deadline` seconds at most, generous: a loaded machine is slow, not
    wrong."""
    query = select(func.count()).where(deliveries.c.state == DeliveryState.SENT.value)
    give_up = time.monotonic() + deadline
    with newsletter_of(folder) as newsletter:
        while True:
            with newsletter.store.engine.connect() as connection:
                if connection.execute(query).scalar_one() >= count:
                    return
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < give_up, f"{count} were never logged as sent"
            time.sleep(0.01)


def killed_part_way(
    folder: Folder, process: subprocess.Popen[Any], server: SmtpServer, recipients: int, count: int
) -> set[str]:
    """SIGKILL the process sending campaign 1 to `recipients` people through `server` once
    `count` of its messages are logged as sent; the addresses logged as sent by then. The kill
    must land part-way: some logged as sent, not everyone arrived."""
    try:
        wait_until_logged_as_sent(folder, process, count)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    logged = send_log(folder)
    sent_before = {a for a, entry in logged.items() if entry.state == DeliveryState.SENT}
    assert sent_before and len(server.arrivals()) < recipients, "the kill did not land part-way"
    return sent_before


def assert_nobody_lost_nor_sent_again(
    arrivals: Counter[str], everyone: set[str], sent_before: set[str]
) -> set[str]:
    """Everyone received the issue, nobody logged as sent before a kill twice; the addresses
    that received it twice (in flight at the kill)."""
    assert set(arrivals) == everyone, f"{len(everyone - set(arrivals))} recipients lost"
    twice = {address for address, times in arrivals.items() if times > 1}
    assert not twice & sent_before, "somebody logged as sent received it again"
    return twice
