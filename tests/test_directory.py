"""The console's store queries, on SQLite and PostgreSQL: finding subscribers by the beginning of
their address or name, by status and list, a page at a time; and everything held on one."""

from __future__ import annotations

import datetime as dt

from mailer.core.addresses import Candidate
from mailer.core.events import Event, Kind, Severity
from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.store.database import Store

PEOPLE = [
    ("ada@example.org", "Ada Lovelace", {"news"}),
    ("alan@example.org", "Alan Turing", {"news", "Briefings"}),
    ("grace@example.net", "Grace Hopper", {"briefings"}),
    ("emmy@example.org", "Émilie du Châtelet", {"news"}),
    ("zed@example.org", "ada tester", {"news"}),
]


def people(store: Store) -> None:
    store.subscribers.merge(
        [Candidate(e, n, frozenset(lists)) for e, n, lists in PEOPLE],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    found = store.subscribers.find("alan@example.org")
    assert found is not None
    store.subscribers.change_status(found.id, Status.UNSUBSCRIBED, Reason.STAFF, "test")


def mailbox_full(recipient: str) -> Event:
    """A provider's report of a soft bounce to `recipient`."""
    return Event(
        provider="mailgun",
        kind=Kind.BOUNCED,
        recipient=recipient,
        event_id="ev-1",
        message_id="",
        at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        reason="mailbox full",
        raw={"event": "failed"},
        severity=Severity.SOFT,
    )


def emails(store: Store, text: str = "", **options: object) -> list[str]:
    return [s.email for s in store.directory.search(text, **options).subscribers]  # type: ignore[arg-type]


def test_search_matches_the_beginning_of_the_address_or_the_name_whatever_the_case(
    store: Store,
) -> None:
    people(store)
    assert emails(store, "AD") == ["ada@example.org", "zed@example.org"]  # address, name
    assert emails(store, "grace hop") == ["grace@example.net"]
    assert emails(store, "example") == []  # the beginning only: an index answers it
    assert emails(store) == sorted(e for e, _, _ in PEOPLE)


def test_search_filters_by_status_and_list(store: Store) -> None:
    people(store)
    assert emails(store, statuses=[Status.UNSUBSCRIBED]) == ["alan@example.org"]
    assert emails(store, list_name="BRIEFINGS") == ["alan@example.org", "grace@example.net"]
    assert emails(store, "a", list_name="news", statuses=[Status.ACTIVE]) == [
        "ada@example.org",
        "zed@example.org",
    ]


def test_search_pages_after_the_last_address_shown(store: Store) -> None:
    people(store)
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        found = store.directory.search(after=after, page=2)
        seen += [s.email for s in found.subscribers]
        pages += 1
        if found.after is None:
            break
        after = found.after
    assert seen == sorted(e for e, _, _ in PEOPLE)
    assert pages == 3


def test_a_record_holds_the_subscriber_history_events_and_send_log(store: Store) -> None:
    people(store)
    ada = store.subscribers.find("ada@example.org")
    assert ada is not None
    campaign = store.campaigns.start("2026-11-30-first", "news", "The first issue")
    store.events.apply([mailbox_full("ada@example.org")])

    record = store.directory.record(ada.id)

    assert record is not None
    assert record.subscriber.lists == ("news",)
    assert [(e.kind, e.reason) for e in record.events] == [("bounced", "mailbox full")]
    assert [(s.campaign_id, s.issue, s.subject) for s in record.sent] == [
        (campaign.id, "2026-11-30-first", "The first issue")
    ]
    assert store.directory.record(10_000) is None
    alan = store.subscribers.find("alan@example.org")
    assert alan is not None
    alan_record = store.directory.record(alan.id)
    assert alan_record is not None
    assert [c.new_status for c in alan_record.history] == ["unsubscribed"]


def test_paging_goes_from_the_address_matches_on_to_the_name_matches(store: Store) -> None:
    people(store)
    first = store.directory.search("ad", page=1)
    assert [s.email for s in first.subscribers] == ["ada@example.org"]
    assert first.after is not None
    second = store.directory.search("ad", page=1, after=first.after)
    assert [s.email for s in second.subscribers] == ["zed@example.org"]  # "ada tester"
    assert second.after is None


def test_a_record_says_the_language_and_the_frequency_on_each_list(store: Store) -> None:
    store.subscribers.merge(
        [
            Candidate(
                "ida@example.org",
                "Ida",
                frozenset({"news", "briefings"}),
                language="it",
                frequency={"briefings": Frequency.WEEKLY},
            )
        ],
        status=Status.ACTIVE,
        reason=Reason.IMPORT,
    )
    ida = store.subscribers.find("ida@example.org")
    assert ida is not None

    record = store.directory.record(ida.id)

    assert record is not None
    assert record.language == "it"
    assert record.frequencies == {"briefings": Frequency.WEEKLY, "news": Frequency.IMMEDIATE}
    (found,) = store.directory.search("ida").subscribers
    assert found.weekly == ("briefings",)
