"""End to end, in real time: `mailer send --at` five seconds ahead, then a real `mailer serve`
process, whose scheduler starts the campaign; the messages arrive at the SMTP test server, and a
commentary whose embargo ends at that time appears in the feed the server answers. And a real
`mailer scheduler` killed with SIGKILL in the middle of the campaign it started: the next one
continues it, losing nobody. And a subscriber who subscribes and confirms on a real `mailer
serve`: the welcome email and the latest issue arrive from its scheduler, once, even after a
restart."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import time

import pytest
import requests

from mailer.delivery.smtp import SmtpBackend
from mailer.store.campaigns import CampaignStatus
from tests.conftest import Folder, Run
from tests.processes import (
    MAILER,
    assert_nobody_lost_nor_sent_again,
    killed_part_way,
    mailer_environment,
)
from tests.smtp_server import (
    Received,
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    free_port,
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import FOUR, SLUG, add_people, many, use_server


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
    environment = mailer_environment()
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


def _all_done(folder: Folder) -> bool:
    newsletter = folder.newsletter()
    try:
        campaigns = newsletter.store.campaigns.all()
    finally:
        newsletter.store.close()
    return all(campaign.status == CampaignStatus.DONE for campaign in campaigns)


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
    environment = mailer_environment()
    command = [str(MAILER), "--config", str(folder.config_path), "scheduler"]
    first = subprocess.Popen(
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sent_before = killed_part_way(folder, first, server, count, batch)

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
    everyone = {address for address, _, _ in many(count)}
    twice = assert_nobody_lost_nor_sent_again(server.arrivals(), everyone, sent_before)
    assert len(twice) <= 2 * batch
    assert _done(folder)


NEW = "new.reader@example.net"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.mark.parametrize("welcome", [True, False])
def test_confirming_on_mailer_serve_brings_the_welcome_email_and_the_latest_issue_once(
    folder: Folder, run: Run, smtp_server: StartServer, welcome: bool
) -> None:
    server = smtp_server()
    add_people(folder, run, FOUR)
    use_server(folder, server)
    folder.configure("interval = 30", "interval = 1")
    folder.configure("send_latest = false", "send_latest = true")
    if not welcome:
        folder.configure("welcome = true", "welcome = false")
    sent = run("send", SLUG, "--yes")  # the latest issue the list received
    assert sent.exit_code == 0, sent.output
    (issue,) = {str(m.message()["Subject"]) for m in server.messages()}
    environment = mailer_environment()
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    serving = subprocess.Popen(
        [str(MAILER), "--config", str(folder.config_path), "serve", "--port", str(port)],
        env=environment,
        cwd=folder.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    browser = requests.Session()
    expected = 3 if welcome else 1  # the confirmation, the welcome, the latest issue
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine is slow, not wrong
        form = _page(browser, f"{site}/commentaries/subscribe", serving, deadline)
        answer = browser.post(
            f"{site}/commentaries/subscribe",
            data={"email": NEW, "name": "New Reader", "lists": "commentaries", "website": ""}
            | {"csrf_token": _csrf(form)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        confirmation = _wait_for(server, 1, serving, deadline)[0].message()
        text = confirmation.get_body(("plain",))
        assert text is not None
        link = re.search(
            r"https://www\.example\.org(/commentaries/confirm/\S+)", text.get_content()
        )
        assert link, "no confirmation link"
        page = _page(browser, site + link[1], serving, deadline)
        confirmed = browser.post(site + link[1], data={"csrf_token": _csrf(page)}, timeout=30)
        assert confirmed.status_code == 200 and "Subscribed" in confirmed.text
        _wait_for(server, expected, serving, deadline)
        # The server has the messages before their campaigns record them as sent; stopping
        # `mailer serve` in between leaves a message in flight, which the guarantees allow
        # to go again: this test is about what a restart does after the work is done.
        while not _all_done(folder):
            assert serving.poll() is None, serving.communicate()
            assert time.monotonic() < deadline, "the welcome campaigns never finished"
            time.sleep(0.05)
    finally:
        serving.send_signal(signal.SIGTERM)
        _, errors = serving.communicate(timeout=60)
    restarted = subprocess.run(
        [str(MAILER), "--config", str(folder.config_path), "scheduler", "--once"],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    subjects = sorted(str(m.message()["Subject"]) for m in server.messages_to(NEW))
    confirm_subject = "Confirm your subscription to IAI Commentaries"
    if welcome:
        assert subjects == sorted([confirm_subject, "Welcome to IAI Commentaries", issue])
        assert b"the welcome email to 1 new subscriber of" in errors
    else:
        assert subjects == [confirm_subject]
    assert {a: n for a, n in server.arrivals().items() if a != NEW} == {p[0]: 1 for p in FOUR}


def _page(
    browser: requests.Session, url: str, serving: subprocess.Popen[bytes], deadline: float
) -> str:
    """The page at `url` once the service answers."""
    while True:
        assert serving.poll() is None, serving.communicate()
        assert time.monotonic() < deadline, f"{url} never answered"
        try:
            answer = browser.get(url, timeout=30)
        except requests.ConnectionError:  # not listening yet
            time.sleep(0.05)
            continue
        assert answer.status_code == 200, answer.text
        return answer.text


def _csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found, "the form carries no CSRF token"
    return found[1]


def _wait_for(
    server: SmtpServer, count: int, serving: subprocess.Popen[bytes], deadline: float
) -> list[Received]:
    """The messages to NEW once `count` of them arrived."""
    while len(server.messages_to(NEW)) < count:
        assert serving.poll() is None, serving.communicate()
        assert time.monotonic() < deadline, f"{count} messages to {NEW} never arrived"
        time.sleep(0.05)
    return server.messages_to(NEW)
