"""The scheduler under a fake clock: scheduled campaigns coming due, embargoes lifting, restarts
before and after the due time, two schedulers at once, missed work past the grace, auto_publish.

Messages go to the outbox (real files); the database is real (SQLite, and PostgreSQL where two
schedulers compete). No test sleeps: the clock is moved by hand and each look is one `tick()`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mailer.app.newsletter import Newsletter
from mailer.scheduler.due import Scheduler, Tick
from mailer.store.campaigns import Campaign, CampaignStatus, DeliveryState
from tests.conftest import SECRET, Folder, Run
from tests.test_campaigns import outbox, subscribe

SLUG = "stalemate-to-escalation"
DUE = dt.datetime(2030, 1, 15, 8, 0, tzinfo=dt.UTC)
"""09:00 in Rome, the newsletter's time zone, when the scheduled campaigns below are due."""


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DUE - dt.timedelta(hours=1))


@contextmanager
def scheduler_of(folder: Folder, clock: FakeClock) -> Iterator[Scheduler]:
    """A scheduler as a fresh process would have it: its own newsletter and database engine."""
    newsletter = Newsletter.load(folder.config_path, {"MAILER_SECRET": SECRET}, clock=clock)
    try:
        yield Scheduler(newsletter)
    finally:
        if "store" in newsletter.__dict__:
            newsletter.store.close()


def recipients(folder: Folder) -> list[str]:
    """Who the outbox holds a message for, one line per message."""
    found = []
    for path in outbox(folder):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(email.utils.parseaddr(str(message["To"]))[1])
    return sorted(found)


def campaign(folder: Folder, campaign_id: int = 1) -> Campaign:
    newsletter = folder.newsletter()
    try:
        found = newsletter.store.campaigns.get(campaign_id)
    finally:
        newsletter.store.close()
    assert found is not None
    return found


def schedule(run: Run, *slugs: str, at: str = "2030-01-15 09:00") -> str:
    result = run("send", *(slugs or (SLUG,)), "--at", at, "--yes")
    assert result.exit_code == 0, result.output
    return result.output


# A schedule coming due -------------------------------------------------------------------------


def test_a_scheduled_campaign_starts_when_due_and_not_before(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    said = schedule(run)
    assert "Campaign 1 is scheduled for 2030-01-15 09:00 (Europe/Rome)" in said
    listed = run("campaigns").output
    assert "scheduled" in listed and "2030-01-15 09:00" in listed
    with scheduler_of(folder, clock) as scheduler:
        clock.set(DUE - dt.timedelta(seconds=1))
        scheduler.tick()
        assert outbox(folder) == []
        assert campaign(folder).status == CampaignStatus.SCHEDULED
        clock.set(DUE)
        done = scheduler.tick()
    assert campaign(folder).status == CampaignStatus.DONE
    assert recipients(folder) == [f"reader{n}@example.net" for n in range(6)]
    assert any("Started campaign 1" in note.text for note in done.notes)


def test_recipients_are_fixed_when_it_starts_not_when_it_is_scheduled(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    assert campaign(folder).recipients == 0
    assert run("subscribers", "add", "late@example.net", "--list", "commentaries").exit_code == 0
    assert run("subscribers", "remove", "reader0@example.net").exit_code == 0
    clock.set(DUE)
    with scheduler_of(folder, clock) as scheduler:
        scheduler.tick()
    assert "late@example.net" in recipients(folder)
    assert "reader0@example.net" not in recipients(folder)
    assert campaign(folder).recipients == 6


def test_a_cancelled_campaign_does_not_start_and_a_rescheduled_one_waits(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    schedule(run, "mediterranean-energy")
    assert run("campaigns", "cancel", "1", "--yes").exit_code == 0
    moved = run("campaigns", "reschedule", "2", "--at", "2030-01-16T09:00+01:00")
    assert moved.exit_code == 0, moved.output
    assert "scheduled for 2030-01-16 09:00 (Europe/Rome)" in moved.output
    with scheduler_of(folder, clock) as scheduler:
        clock.set(DUE + dt.timedelta(hours=1))
        scheduler.tick()
        assert outbox(folder) == []
        clock.set(DUE + dt.timedelta(days=1))
        scheduler.tick()
    assert campaign(folder, 1).status == CampaignStatus.CANCELLED
    assert campaign(folder, 2).status == CampaignStatus.DONE
    assert len(outbox(folder)) == 6


def test_a_past_or_unreadable_time_is_refused(folder: Folder, run: Run) -> None:
    past = run("send", SLUG, "--at", "2020-01-01 09:00", "--yes")
    assert past.exit_code == 2
    assert "--at 2020-01-01 09:00 (Europe/Rome) is past" in past.output
    unreadable = run("send", SLUG, "--at", "tomorrow at nine", "--yes")
    assert unreadable.exit_code == 2
    assert "'tomorrow at nine' is not a time; write it like 2026-12-02 09:00" in unreadable.output
    assert run("campaigns").output.startswith("No campaign yet")


def test_a_send_of_an_embargoed_commentary_goes_no_earlier_than_the_embargo(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    folder.write(
        "commentaries/later.md",
        '+++\ntitle = "Later"\nauthors = ["A"]\ndate = 2030-01-15\n'
        "publish_at = 2030-01-15T12:00:00+01:00\n+++\n\nText.\n",
    )
    said = schedule(run, "later")
    assert "'later' is embargoed until 2030-01-15 12:00 (Europe/Rome)" in said
    assert "scheduled for 2030-01-15 12:00" in said
    unasked = run("send", "later", "--list", "commentaries", "--yes")  # no --at: at the embargo
    assert unasked.exit_code == 2, unasked.output
    assert "campaign 1 of this issue to 'commentaries' is scheduled for" in unasked.output
    with scheduler_of(folder, clock) as scheduler:
        clock.set(DUE)
        scheduler.tick()
        assert outbox(folder) == []
        clock.set(dt.datetime(2030, 1, 15, 11, 0, tzinfo=dt.UTC))
        scheduler.tick()
    assert len(outbox(folder)) == 6


# Restarts ----------------------------------------------------------------------------------------


def test_a_scheduler_restarted_before_the_due_time_sends_at_it(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    with scheduler_of(folder, clock) as first:
        first.tick()  # then the process is killed: nothing of it survives but the database
    assert outbox(folder) == []
    clock.set(DUE + dt.timedelta(minutes=20))
    with scheduler_of(folder, clock) as second:
        second.tick()
    assert len(outbox(folder)) == 6


def test_a_scheduler_killed_in_the_middle_of_a_campaign_is_continued_by_the_next(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    clock.set(DUE)
    newsletter = folder.newsletter()
    started = newsletter.store.campaigns.begin(1)  # the dead scheduler started it…
    assert started is not None and started.recipients == 6
    claimed = newsletter.store.campaigns.claim(1, "dead:1/0", 2, dt.timedelta(hours=1))
    assert len(claimed) == 2  # …and died handing two messages over
    newsletter.store.close()
    clock.set(dt.datetime.now(dt.UTC))  # the send log's times are the database's, real ones
    with scheduler_of(folder, clock) as scheduler:
        done = scheduler.tick()
    assert any("Continuing campaign 1" in note.text for note in done.notes)
    assert recipients(folder) == [f"reader{n}@example.net" for n in range(6)]
    assert campaign(folder).status == CampaignStatus.DONE


def test_a_campaign_stopped_longer_ago_than_the_grace_is_paused_not_continued(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    newsletter = folder.newsletter()
    assert newsletter.store.campaigns.begin(1) is not None  # then the scheduler died
    newsletter.store.close()
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(hours=7))
    with scheduler_of(folder, clock) as scheduler:
        done = scheduler.tick()
    assert outbox(folder) == []
    stopped = campaign(folder)
    assert stopped.status == CampaignStatus.PAUSED
    assert "past the grace" in stopped.status_detail
    assert any("`mailer campaigns resume 1` sends the rest" in w for w in done.warnings)
    resumed = run("campaigns", "resume", "1", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert len(outbox(folder)) == 6


def test_work_missed_past_the_grace_is_marked_and_reported_never_sent(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    schedule(run, "mediterranean-energy", at="2030-01-15 13:30")
    clock.set(DUE + dt.timedelta(hours=6, minutes=1))  # grace: 6 h
    with scheduler_of(folder, clock) as scheduler:
        done = scheduler.tick()
    missed = campaign(folder, 1)
    assert missed.status == CampaignStatus.MISSED
    assert "due 2030-01-15 09:00 (Europe/Rome), but no scheduler ran until" in missed.status_detail
    assert any("Campaign 1" in warning for warning in done.warnings)
    assert campaign(folder, 2).status == CampaignStatus.DONE  # within the grace: sent late
    assert len(outbox(folder)) == 6
    assert "missed" in run("campaigns").output
    again = run("send", SLUG, "--yes")
    assert again.exit_code == 2
    assert "missed its time" in again.output


def test_the_grace_is_a_setting(folder: Folder, run: Run, clock: FakeClock) -> None:
    folder.configure("grace = 6", "grace = 0.5")
    subscribe(folder, run)
    schedule(run)
    clock.set(DUE + dt.timedelta(minutes=31))
    with scheduler_of(folder, clock) as scheduler:
        scheduler.tick()
    assert campaign(folder).status == CampaignStatus.MISSED
    assert outbox(folder) == []


# Two schedulers ----------------------------------------------------------------------------------


def test_two_schedulers_at_once_send_each_message_once(
    db_folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(db_folder, run)
    schedule(run)
    clock.set(DUE)
    with scheduler_of(db_folder, clock) as one, scheduler_of(db_folder, clock) as other:
        with one.newsletter.store.schedule.acting_alone() as alone:
            assert alone
            assert other.tick().acted is False  # the other holds the lock: it does nothing
        assert outbox(db_folder) == []
        start = threading.Barrier(2)
        ticks: list[Tick] = []

        def look(scheduler: Scheduler) -> None:
            start.wait(timeout=30)
            ticks.append(scheduler.tick())

        threads = [threading.Thread(target=look, args=(s,)) for s in (one, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert len(ticks) == 2
    assert recipients(db_folder) == [f"reader{n}@example.net" for n in range(6)]
    counts = db_folder.newsletter().store.campaigns.counts(1)
    assert counts[DeliveryState.SENT] == 6


# Embargoes ---------------------------------------------------------------------------------------


def test_the_feeds_are_rebuilt_when_an_embargo_lifts(folder: Folder, clock: FakeClock) -> None:
    folder.write(
        "commentaries/at-nine.md",
        '+++\ntitle = "At Nine"\nauthors = ["A"]\ndate = 2030-01-15\n'
        "publish_at = 2030-01-15T09:00:00+01:00\n+++\n\nText.\n",
    )

    def titles() -> list[str]:
        feed = json.loads((folder.output / "feed.json").read_text(encoding="utf-8"))
        return [item["title"] for item in feed["items"]]

    with scheduler_of(folder, clock) as scheduler:
        scheduler.tick()
        assert "At Nine" not in titles()
        clock.set(DUE - dt.timedelta(seconds=1))
        assert scheduler.tick().notes == []  # nothing new: no build
        clock.set(DUE)
        done = scheduler.tick()
    assert titles()[0] == "At Nine"
    assert any("out of embargo: at-nine" in note.text for note in done.notes)


def test_the_first_look_builds_and_counts_what_it_built_in_words(
    folder: Folder, clock: FakeClock
) -> None:
    kept = folder.path / "commentaries" / "2025-09-17-stalemate-to-escalation.md"
    for path in (folder.path / "commentaries").glob("*.md"):
        if path != kept:
            path.unlink()
    with scheduler_of(folder, clock) as scheduler:
        done = scheduler.tick()
    assert [note.text for note in done.notes] == ["Built the feeds and archive (1 commentary)."]


def test_a_look_parses_only_the_commentaries_changed_since_the_last(
    folder: Folder, clock: FakeClock
) -> None:
    """Every look reads the folder (to see whether an embargo lifted), but through the shelf:
    an unchanged file is not parsed again, and a changed one is seen at the very next look."""
    path = folder.write(
        "commentaries/at-nine.md",
        '+++\ntitle = "At Nine"\nauthors = ["A"]\ndate = 2030-01-15\n'
        "publish_at = 2030-01-15T11:00:00+01:00\n+++\n\nText.\n",
    )
    files = sorted(folder.commentaries.glob("*.md"))
    with scheduler_of(folder, clock) as scheduler:
        shelf = scheduler.newsletter.shelf
        scheduler.tick()  # the first look builds: every file parsed once
        parsed = shelf.parsed
        kept = [shelf.read(f)[0] for f in files]
        clock.set(DUE)
        assert scheduler.tick().notes == []
        assert shelf.parsed == parsed  # nothing changed: nothing parsed
        assert all(shelf.read(f)[0] is was for f, was in zip(files, kept, strict=True))
        path.write_text(
            path.read_text(encoding="utf-8").replace("T11:00", "T09:00"), encoding="utf-8"
        )
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # a coarse clock
        done = scheduler.tick()
        assert any("out of embargo: at-nine" in note.text for note in done.notes)
        assert shelf.parsed == parsed + 2  # at-nine alone: for the look, and whole to build
        assert all(shelf.read(f)[0] is was for f, was in zip(files, kept, strict=True) if f != path)


# auto_publish ------------------------------------------------------------------------------------


def test_auto_publish_sends_what_comes_out_of_embargo_and_leaves_the_backlog(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    folder.configure("auto_publish = false", "auto_publish = true")
    subscribe(folder, run)
    folder.write(
        "commentaries/at-nine.md",
        '+++\ntitle = "At Nine"\nauthors = ["A"]\ndate = 2030-01-15\n'
        "publish_at = 2030-01-15T09:00:00+01:00\n+++\n\nText.\n",
    )
    with scheduler_of(folder, clock) as scheduler:
        scheduler.tick()  # turned on now: the example commentaries, older, are not sent
        scheduler.tick()
        assert outbox(folder) == []
        clock.set(DUE + dt.timedelta(seconds=30))
        scheduler.tick()
        assert len(outbox(folder)) == 6
        scheduler.tick()
    assert len(outbox(folder)) == 6
    assert campaign(folder).issue == "at-nine"


def test_a_campaign_cancelled_before_its_time_can_be_scheduled_again_not_resumed(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    assert run("campaigns", "cancel", "1", "--yes").exit_code == 0
    resumed = run("campaigns", "resume", "1", "--yes")
    assert resumed.exit_code == 2
    assert "campaign 1 has not started; `mailer campaigns reschedule 1 --at …`" in resumed.output
    again = run("campaigns", "reschedule", "1", "--at", "2030-01-15 10:00")
    assert again.exit_code == 0, again.output
    clock.set(DUE + dt.timedelta(hours=1))
    with scheduler_of(folder, clock) as scheduler:
        scheduler.tick()
    assert campaign(folder).status == CampaignStatus.DONE
    assert len(outbox(folder)) == 6
    late = run("campaigns", "reschedule", "1", "--at", "2030-01-16 10:00")
    assert late.exit_code == 2 and "campaign 1 has started (done)" in late.output


def test_mailer_scheduler_once_does_what_is_due_and_exits_1_on_missed_work(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    store = folder.newsletter().store
    now = dt.datetime.now(dt.UTC)
    store.campaigns.schedule(SLUG, "commentaries", "Long ago", now - dt.timedelta(hours=7))
    store.campaigns.schedule("mediterranean-energy", "commentaries", "Now", now)
    result = run("scheduler", "--once")
    assert result.exit_code == 1, result.output
    assert campaign(folder, 1).status == CampaignStatus.MISSED
    assert campaign(folder, 2).status == CampaignStatus.DONE
    assert len(outbox(folder)) == 6
    quiet = run("scheduler", "--once")
    assert quiet.exit_code == 0, quiet.output
    assert "Nothing is due." in quiet.output


def test_scheduling_an_issue_that_went_sends_nothing_and_says_when(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    assert run("send", SLUG, "--yes").exit_code == 0
    again = run("send", SLUG, "--at", "2030-01-15 09:00", "--yes")
    assert again.exit_code == 0, again.output
    assert "This issue went to 'commentaries' on" in again.output
    assert [c.id for c in folder.newsletter().store.campaigns.all()] == [1]


def test_a_campaign_whose_commentary_is_gone_is_reported_and_holds_up_no_other(
    folder: Folder, run: Run, clock: FakeClock
) -> None:
    subscribe(folder, run)
    schedule(run)
    schedule(run, "mediterranean-energy")
    (folder.commentaries / "2025-09-17-stalemate-to-escalation.md").unlink()
    clock.set(DUE)
    with scheduler_of(folder, clock) as scheduler:
        done = scheduler.tick()
    assert campaign(folder, 1).status == CampaignStatus.SCHEDULED  # tried again at each look
    assert campaign(folder, 2).status == CampaignStatus.DONE
    assert any(
        "Campaign 1" in w and "no commentary with the slug 'stalemate-to-escalation'" in w
        for w in done.warnings
    )
