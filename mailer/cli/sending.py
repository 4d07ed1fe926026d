"""`mailer send` and `mailer campaigns`: an issue to a list, resumable, with a report."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

import click

from mailer.app.campaigns import (
    issue_for_sending,
    issue_key,
    journal_of,
    pace,
    public_at,
    reconcile,
    run_campaign,
    template_of,
    worker_name,
)
from mailer.app.newsletter import Newsletter
from mailer.cli.shared import (
    Invocation,
    confirm,
    count,
    pass_invocation,
    progress_bar,
    table,
)
from mailer.content.commentary import Issue
from mailer.core.addresses import AddressBook, InvalidAddress
from mailer.core.clock import parse_time
from mailer.core.errors import RequestError
from mailer.core.stopping import asked_to_stop
from mailer.delivery.base import Backend, BackendError, Outcome, Outgoing
from mailer.render.message import MessageTemplate
from mailer.sending.dispatch import Pace, RunReport, Tally
from mailer.sending.journal import Journal
from mailer.sending.reconciling import Reconciled
from mailer.store.campaigns import Campaign, CampaignKind, CampaignStatus, DeliveryState

UNCERTAIN = DeliveryState.UNCERTAIN
RESEND_UNCERTAIN = click.option(
    "--resend-uncertain",
    is_flag=True,
    help="Send again the messages recorded as uncertain (handed over, no answer came): they "
    "may arrive twice.",
)

_AT_HELP = (
    'Start then, not now: "2026-12-02 09:00" in the newsletter\'s time zone, or with an '
    'offset ("2026-12-02T09:00+01:00"). `mailer serve` or `mailer scheduler` starts it.'
)


@click.command()
@click.argument("slugs", nargs=-1)
@click.option("--list", "list_name", help="The list to send to (default: [delivery] list).")
@click.option(
    "--test",
    "test_addresses",
    multiple=True,
    metavar="ADDRESS",
    help="Send only to this address, outside any campaign (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Build every message, send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--rate", type=float, help="Messages per second at most (0: unlimited).")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Messages in flight at once.")
@click.option("--at", "at_text", metavar="TIME", help=_AT_HELP)
@RESEND_UNCERTAIN
@pass_invocation
def send(
    invocation: Invocation,
    slugs: tuple[str, ...],
    list_name: str | None,
    test_addresses: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    rate: float | None,
    concurrency: int | None,
    at_text: str | None,
    resend_uncertain: bool,
) -> None:
    """Send the issue made of SLUGS (default: the newest commentary) to a list.

    Starting fixes the recipients: the active subscribers of the list at that moment. If the
    send is interrupted, run the same command again: it continues where it stopped. Nobody
    logged as sent is sent again; at most one message per connection (the one in flight when
    it stopped) can arrive twice. A message handed over whole that got no answer is recorded as
    uncertain and sent again only with --resend-uncertain. An issue that has already gone to
    the list is not sent again.

    With --at, the campaign is scheduled instead: its recipients are fixed when it starts. An
    issue with a commentary still embargoed is scheduled for the embargo's end, never earlier.

    \b
    Examples:
      mailer send stalemate --test me@example.org
      mailer send stalemate --dry-run
      mailer send stalemate --list commentaries --yes
      mailer send stalemate --resend-uncertain
      mailer send stalemate --at "2026-12-02 09:00" --yes
    """
    newsletter = invocation.newsletter
    at = _time_to_come(newsletter, at_text) if at_text else None
    issue = issue_for_sending(newsletter, slugs)
    list_name = list_name or newsletter.config.delivery.list
    rendered = newsletter.render(issue)
    warning = rendered.size_warning()
    if warning:
        click.echo(str(warning), err=True)
    template = newsletter.message_template(rendered, list_name)
    if test_addresses:
        _send_tests(newsletter, template, test_addresses)
        return
    store = newsletter.store
    names = store.lists.names()
    if names and list_name not in names:
        raise RequestError(f"there is no list '{list_name}'; `mailer lists` shows them")
    if dry_run:
        _dry_run(newsletter, template, list_name, newsletter.readers(issue))
        return
    make_backend = newsletter.backend_factory()  # a missing secret stops us before a campaign
    if at is not None or public_at(issue) > newsletter.clock():
        _schedule(newsletter, issue, list_name, at, yes)
        return
    with store.only_sender():
        journal = _journal(newsletter)
        campaign = _campaign_to_send(newsletter, issue, list_name, yes, resend_uncertain)
        if campaign is None:
            return
        report = run_with_progress(
            newsletter,
            newsletter.campaign_template(rendered, campaign.id, list_name),
            campaign,
            pace(newsletter, rate, concurrency),
            make_backend,
            journal,
        )
    _report(report)


def _time_to_come(newsletter: Newsletter, text: str) -> dt.datetime:
    """--at as an aware time, refused when it is already past."""
    try:
        at = parse_time(text, newsletter.config.newsletter.zone)
    except ValueError as error:
        raise RequestError(f"--at {error}") from None
    if at < newsletter.clock():
        raise RequestError(
            f"--at {newsletter.local_time(at)} is past (it is now "
            f"{newsletter.local_time(newsletter.clock())}); give a time to come"
        )
    return at


def _schedule(
    newsletter: Newsletter, issue: Issue, list_name: str, at: dt.datetime | None, yes: bool
) -> None:
    """A campaign that starts at `at`, or when the issue's embargo ends if that is later."""
    earliest = public_at(issue)
    when = max(at or earliest, earliest)
    earlier = _previous(newsletter, issue, list_name)
    if earlier is not None and earlier.status == CampaignStatus.DONE:
        _went(earlier)
        return
    if earlier is not None:
        raise RequestError(
            f"campaign {earlier.id} of this issue to '{list_name}' is "
            f"{earlier.status.value}; `mailer campaigns resume {earlier.id}` continues it"
        )
    if at is None or when > at:
        embargoed = next(c for c in issue.commentaries if c.public_at == earliest)
        click.echo(f"{newsletter.embargo_note(embargoed)}: the issue goes no earlier.")
    confirm(f"Schedule “{issue.subject}” to '{list_name}' for {newsletter.local_time(when)}?", yes)
    try:
        campaign = newsletter.store.campaigns.schedule(
            issue_key(issue), list_name, issue.subject, when
        )
    except LookupError:
        raise RequestError(f"there is no list '{list_name}'; `mailer lists` shows them") from None
    click.echo(
        f"Campaign {campaign.id} is scheduled for {newsletter.local_time(when)}; its recipients "
        "are the list's active subscribers when it starts. `mailer serve` or `mailer scheduler` "
        "starts it."
    )


def _campaign_to_send(
    newsletter: Newsletter, issue: Issue, list_name: str, yes: bool, resend_uncertain: bool
) -> Campaign | None:
    """The campaign of this issue to this list that the send continues, or a new one; None when
    the issue already went. Asks before a new send or a resumed one."""
    store = newsletter.store
    campaign = _previous(newsletter, issue, list_name)
    if campaign is not None:
        campaign = _asked_first(newsletter, campaign)
    uncertain = 0 if campaign is None else store.campaigns.counts(campaign.id)[UNCERTAIN]
    resending = resend_uncertain and uncertain > 0
    if campaign is not None and campaign.status == CampaignStatus.DONE and not resending:
        _went(campaign)
        _warn_uncertain(campaign.id, uncertain)
        if uncertain:
            raise click.exceptions.Exit(1)
        return None
    if campaign is not None:
        left = store.campaigns.unfinished(campaign.id) + (uncertain if resending else 0)
        confirm(f"Resume campaign {campaign.id}: {count(left, 'message')} left to send?", yes)
        if resending:
            campaign = _resend_uncertain(newsletter, campaign)
        click.echo(f"Resuming campaign {campaign.id}: {count(left, 'message')} left.")
        return campaign
    recipients = store.subscribers.count_readers(list_name, newsletter.readers(issue))
    confirm(
        f"Send “{issue.subject}” to {count(recipients, 'active subscriber')} of "
        f"'{list_name}' (weekly ones aside) through {newsletter.config.delivery.backend}?",
        yes,
    )
    try:
        campaign = store.campaigns.start(
            issue_key(issue), list_name, issue.subject, newsletter.readers(issue)
        )
    except LookupError:
        raise RequestError(f"there is no list '{list_name}'; `mailer lists` shows them") from None
    click.echo(f"Campaign {campaign.id}: {count(campaign.recipients, 'recipient')}.")
    return campaign


def _went(campaign: Campaign) -> None:
    when = campaign.finished_at or campaign.created_at
    click.echo(
        f"This issue went to '{campaign.list_name}' on {when:%Y-%m-%d %H:%M} UTC "
        f"(campaign {campaign.id}); nothing was sent."
    )


def _previous(newsletter: Newsletter, issue: Issue, list_name: str) -> Campaign | None:
    """The latest campaign of this issue to this list when a send may continue it (or it is
    done); refused, saying what to do, when it was cancelled, is scheduled or missed."""
    campaign = newsletter.store.campaigns.latest(issue_key(issue), list_name)
    if campaign is None:
        return None
    what = {
        CampaignStatus.CANCELLED: f"was cancelled; `mailer campaigns resume {campaign.id}` "
        "continues it",
        CampaignStatus.SCHEDULED: "is scheduled for "
        f"{newsletter.local_time(campaign.scheduled_at or campaign.created_at)}; "
        f"`mailer campaigns reschedule {campaign.id} --at …` moves it",
        CampaignStatus.MISSED: f"missed its time ({campaign.status_detail}); "
        f"`mailer campaigns reschedule {campaign.id} --at …` gives it a new one",
    }.get(campaign.status)
    if what:
        raise RequestError(f"campaign {campaign.id} of this issue to '{list_name}' {what}")
    return campaign


def _asked_first(newsletter: Newsletter, campaign: Campaign) -> Campaign:
    """The campaign once the service was asked about its uncertain deliveries (where it can
    be), saying what it answered."""
    if not newsletter.store.campaigns.counts(campaign.id)[UNCERTAIN]:
        return campaign
    _print_reconciled(reconcile(newsletter, campaign))
    return newsletter.store.campaigns.get(campaign.id) or campaign


def _print_reconciled(reconciled: Reconciled) -> None:
    """What the service said of the uncertain deliveries it was asked about."""
    if reconciled.asked:
        click.echo(
            f"Asked {reconciled.service} about {count(reconciled.asked, 'uncertain message')}: "
            f"it took {reconciled.taken:,} (logged as sent), never had {reconciled.again:,} "
            f"(sent again), cannot tell yet of {reconciled.untold:,}."
        )
    if reconciled.unasked:
        click.echo(
            f"Could not ask {reconciled.service} about "
            f"{count(reconciled.unasked, 'uncertain message')}: {reconciled.unanswered}; "
            "they stay uncertain.",
            err=True,
        )


def _resend_uncertain(newsletter: Newsletter, campaign: Campaign) -> Campaign:
    """Queue the campaign's uncertain messages again, reopening it if it was done."""
    store = newsletter.store
    again = store.campaigns.resend_uncertain(campaign.id)
    click.echo(f"Sending {count(again, 'uncertain message')} again, as asked.")
    if campaign.status == CampaignStatus.DONE:
        store.campaigns.set_status(campaign.id, CampaignStatus.PAUSED, "uncertain ones resent")
    return store.campaigns.get(campaign.id) or campaign


def _journal(newsletter: Newsletter) -> Journal:
    """The sending journal, saying what it folded into the send log from killed runs."""
    journal, folded = journal_of(newsletter)
    if folded:
        click.echo(f"Logged {count(folded, 'message')} an interrupted run had handed over.")
    return journal


def run_with_progress(
    newsletter: Newsletter,
    template: MessageTemplate,
    campaign: Campaign,
    pace: Pace,
    make_backend: Callable[[], Backend],
    journal: Journal,
) -> RunReport:
    """The campaign's run with a progress bar; asked to stop (SIGTERM, Ctrl-C), it ends after
    the batches in hand, saying so (see core/stopping.py)."""
    total = newsletter.store.campaigns.unfinished(campaign.id)
    with progress_bar(total, "Sending") as bar, asked_to_stop() as stopping:
        shown = 0
        told = False

        def progress(tally: Tally) -> None:
            nonlocal shown, told
            bar.update(tally.done - shown)
            shown = tally.done
            if stopping.is_set() and not told:  # here, not in the signal handler: no output
                told = True  # is being written here at that moment
                click.echo(
                    "\nStopping once the messages in hand are recorded (asked again: at once).",
                    err=True,
                )

        return run_campaign(
            newsletter, template, campaign, pace, make_backend, journal, progress, stopping
        )


def _report(report: RunReport) -> None:
    if not print_report(report):
        raise click.exceptions.Exit(1)


def print_report(report: RunReport) -> bool:
    """Print what a run did; False when a delivery failed or the campaign paused or stopped
    before its end."""
    tally, counts = report.tally, report.counts
    click.echo(
        f"Campaign {report.campaign.id} ({report.campaign.status.value}): this run sent "
        f"{tally.sent:,}, failed {tally.failed:,}, skipped {tally.skipped:,} in "
        f"{report.elapsed:.1f} s ({report.rate:,.0f} messages/s)."
    )
    click.echo(
        "In all: "
        + ", ".join(f"{state.value} {counts[state]:,}" for state in DeliveryState if counts[state])
        + "."
    )
    if tally.bounced:
        click.echo(
            f"{count(tally.bounced, 'address', 'addresses')} bounced and will get nothing more."
        )
    _print_reconciled(report.reconciled)
    _warn_uncertain(report.campaign.id, counts[UNCERTAIN])
    if report.campaign.status == CampaignStatus.PAUSED:
        click.echo(
            f"Paused: {report.campaign.status_detail}\nFix the cause, then run the same "
            f"command (or `mailer campaigns resume {report.campaign.id}`) to continue.",
            err=True,
        )
    elif report.left_for_later:
        click.echo(
            "Stopped as asked, with every message handed over recorded. The same command (or "
            f"`mailer campaigns resume {report.campaign.id}`) sends the rest.",
            err=True,
        )
    if counts[DeliveryState.FAILED]:
        click.echo(f"`mailer campaigns show {report.campaign.id}` lists the failures.", err=True)
    return (
        not counts[DeliveryState.FAILED]
        and not counts[UNCERTAIN]
        and report.campaign.status != CampaignStatus.PAUSED
        and not report.left_for_later
    )


def _warn_uncertain(campaign_id: int, uncertain: int) -> None:
    if uncertain:
        click.echo(
            f"{count(uncertain, 'message')} uncertain: handed over whole, but no answer came, so "
            f"they may have arrived. `mailer campaigns show {campaign_id}` lists them; "
            "`--resend-uncertain` sends them again.",
            err=True,
        )


def _send_tests(
    newsletter: Newsletter, template: MessageTemplate, addresses: Sequence[str]
) -> None:
    book = AddressBook()
    try:
        checked = [book.normalise(address) for address in addresses]
    except InvalidAddress as error:
        raise RequestError(str(error)) from None
    outgoing = [
        Outgoing(0, newsletter.recipient(0, "", address, ""), template.message_id())
        for address in checked
    ]
    try:
        with newsletter.backend_factory()() as backend:
            results = backend.send(template, outgoing)
    except BackendError as error:
        raise RequestError(f"the test could not be sent: {error}") from None
    failed = False
    for message, result in zip(outgoing, results, strict=True):
        if result.outcome == Outcome.SENT:
            click.echo(
                f"Sent the test to {message.recipient.email} "
                f"({newsletter.config.delivery.backend})."
            )
        else:
            failed = True
            click.echo(f"Not sent to {message.recipient.email}: {result.reason}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _dry_run(
    newsletter: Newsletter,
    template: MessageTemplate,
    list_name: str,
    languages: Sequence[str] | None,
) -> None:
    """Build the message of each subscriber the send would go to (weekly ones aside, and those
    reading another language than the issue's), sending nothing."""
    started = time.monotonic()
    built = size = 0
    for subscriber in newsletter.store.subscribers.readers(list_name, languages):
        recipient = newsletter.recipient(
            subscriber.id, subscriber.link_secret, subscriber.email, subscriber.name
        )
        size += len(template.personalise(recipient))
        built += 1
    elapsed = time.monotonic() - started
    average = size / built / 1024 if built else 0
    click.echo(
        f"Dry run: built {count(built, 'message')} for the active subscribers of '{list_name}', "
        f"weekly ones aside ({average:.0f} KB each), in {elapsed:.1f} s; nothing was sent."
    )


# mailer campaigns --------------------------------------------------------------------------------


@click.group("campaigns", invoke_without_command=True)
@click.pass_context
def campaigns(ctx: click.Context) -> None:
    """The campaigns: what went to whom, what failed; resume, cancel or reschedule one.

    \b
    Examples:
      mailer campaigns
      mailer campaigns show 3
      mailer campaigns resume 3
      mailer campaigns reschedule 4 --at "2026-12-02 09:00"
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_campaigns)


@campaigns.command("list")
@pass_invocation
def list_campaigns(invocation: Invocation) -> None:
    """Every campaign, newest first, with its counts, and when it started or is to start
    (in the newsletter's time zone).

    \b
    Example:
      mailer campaigns list
    """
    newsletter = invocation.newsletter
    store = newsletter.store
    found = store.campaigns.all()
    if not found:
        click.echo("No campaign yet; `mailer send` starts one.")
        return
    zone = newsletter.config.newsletter.zone
    rows = []
    for campaign in found:
        counts = store.campaigns.counts(campaign.id)
        when = campaign.scheduled_at or campaign.created_at
        rows.append(
            (
                str(campaign.id),
                campaign.status.value,
                f"{counts[DeliveryState.SENT]:,}",
                f"{counts[DeliveryState.FAILED]:,}",
                f"{campaign.recipients:,}",
                f"{when.astimezone(zone):%Y-%m-%d %H:%M}",
                f"{_issue_of(campaign)} → {campaign.list_name}",
            )
        )
    header = ("ID", "STATUS", "SENT", "FAILED", "OF", f"WHEN ({zone.key})", "ISSUE → LIST")
    click.echo(table(header, rows, {0, 2, 3, 4}))


def _issue_of(campaign: Campaign) -> str:
    if campaign.kind == CampaignKind.WELCOME:
        return "the welcome email"
    return _KIND_PREFIX.get(campaign.kind, "") + campaign.issue


_KIND_PREFIX = {CampaignKind.DIGEST: "digest: ", CampaignKind.LATEST: "to new subscribers: "}


def _campaign(invocation: Invocation, campaign_id: int) -> Campaign:
    found = invocation.newsletter.store.campaigns.get(campaign_id)
    if found is None:
        raise RequestError(f"there is no campaign {campaign_id}; `mailer campaigns` lists them")
    return found


@campaigns.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--failures", default=50, show_default=True, help="Show at most this many failures.")
@pass_invocation
def show(invocation: Invocation, campaign_id: int, failures: int) -> None:
    """One campaign: its issue, list, status, counts per state and its failures with reasons.

    \b
    Example:
      mailer campaigns show 3
    """
    campaign = _campaign(invocation, campaign_id)
    store = invocation.newsletter.store
    counts = store.campaigns.counts(campaign.id)
    click.echo(f"Campaign {campaign.id}: “{campaign.subject}”")
    click.echo(f"  issue:      {_issue_of(campaign)}")
    click.echo(f"  list:       {campaign.list_name}")
    status = campaign.status.value + (
        f" ({campaign.status_detail})" if campaign.status_detail else ""
    )
    click.echo(f"  status:     {status}")
    if campaign.scheduled_at:
        click.echo(f"  scheduled:  {invocation.newsletter.local_time(campaign.scheduled_at)}")
    click.echo(f"  created:    {campaign.created_at:%Y-%m-%d %H:%M:%S} UTC")
    if campaign.finished_at:
        click.echo(f"  finished:   {campaign.finished_at:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"  recipients: {campaign.recipients:,}")
    for delivery_state in DeliveryState:
        click.echo(f"  {delivery_state.value + ':':11} {counts[delivery_state]:,}")
    links = store.clicks.of_campaign(campaign.id)
    if links:
        click.echo("Links, the most clicked first (clicks; HEAD requests and link scanners apart):")
        for link in links:
            click.echo(f"  {link.clicks:>7,}  ({link.clicks_apart:,} apart)  {link.url}")
    listed = store.campaigns.reasons(campaign.id, DeliveryState.FAILED, failures)
    if listed:
        click.echo("Failures:")
        for address, reason in listed:
            click.echo(f"  {address}: {reason}")
    uncertain = store.campaigns.reasons(campaign.id, UNCERTAIN, failures)
    if uncertain:
        service = invocation.newsletter.config.delivery.backend
        asked = (
            f"`mailer campaigns resume {campaign.id}` first asks {service} which it took; "
            if invocation.newsletter.service_can_be_asked()
            else ""
        )
        click.echo(
            f"Uncertain (they may have arrived; {asked}`mailer campaigns resume {campaign.id} "
            "--resend-uncertain` sends them again):"
        )
        for address, reason in uncertain:
            click.echo(f"  {address}: {reason}")


@campaigns.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--rate", type=float, help="Messages per second at most (0: unlimited).")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Messages in flight at once.")
@RESEND_UNCERTAIN
@pass_invocation
def resume(
    invocation: Invocation,
    campaign_id: int,
    yes: bool,
    rate: float | None,
    concurrency: int | None,
    resend_uncertain: bool,
) -> None:
    """Continue a paused, interrupted or cancelled campaign.

    \b
    Examples:
      mailer campaigns resume 3 --yes
      mailer campaigns resume 3 --resend-uncertain
    """
    newsletter = invocation.newsletter
    campaign = _campaign(invocation, campaign_id)
    never_started = campaign.scheduled_at is not None and not campaign.recipients
    if campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.MISSED) or never_started:
        raise RequestError(
            f"campaign {campaign.id} has not started; `mailer campaigns reschedule "
            f"{campaign.id} --at …` sets when it does"
        )
    template = template_of(newsletter, campaign)
    make_backend = newsletter.backend_factory()
    with newsletter.store.only_sender():
        journal = _journal(newsletter)
        campaign = _asked_first(newsletter, campaign)
        uncertain = newsletter.store.campaigns.counts(campaign.id)[UNCERTAIN]
        resending = resend_uncertain and uncertain > 0
        if campaign.status == CampaignStatus.DONE and not resending:
            click.echo(f"Campaign {campaign.id} is done; nothing left to send.")
            _warn_uncertain(campaign.id, uncertain)
            if uncertain:
                raise click.exceptions.Exit(1)
            return
        left = newsletter.store.campaigns.unfinished(campaign.id) + (uncertain if resending else 0)
        confirm(f"Resume campaign {campaign.id}: {count(left, 'message')} left to send?", yes)
        if resending:
            campaign = _resend_uncertain(newsletter, campaign)
        if campaign.status == CampaignStatus.CANCELLED:
            newsletter.store.campaigns.set_status(campaign.id, CampaignStatus.PAUSED, "resumed")
            campaign = _campaign(invocation, campaign_id)
        report = run_with_progress(
            newsletter,
            template,
            campaign,
            pace(newsletter, rate, concurrency),
            make_backend,
            journal,
        )
    _report(report)


@click.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Messages in flight at once.")
@click.option("--rate", type=float, help="Messages per second at most for this worker.")
@pass_invocation
def worker(
    invocation: Invocation, campaign_id: int, concurrency: int | None, rate: float | None
) -> None:
    """Join a running campaign as one more sending worker (PostgreSQL only).

    Any number of workers, on this machine or others sharing the database, claim batches of
    the campaign; a worker that dies leaves its batch to the others once its lease
    ([delivery] lease) runs out. The campaign is started with `mailer send` as usual.

    \b
    Example:
      mailer send stalemate --yes &   # on one machine
      mailer worker 3                 # on others
    """
    newsletter = invocation.newsletter
    if newsletter.store.single_worker:
        raise RequestError(
            "several sending workers need PostgreSQL; this newsletter keeps its subscribers in "
            "SQLite, where one `mailer send` does the sending. Set [database] url = "
            '"postgresql+psycopg://…" and run `mailer db upgrade` to use several workers'
        )
    campaign = _campaign(invocation, campaign_id)
    if campaign.status != CampaignStatus.RUNNING:
        raise RequestError(
            f"campaign {campaign.id} is {campaign.status.value}, not running; "
            f"`mailer campaigns resume {campaign.id}` continues a paused one"
        )
    template = template_of(newsletter, campaign)
    make_backend = newsletter.backend_factory()
    click.echo(f"Joining campaign {campaign.id} as worker {worker_name()}.")
    worker_pace = pace(newsletter, rate, concurrency)
    journal = _journal(newsletter)
    _report(run_with_progress(newsletter, template, campaign, worker_pace, make_backend, journal))


@campaigns.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_invocation
def cancel(invocation: Invocation, campaign_id: int, yes: bool) -> None:
    """Stop a campaign: nothing more of it is sent (a running send stops after its batch).
    A scheduled campaign does not start.

    \b
    Example:
      mailer campaigns cancel 3
    """
    campaign = _campaign(invocation, campaign_id)
    if campaign.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED, CampaignStatus.MISSED):
        click.echo(f"Campaign {campaign.id} is already {campaign.status.value}.")
        return
    confirm(f"Cancel campaign {campaign.id} (“{campaign.subject}”)?", yes)
    invocation.newsletter.store.campaigns.set_status(
        campaign.id, CampaignStatus.CANCELLED, "cancelled by staff"
    )
    click.echo(f"Cancelled campaign {campaign.id}.")


@campaigns.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--at", "at_text", metavar="TIME", required=True, help=_AT_HELP)
@pass_invocation
def reschedule(invocation: Invocation, campaign_id: int, at_text: str) -> None:
    """Move a scheduled campaign, or give a missed one a new time. Not before its issue's
    embargo ends.

    \b
    Example:
      mailer campaigns reschedule 4 --at "2026-12-03 09:00"
    """
    newsletter = invocation.newsletter
    campaign = _campaign(invocation, campaign_id)
    at = _time_to_come(newsletter, at_text)
    earliest = public_at(issue_for_sending(newsletter, campaign.slugs))
    if earliest > at:
        click.echo(f"Its issue is embargoed until {newsletter.local_time(earliest)}: not earlier.")
        at = earliest
    if not newsletter.store.campaigns.reschedule(campaign.id, at):
        raise RequestError(
            f"campaign {campaign.id} has started ({campaign.status.value}); only one that has "
            "not (scheduled, missed, or cancelled before its time) can be rescheduled"
        )
    click.echo(f"Campaign {campaign.id} is scheduled for {newsletter.local_time(at)}.")
