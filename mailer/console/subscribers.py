"""Subscribers in the console: search, a person's page, their lists, unsubscribe, erase, add one,
export. Publishers manage subscribers (editors write, and see only the lists' numbers); erasing
is for admins, after typing the address again.

The audit log names a subscriber by number, never by address: erasing a person removes their
address from everywhere but a one-way hash, and the log must not keep it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, abort, redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import me, needs, page, record
from mailer.console.service import console
from mailer.console.session import client_address
from mailer.core.addresses import AddressBook, Candidate, InvalidAddress, clean_name, key
from mailer.core.lifecycle import Reason, Status
from mailer.store.directory import Record
from mailer.store.importing.export import csv_chunks
from mailer.store.lists import list_key
from mailer.store.staff import Role

MAX_SEARCH = 320
MAX_CURSOR = 1000
MAX_LISTS = 200


def _statuses() -> list[Status]:
    try:
        return [Status(v) for v in request.args.getlist("status")[: len(Status)] if v]
    except ValueError:
        abort(400)


def _search_page(status: int = 200, problem: str = "") -> ResponseReturnValue:
    store = console().newsletter.store
    text = request.args.get("q", "")[:MAX_SEARCH]
    statuses = _statuses()
    list_name = request.args.get("list", "")[:MAX_SEARCH] or None
    found = store.directory.search(
        text,
        statuses=statuses,
        list_name=list_name,
        after=request.args.get("after", "")[:MAX_CURSOR],
    )
    filters = {"status": [s.value for s in statuses], "list": list_name or ""}
    return page(
        "subscribers.html",
        status,
        found=found,
        export_query=urlencode(filters, doseq=True),
        next_query=urlencode({"q": text, **filters, "after": found.after or ""}, doseq=True),
        text=text,
        statuses=[s.value for s in statuses],
        list_name=list_name or "",
        all_statuses=[s.value for s in Status],
        lists=store.lists.names(),
        default_list=console().newsletter.config.delivery.list,
        problem=problem,
    )


@needs(Role.PUBLISHER, "/subscribers")
def subscribers() -> ResponseReturnValue:
    return _search_page()


@needs(Role.PUBLISHER, "/subscribers", ("POST",))
def add_subscriber() -> ResponseReturnValue:
    """Add one person, active at once (staff vouch for their consent, which the record says)."""
    store = console().newsletter.store
    chosen = request.form.getlist("list")[:MAX_LISTS]
    known = store.lists.by_key()
    missing = [name for name in chosen if list_key(name) not in known]
    try:
        if missing:
            raise ValueError(f"there is no list '{missing[0]}'")
        candidate = Candidate(
            email=AddressBook().normalise(request.form.get("email", "")[:MAX_SEARCH]),
            name=clean_name(request.form.get("name", "")[:MAX_SEARCH]),
            lists=frozenset(known[list_key(name)] for name in chosen)
            or frozenset({console().newsletter.config.delivery.list}),
        )
    except (InvalidAddress, ValueError) as error:
        return _search_page(400, str(error))
    merged = store.subscribers.merge(
        [candidate],
        status=Status.ACTIVE,
        reason=Reason.STAFF,
        detail=f"added in the console by {me().email}",
        ip=client_address(),
    )
    if merged.kept_out:
        return _search_page(
            409,
            f"{candidate.email} unsubscribed, bounced, complained or was erased; it is not "
            "added back. Only the person can subscribe again, through the subscription form.",
        )
    found = store.subscribers.find(candidate.email)
    if found is None:  # merged a moment ago
        abort(500)
    record(
        "added a subscriber" if merged.added else "updated a subscriber",
        f"subscriber {found.id}: {', '.join(sorted(candidate.lists))}",
    )
    return redirect(f"{console().path}/subscribers/{found.id}")


@needs(Role.PUBLISHER, "/subscribers/export.csv")
def export() -> ResponseReturnValue:
    """Every subscriber matching the status and list filters, streamed as it is read."""
    list_name = request.args.get("list", "")[:MAX_SEARCH] or None
    statuses = _statuses()
    people = console().newsletter.store.subscribers.each(statuses=statuses, list_name=list_name)
    record(
        "exported subscribers",
        f"status {', '.join(s.value for s in statuses) or 'any'}, list {list_name or 'any'}",
    )
    response = Response(csv_chunks(people), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
    return response


def _record(subscriber_id: int) -> Record:
    found = console().newsletter.store.directory.record(subscriber_id)
    if found is None:
        abort(404)
    return found


def _person_page(found: Record, status: int = 200, problem: str = "") -> ResponseReturnValue:
    store = console().newsletter.store
    person = found.subscriber
    return page(
        "subscriber.html",
        status,
        record=found,
        person=person,
        consent=[c for c in [person.joined, *found.history] if c.is_consent],
        frequencies=sorted(found.frequencies.items()),
        lists=store.lists.names(),
        problem=problem,
    )


@needs(Role.PUBLISHER, "/subscribers/<int:subscriber_id>")
def subscriber(subscriber_id: int) -> ResponseReturnValue:
    return _person_page(_record(subscriber_id))


@needs(Role.PUBLISHER, "/subscribers/<int:subscriber_id>/lists", ("POST",))
def change_lists(subscriber_id: int) -> ResponseReturnValue:
    found = _record(subscriber_id)
    wanted = sorted(set(request.form.getlist("list")[:MAX_LISTS]))
    try:
        changed = console().newsletter.store.subscribers.set_lists(subscriber_id, wanted)
    except LookupError as error:
        return _person_page(found, 400, str(error).strip("'\""))
    if changed:
        before = ", ".join(found.subscriber.lists) or "none"
        record(
            "changed a subscriber's lists",
            f"subscriber {subscriber_id}: {before} → {', '.join(wanted) or 'none'}",
        )
    return redirect(f"{console().path}/subscribers/{subscriber_id}")


@needs(Role.PUBLISHER, "/subscribers/<int:subscriber_id>/unsubscribe", ("POST",))
def unsubscribe(subscriber_id: int) -> ResponseReturnValue:
    found = _record(subscriber_id)
    changed = console().newsletter.store.subscribers.change_status(
        subscriber_id,
        Status.UNSUBSCRIBED,
        Reason.STAFF,
        f"unsubscribed in the console by {me().email}",
        client_address(),
    )
    if not changed:
        return _person_page(
            found, 409, f"They are {found.subscriber.status.value}; there is nothing to undo."
        )
    record("unsubscribed a subscriber", f"subscriber {subscriber_id}")
    return redirect(f"{console().path}/subscribers/{subscriber_id}")


@needs(Role.ADMIN, "/subscribers/<int:subscriber_id>/erase")
def erase_form(subscriber_id: int) -> ResponseReturnValue:
    return page("erase.html", person=_record(subscriber_id).subscriber, problem="")


@needs(Role.ADMIN, "/subscribers/<int:subscriber_id>/erase", ("POST",))
def erase(subscriber_id: int) -> ResponseReturnValue:
    """Erase, once the address is typed again: there is no way back."""
    person = _record(subscriber_id).subscriber
    typed = request.form.get("address", "")[:MAX_SEARCH]
    if key(typed.strip()) != key(person.email):
        return page(
            "erase.html",
            400,
            person=person,
            problem="The address typed is not theirs; nothing was erased.",
        )
    erased = console().newsletter.store.subscribers.erase(person.email)
    record("erased a subscriber", f"subscriber {subscriber_id}")
    text = "Everything held on them is deleted; a one-way hash of the address stays on the "
    text += "suppression list, so that no import brings them back."
    if not erased.log_cleared:
        text += (
            " Another process is reading the database, so SQLite could not yet empty its "
            "write-ahead log, which may still hold the address: erase again later "
            "(`mailer subscribers erase`) once it has stopped."
        )
    return page("message.html", heading=f"Subscriber {subscriber_id} is erased", text=text)
