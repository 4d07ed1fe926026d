"""Sending an issue from the console: approve it, confirm the list, the number of recipients and
the backend, then send now or schedule; pause, resume and cancel a campaign.

Nothing is sent in the request: "send now" records a campaign due now, which the scheduler (in
`mailer serve`, or `mailer scheduler`) starts at its next look, so closing the browser or
restarting `mailer serve` neither stops nor repeats it. Every step is in the audit log.

With `[console] approval = true`, an issue goes (or is scheduled) only once a publisher who did
not write it approved it as its file is now. Its writers are everyone who saved it in the
console, and, for a file that came from git, any front-matter author that holds the staff
address (`authors = ["Ada Lovelace <ada@example.org>"]`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from flask import abort, redirect, request
from flask.typing import ResponseReturnValue

from mailer.app.campaigns import no_drafts, public_at
from mailer.console.access import me, needs, page, record, refusal
from mailer.console.commentaries import commentary_path, readable
from mailer.console.counting import Counted
from mailer.console.drafting import version
from mailer.console.service import console
from mailer.content.commentary import Commentary, Issue, slug_of
from mailer.core.addresses import key
from mailer.core.clock import parse_time
from mailer.core.errors import MailerError
from mailer.scheduler.due import resume
from mailer.store.approvals import Approval
from mailer.store.campaigns import Campaign, CampaignStatus
from mailer.store.staff import Role

ADDRESS = re.compile(r"[^\s<>,;]+@[^\s<>,;]+")
"""An address in a front-matter author: `Ada Lovelace <ada@example.org>`."""
MAX_FIELD = 200
"""Characters at most of the list's name and the time typed in the sending form."""


@dataclass(frozen=True)
class Approving:
    """Where the commentary stands with [console] approval."""

    required: bool
    version: str
    approval: Approval | None
    writers: list[str]

    @property
    def approved(self) -> bool:
        return self.approval is not None

    @property
    def may_go(self) -> bool:
        return self.approved or not self.required

    def may_approve(self, email: str) -> bool:
        return key(email) not in {key(w) for w in self.writers}


def writers(commentary: Commentary, path: Path) -> list[str]:
    """Who wrote it: who saved it in the console, and staff whose address is in its authors."""
    saved = console().newsletter.store.approvals.writers(slug_of(path))
    addresses = {key(a) for author in commentary.authors for a in ADDRESS.findall(author)}
    named = [a.email for a in console().newsletter.store.staff.all() if key(a.email) in addresses]
    return saved + [email for email in named if key(email) not in {key(s) for s in saved}]


def approving(commentary: Commentary, path: Path) -> Approving:
    current = version(path)
    return Approving(
        required=console().newsletter.config.console.approval,
        version=current,
        approval=console().newsletter.store.approvals.approval(slug_of(path), current),
        writers=writers(commentary, path),
    )


def _commentary(slug: str) -> tuple[Commentary, Path]:
    return readable(slug), commentary_path(slug)


@needs(Role.PUBLISHER, "/commentaries/<slug>/approve", ("POST",))
def approve(slug: str) -> ResponseReturnValue:
    commentary, path = _commentary(slug)
    state = approving(commentary, path)
    if request.form.get("version") != state.version:
        return _changed(slug)
    if not state.may_approve(me().email):
        record("approval refused", f"{slug}: {me().email} wrote it")
        return refusal(
            "Not yours to approve",
            "You wrote this commentary (you saved it here or are among its authors): another "
            "publisher approves it.",
            403,
        )
    if state.approval is None:
        console().newsletter.store.approvals.approve(
            slug, state.version, me().email, console().clock()
        )
        record("approved commentary", f"{slug} ({state.version[:12]})")
    return redirect(f"{console().path}/commentaries/{slug}/send")


def _changed(slug: str) -> ResponseReturnValue:
    return page(
        "message.html",
        409,
        heading="The commentary changed",
        text="Someone saved it after you opened this page: look at it again before going on.",
        link=f"{console().path}/commentaries/{slug}/send",
        link_text="See it as it is now",
    )


@dataclass(frozen=True)
class Plan:
    """A send as the confirmation names it."""

    issue: Issue
    list_name: str
    recipients: Counted[int]
    """Counted at most a minute before (see counting.py): the campaign fixes its own."""
    backend: str
    at: dt.datetime | None
    """None: now."""
    earliest: dt.datetime
    """When its embargo ends: it goes no earlier."""
    earlier: Campaign | None
    """A campaign of this issue to this list already: no second one is made."""

    @property
    def when(self) -> dt.datetime | None:
        """When it starts: `at`, or the embargo's end if later; None for now."""
        now = console().clock()
        start = max(self.at or now, self.earliest)
        return None if start <= now else start


class NotPlanned(Exception):
    """What stops the plan, in words for the page."""


def plan(commentary: Commentary, list_name: str, at_text: str) -> Plan:
    newsletter = console().newsletter
    try:  # the commentary as the shelf has it: reading the whole folder takes seconds
        issue = no_drafts(Issue((commentary,)))
    except MailerError as error:
        raise NotPlanned(str(error)) from None
    if list_name not in newsletter.store.lists.names():
        raise NotPlanned(f"There is no list '{list_name}'.")
    at = None
    if at_text.strip():
        try:
            at = parse_time(at_text, newsletter.config.newsletter.zone)
        except ValueError as error:
            raise NotPlanned(str(error)) from None
        if at < console().clock():
            raise NotPlanned(f"{newsletter.local_time(at)} is past: give a time to come.")
    return Plan(
        issue=issue,
        list_name=list_name,
        recipients=console().counts.recipients(
            list_name, commentary.slug, lambda: newsletter.readers(issue)
        ),
        backend=newsletter.config.delivery.backend,
        at=at,
        earliest=public_at(issue),
        earlier=newsletter.store.campaigns.latest(commentary.slug, list_name),
    )


def _form() -> tuple[str, str]:
    source = request.form if request.method == "POST" else request.args
    list_name = source.get("list", console().newsletter.config.delivery.list)[:MAX_FIELD]
    return list_name, source.get("at", "")[:MAX_FIELD]


@needs(Role.PUBLISHER, "/commentaries/<slug>/send")
def confirm_send(slug: str) -> ResponseReturnValue:
    """The confirmation: the list, its recipients, the backend, when; and approval."""
    commentary, path = _commentary(slug)
    list_name, at_text = _form()
    return _confirmation(commentary, path, list_name, at_text)


def _confirmation(
    commentary: Commentary, path: Path, list_name: str, at_text: str, status: int = 200
) -> ResponseReturnValue:
    try:
        planned: Plan | None = plan(commentary, list_name, at_text)
        problem = ""
    except NotPlanned as stop:
        planned, problem = None, str(stop)
    return page(
        "send.html",
        status,
        commentary=commentary,
        lists=console().newsletter.store.lists.names(),
        list_name=list_name,
        at_text=at_text,
        plan=planned,
        problem=problem,
        approving=approving(commentary, path),
        local_time=console().newsletter.local_time,
    )


@needs(Role.PUBLISHER, "/commentaries/<slug>/send", ("POST",))
def send(slug: str) -> ResponseReturnValue:
    """Record the campaign, due now or at its time: the scheduler sends it."""
    commentary, path = _commentary(slug)
    list_name, at_text = _form()
    state = approving(commentary, path)
    if request.form.get("version") != state.version:
        return _changed(slug)
    if not state.may_go:
        return _confirmation(commentary, path, list_name, at_text, 409)
    try:
        planned = plan(commentary, list_name, at_text)
    except NotPlanned:
        return _confirmation(commentary, path, list_name, at_text, 409)
    if planned.earlier is not None:
        return _confirmation(commentary, path, list_name, at_text, 409)
    store = console().newsletter.store
    when = planned.when
    campaign = store.campaigns.schedule(
        slug, list_name, planned.issue.subject, when or console().clock()
    )
    shown = console().newsletter.local_time(when) if when else "now"
    record(
        "scheduled campaign" if when else "sent campaign",
        f"campaign {campaign.id}: {slug} to '{list_name}' ({planned.recipients.value:,} "
        f"recipients) through {planned.backend}, {shown}",
    )
    return redirect(f"{console().path}/campaigns/{campaign.id}")


# A campaign's buttons ------------------------------------------------------------------------

_ACTIONS = {
    # action: (the statuses it applies to, the status it makes, what the log says)
    "pause": ((CampaignStatus.RUNNING,), CampaignStatus.PAUSED, "paused campaign"),
    "cancel": (
        (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED),
        CampaignStatus.CANCELLED,
        "cancelled campaign",
    ),
}


def _campaign(campaign_id: int) -> Campaign:
    found = console().newsletter.store.campaigns.get(campaign_id)
    if found is None:
        abort(404)
    return found


def _stop(campaign_id: int, action: str) -> ResponseReturnValue:
    campaign = _campaign(campaign_id)
    applies, status, logged = _ACTIONS[action]
    moved = console().newsletter.store.campaigns.move(
        campaign.id, applies, status, f"{logged.split()[0]} by {me().email}"
    )
    if not moved:
        return _not_now(campaign, action)
    record(logged, f"campaign {campaign.id}: {campaign.subject}")
    return redirect(f"{console().path}/campaigns/{campaign.id}")


def _not_now(campaign: Campaign, action: str) -> ResponseReturnValue:
    return page(
        "message.html",
        409,
        heading=f"Nothing to {action}",
        text=f"Campaign {campaign.id} is {campaign.status.value}.",
        link=f"{console().path}/campaigns/{campaign.id}",
        link_text="Back to the campaign",
    )


@needs(Role.PUBLISHER, "/campaigns/<int:campaign_id>/pause", ("POST",))
def pause(campaign_id: int) -> ResponseReturnValue:
    """The sending stops after the batches in flight; resume goes on from there."""
    return _stop(campaign_id, "pause")


@needs(Role.PUBLISHER, "/campaigns/<int:campaign_id>/cancel", ("POST",))
def cancel(campaign_id: int) -> ResponseReturnValue:
    """Nothing more of it is sent; a scheduled one never starts."""
    return _stop(campaign_id, "cancel")


@needs(Role.PUBLISHER, "/campaigns/<int:campaign_id>/resume", ("POST",))
def resume_campaign(campaign_id: int) -> ResponseReturnValue:
    """Running again: the scheduler goes on with it at its next look."""
    campaign = _campaign(campaign_id)
    if not resume(console().newsletter, campaign.id):
        return _not_now(campaign, "resume")
    record("resumed campaign", f"campaign {campaign.id}: {campaign.subject}")
    return redirect(f"{console().path}/campaigns/{campaign.id}")
