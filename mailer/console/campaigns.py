"""The dashboard and the campaign pages: the next scheduled sends, a campaign's live progress
(a small fragment the page asks for again every few seconds), and once it has finished its
report: counts, failures with reasons, bounces and unsubscribes since, a CSV of failures.

The buttons that send, pause, resume and cancel are in mailer.console.sending.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from flask import Response, abort, request
from flask.typing import ResponseReturnValue

from mailer.console.access import needs, page
from mailer.console.service import console
from mailer.store.campaigns import Campaign, CampaignStatus, DeliveryState
from mailer.store.staff import Role

LAST_CAMPAIGNS = 10
FAILURES_SHOWN = 100
FAILURES_IN_CSV = 1_000_000


UNDER_WAY = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
"""A campaign in these is shown with its live progress; the others with their report."""


@needs(Role.EDITOR, "/")
def dashboard() -> ResponseReturnValue:
    service = console()
    every = service.newsletter.store.campaigns.all()
    scheduled = [c for c in every if c.status == CampaignStatus.SCHEDULED]
    return page(
        "dashboard.html",
        campaigns=[(c, service.counts.campaign(c)) for c in every[:LAST_CAMPAIGNS]],
        scheduled=sorted(scheduled, key=lambda c: (c.scheduled_at or c.created_at, c.id)),
        lists=service.newsletter.store.lists.summaries(),
        local_time=service.newsletter.local_time,
    )


@needs(Role.EDITOR, "/campaigns")
def campaigns() -> ResponseReturnValue:
    counts = console().counts
    return page(
        "campaigns.html",
        campaigns=[(c, counts.campaign(c)) for c in console().newsletter.store.campaigns.all()],
    )


def _found(campaign_id: int) -> Campaign:
    found = console().newsletter.store.campaigns.get(campaign_id)
    if found is None:
        abort(404)
    return found


@needs(Role.EDITOR, "/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> ResponseReturnValue:
    found = _found(campaign_id)
    store = console().newsletter.store
    finished = found.status not in UNDER_WAY
    return page(
        "campaign.html",
        campaign=found,
        progress=Progress.of(found, None),
        failures=store.campaigns.reasons(campaign_id, limit=FAILURES_SHOWN),
        left=store.campaigns.left_since(campaign_id, _started(found)) if finished else None,
        local_time=console().newsletter.local_time,
    )


@needs(Role.EDITOR, "/campaigns/<int:campaign_id>/progress")
def progress(campaign_id: int) -> ResponseReturnValue:
    """The live part of the campaign page. It carries what it showed first (`done` at `since`)
    to measure the rate by, and the status the page was made for (`shown`): when that changed
    (started, paused, finished), the whole page is loaded again, with its buttons or report."""
    found = _found(campaign_id)
    try:
        first = Sample(int(request.args["done"]), dt.datetime.fromisoformat(request.args["since"]))
    except (KeyError, ValueError):
        first = None
    response = page(
        "campaign_progress.html",
        campaign=found,
        progress=Progress.of(found, first),
        local_time=console().newsletter.local_time,
    )
    if request.args.get("shown", found.status.value) != found.status.value:
        response.headers["HX-Refresh"] = "true"
    return response


def _started(campaign: Campaign) -> dt.datetime:
    return campaign.scheduled_at or campaign.created_at


@dataclass(frozen=True)
class Sample:
    done: int
    at: dt.datetime


@dataclass(frozen=True)
class Progress:
    """What the progress fragment shows: the counts, and the pace since the page was opened."""

    counts: dict[DeliveryState, int]
    first: Sample
    """What the page showed when it was opened: the rate is measured from it."""
    now: Sample

    @classmethod
    def of(cls, campaign: Campaign, first: Sample | None) -> Progress:
        counts = console().counts.campaign(campaign)
        now = Sample(sum(counts[s] for s in DONE), console().clock())
        if first is None or first.done > now.done or first.at > now.at:
            first = now
        return cls(counts, first, now)

    @property
    def waiting(self) -> int:
        return self.counts[DeliveryState.QUEUED] + self.counts[DeliveryState.SENDING]

    @property
    def rate(self) -> float | None:
        """Messages a second since the page was opened; None until something went."""
        seconds = (self.now.at - self.first.at).total_seconds()
        if seconds <= 0 or self.now.done == self.first.done:
            return None
        return (self.now.done - self.first.done) / seconds

    @property
    def time_left(self) -> dt.timedelta | None:
        rate = self.rate
        if rate is None:
            return None
        return dt.timedelta(seconds=round(self.waiting / rate))


DONE = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED, DeliveryState.UNCERTAIN)


@needs(Role.EDITOR, "/campaigns/<int:campaign_id>/failures.csv")
def failures_csv(campaign_id: int) -> ResponseReturnValue:
    store = console().newsletter.store
    _found(campaign_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "reason"])
    for email, reason in store.campaigns.reasons(campaign_id, limit=FAILURES_IN_CSV):
        writer.writerow([_no_formula(email), _no_formula(reason)])
    response = Response(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="campaign-{campaign_id}-failures.csv"'
    )
    return response


def _no_formula(value: str) -> str:
    """A spreadsheet runs a cell that starts like a formula; a leading ' keeps it text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
