"""Several sending processes sharing one campaign: PostgreSQL lets them, SQLite refuses them.

On PostgreSQL, `mailer send` starts the campaign and three `mailer worker` processes join it; each
claims batches of recipients under a lease. One worker is killed with SIGKILL part-way: the others
take its batches over at once (its advisory lock went with it). The promise: every
recipient receives the issue, nobody logged as sent receives it again, and the only duplicates are
messages of the batches the dead worker held, at most its concurrency × the backend's batch size.

Every message carries a Message-ID that names the process that built it (a random prefix per
process), so the test can tell which process sent each copy that arrived and check the send log
against what arrived, copy by copy.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.delivery.smtp import SmtpBackend
from mailer.sending.dispatch import FIRST_BATCH
from mailer.store.campaigns import CampaignStatus, DeliveryState
from mailer.store.schema import deliveries, subscribers
from tests.conftest import Folder, Run
from tests.processes import finish, kill, run_mailer, start_mailer
from tests.smtp_server import (
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)
from tests.test_sending import (
    FOUR,
    SLUG,
    add_people,
    campaign_status,
    many,
    newsletter_of,
    send_log,
    use_server,
)

RECIPIENTS = 600
CONCURRENCY = 2
LEASE_SECONDS = 4
"""Short, so that the dead worker's batches are taken over within seconds."""
IN_FLIGHT_AT_MOST = CONCURRENCY * SmtpBackend.batch_size
"""What one worker can hold at once: a batch per sending thread, each at most the backend's
batch size (the engine starts at FIRST_BATCH and doubles up to it)."""
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def in_all(output: str) -> dict[DeliveryState, int]:
    """The report's closing line, `In all: sent 598, failed 2.`, as counts per state."""
    found = re.search(r"^In all: (.*)\.$", output, re.MULTILINE)
    assert found, output
    counts = {state: 0 for state in DeliveryState}
    for part in found[1].split(", "):
        state, number = part.split(" ")
        counts[DeliveryState(state)] = int(number.replace(",", ""))
    return counts


def this_run_sent(output: str) -> int:
    found = re.search(r"this run sent ([\d,]+),", output)
    assert found, output
    return int(found[1].replace(",", ""))


# What arrived and what the send log says ---------------------------------------------------------


def arrived_ids(server: SmtpServer) -> dict[str, list[str]]:
    """The Message-ID of every copy that reached each address (lower case)."""
    found: dict[str, list[str]] = {}
    for message in server.messages():
        match = MESSAGE_ID.search(message.head)
        assert match, message.head
        for address in message.recipients:
            found.setdefault(address.lower(), []).append(match[1].decode())
    return found


def sender_of(message_id: str) -> str:
    """The process that built a message: `<time.PREFIXcounter@domain>`, a random prefix of 12
    hexadecimal digits per process (MessageTemplate.unique)."""
    return message_id.split(".", 1)[1][:12]


def held_by(folder: Folder, process: subprocess.Popen[str]) -> dict[str, str]:
    """The addresses whose deliveries the process holds (claimed, not yet recorded), and the
    sending thread holding each."""
    prefix = f"{socket.gethostname()}:{process.pid}/"
    query = (
        select(subscribers.c.email, deliveries.c.claimed_by)
        .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
        .where(
            deliveries.c.state == DeliveryState.SENDING.value,
            deliveries.c.claimed_by.startswith(prefix),
        )
    )
    with newsletter_of(folder) as newsletter, newsletter.store.engine.connect() as connection:
        return {email: thread for email, thread in connection.execute(query)}


def past_its_first_batch(held: dict[str, str]) -> bool:
    """A sending thread holds a batch larger than the first: it has recorded one already."""
    return bool(held) and max(Counter(held.values()).values()) > FIRST_BATCH


def logged_as_sent(folder: Folder) -> int:
    query = select(func.count()).where(deliveries.c.state == DeliveryState.SENT.value)
    with newsletter_of(folder) as newsletter, newsletter.store.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def wait_for(condition: object, what: str, processes: list[subprocess.Popen[str]]) -> None:
    assert callable(condition)
    deadline = time.monotonic() + 300  # generous: a loaded machine is slow, not wrong
    while not condition():
        for process in processes:
            assert process.poll() is None, finish(process)
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# Four workers on PostgreSQL, one killed ----------------------------------------------------------


@POSTGRESQL_ONLY
def test_four_workers_share_a_campaign_and_survive_one_killed(
    db_folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server(delay=0.03)  # a campaign of seconds, so that the kill lands part-way
    add_people(db_folder, run, many(RECIPIENTS))
    use_server(db_folder, server, concurrency=CONCURRENCY, max_attempts=5)
    db_folder.configure("lease = 300", f"lease = {LEASE_SECONDS}")

    sender = start_mailer(db_folder, "send", SLUG, "--yes")
    wait_for(lambda: logged_as_sent(db_folder) > 0, "the campaign to start", [sender])
    workers = [start_mailer(db_folder, "worker", "1") for _ in range(3)]
    victim, survivors = workers[0], [sender, *workers[1:]]
    wait_for(
        lambda: past_its_first_batch(held_by(db_folder, victim)),
        "the worker to hold its second batch",
        [sender, *workers],
    )

    victim.send_signal(signal.SIGSTOP)  # frozen: it claims nothing more
    held = set(held_by(db_folder, victim))  # once it is dead, the others take these over
    kill(victim)
    logged = send_log(db_folder)
    sent_before = {
        address for address, entry in logged.items() if entry.state == DeliveryState.SENT
    }
    assert held and len(held) <= IN_FLIGHT_AT_MOST
    assert len(sent_before) < RECIPIENTS, "the kill came after the end"

    reports = [finish(process) for process in survivors]

    for code, out, err in reports:
        assert code == 0, out + err
        assert "Traceback" not in err
        assert in_all(out) == {
            **{state: 0 for state in DeliveryState},
            DeliveryState.SENT: RECIPIENTS,
        }, out
    assert "Joining campaign 1" in reports[1][1]
    assert sum(this_run_sent(out) > 0 for _, out, _ in reports) >= 2, "the work was not shared"
    assert campaign_status(db_folder)[0] == CampaignStatus.DONE

    copies = arrived_ids(server)
    everyone = {address for address, _, _ in many(RECIPIENTS)}
    assert set(copies) == everyone, f"{len(everyone - set(copies))} recipients lost"
    final = send_log(db_folder)
    assert len(final) == RECIPIENTS
    assert {entry.state for entry in final.values()} == {DeliveryState.SENT}
    for address, entry in final.items():
        assert entry.message_id in copies[address], f"{address}: the logged copy never arrived"
    twice = {address for address, ids in copies.items() if len(ids) > 1}
    assert not twice & sent_before, "somebody logged as sent received it again"
    assert twice <= held, "a duplicate that the dead worker did not hold"
    assert max(len(ids) for ids in copies.values()) <= 2
    unlogged = {
        message_id
        for address, ids in copies.items()
        for message_id in ids
        if message_id != final[address].message_id
    }
    assert len({sender_of(message_id) for message_id in unlogged}) <= 1, (
        "copies that are not in the send log came from more than the dead worker"
    )
    assert sum(len(ids) for ids in copies.values()) == RECIPIENTS + len(twice)

    # Each survivor's report matches the copies the send log credits to it.
    credited = Counter(sender_of(entry.message_id) for entry in final.values())
    assert len(credited) == 4, "what the dead worker sent and recorded is kept in the log"
    for _, out, _ in reports:
        sent = this_run_sent(out)
        if sent:
            assert sent in credited.values(), (sent, credited)
    assert sum(credited.values()) == RECIPIENTS


# SQLite: one sending process ---------------------------------------------------------------------


def test_a_worker_on_sqlite_is_refused_naming_postgresql(folder: Folder, run: Run) -> None:
    add_people(folder, run, FOUR)
    with newsletter_of(folder) as newsletter:
        issue = newsletter.issue([SLUG])
        newsletter.store.campaigns.start(SLUG, "commentaries", issue.subject)

    done = run_mailer(folder, "worker", "1")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "PostgreSQL" in done.stderr and "postgresql+psycopg://" in done.stderr
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.QUEUED}


def test_a_second_sender_on_sqlite_is_refused_while_the_first_runs(
    folder: Folder, run: Run, smtp_server: StartServer
) -> None:
    server = smtp_server()
    count = 160
    add_people(folder, run, many(count))
    use_server(folder, server, concurrency=CONCURRENCY, timeout=600)  # held, not timed out
    server.hold()  # the first send waits for the server, however long the rest takes
    first = start_mailer(folder, "send", SLUG, "--yes")
    try:
        wait_for(lambda: server.held > 0, "the first send to hand over a message", [first])
        second = run_mailer(folder, "send", SLUG, "--yes")
        resumed = run_mailer(folder, "campaigns", "resume", "1", "--yes")
        still_running = first.poll() is None
    finally:
        server.release()
        code, out, err = finish(first)

    assert still_running, f"the first send ended before the second was tried: {out}{err}"
    for refused in (second, resumed):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert "already sending" in refused.stderr and "PostgreSQL" in refused.stderr
    assert code == 0, out + err
    assert server.arrivals() == {address: 1 for address, _, _ in many(count)}
    assert {entry.state for entry in send_log(folder).values()} == {DeliveryState.SENT}
