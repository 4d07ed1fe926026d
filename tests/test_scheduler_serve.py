"""End to end, in real time: `mailer send --at` five seconds ahead, then a real `mailer serve`
process, whose scheduler starts the campaign; the messages arrive at the SMTP test server, and a
commentary whose embargo ends at that time appears in the feed the server answers. And a real
`mailer scheduler` killed with SIGKILL in the middle of the campaign it started: the next one
continues it, losing nobody."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from mailer.delivery.smtp import SmtpBackend
from mailer.store.campaigns import CampaignStatus, DeliveryState
from tests.conftest import SECRET, Folder, Run
from tests.smtp_server import (
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_crash import wait_until_logged_as_sent
from tests.test_sending import FOUR, PASSWORD, SLUG, add_people, many, send_log, use_server

MAILER = Path(sys.executable).parent / "mailer"


def test_a_send_scheduled_five_seconds_ahead_is_delivered_by_mailer_serve(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    folder.configure("interval = 30", "interval = 1")
    now = dt.datetime.now(dt.UTC)
    at = now.replace(microsecond=0) + dt.timedelta(seconds=5)
    # The server stamps arrivals with the monotonic clock; the scheduler reads the wall clock.
    due = time.monotonic() + (at - now).total_seconds()
    scheduled = run("send", SLUG, "--at", at.isoformat(), "--yes")
    assert scheduled.exit_code == 0, scheduled.output
    folder.write(
        "commentaries/on-time.md",
        f'+++\ntitle = "On Time"\nauthors = ["A"]\ndate = {at.date().isoformat()}\n'
        f"publish_at = {at.isoformat()}\n+++\n\nText.\n",
    )
    environment = {**os.environ, "MAILER_SECRET": SECRET, "SMTP_PASSWORD": PASSWORD}
    environment.pop("MAILER_CONFIG", None)
    port = free_port()
    serving = subprocess.Popen(
        [str(MAILER), "--config", str(folder.config_path), "serve", "--port", str(port)],
        env=environment,
        cwd=folder.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine is slow, not wrong
        while not _done(folder):
            assert serving.poll() is None, serving.communicate()
            assert time.monotonic() < deadline, "the scheduled campaign never finished"
            time.sleep(0.05)
        while "On Time" not in _feed_titles(port):
            assert serving.poll() is None, serving.communicate()
            assert time.monotonic() < deadline, "the embargo lifted but the feed never showed it"
            time.sleep(0.05)
    finally:
        serving.send_signal(signal.SIGTERM)
        _, errors = serving.communicate(timeout=60)
    arrived = server.messages()
    assert sorted(r for m in arrived for r in m.recipients) == sorted(p[0] for p in FOUR)
    # Half a second between the two clocks' readings; what matters: nothing went seconds early.
    assert min(m.at for m in arrived) >= due - 0.5, "sent before its time"
    assert b"this scheduler acts on the due work" in errors
    assert b"Started campaign 1" in errors


def _feed_titles(port: int) -> list[str]:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/commentaries/feed.json", timeout=10)
    except requests.ConnectionError:  # not listening yet
        return []
    if answer.status_code != 200:  # not built yet
        return []
    return [item["title"] for item in answer.json()["items"]]


def _done(folder: Folder) -> bool:
    newsletter = folder.newsletter()
    try:
        campaign = newsletter.store.campaigns.get(1)
    finally:
        newsletter.store.close()
    return campaign is not None and campaign.status == CampaignStatus.DONE


def test_a_scheduler_killed_during_the_campaign_it_started_is_continued_by_the_next(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    batch = SmtpBackend.batch_size
    count = 3 * 2 * batch  # two connections: some batches recorded, some held, some untouched
    server = smtp_server(delay=0.001)
    add_people(folder, run, many(count))
    use_server(folder, server, concurrency=2, max_attempts=5)
    folder.configure("interval = 30", "interval = 1")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert run("send", SLUG, "--at", at.isoformat(), "--yes").exit_code == 0
    environment = {**os.environ, "MAILER_SECRET": SECRET, "SMTP_PASSWORD": PASSWORD}
    environment.pop("MAILER_CONFIG", None)
    command = [str(MAILER), "--config", str(folder.config_path), "scheduler"]
    first = subprocess.Popen(
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_logged_as_sent(folder, first, batch)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    logged = send_log(folder)
    sent_before = {a for a, entry in logged.items() if entry.state == DeliveryState.SENT}
    assert sent_before and len(server.arrivals()) < count, "the kill did not land part-way"

    second = subprocess.run(
        [*command, "--once"],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Continuing campaign 1" in second.stderr
    arrivals = server.arrivals()
    assert set(arrivals) == {address for address, _, _ in many(count)}, "somebody was lost"
    twice = {address for address, times in arrivals.items() if times > 1}
    assert not twice & sent_before, "somebody logged as sent received it again"
    assert len(twice) <= 2 * batch
    assert _done(folder)
