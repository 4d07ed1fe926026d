"""`mailer send` and `mailer campaigns`: an issue to a list, resumable, with a report."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Sequence

import click

from mailer.app.newsletter import Newsletter
from mailer.cli.shared import Invocation, confirm, count, pass_invocation, progress_bar
from mailer.content.commentary import Issue
from mailer.core.addresses import AddressBook, InvalidAddress
from mailer.core.errors import RequestError
from mailer.core.lifecycle import Status
from mailer.delivery.base import Backend, BackendError, Outcome, Outgoing
from mailer.render.message import MessageTemplate
from mailer.sending.dispatch import Dispatcher, Pace, RunReport, Tally
from mailer.sending.journal import Journal
from mailer.store.campaigns import Campaign, CampaignStatus, DeliveryState

UNCERTAIN = DeliveryState.UNCERTAIN
JOURNAL = ".journal"
"""The sending journal's folder, in the newsletter's folder (see mailer.journal)."""


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pace(newsletter: Newsletter, rate: float | None, concurrency: int | None) -> Pace:
    delivery = newsletter.config.delivery
    return Pace(
        rate=delivery.rate if rate is None else rate,
        concurrency=delivery.concurrency if concurrency is None else concurrency,
        max_attempts=delivery.max_attempts,
        retry_backoff=delivery.retry_backoff,
        lease=dt.timedelta(seconds=delivery.lease),
        database_patience=newsletter.config.database.patience,
    )


RESEND_UNCERTAIN = click.option(
    "--resend-uncertain",
    is_flag=True,
    help="Send again the messages recorded as uncertain (handed over, no answer came): they "
    "may arrive twice.",
)


def _issue_for_sending(newsletter: Newsletter, slugs: Sequence[str]) -> Issue:
    issue = newsletter.issue(slugs)
    drafts = [c.slug for c in issue.commentaries if c.draft]
    if drafts:
        raise RequestError(f"'{drafts[0]}' is a draft; set draft = false in its file to send it")
    return issue


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
    resend_uncertain: bool,
) -> None:
    """Send the issue made of SLUGS (default: the newest commentary) to a list.

    Starting fixes the recipients: the active subscribers of the list at that moment. If the
    send is interrupted, run the same command again: it continues where it stopped. Nobody
    logged as sent is sent again; at most one message per connection (the one in flight when
    it stopped) can arrive twice. A message handed over whole that got no answer is recorded as
    uncertain and sent again only with --resend-uncertain. An issue that has already gone to
    the list is not sent again.

    \b
    Examples:
      mailer send stalemate --test me@example.org
      mailer send stalemate --dry-run
      mailer send stalemate --list commentaries --yes
      mailer send stalemate --resend-uncertain
    """
    newsletter = invocation.newsletter
    issue = _issue_for_sending(newsletter, slugs)
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
        _dry_run(newsletter, template, list_name)
        return
    make_backend = newsletter.backend_factory()  # a missing secret stops us before a campaign
    with store.only_sender():
        journal = _journal(newsletter)
        campaign = _campaign_to_send(newsletter, issue, list_name, yes, resend_uncertain)
        if campaign is None:
            return
        template = newsletter.campaign_template(rendered, campaign.id, list_name)
        pace = _pace(newsletter, rate, concurrency)
        report = _run(newsletter, template, campaign, pace, make_backend, journal)
    _report(report)


def _campaign_to_send(
    newsletter: Newsletter, issue: Issue, list_name: str, yes: bool, resend_uncertain: bool
) -> Campaign | None:
    """The campaign of this issue to this list that the send continues, or a new one; None when
    the issue already went. Asks before a new send or a resumed one."""
    store = newsletter.store
    issue_key = " ".join(c.slug for c in issue.commentaries)
    campaign = store.campaigns.latest(issue_key, list_name)
    uncertain = 0 if campaign is None else store.campaigns.counts(campaign.id)[UNCERTAIN]
    resending = resend_uncertain and uncertain > 0
    if campaign is not None and campaign.status == CampaignStatus.DONE and not resending:
        when = campaign.finished_at or campaign.created_at
        click.echo(
            f"This issue went to '{list_name}' on {when:%Y-%m-%d %H:%M} UTC "
            f"(campaign {campaign.id}); nothing was sent."
        )
        _warn_uncertain(campaign.id, uncertain)
        if uncertain:
            raise click.exceptions.Exit(1)
        return None
    if campaign is not None and campaign.status == CampaignStatus.CANCELLED:
        raise RequestError(
            f"campaign {campaign.id} of this issue to '{list_name}' was cancelled; "
            f"`mailer campaigns resume {campaign.id}` continues it"
        )
    if campaign is not None:
        left = store.campaigns.unfinished(campaign.id) + (uncertain if resending else 0)
        confirm(f"Resume campaign {campaign.id}: {count(left, 'message')} left to send?", yes)
        if resending:
            campaign = _resend_uncertain(newsletter, campaign)
        click.echo(f"Resuming campaign {campaign.id}: {count(left, 'message')} left.")
        return campaign
    recipients = store.subscribers.count(Status.ACTIVE, list_name)
    confirm(
        f"Send “{issue.subject}” to {count(recipients, 'active subscriber')} of "
        f"'{list_name}' through {newsletter.config.delivery.backend}?",
        yes,
    )
    try:
        campaign = store.campaigns.start(
            issue_key, list_name, issue.subject, newsletter.readers(issue)
        )
    except LookupError:
        raise RequestError(f"there is no list '{list_name}'; `mailer lists` shows them") from None
    click.echo(f"Campaign {campaign.id}: {count(campaign.recipients, 'recipient')}.")
    return campaign


def _resend_uncertain(newsletter: Newsletter, campaign: Campaign) -> Campaign:
    """Queue the campaign's uncertain messages again, reopening it if it was done."""
    store = newsletter.store
    again = store.campaigns.resend_uncertain(campaign.id)
    click.echo(f"Sending {count(again, 'uncertain message')} again, as asked.")
    if campaign.status == CampaignStatus.DONE:
        store.campaigns.set_status(campaign.id, CampaignStatus.PAUSED, "uncertain ones resent")
    return store.campaigns.get(campaign.id) or campaign


def _journal(newsletter: Newsletter) -> Journal:
    """The sending journal, with what killed runs left in it folded into the send log first:
    what they sent is logged as sent before anything is counted or taken over."""
    journal = Journal(newsletter.config.folder / JOURNAL)
    folded = journal.fold(newsletter.store.campaigns.record)
    if folded:
        click.echo(f"Logged {count(folded, 'message')} an interrupted run had handed over.")
    return journal


def _run(
    newsletter: Newsletter,
    template: MessageTemplate,
    campaign: Campaign,
    pace: Pace,
    make_backend: Callable[[], Backend],
    journal: Journal,
) -> RunReport:
    store = newsletter.store
    if store.single_worker:  # a crashed run's batches are ours to take: we hold the lock
        store.campaigns.release(campaign.id)
    if campaign.status == CampaignStatus.PAUSED:
        store.campaigns.set_status(campaign.id, CampaignStatus.RUNNING)
        campaign = store.campaigns.get(campaign.id) or campaign
    engine = Dispatcher(
        store.campaigns,
        template,
        make_backend,
        newsletter.recipient,
        pace,
        _worker_name(),
        journal,
    )
    total = store.campaigns.unfinished(campaign.id)
    with progress_bar(total, "Sending") as bar:
        shown = 0

        def progress(tally: Tally) -> None:
            nonlocal shown
            bar.update(tally.done - shown)
            shown = tally.done

        return engine.run(campaign, progress)


def _report(report: RunReport) -> None:
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
    _warn_uncertain(report.campaign.id, counts[UNCERTAIN])
    if report.campaign.status == CampaignStatus.PAUSED:
        click.echo(
            f"Paused: {report.campaign.status_detail}\nFix the cause, then run the same "
            f"command (or `mailer campaigns resume {report.campaign.id}`) to continue.",
            err=True,
        )
    if counts[DeliveryState.FAILED]:
        click.echo(f"`mailer campaigns show {report.campaign.id}` lists the failures.", err=True)
    if (
        counts[DeliveryState.FAILED]
        or counts[UNCERTAIN]
        or report.campaign.status == CampaignStatus.PAUSED
    ):
        raise click.exceptions.Exit(1)


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


def _dry_run(newsletter: Newsletter, template: MessageTemplate, list_name: str) -> None:
    started = time.monotonic()
    built = size = 0
    for subscriber in newsletter.store.subscribers.each(
        statuses=[Status.ACTIVE], list_name=list_name
    ):
        recipient = newsletter.recipient(
            subscriber.id, subscriber.link_secret, subscriber.email, subscriber.name
        )
        size += len(template.personalise(recipient))
        built += 1
    elapsed = time.monotonic() - started
    average = size / built / 1024 if built else 0
    click.echo(
        f"Dry run: built {count(built, 'message')} for the active subscribers of '{list_name}' "
        f"({average:.0f} KB each) in {elapsed:.1f} s; nothing was sent."
    )


# mailer campaigns --------------------------------------------------------------------------------


@click.group("campaigns", invoke_without_command=True)
@click.pass_context
def campaigns(ctx: click.Context) -> None:
    """The campaigns: what went to whom, what failed; resume or cancel one.

    \b
    Examples:
      mailer campaigns
      mailer campaigns show 3
      mailer campaigns resume 3
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_campaigns)


@campaigns.command("list")
@pass_invocation
def list_campaigns(invocation: Invocation) -> None:
    """Every campaign, newest first, with its counts.

    \b
    Example:
      mailer campaigns list
    """
    store = invocation.newsletter.store
    found = store.campaigns.all()
    if not found:
        click.echo("No campaign yet; `mailer send` starts one.")
        return
    click.echo(
        f"{'ID':>4}  {'STATUS':9}  {'SENT':>9}  {'FAILED':>7}  {'OF':>9}  "
        f"{'STARTED':16}  ISSUE → LIST"
    )
    for campaign in found:
        counts = store.campaigns.counts(campaign.id)
        click.echo(
            f"{campaign.id:>4}  {campaign.status.value:9}  {counts[DeliveryState.SENT]:>9,}  "
            f"{counts[DeliveryState.FAILED]:>7,}  {campaign.recipients:>9,}  "
            f"{campaign.created_at:%Y-%m-%d %H:%M}  {campaign.issue} → {campaign.list_name}"
        )


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
    click.echo(f"  issue:      {campaign.issue}")
    click.echo(f"  list:       {campaign.list_name}")
    status = campaign.status.value + (
        f" ({campaign.status_detail})" if campaign.status_detail else ""
    )
    click.echo(f"  status:     {status}")
    click.echo(f"  started:    {campaign.created_at:%Y-%m-%d %H:%M:%S} UTC")
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
        click.echo(
            f"Uncertain (they may have arrived; `mailer campaigns resume {campaign.id} "
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
    uncertain = newsletter.store.campaigns.counts(campaign.id)[UNCERTAIN]
    resending = resend_uncertain and uncertain > 0
    if campaign.status == CampaignStatus.DONE and not resending:
        click.echo(f"Campaign {campaign.id} is done; nothing left to send.")
        _warn_uncertain(campaign.id, uncertain)
        if uncertain:
            raise click.exceptions.Exit(1)
        return
    issue = _issue_for_sending(newsletter, campaign.slugs)
    template = newsletter.campaign_template(
        newsletter.render(issue), campaign.id, campaign.list_name
    )
    make_backend = newsletter.backend_factory()
    with newsletter.store.only_sender():
        journal = _journal(newsletter)
        left = newsletter.store.campaigns.unfinished(campaign.id) + (uncertain if resending else 0)
        confirm(f"Resume campaign {campaign.id}: {count(left, 'message')} left to send?", yes)
        if resending:
            campaign = _resend_uncertain(newsletter, campaign)
        if campaign.status == CampaignStatus.CANCELLED:
            newsletter.store.campaigns.set_status(campaign.id, CampaignStatus.PAUSED, "resumed")
            campaign = _campaign(invocation, campaign_id)
        pace = _pace(newsletter, rate, concurrency)
        report = _run(newsletter, template, campaign, pace, make_backend, journal)
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
    issue = _issue_for_sending(newsletter, campaign.slugs)
    template = newsletter.campaign_template(
        newsletter.render(issue), campaign.id, campaign.list_name
    )
    make_backend = newsletter.backend_factory()
    click.echo(f"Joining campaign {campaign.id} as worker {_worker_name()}.")
    pace = _pace(newsletter, rate, concurrency)
    _report(_run(newsletter, template, campaign, pace, make_backend, _journal(newsletter)))


@campaigns.command()
@click.argument("campaign_id", type=int, metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_invocation
def cancel(invocation: Invocation, campaign_id: int, yes: bool) -> None:
    """Stop a campaign: nothing more of it is sent (a running send stops after its batch).

    \b
    Example:
      mailer campaigns cancel 3
    """
    campaign = _campaign(invocation, campaign_id)
    if campaign.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED):
        click.echo(f"Campaign {campaign.id} is already {campaign.status.value}.")
        return
    confirm(f"Cancel campaign {campaign.id} (“{campaign.subject}”)?", yes)
    invocation.newsletter.store.campaigns.set_status(
        campaign.id, CampaignStatus.CANCELLED, "cancelled by staff"
    )
    click.echo(f"Cancelled campaign {campaign.id}.")
