"""The sending journal: a line per message as soon as its fate is known, folded after a crash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailer.sending.journal import Journal
from mailer.store.campaigns import DeliveryRecord, DeliveryState

SENT = DeliveryRecord(7, DeliveryState.SENT, 1, message_id="<a@example.org>")
RETRY = DeliveryRecord(
    8,
    DeliveryState.QUEUED,
    2,
    error="451 busy",
    not_before=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
)
BOUNCED = DeliveryRecord(9, DeliveryState.FAILED, 1, error="550 5.1.1 no such user", bounced=True)
UNCERTAIN = DeliveryRecord(
    10, DeliveryState.UNCERTAIN, 1, error="no answer came", batch="mailer-00000000000000aa"
)


def folded(journal: Journal) -> list[tuple[int, str, list[DeliveryRecord]]]:
    found: list[tuple[int, str, list[DeliveryRecord]]] = []
    journal.fold(
        lambda campaign_id, worker, outcomes: found.append((campaign_id, worker, outcomes))
    )
    return found


def test_a_live_senders_lines_are_left_to_it_and_a_dead_ones_are_folded_once(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    with journal.entries("host:12/0") as entries:
        for outcome in (SENT, RETRY, BOUNCED, UNCERTAIN):
            entries.add(3, outcome)

        assert folded(journal) == [], "its sender is alive: it records them itself"

    assert folded(journal) == [(3, "host:12/0", [SENT, RETRY, BOUNCED, UNCERTAIN])]
    assert folded(journal) == [], "folded once, then forgotten"
    assert list((tmp_path / "journal").iterdir()) == []


def test_lines_in_the_database_are_dropped_and_a_line_cut_short_is_left_out(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    with journal.entries("host:12/1") as entries:
        entries.add(3, SENT)
        entries.clear()  # its batch reached the database
        entries.add(4, RETRY)
        path = entries.path
    with path.open("ab") as file:
        file.write(b'[4,10,"sent",1,"<b@exa')  # the write a kill cut short

    assert folded(journal) == [(4, "host:12/1", [RETRY])]


def test_a_sender_that_recorded_everything_leaves_no_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with journal.entries("host:12/2") as entries:
        entries.add(3, SENT)
        entries.clear()

    assert list(tmp_path.iterdir()) == []


def test_a_line_from_before_batches_were_journaled_is_still_folded(tmp_path: Path) -> None:
    """A send killed by the previous version of mailer left lines without a batch's label."""
    journal = Journal(tmp_path)
    (tmp_path / "host%3A12%2F2.journal").write_bytes(
        b'[5,9,"failed",1,"","550 5.1.1 no such user",null,true]\n'
    )

    assert folded(journal) == [(5, "host:12/2", [BOUNCED])]
