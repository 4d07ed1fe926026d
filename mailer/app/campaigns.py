"""Running a campaign: the one way `mailer send`, `mailer publish` and the scheduler send.

A campaign's issue is rendered from its slugs, its backend made from the config, and the send
engine run over what remains of it; a run that stopped (a crash, a pause) is continued by the
same steps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import threading
from collections.abc import Callable, Sequence

from mailer.app.newsletter import Newsletter
from mailer.content.commentary import Issue
from mailer.core.errors import RequestError
from mailer.delivery.base import Backend
from mailer.render.message import MessageTemplate
from mailer.sending.dispatch import Dispatcher, Pace, RunReport, Tally
from mailer.sending.journal import Journal
from mailer.sending.reconciling import Reconciled, Reconciliation
from mailer.store.campaigns import Campaign, CampaignKind, CampaignStatus

JOURNAL = ".journal"
"""The sending journal's folder, in the newsletter's folder (see mailer.sending.journal)."""


def journal_of(newsletter: Newsletter) -> tuple[Journal, int]:
    """The sending journal, with what killed runs left in it folded into the send log first
    (what they sent is logged as sent before anything is counted or taken over); and how many
    messages that logged."""
    journal = Journal(newsletter.config.folder / JOURNAL)
    return journal, journal.fold(newsletter.store.campaigns.record)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pace(newsletter: Newsletter, rate: float | None = None, concurrency: int | None = None) -> Pace:
    """[delivery]'s pace, with what the command line overrides."""
    delivery = newsletter.config.delivery
    return Pace(
        rate=delivery.rate if rate is None else rate,
        concurrency=delivery.concurrency if concurrency is None else concurrency,
        max_attempts=delivery.max_attempts,
        retry_backoff=delivery.retry_backoff,
        lease=dt.timedelta(seconds=delivery.lease),
        database_patience=newsletter.config.database.patience,
    )


def issue_for_sending(newsletter: Newsletter, slugs: Sequence[str]) -> Issue:
    """The issue of these slugs (default: the newest released commentary); drafts refused."""
    return no_drafts(newsletter.issue(slugs))


def no_drafts(issue: Issue) -> Issue:
    """The issue, unless one of its commentaries is a draft: then a RequestError saying so."""
    drafts = [c.slug for c in issue.commentaries if c.draft]
    if drafts:
        raise RequestError(f"'{drafts[0]}' is a draft; set draft = false in its file to send it")
    return issue


def issue_key(issue: Issue) -> str:
    """How a campaign names its issue: the slugs, the lead first."""
    return " ".join(c.slug for c in issue.commentaries)


def public_at(issue: Issue) -> dt.datetime:
    """The earliest an issue may go: when the last of its commentaries leaves embargo."""
    return max(c.public_at for c in issue.commentaries)


def template_of(newsletter: Newsletter, campaign: Campaign) -> MessageTemplate:
    if campaign.kind == CampaignKind.WELCOME:
        language = newsletter.store.campaigns.language_of(campaign.id)
        return newsletter.message_template(newsletter.welcome(language), campaign.list_name)
    issue = issue_for_sending(newsletter, campaign.slugs)
    rendered = newsletter.render(issue)
    if campaign.kind == CampaignKind.DIGEST:  # its own subject line, not the lead's title
        rendered = dataclasses.replace(rendered, subject=campaign.subject)
    return newsletter.campaign_template(rendered, campaign.id, campaign.list_name)


def reconciliation(newsletter: Newsletter) -> Reconciliation | None:
    """Asking the configured service about uncertain deliveries, by the newsletter's clock; None
    when the service cannot be asked."""
    reconciler = newsletter.reconciler()
    if reconciler is None:
        return None
    return Reconciliation(reconciler, newsletter.clock, newsletter.config.delivery.max_attempts)


def reconcile(newsletter: Newsletter, campaign: Campaign) -> Reconciled:
    """Ask the service about the campaign's uncertain deliveries now (before they are sent again
    on purpose, say); a done campaign with some to send again is paused, to be resumed. The
    caller holds the sending lock."""
    asking = reconciliation(newsletter)
    if asking is None:
        return Reconciled()
    store = newsletter.store
    reconciled = asking(store.campaigns, campaign.id)
    if reconciled.again and campaign.status == CampaignStatus.DONE:
        store.campaigns.set_status(
            campaign.id, CampaignStatus.PAUSED, "the service never had some uncertain ones"
        )
    return reconciled


def run_campaign(
    newsletter: Newsletter,
    template: MessageTemplate,
    campaign: Campaign,
    pace: Pace,
    make_backend: Callable[[], Backend],
    journal: Journal,
    progress: Callable[[Tally], None] = lambda _: None,
    stopping: threading.Event | None = None,
) -> RunReport:
    """Send what remains of a running or paused campaign; the caller holds the sending lock.
    Once `stopping` is set, the run ends after the batches in hand (see core/stopping.py)."""
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
        newsletter.outgoing,
        pace,
        worker_name(),
        journal,
        reconciliation=reconciliation(newsletter),
        stopping=stopping,
    )
    return engine.run(campaign, progress)
