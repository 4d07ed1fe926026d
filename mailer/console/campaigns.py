"""The dashboard and the campaign pages: what the store knows of campaigns, read only.

Sending, pausing and cancelling from the console wait for the scheduler (issue 13); until then
these pages show what `mailer send` did: counts, failures with reasons, a CSV of failures.
"""

from __future__ import annotations

import csv
import io

from flask import Response, abort
from flask.typing import ResponseReturnValue

from mailer.console.access import needs, page
from mailer.console.service import console
from mailer.store.staff import Role

LAST_CAMPAIGNS = 10
FAILURES_SHOWN = 100
FAILURES_IN_CSV = 1_000_000


@needs(Role.EDITOR, "/")
def dashboard() -> ResponseReturnValue:
    store = console().newsletter.store
    last = store.campaigns.all()[:LAST_CAMPAIGNS]
    return page(
        "dashboard.html",
        campaigns=[(c, store.campaigns.counts(c.id)) for c in last],
        lists=store.lists.summaries(),
    )


@needs(Role.EDITOR, "/campaigns")
def campaigns() -> ResponseReturnValue:
    store = console().newsletter.store
    return page(
        "campaigns.html",
        campaigns=[(c, store.campaigns.counts(c.id)) for c in store.campaigns.all()],
    )


@needs(Role.EDITOR, "/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> ResponseReturnValue:
    store = console().newsletter.store
    found = store.campaigns.get(campaign_id)
    if found is None:
        abort(404)
    return page(
        "campaign.html",
        campaign=found,
        counts=store.campaigns.counts(campaign_id),
        failures=store.campaigns.reasons(campaign_id, limit=FAILURES_SHOWN),
    )


@needs(Role.EDITOR, "/campaigns/<int:campaign_id>/failures.csv")
def failures_csv(campaign_id: int) -> ResponseReturnValue:
    store = console().newsletter.store
    if store.campaigns.get(campaign_id) is None:
        abort(404)
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
