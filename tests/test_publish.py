"""`mailer publish`: check, build and send each released, unsent commentary once; cron-safe."""

from __future__ import annotations

import datetime as dt
import json

from mailer.store.campaigns import CampaignStatus
from tests.conftest import Folder, Run
from tests.test_campaigns import outbox, subscribe

EXAMPLES = [
    "stalemate-to-escalation",
    "writing-a-commentary",
    "mediterranean-energy",
    "sahel-after-the-juntas",
]


def test_publish_run_twice_sends_each_commentary_once_in_date_order(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    folder.write(
        "commentaries/2030-01-15-tomorrow.md",
        '+++\ntitle = "Tomorrow"\nauthors = ["A"]\ndate = 2030-01-15\n+++\n\nText.\n',
    )
    first = run("publish", "--yes")
    assert first.exit_code == 0, first.output
    assert "Built 4 commentaries" in first.output
    assert len(outbox(folder)) == 4 * 6
    store = folder.newsletter().store
    campaigns = sorted(store.campaigns.all(), key=lambda c: c.id)
    assert [c.issue for c in campaigns] == EXAMPLES  # the oldest first; not the embargoed one
    assert {c.status for c in campaigns} == {CampaignStatus.DONE}
    feed = json.loads((folder.output / "feed.json").read_text(encoding="utf-8"))
    assert "Tomorrow" not in [item["title"] for item in feed["items"]]

    second = run("publish", "--yes")
    assert second.exit_code == 0, second.output
    assert "Nothing to publish: every released commentary has gone to 'commentaries'." in (
        second.output
    )
    assert len(outbox(folder)) == 4 * 6


def test_publish_leaves_what_was_sent_by_hand_and_continues_what_stopped(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    assert run("send", "sahel-after-the-juntas", "--yes").exit_code == 0
    store = folder.newsletter().store
    stopped = store.campaigns.start("stalemate-to-escalation", "commentaries", "Stalemate")
    store.campaigns.claim(stopped.id, "dead:1/0", 1, dt.timedelta(hours=1))  # then it died
    result = run("publish", "--yes")
    assert result.exit_code == 0, result.output
    issues = [c.issue for c in sorted(store.campaigns.all(), key=lambda c: c.id)]
    assert issues == ["sahel-after-the-juntas", *EXAMPLES[:3]]
    assert len(outbox(folder)) == 4 * 6


def test_publish_with_a_broken_commentary_builds_and_sends_nothing(
    folder: Folder, run: Run
) -> None:
    subscribe(folder, run)
    folder.write("commentaries/broken.md", '+++\ntitle = "T"\n+++\n\nB.\n')
    result = run("publish", "--yes")
    assert result.exit_code == 2
    assert "broken.md:1: the front matter has no authors" in result.output
    assert outbox(folder) == []
    assert not folder.output.exists()


def test_publish_asks_before_sending_unless_yes(folder: Folder, run: Run) -> None:
    subscribe(folder, run)
    result = run("publish")
    assert result.exit_code == 2
    assert "Send 4 commentaries to 'commentaries' (stalemate-to-escalation, " in result.output
    assert "add --yes" in result.output
    assert outbox(folder) == []


def test_publish_does_nothing_while_a_scheduler_acts_so_nothing_goes_twice(
    db_folder: Folder, run: Run
) -> None:
    subscribe(db_folder, run)
    newsletter = db_folder.newsletter()
    with newsletter.store.schedule.acting_alone() as alone:
        assert alone
        waiting = run("publish", "--yes")
    assert waiting.exit_code == 0, waiting.output
    assert "A scheduler or another `mailer publish` is acting; nothing was sent." in (
        waiting.output
    )
    assert outbox(db_folder) == []
    assert run("publish", "--yes").exit_code == 0
    assert len(outbox(db_folder)) == 4 * 6
    newsletter.store.close()
