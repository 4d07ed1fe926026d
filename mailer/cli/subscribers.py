"""`mailer subscribers`: add, import, export, list, show, remove, erase, stats."""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from mailer.cli.shared import (
    Invocation,
    confirm,
    count,
    pass_invocation,
    progress_bar,
    table,
)
from mailer.core.addresses import (
    AddressBook,
    Candidate,
    InvalidAddress,
    clean_list_name,
    clean_name,
)
from mailer.core.audience import ListAudience
from mailer.core.errors import RequestError
from mailer.core.lifecycle import Reason, Status
from mailer.render.audience import chart as audience_chart
from mailer.store.importing.columns import parse_map
from mailer.store.importing.detection import DELIMITERS
from mailer.store.importing.export import write_csv
from mailer.store.importing.reader import Reading
from mailer.store.importing.writer import import_csv
from mailer.store.subscribers import Subscriber

STATUSES = click.Choice([s.value for s in Status])


@click.group("subscribers")
def group() -> None:
    """Who the newsletter goes to.

    \b
    Example:
      mailer subscribers import people.csv --list commentaries
      mailer subscribers stats
    """


@group.command()
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--list", "list_names", multiple=True, help="A list to join (repeatable).")
@click.option(
    "--status",
    type=click.Choice([Status.ACTIVE.value, Status.PENDING.value]),
    default=Status.ACTIVE.value,
    show_default=True,
    help="pending: awaiting confirmation.",
)
@pass_invocation
def add(
    invocation: Invocation, email: str, name: str, list_names: tuple[str, ...], status: str
) -> None:
    """Add one subscriber, or add lists and a name to an existing one.

    Without --list, the subscriber joins the default list ([delivery] list). An address that
    unsubscribed, bounced, complained or was erased is never brought back this way.

    \b
    Example:
      mailer subscribers add alice@example.org --name "Alice Rossi" --list commentaries
    """
    newsletter = invocation.newsletter
    try:
        address = AddressBook().normalise(email)
        candidate = Candidate(
            email=address,
            name=clean_name(name),
            lists=frozenset(clean_list_name(n) for n in list_names)
            or frozenset({newsletter.config.delivery.list}),
        )
    except (InvalidAddress, ValueError) as error:
        raise RequestError(str(error)) from None
    merged = newsletter.store.subscribers.merge(
        [candidate], status=Status(status), reason=Reason.STAFF, detail="mailer subscribers add"
    )
    for list_name in merged.lists_created:
        click.echo(f"Created the list '{list_name}'.")
    if merged.added:
        click.echo(f"Added {address} ({status}) to {', '.join(sorted(candidate.lists))}.")
    elif merged.updated:
        click.echo(f"Updated {address}.")
    elif merged.kept_out:
        raise RequestError(
            f"{address} unsubscribed, bounced, complained or was erased; it is not added back. "
            "Only the person can subscribe again, through the subscription form."
        )
    else:
        click.echo(f"{address} was already there; nothing changed.")


_DELIMITERS = {word: character for character, word in DELIMITERS.items()}


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_names", multiple=True, help="A list every row joins (repeatable).")
@click.option(
    "--create-lists", is_flag=True, help="Create the lists the file names that do not exist."
)
@click.option("--encoding", help="The file's encoding (detected: UTF-8 or Windows-1252).")
@click.option(
    "--delimiter",
    type=click.Choice(list(_DELIMITERS)),
    help="What separates the cells (detected from the first line).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Read COLUMN as FIELD: email, name, first_name, last_name, lists, status (repeatable).",
)
@pass_invocation
def import_(
    invocation: Invocation,
    file: Path,
    list_names: tuple[str, ...],
    create_lists: bool,
    encoding: str | None,
    delimiter: str | None,
    mapping: tuple[str, ...],
) -> None:
    """Import subscribers from a CSV file: an email column, and optionally a name (or first and
    last names), lists and status.

    Columns are recognised under common spellings (Email, E-mail, Email Address, Nome, Cognome,
    First Name, Last Name, ...); --map names any other. The encoding (UTF-8, Windows-1252) and
    the separator (comma, semicolon, tab) are detected, and what was detected is said.
    `lists` holds list names separated by ';', compared without case; a list that does not
    exist rejects the row (with the closest existing name) unless --create-lists. A row with
    no list joins the default list ([delivery] list). Bad rows are reported as FILE:LINE and
    skipped; the rest are imported. Importing the same file again changes nothing, and an
    address that unsubscribed, bounced, complained or was erased is never brought back.
    Exit status 1 when some rows were rejected, 2 when the file cannot be used at all.

    \b
    Example:
      mailer subscribers import people.csv --list commentaries
      mailer subscribers import export.csv --map "Posta=email" --create-lists
    """
    newsletter = invocation.newsletter
    subscribers = newsletter.store.subscribers
    try:
        extra = [clean_list_name(n) for n in list_names]
        reading = Reading(
            _encoding(encoding) if encoding else None,
            _DELIMITERS[delimiter] if delimiter else None,
            parse_map(mapping),
        )
    except ValueError as error:
        raise RequestError(str(error)) from None
    with progress_bar(file.stat().st_size, f"Importing {file.name}") as bar:
        report = import_csv(
            file,
            subscribers,
            lists=extra,
            default_list=newsletter.config.delivery.list,
            reading=reading,
            create_lists=create_lists,
            progress=bar.update,
        )
    merged = report.merged
    if report.layout:
        click.echo(f"{file}: {report.layout.describe()}.")
    for problem in report.rejected:
        click.echo(str(problem), err=True)
    click.echo(
        f"{file}: {count(report.rows, 'row')}: {merged.added:,} added, {merged.updated:,} updated, "
        f"{merged.unchanged:,} unchanged, {len(report.rejected):,} rejected."
    )
    if merged.kept_out:
        click.echo(
            f"{count(merged.kept_out, 'address', 'addresses')} kept out: they unsubscribed, "
            "bounced, complained or were erased, and an import never brings them back."
        )
    if merged.lists_created:
        names = ", ".join(sorted(set(merged.lists_created)))
        click.echo(f"Created {count(len(set(merged.lists_created)), 'list')}: {names}.")
    if report.rejected:
        raise click.exceptions.Exit(1)


def _encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(
            f"--encoding {name!r} is not an encoding Python knows; try utf-8 or cp1252"
        ) from None


@group.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--status", "statuses", type=STATUSES, multiple=True, help="Only these statuses.")
@click.option("--list", "list_name", help="Only members of this list.")
@pass_invocation
def export(
    invocation: Invocation, file: Path | None, statuses: tuple[str, ...], list_name: str | None
) -> None:
    """Write subscribers as CSV (every status unless --status narrows it), to FILE or stdout.

    The columns are email,name,status,lists,created_at,updated_at,language,frequency, so the
    file can be imported again. The frequency is immediate (every issue) or weekly (the
    digest): one word when it is the same on all the person's lists, else one per list, in the
    order of the lists column (immediate;weekly). A cell a spreadsheet would run as a formula
    (beginning with =, +, -, @, a tab or a carriage return) is written with a leading ', which
    import takes off again.

    \b
    Example:
      mailer subscribers export active.csv --status active
    """
    subscribers = invocation.newsletter.store.subscribers.each(
        statuses=[Status(s) for s in statuses], list_name=list_name
    )
    if file is None:
        written = write_csv(sys.stdout, subscribers)
    else:
        with file.open("w", encoding="utf-8", newline="") as stream:
            written = write_csv(stream, subscribers)
        click.echo(f"Wrote {count(written, 'subscriber')} to {file}.", err=True)


@group.command("list")
@click.option("--status", "statuses", type=STATUSES, multiple=True, help="Only these statuses.")
@click.option("--list", "list_name", help="Only members of this list.")
@click.option("--search", default="", help="Only addresses containing this text.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many (0: all).")
@pass_invocation
def list_(
    invocation: Invocation,
    statuses: tuple[str, ...],
    list_name: str | None,
    search: str,
    limit: int,
) -> None:
    """Show subscribers as a table.

    \b
    Example:
      mailer subscribers list --status bounced --search example.org
    """
    rows: list[tuple[str, ...]] = []
    for subscriber in invocation.newsletter.store.subscribers.each(
        statuses=[Status(s) for s in statuses], list_name=list_name, search=search
    ):
        if limit and len(rows) == limit:
            click.echo(f"(showing the first {limit}; --limit 0 shows all)", err=True)
            break
        rows.append(
            (
                subscriber.email,
                subscriber.name,
                subscriber.status.value,
                ", ".join(subscriber.lists),
                subscriber.created_at.strftime("%Y-%m-%d"),
            )
        )
    if not rows:
        click.echo("No subscribers match.")
        return
    click.echo(table(("EMAIL", "NAME", "STATUS", "LISTS", "SINCE"), rows))


@group.command()
@click.argument("email")
@pass_invocation
def show(invocation: Invocation, email: str) -> None:
    """Everything held on one person, as JSON (their data, for a subject access request).

    \b
    Example:
      mailer subscribers show alice@example.org > alice.json
    """
    record = invocation.newsletter.store.directory.record(_find(invocation, email).id)
    if record is None:  # erased in between
        raise RequestError(f"no subscriber has the address {email.strip()}")
    subscriber = record.subscriber
    data: dict[str, Any] = {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "language": record.language,
        "lists": list(subscriber.lists),
        "frequencies": {name: frequency.value for name, frequency in record.frequencies.items()},
        "created_at": subscriber.created_at.isoformat(),
        "updated_at": subscriber.updated_at.isoformat(),
        "consent": [
            {"at": c.at.isoformat(), "source": c.reason, "detail": c.detail, "ip": c.ip}
            for c in [subscriber.joined, *record.history]
            if c.is_consent
        ],
        "history": [
            {
                "at": h.at.isoformat(),
                "from": h.old_status,
                "to": h.new_status,
                "reason": h.reason,
                "detail": h.detail,
                "ip": h.ip,
            }
            for h in record.history
        ],
        "deliveries": [
            {
                "campaign": d.campaign_id,
                "issue": d.issue,
                "subject": d.subject,
                "state": d.state,
                "attempts": d.attempts,
                "message_id": d.message_id,
                "error": d.error,
                "updated_at": d.updated_at.isoformat(),
            }
            for d in record.sent
        ],
        "webhook_events": [
            {
                "provider": e.provider,
                "event_id": e.event_id,
                "kind": e.kind,
                "severity": e.severity,
                "message_id": e.message_id,
                "reason": e.reason,
                "occurred_at": e.occurred_at.isoformat() if e.occurred_at else None,
                "received_at": e.received_at.isoformat(),
                "raw": e.raw,
            }
            for e in record.events
        ],
    }
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _find(invocation: Invocation, email: str) -> Subscriber:
    found = invocation.newsletter.store.subscribers.find(email)
    if found is None:
        raise RequestError(f"no subscriber has the address {email.strip()}")
    return found


@group.command()
@click.argument("email")
@pass_invocation
def remove(invocation: Invocation, email: str) -> None:
    """Unsubscribe someone, keeping their record (and so keeping them from being re-imported).

    \b
    Example:
      mailer subscribers remove alice@example.org
    """
    subscriber = _find(invocation, email)
    changed = invocation.newsletter.store.subscribers.change_status(
        subscriber.id, Status.UNSUBSCRIBED, Reason.STAFF, "mailer subscribers remove"
    )
    if changed:
        click.echo(f"Unsubscribed {subscriber.email}.")
    else:
        click.echo(f"{subscriber.email} is {subscriber.status.value}; nothing changed.")


@group.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_invocation
def erase(invocation: Invocation, email: str, yes: bool) -> None:
    """Delete everything held on someone (the right to erasure).

    Only a one-way hash of the address is kept, on the suppression list, so that it is not
    imported again by accident.

    \b
    Example:
      mailer subscribers erase alice@example.org --yes
    """
    subscribers = invocation.newsletter.store.subscribers
    confirm(f"Erase everything held on {email.strip()}?", yes)
    erased = subscribers.erase(email)
    if erased.found:
        click.echo(f"Erased {email.strip()}; its hash stays on the suppression list.")
    else:
        click.echo("No subscriber had that address; its hash is on the suppression list now.")
    if not erased.log_cleared:
        click.echo(
            "Another process is reading the database, so SQLite could not yet empty its "
            "write-ahead log (the -wal file), which may still hold the address: run the erase "
            "again once that process has stopped.",
            err=True,
        )


@group.command()
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Also each list week by week from this day (YYYY-MM-DD): active members at each "
    "week's end, sign-ups, unsubscribes, bounces, and the share of each status.",
)
@click.option("--list", "list_name", help="Only this list (with --since).")
@click.option(
    "--chart",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also draw each list's weeks as an SVG file in this folder (with --since).",
)
@pass_invocation
def stats(
    invocation: Invocation, since: dt.datetime | None, list_name: str | None, chart: Path | None
) -> None:
    """Subscribers by status, and by list; with --since, each list week by week.

    \b
    Example:
      mailer subscribers stats
      mailer subscribers stats --since 2026-09-01 --list commentaries --chart charts/
    """
    store = invocation.newsletter.store
    if since is None:
        if list_name or chart:
            raise RequestError("--list and --chart go with --since DATE")
        _counts_table(invocation)
        return
    now = dt.datetime.now(dt.UTC)
    try:
        audiences = (
            [store.audience.of(list_name, since.date(), now)]
            if list_name
            else store.audience.all(since.date(), now)
        )
    except LookupError as error:
        raise RequestError(str(error)) from None
    for audience in audiences:
        click.echo(_weeks_table(audience))
        if chart:
            chart.mkdir(parents=True, exist_ok=True)
            path = chart / f"{_file_name(audience.name)}.svg"
            path.write_text(audience_chart(audience), encoding="utf-8")
            click.echo(f"Drew {path}.", err=True)


def _weeks_table(audience: ListAudience) -> str:
    rows = [
        (
            f"{w.starts:%Y-%m-%d}",
            f"{w.active:,}",
            f"{w.signups:,}",
            f"{w.unsubscribes:,}",
            f"{w.bounces:,}",
        )
        for w in audience.weeks
    ]
    shares = ", ".join(f"{s.value} {audience.share(s.value):.1%}" for s in Status)
    weeks = table(("WEEK OF", "ACTIVE", "SIGN-UPS", "UNSUBSCRIBES", "BOUNCES"), rows)
    return f"{audience.name}\n{weeks}\nnow: {shares}\n"


def _file_name(list_name: str) -> str:
    """A list's name as a file name: letters, digits and '-' only."""
    return re.sub(r"[^\w-]+", "-", list_name.casefold(), flags=re.ASCII).strip("-") or "list"


def _counts_table(invocation: Invocation) -> None:
    by_status, by_list = invocation.newsletter.store.subscribers.counts()
    statuses = [s.value for s in Status]
    rows = [
        ("all", *(f"{by_status.get(s, 0):,}" for s in statuses), f"{sum(by_status.values()):,}")
    ]
    for name in sorted(by_list):
        counts = by_list[name]
        rows.append(
            (name, *(f"{counts.get(s, 0):,}" for s in statuses), f"{sum(counts.values()):,}")
        )
    click.echo(table(("LIST", *(s.upper() for s in statuses), "TOTAL"), rows))
