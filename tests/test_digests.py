"""Weekly digests under a fake clock: a week with and without new commentaries, a subscriber who
switches frequency between two digests, immediate sends that skip weekly subscribers, a digest
missed past the grace. The digest is `monday 08:00` in Europe/Rome (config.example.toml)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager

from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Frequency
from mailer.scheduler.digests import latest_slot
from mailer.scheduler.due import Scheduler
from mailer.store.campaigns import CampaignKind, CampaignStatus
from tests.conftest import Folder, Run
from tests.test_campaigns import outbox, subscribe
from tests.test_scheduler import FakeClock, recipients, scheduler_of
from tests.test_web import frequencies

ROME = dt.timezone(dt.timedelta(hours=1))  # Europe/Rome in January
MONDAY = dt.datetime(2030, 1, 14, 8, 0, tzinfo=ROME)
TUESDAY = MONDAY + dt.timedelta(days=1)
WEDNESDAY = MONDAY + dt.timedelta(days=2)
THURSDAY = MONDAY + dt.timedelta(days=3)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


def write_piece(folder: Folder, slug: str, title: str, at: dt.datetime) -> None:
    folder.write(
        f"commentaries/{slug}.md",
        f'+++\ntitle = "{title}"\nauthors = ["A. Author"]\ndate = {at.date().isoformat()}\n'
        f"publish_at = {at.isoformat()}\n+++\n\nThe text of {title}.\n",
    )


def choose(
    newsletter: Newsletter,
    address: str,
    frequency: Frequency,
    at: dt.datetime,
    list_name: str = "commentaries",
) -> None:
    subscriber = newsletter.store.subscribers.find(address)
    assert subscriber is not None
    newsletter.store.subscribers.set_frequency(subscriber.id, list_name, frequency, at)


def subjects(folder: Folder) -> list[str]:
    found = []
    for path in outbox(folder):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(str(message["Subject"]))
    return found


def digests(newsletter: Newsletter) -> list[str]:
    return [c.issue for c in newsletter.store.campaigns.all() if c.kind == CampaignKind.DIGEST]


@contextmanager
def reader0_weekly(folder: Folder, run: Run, clock: FakeClock) -> Iterator[Scheduler]:
    """The example's readers subscribed, reader0 on the weekly digest since MONDAY, and the
    scheduler after its first look (at `clock`'s time): the digests start next Monday."""
    subscribe(folder, run)
    with scheduler_of(folder, clock) as scheduler:
        choose(scheduler.newsletter, "reader0@example.net", Frequency.WEEKLY, MONDAY)
        scheduler.tick()
        yield scheduler


def test_a_week_with_new_commentaries_sends_one_digest_and_a_week_without_sends_none(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    clock = FakeClock(MONDAY + dt.timedelta(minutes=30))
    with scheduler_of(folder, clock) as scheduler:
        newsletter = scheduler.newsletter
        for n in (0, 1):
            choose(newsletter, f"reader{n}@example.net", Frequency.WEEKLY, MONDAY)
        scheduler.tick()  # the first look: the digests start next Monday
        write_piece(folder, "tuesday-piece", "Tuesday Piece", TUESDAY)
        write_piece(folder, "thursday-piece", "Thursday Piece", THURSDAY)
        clock.set(NEXT_MONDAY - dt.timedelta(seconds=1))
        scheduler.tick()
        assert outbox(folder) == []
        clock.set(NEXT_MONDAY)
        scheduler.tick()
        assert recipients(folder) == ["reader0@example.net", "reader1@example.net"]
        assert set(subjects(folder)) == {"IAI Commentaries: 2 commentaries this week"}
        assert digests(newsletter) == ["thursday-piece tuesday-piece"]  # the newest leads
        text = outbox(folder)[0].read_text(encoding="utf-8", errors="replace")
        assert "Thursday" in text and "Tuesday" in text
        clock.set(NEXT_MONDAY + dt.timedelta(minutes=10))
        scheduler.tick()
        clock.set(NEXT_MONDAY + dt.timedelta(days=7))
        done = scheduler.tick()
    assert len(outbox(folder)) == 2
    assert any("nothing new that week" in note.text for note in done.notes)
    assert "digest: thursday-piece tuesday-piece → commentaries" in run("campaigns").output


def test_a_subscriber_switching_frequency_between_two_digests(db_folder: Folder, run: Run) -> None:
    folder = db_folder  # on SQLite and PostgreSQL
    clock = FakeClock(MONDAY)
    with reader0_weekly(folder, run, clock) as scheduler:
        newsletter = scheduler.newsletter
        write_piece(folder, "tuesday-piece", "Tuesday Piece", TUESDAY)
        write_piece(folder, "thursday-piece", "Thursday Piece", THURSDAY)
        # reader1 had Tuesday's piece as an immediate issue, then chose weekly on Wednesday
        choose(newsletter, "reader1@example.net", Frequency.WEEKLY, WEDNESDAY)
        clock.set(NEXT_MONDAY)
        scheduler.tick()
        assert sorted(digests(newsletter)) == ["thursday-piece", "thursday-piece tuesday-piece"]
        assert recipients(folder) == ["reader0@example.net", "reader1@example.net"]
        by_issue = {
            c.issue: c.recipients
            for c in newsletter.store.campaigns.all()
            if c.kind == CampaignKind.DIGEST
        }
        assert by_issue == {"thursday-piece": 1, "thursday-piece tuesday-piece": 1}
        # reader0 goes back to every issue; the next week's digest is reader1's alone
        choose(newsletter, "reader0@example.net", Frequency.IMMEDIATE, NEXT_MONDAY)
        write_piece(folder, "next-piece", "Next Piece", NEXT_MONDAY + dt.timedelta(days=2))
        clock.set(NEXT_MONDAY + dt.timedelta(days=7))
        scheduler.tick()
    assert len(outbox(folder)) == 3
    assert recipients(folder).count("reader1@example.net") == 2
    assert recipients(folder).count("reader0@example.net") == 1


def test_every_list_with_weekly_readers_gets_its_digest_and_nobody_gets_two(
    db_folder: Folder, run: Run
) -> None:
    folder = db_folder  # on SQLite and PostgreSQL
    people = folder.write(
        "people.csv",
        "email,name,lists\n"
        "both@example.net,Bo,commentaries;events\n"
        "events@example.net,Eve,events\n"
        "mixed@example.net,Mia,commentaries;events\n"
        "late@example.net,Lee,commentaries;events\n"
        "every@example.net,Ed,commentaries;events\n",
    )
    assert run("subscribers", "import", str(people), "--create-lists").exit_code == 0
    clock = FakeClock(MONDAY)
    with scheduler_of(folder, clock) as scheduler:
        newsletter = scheduler.newsletter
        for list_name in ("commentaries", "events"):
            choose(newsletter, "both@example.net", Frequency.WEEKLY, MONDAY, list_name)
        choose(newsletter, "events@example.net", Frequency.WEEKLY, MONDAY, "events")
        choose(newsletter, "mixed@example.net", Frequency.WEEKLY, MONDAY, "events")
        choose(newsletter, "late@example.net", Frequency.WEEKLY, MONDAY)
        scheduler.tick()  # the first look, for both lists
        write_piece(folder, "tuesday-piece", "Tuesday Piece", TUESDAY)
        write_piece(folder, "thursday-piece", "Thursday Piece", THURSDAY)
        # on events, late@ chose weekly after Tuesday's piece: alone, they would get Thursday's
        choose(newsletter, "late@example.net", Frequency.WEEKLY, WEDNESDAY, "events")
        clock.set(NEXT_MONDAY)
        scheduler.tick()
        made = {
            (c.list_name, c.issue): c.recipients
            for c in newsletter.store.campaigns.all()
            if c.kind == CampaignKind.DIGEST
        }
        # both@ and late@ get the whole week once, through commentaries (the [delivery] list)
        assert made == {
            ("commentaries", "thursday-piece tuesday-piece"): 2,
            ("events", "thursday-piece tuesday-piece"): 2,
        }
        assert recipients(folder) == [
            "both@example.net",
            "events@example.net",
            "late@example.net",
            "mixed@example.net",
        ]
        clock.set(NEXT_MONDAY + dt.timedelta(days=7))
        done = scheduler.tick()  # a week with nothing new, on either list
    assert len(outbox(folder)) == 4
    assert [n.text for n in done.notes if "nothing new" in n.text] == [
        "No digest for 2030-01-28 08:00 (Europe/Rome): nothing new that week."
    ]


def test_a_list_made_after_the_first_look_has_its_digest_the_next_week(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    clock = FakeClock(MONDAY)
    with scheduler_of(folder, clock) as scheduler:
        newsletter = scheduler.newsletter
        scheduler.tick()
        clock.set(TUESDAY)
        people = folder.write("later.csv", "email,lists,frequency\nnew@example.net,events,weekly\n")
        assert run("subscribers", "import", str(people), "--create-lists").exit_code == 0
        scheduler.tick()  # events is seen: its week starts at the last digest time
        write_piece(folder, "thursday-piece", "Thursday Piece", THURSDAY)
        clock.set(NEXT_MONDAY)
        scheduler.tick()
        assert digests(newsletter) == ["thursday-piece"]
    assert recipients(folder) == ["new@example.net"]


def test_a_digest_made_before_a_crash_is_not_made_again_and_the_next_week_starts_after_it(
    folder: Folder, run: Run
) -> None:
    clock = FakeClock(MONDAY)
    with reader0_weekly(folder, run, clock) as scheduler:
        newsletter = scheduler.newsletter
        write_piece(folder, "tuesday-piece", "Tuesday Piece", TUESDAY)
        # the scheduler made the digest, then died before noting it
        made = newsletter.store.campaigns.start_digest(
            "tuesday-piece", "commentaries", "Digest", NEXT_MONDAY.astimezone(dt.UTC), (None, None)
        )
        assert made is not None
        clock.set(NEXT_MONDAY + dt.timedelta(minutes=1))
        scheduler.tick()
        write_piece(folder, "later-piece", "Later Piece", NEXT_MONDAY + dt.timedelta(days=1))
        clock.set(NEXT_MONDAY + dt.timedelta(days=7))
        scheduler.tick()
        assert digests(newsletter) == ["later-piece", "tuesday-piece"]  # newest first


def test_immediate_sends_skip_weekly_subscribers(folder: Folder, run: Run) -> None:
    subscribe(folder, run)
    newsletter = folder.newsletter()
    choose(newsletter, "reader3@example.net", Frequency.WEEKLY, MONDAY)
    asked = run("send")
    assert "to 5 active subscribers of 'commentaries' (weekly ones aside)" in asked.output
    result = run("send", "--yes")
    assert result.exit_code == 0, result.output
    assert "reader3@example.net" not in recipients(folder)
    assert len(outbox(folder)) == 5


def test_a_dry_run_and_the_confirmation_count_whom_the_send_goes_to(
    db_folder: Folder, run: Run
) -> None:
    folder = db_folder  # on SQLite and PostgreSQL
    subscribe(folder, run)
    newsletter = folder.newsletter()
    for n in (1, 4):
        choose(newsletter, f"reader{n}@example.net", Frequency.WEEKLY, MONDAY)
    dry = run("send", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "built 4 messages for the active subscribers of 'commentaries', weekly ones" in (
        dry.output
    )
    assert "to 4 active subscribers of 'commentaries' (weekly ones aside)" in run("send").output
    assert run("send", "--yes").exit_code == 0
    assert len(outbox(folder)) == 4
    newsletter.store.close()


def test_a_digest_missed_past_the_grace_is_reported_and_the_next_one_holds_its_week(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    clock = FakeClock(MONDAY)
    with scheduler_of(folder, clock) as scheduler:
        choose(scheduler.newsletter, "reader0@example.net", Frequency.WEEKLY, MONDAY)
        scheduler.tick()
        write_piece(folder, "tuesday-piece", "Tuesday Piece", TUESDAY)
        clock.set(NEXT_MONDAY + dt.timedelta(hours=7))  # nothing ran on Monday morning
        missed = scheduler.tick()
        assert outbox(folder) == []
        assert any("was not sent" in warning for warning in missed.warnings)
        write_piece(folder, "later-piece", "Later Piece", NEXT_MONDAY + dt.timedelta(days=1))
        clock.set(NEXT_MONDAY + dt.timedelta(days=7))
        scheduler.tick()
        assert digests(scheduler.newsletter) == ["later-piece tuesday-piece"]
    assert recipients(folder) == ["reader0@example.net"]
    campaign = folder.newsletter().store.campaigns.get(1)
    assert campaign is not None and campaign.status == CampaignStatus.DONE


def test_a_frequency_column_in_an_import_makes_weekly_subscribers(folder: Folder, run: Run) -> None:
    path = folder.write(
        "people.csv",
        "email,name,lists,frequency\n"
        "weekly@example.net,Wendy,commentaries,weekly\n"
        "daily@example.net,Dan,commentaries,\n"
        "wrong@example.net,Walt,commentaries,monthly\n"
        "pair@example.net,Pat,commentaries,weekly;immediate\n",
    )
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "people.csv:4: the frequency 'monthly' is not one of: immediate, weekly" in (
        result.output
    )
    assert (
        "people.csv:5: the frequency 'weekly;immediate' gives 2 frequencies but the lists column "
        "names 1; give one for all the lists, or one per list in the order of the lists column"
    ) in " ".join(result.output.split())
    newsletter = folder.newsletter()
    assert frequencies(newsletter, "weekly@example.net") == {"commentaries": Frequency.WEEKLY}
    assert frequencies(newsletter, "daily@example.net") == {"commentaries": Frequency.IMMEDIATE}
    shown = json.loads(run("subscribers", "show", "weekly@example.net").output)
    assert (shown["frequencies"], shown["language"]) == ({"commentaries": "weekly"}, "")
    again = folder.write(
        "again.csv", "email,name,lists,frequency\ndaily@example.net,Dan,Commentaries,weekly\n"
    )
    assert run("subscribers", "import", str(again)).exit_code == 0
    assert frequencies(newsletter, "daily@example.net") == {"commentaries": Frequency.WEEKLY}
    assert run("send", "--yes").exit_code == 0
    assert outbox(folder) == []  # both weekly now: the immediate issue has nobody to go to


def test_an_unreadable_digest_time_or_subject_is_a_config_error(folder: Folder, run: Run) -> None:
    folder.configure('digest = "monday 08:00"', 'digest = "someday 25:00"')
    folder.configure('"{name}: {count} commentaries this week"', '"{name}: {week}"')
    result = run("check")
    assert result.exit_code == 2
    assert "schedule.digest: 'someday 25:00' is not a day and time" in result.output
    assert "schedule.digest_subject: '{name}: {week}' is not a subject template" in result.output


def test_the_digest_time_is_the_latest_monday_eight_in_the_newsletters_zone() -> None:
    rome = zoneinfo.ZoneInfo("Europe/Rome")
    at_eight = dt.datetime(2030, 1, 14, 7, 0, tzinfo=dt.UTC)  # Monday 08:00 in Rome (CET)
    assert latest_slot("monday 08:00", rome, at_eight) == at_eight
    a_second_before = at_eight - dt.timedelta(seconds=1)
    assert latest_slot("monday 08:00", rome, a_second_before) == at_eight - dt.timedelta(days=7)
    summer = dt.datetime(2030, 7, 3, 12, 0, tzinfo=dt.UTC)  # a Wednesday; CEST is UTC+2
    assert latest_slot("Monday 08:00", rome, summer) == dt.datetime(2030, 7, 1, 6, 0, tzinfo=dt.UTC)
