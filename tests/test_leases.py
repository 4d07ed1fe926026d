"""Leases go by the database's clock, and a dead sender's batches are taken over at once.

A worker's lease on its batch says until when nobody else may take the batch. Measured by each
worker's own clock, a worker whose clock runs ahead sees every other worker's lease as run out
and sends their batches again. Measured by the database's clock (`now()`), there is one clock for
all of them. A worker that lost a lease anyway (it stalled past it) does not record or count the
batch as its own. On PostgreSQL each sending process holds a session advisory lock while it
lives, so a process that died leaves its batches to the next one at once, not when its lease
(300 s by default) runs out.
"""

from __future__ import annotations

import datetime as dt
import threading

from mailer.sending.dispatch import Dispatcher, Pace, RunReport
from mailer.sending.journal import Journal
from mailer.store.campaigns import Campaigns, DeliveryRecord, DeliveryState
from mailer.store.schema import utcnow
from tests.conftest import Folder, Run
from tests.processes import kill, run_mailer, start_mailer
from tests.smtp_server import (
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import SLUG, add_people, many, newsletter_of, send_log, use_server
from tests.test_workers import POSTGRESQL_ONLY, held_by, in_all, logged_as_sent, wait_for

AHEAD = dt.timedelta(seconds=120)


def test_a_worker_that_lost_its_lease_records_and_counts_none_of_the_batch(
    run: Run, db_folder: Folder
) -> None:
    add_people(db_folder, run, many(4))
    with newsletter_of(db_folder) as newsletter:
        campaigns = newsletter.store.campaigns
        campaign = campaigns.start(SLUG, "commentaries", "Subject")
        stalled = campaigns.claim(campaign.id, "stalled/0", 4, dt.timedelta(seconds=-1))
        taken_over = campaigns.claim(campaign.id, "other/0", 4, dt.timedelta(minutes=5))

        late = campaigns.record(
            campaign.id,
            "stalled/0",
            [DeliveryRecord(c.subscriber_id, DeliveryState.SENT, 1, "<late@x>") for c in stalled],
        )
        theirs = campaigns.record(
            campaign.id,
            "other/0",
            [DeliveryRecord(c.subscriber_id, DeliveryState.SENT, 1, "<ours@x>") for c in stalled],
        )

    assert len(stalled) == len(taken_over) == 4
    assert late == set(), "the batch was another worker's by then"
    assert theirs == {c.subscriber_id for c in taken_over}
    assert {entry.message_id for entry in send_log(db_folder).values()} == {"<ours@x>"}


@POSTGRESQL_ONLY
def test_a_worker_whose_clock_runs_ahead_takes_over_nobodys_batch(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    """Two workers on one campaign, one of them with its clock 120 s ahead and leases of 60 s:
    by its clock every lease of the other has run out, by the database's none has."""
    count = 120
    server = smtp_server(delay=0.01)
    add_people(db_folder, run, many(count))
    use_server(db_folder, server)
    reports: dict[str, RunReport] = {}
    with newsletter_of(db_folder) as newsletter:
        issue = newsletter.issue([SLUG])
        template = newsletter.message_template(newsletter.render(issue), "commentaries")
        campaign = newsletter.store.campaigns.start(SLUG, "commentaries", issue.subject)
        pace = Pace(
            concurrency=2, batch_size=20, retry_backoff=0.01, lease=dt.timedelta(seconds=60)
        )

        def ahead() -> dt.datetime:
            return utcnow() + AHEAD

        def worker(name: str, clock: object) -> None:
            assert callable(clock)
            dispatcher = Dispatcher(
                Campaigns(newsletter.store.engine, clock=clock),
                template,
                newsletter.backend_factory(),
                newsletter.outgoing,
                pace,
                name,
                Journal(db_folder.path / ".journal"),
                clock=clock,
            )
            reports[name] = dispatcher.run(campaign)

        threads = [
            threading.Thread(target=worker, args=("on-time", utcnow)),
            threading.Thread(target=worker, args=("ahead", ahead)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    arrivals = server.arrivals()
    assert set(arrivals.values()) == {1}, "a batch was sent twice"
    assert len(arrivals) == count
    assert sum(report.tally.sent for report in reports.values()) == count
    assert all(report.tally.sent for report in reports.values()), "the work was not shared"


@POSTGRESQL_ONLY
def test_a_dead_senders_batches_are_taken_over_without_waiting_out_its_lease(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    """The lease stays at its 300 s: the re-run would wait that long if it had to."""
    count = 400
    server = smtp_server(delay=0.01)
    add_people(db_folder, run, many(count))
    use_server(db_folder, server)

    first = start_mailer(db_folder, "send", SLUG, "--yes")
    wait_for(
        lambda: logged_as_sent(db_folder) > 0 and held_by(db_folder, first), "a batch", [first]
    )
    kill(first)
    assert held_by(db_folder, first), "the dead sender held nothing"

    again = run_mailer(db_folder, "send", SLUG, "--yes", timeout=200)  # the lease is 300 s

    assert again.returncode == 0, again.stdout + again.stderr
    assert in_all(again.stdout)[DeliveryState.SENT] == count
    assert set(server.arrivals()) == {address for address, _, _ in many(count)}
