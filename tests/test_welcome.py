"""The welcome email: confirming owes it in the database, the scheduler's next look sends it as a
campaign (the send engine's retries and send log), once, whatever restarts; with send_latest the
latest issue the list received follows it. Messages go to the outbox here, under a fake clock, on
SQLite and PostgreSQL; tests/test_scheduler_serve.py goes through a real `mailer serve`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Status
from mailer.core.tokens import Links, Purpose
from mailer.scheduler.due import Scheduler
from mailer.store.campaigns import CampaignKind, CampaignStatus
from mailer.store.subscribing import confirm_subscription
from tests.conftest import SECRET, Folder, Run
from tests.test_campaigns import outbox, subscribe
from tests.test_scheduler import FakeClock

SITE = "https://www.example.org/commentaries/"
NEW = "new.reader@example.net"


@contextmanager
def scheduler_of(folder: Folder) -> Iterator[Scheduler]:
    """A scheduler as a fresh process would have it: its own newsletter and database engine."""
    clock = FakeClock(dt.datetime.now(dt.UTC))  # what the store writes goes by the real one
    newsletter = Newsletter.load(folder.config_path, {"MAILER_SECRET": SECRET}, clock)
    try:
        yield Scheduler(newsletter)
    finally:
        newsletter.store.close()


def messages(folder: Folder) -> list[EmailMessage]:
    found = []
    for path in outbox(folder):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def to(folder: Folder, address: str) -> list[str]:
    """The subjects of the messages to `address`, sorted."""
    found = [m for m in messages(folder) if m["To"].addresses[0].addr_spec == address]
    return sorted(str(m["Subject"]) for m in found)


def kinds(folder: Folder) -> list[tuple[CampaignKind, CampaignStatus, int]]:
    """Each campaign's kind, status and recipients, the first made first."""
    newsletter = folder.newsletter()
    try:
        made = newsletter.store.campaigns.all()
    finally:
        newsletter.store.close()
    return [(c.kind, c.status, c.recipients) for c in reversed(made)]


def confirm(folder: Folder, run: Run, address: str = NEW) -> int:
    """Subscribe `address` pending, then confirm it as the confirmation page's button does."""
    added = run("subscribers", "add", address, "--list", "commentaries", "--status", "pending")
    assert added.exit_code == 0, added.output
    newsletter = folder.newsletter()
    try:
        found = newsletter.store.subscribers.find(address)
        assert found is not None
        welcome = newsletter.config.subscribe.welcome
        assert confirm_subscription(newsletter.store, found.id, "192.0.2.1", welcome)
        assert not confirm_subscription(newsletter.store, found.id, "192.0.2.1", welcome)
    finally:
        newsletter.store.close()
    return found.id


def test_the_next_look_after_confirming_sends_the_welcome_email_once(
    db_folder: Folder, run: Run
) -> None:
    subscriber_id = confirm(db_folder, run)
    assert to(db_folder, NEW) == []  # never from the confirmation itself

    with scheduler_of(db_folder) as scheduler:
        done = scheduler.tick()
    assert to(db_folder, NEW) == ["Welcome to IAI Commentaries"]
    assert any("the welcome email to 1 new subscriber of" in note.text for note in done.notes)
    with scheduler_of(db_folder) as scheduler:  # a restarted scheduler
        scheduler.tick()
    assert len(messages(db_folder)) == 1

    (message,) = messages(db_folder)
    text = message.get_body(("plain",))
    assert text is not None
    content = str(text.get_content())
    assert "Thank you for confirming your subscription" in content
    assert f"{SITE}archive/" in content
    links = Links(SITE, SECRET)
    for purpose in (Purpose.PREFERENCES, Purpose.UNSUBSCRIBE):
        found = re.search(rf"{SITE}{purpose.value}/(\S+)", content)
        assert found, purpose
        assert links.read(purpose, found[1]).subscriber_id == subscriber_id
    assert "List-Unsubscribe-Post" in message
    assert kinds(db_folder) == [(CampaignKind.WELCOME, CampaignStatus.DONE, 1)]


def test_a_welcome_made_before_a_crash_is_sent_once_by_the_next_scheduler(
    folder: Folder, run: Run
) -> None:
    subscriber_id = confirm(folder, run)
    newsletter = folder.newsletter()
    try:  # what a scheduler killed right after making the campaign left behind
        campaigns = newsletter.store.campaigns
        assert campaigns.welcomes_due("commentaries") == {("commentaries", ""): [subscriber_id]}
        (made,) = campaigns.start_welcome("commentaries", [subscriber_id], "Welcome", None)
        assert campaigns.welcomes_due("commentaries") == {}
        assert campaigns.start_welcome("commentaries", [subscriber_id], "Welcome", None) == []
    finally:
        newsletter.store.close()

    with scheduler_of(folder) as scheduler:
        done = scheduler.tick()
        scheduler.tick()
    assert to(folder, NEW) == ["Welcome to IAI Commentaries"]
    assert any(f"Continuing campaign {made.id}" in note.text for note in done.notes)


def test_send_latest_follows_the_welcome_with_the_latest_issue_the_list_received(
    folder: Folder, run: Run
) -> None:
    folder.configure("send_latest = false", "send_latest = true")
    subscribe(folder, run)
    assert run("send", "--yes").exit_code == 0
    issue = to(folder, "reader0@example.net")
    assert len(issue) == 1
    before = len(messages(folder))
    confirm(folder, run)

    with scheduler_of(folder) as scheduler:
        scheduler.tick()
        scheduler.tick()

    assert to(folder, NEW) == sorted(["Welcome to IAI Commentaries", issue[0]])
    assert len(messages(folder)) == before + 2  # the list's readers got nothing again
    assert kinds(folder) == [  # the welcome first, then the latest issue
        (CampaignKind.ISSUE, CampaignStatus.DONE, 6),
        (CampaignKind.WELCOME, CampaignStatus.DONE, 1),
        (CampaignKind.LATEST, CampaignStatus.DONE, 1),
    ]
    listed = run("campaigns").output
    assert "the welcome email → commentaries" in listed
    assert re.search(r"done .* to new subscribers: [a-z-]+ → commentaries\n", listed), listed


def test_send_latest_with_nothing_sent_yet_sends_the_welcome_alone(
    folder: Folder, run: Run
) -> None:
    folder.configure("send_latest = false", "send_latest = true")
    confirm(folder, run)
    with scheduler_of(folder) as scheduler:
        scheduler.tick()
    assert to(folder, NEW) == ["Welcome to IAI Commentaries"]


def test_with_welcome_false_confirming_sends_nothing(folder: Folder, run: Run) -> None:
    folder.configure("welcome = true", "welcome = false")
    confirm(folder, run)
    with scheduler_of(folder) as scheduler:
        scheduler.tick()
    assert messages(folder) == []
    newsletter = folder.newsletter()
    try:
        found = newsletter.store.subscribers.find(NEW)
        assert found is not None and found.status == Status.ACTIVE
        assert newsletter.store.campaigns.all() == []
    finally:
        newsletter.store.close()


def test_someone_who_left_before_the_look_is_not_welcomed(folder: Folder, run: Run) -> None:
    confirm(folder, run)
    assert run("subscribers", "remove", NEW).exit_code == 0
    with scheduler_of(folder) as scheduler:
        scheduler.tick()
    assert messages(folder) == []


def test_the_welcome_email_is_in_the_newsletters_language(folder: Folder, run: Run) -> None:
    folder.configure('language = "en-GB"', 'language = "it"')
    confirm(folder, run)
    with scheduler_of(folder) as scheduler:
        scheduler.tick()
    (message,) = messages(folder)
    assert str(message["Subject"]) == "Ti diamo il benvenuto in IAI Commentaries"
    text = message.get_body(("plain",))
    assert text is not None and "Grazie per aver confermato" in str(text.get_content())


def test_each_subscriber_is_welcomed_in_the_language_they_read(folder: Folder, run: Run) -> None:
    italian = confirm(folder, run, "lettrice@example.it")
    confirm(folder, run)
    newsletter = folder.newsletter()
    try:
        newsletter.store.subscribers.set_language(italian, "it")
    finally:
        newsletter.store.close()
    with scheduler_of(folder) as scheduler:
        scheduler.tick()
    assert to(folder, "lettrice@example.it") == ["Ti diamo il benvenuto in IAI Commentaries"]
    assert to(folder, NEW) == ["Welcome to IAI Commentaries"]
