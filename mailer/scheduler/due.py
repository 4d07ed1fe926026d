"""One look at what is due, and doing it: `Scheduler.tick()`.

Everything it needs to know lives in the database (campaigns with their time, the scheduler's
marks), so a scheduler that was stopped, killed or restarted picks up where it left off. Work
that came due while none ran is done on return, unless older than [schedule] grace: then it is
marked missed and reported, never done late without a word. Only one scheduler acts at a time.

Its decisions need the commentaries' metadata only, read through the newsletter's shelf: a look
parses just the files changed since the last (in `mailer serve` the console's threads wait for
none of it); what it sends is read whole from its slugs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mailer.app.campaigns import (
    issue_for_sending,
    journal_of,
    pace,
    public_at,
    run_campaign,
    template_of,
)
from mailer.app.newsletter import Newsletter
from mailer.app.publishing import pending
from mailer.bounces.checking import check_mailbox
from mailer.bounces.mailbox import open_mailbox
from mailer.core.errors import MailerError
from mailer.core.wording import count
from mailer.render.email import digest_subject
from mailer.scheduler import digests
from mailer.store.campaigns import Campaign, CampaignKind, CampaignStatus, Latest

log = logging.getLogger("mailer.scheduler")

BUILT = "build"
"""The mark of the last build: a commentary released after it is new in the feeds."""
AUTO_PUBLISH = "auto_publish"
"""When auto_publish was first seen on: what was released before is left to staff."""
DIGEST_HANDLED = "digest handled:"
"""+ a list's name: the last digest time dealt with (sent, found empty, or missed)."""
DIGEST_SENT = "digest sent:"
"""+ a list's name: the last digest time that was sent; the next digest starts from it."""
BOUNCES_READ = "bounces read"
"""When the last pass over the bounce mailbox began."""
RESUMED = "campaign resumed:"
"""+ a campaign's id: when staff last resumed it (the grace counts from then, not from its
last delivery before the pause)."""


def resume(newsletter: Newsletter, campaign_id: int) -> bool:
    """Make a paused campaign running again, for the scheduler to go on with at its next look;
    False when it is not paused."""
    now = newsletter.clock()
    campaign = newsletter.store.campaigns.get(campaign_id)
    if campaign is None:
        return False
    resumed = newsletter.store.campaigns.move(
        campaign_id,
        (CampaignStatus.PAUSED,),
        CampaignStatus.RUNNING,
        scheduled_at=campaign.scheduled_at or now,  # the scheduler continues what it started
    )
    if resumed:
        newsletter.store.schedule.set_mark(f"{RESUMED}{campaign_id}", now)
    return resumed


@dataclass(frozen=True)
class Note:
    text: str
    warning: bool = False


@dataclass
class Tick:
    """What one look did, in order."""

    notes: list[Note] = field(default_factory=list)
    acted: bool = True
    """False when another scheduler was acting, so this one did nothing."""

    def say(self, text: str, warning: bool = False) -> None:
        self.notes.append(Note(text, warning))
        log.log(logging.WARNING if warning else logging.INFO, "%s", text)

    @property
    def warnings(self) -> list[str]:
        return [n.text for n in self.notes if n.warning]


class Scheduler:
    def __init__(self, newsletter: Newsletter, stopping: threading.Event | None = None) -> None:
        self.newsletter = newsletter
        self.stopping = stopping or threading.Event()
        """Set when the process is asked to stop (core/stopping.py): a campaign being sent ends
        after its batches in hand, and nothing more of the look is done."""

    @property
    def grace(self) -> dt.timedelta:
        return dt.timedelta(hours=self.newsletter.config.schedule.grace)

    def tick(self, turn: Callable[[bool], None] = lambda acting: None) -> Tick:
        """Do what is due now, if no other scheduler is acting. `turn` hears whether this one
        acts as soon as that is known, before the due work (which can take long) starts."""
        done = Tick()
        with self.newsletter.store.schedule.acting_alone() as alone:
            turn(alone)
            if not alone:
                done.acted = False
                return done
            for step in (
                self._build,
                self._auto_publish,
                self._campaigns,
                self._welcome,
                self._digest,
                self._bounces,
            ):
                if self.stopping.is_set():
                    break
                try:
                    step(done)
                except MailerError as error:
                    done.say(f"{step.__name__.strip('_')}: {error}", warning=True)
        return done

    # Embargoes -----------------------------------------------------------------------------

    def _build(self, done: Tick) -> None:
        """Rebuild the feeds and archive when a commentary has come out of embargo since the
        last build (and on the first look, so that they are current)."""
        newsletter = self.newsletter
        now = newsletter.clock()
        marks = newsletter.store.schedule
        last = marks.mark(BUILT)
        collection = newsletter.commentaries(bodies=False)
        lifted = [c for c in collection.public(now) if last is None or c.public_at > last]
        if last is not None and not lifted:
            return
        built = newsletter.build()
        marks.set_mark(BUILT, now)
        news = f"; out of embargo: {', '.join(c.slug for c in lifted)}" if last else ""
        built_count = count(built.commentaries, "commentary", "commentaries")
        done.say(f"Built the feeds and archive ({built_count}){news}.")

    # auto_publish ---------------------------------------------------------------------------

    def _auto_publish(self, done: Tick) -> None:
        """Schedule each commentary released since auto_publish was turned on for its time,
        so that the campaigns below send it, or mark it missed if that is past the grace."""
        newsletter = self.newsletter
        if not newsletter.config.schedule.auto_publish:
            return
        marks = newsletter.store.schedule
        since = marks.mark(AUTO_PUBLISH)
        if since is None:
            marks.set_mark(AUTO_PUBLISH, newsletter.clock())
            done.say("auto_publish is on: commentaries released from now on are sent.")
            return
        list_name = newsletter.config.delivery.list
        collection = newsletter.commentaries(bodies=False)
        collection.raise_errors()
        for found in pending(newsletter, collection, list_name):
            commentary = found.commentary
            if found.campaign is not None or commentary.public_at <= since:
                continue
            campaign = newsletter.store.campaigns.schedule(
                commentary.slug, list_name, commentary.title, commentary.public_at
            )
            done.say(
                f"Campaign {campaign.id}: '{commentary.slug}' to '{list_name}' (auto_publish)."
            )

    # Campaigns ------------------------------------------------------------------------------

    def _campaigns(self, done: Tick) -> None:
        """Continue the campaigns a crash stopped, then start those whose time has come."""
        store = self.newsletter.store
        for campaign in store.campaigns.interrupted():
            self._attempt(self._continue, campaign, done)
        for campaign in store.campaigns.due(self.newsletter.clock()):
            self._attempt(self._start, campaign, done)

    def _attempt(
        self, action: Callable[[Campaign, Tick], None], campaign: Campaign, done: Tick
    ) -> None:
        """One campaign's step; its problem (a commentary gone, a send holding the lock) is
        reported and tried again at the next look, without holding up the other campaigns.
        Once the process is asked to stop, it waits for the next run."""
        if self.stopping.is_set():
            return
        try:
            action(campaign, done)
        except MailerError as error:
            done.say(f"Campaign {campaign.id} (“{campaign.subject}”): {error}", warning=True)

    def _continue(self, campaign: Campaign, done: Tick) -> None:
        """Go on with a campaign a crash stopped, unless it stopped longer ago than the grace:
        then pause it, saying so, for staff to resume (or not)."""
        newsletter = self.newsletter
        now = newsletter.clock()
        stopped = max(
            newsletter.store.campaigns.last_activity(campaign.id) or campaign.created_at,
            newsletter.store.schedule.mark(f"{RESUMED}{campaign.id}") or campaign.created_at,
        )
        if now - stopped > self.grace:
            detail = (
                f"stopped {newsletter.local_time(stopped)} and no scheduler ran until "
                f"{newsletter.local_time(now)}, past the grace of {self.grace}"
            )
            newsletter.store.campaigns.set_status(campaign.id, CampaignStatus.PAUSED, detail)
            done.say(
                f"Campaign {campaign.id} (“{campaign.subject}”) is paused: {detail}. "
                f"`mailer campaigns resume {campaign.id}` sends the rest.",
                warning=True,
            )
            return
        done.say(f"Continuing campaign {campaign.id}, which stopped before its end.")
        self._send(campaign, done)

    def _start(self, campaign: Campaign, done: Tick) -> None:
        newsletter = self.newsletter
        now = newsletter.clock()
        due_at = campaign.scheduled_at or campaign.created_at
        if now - due_at > self.grace:
            detail = (
                f"due {newsletter.local_time(due_at)}, but no scheduler ran until "
                f"{newsletter.local_time(now)}, past the grace of {self.grace}"
            )
            newsletter.store.campaigns.set_status(campaign.id, CampaignStatus.MISSED, detail)
            done.say(
                f"Campaign {campaign.id} (“{campaign.subject}”) was not sent: {detail}. "
                f"`mailer campaigns reschedule {campaign.id} --at …` sends it.",
                warning=True,
            )
            return
        earliest = public_at(issue_for_sending(newsletter, campaign.slugs))
        if earliest > now:  # its commentary's time was moved on since it was scheduled
            newsletter.store.campaigns.reschedule(campaign.id, earliest)
            done.say(
                f"Campaign {campaign.id} waits for its embargo: {newsletter.local_time(earliest)}."
            )
            return
        self._send(campaign, done)

    def _send(self, campaign: Campaign, done: Tick) -> None:
        """Start (when scheduled) and run a campaign through the one send engine."""
        newsletter = self.newsletter
        store = newsletter.store
        template = template_of(newsletter, campaign)
        make_backend = newsletter.backend_factory()
        with store.only_sender():
            if campaign.status == CampaignStatus.SCHEDULED:
                issue = issue_for_sending(newsletter, campaign.slugs)
                started = store.campaigns.begin(campaign.id, newsletter.readers(issue))
                if started is None:
                    return
                campaign = started
                done.say(
                    f"Started campaign {campaign.id} (“{campaign.subject}”) to "
                    f"'{campaign.list_name}': {campaign.recipients:,} recipients."
                )
            journal, _folded = journal_of(newsletter)
            report = run_campaign(
                newsletter,
                template,
                campaign,
                pace(newsletter),
                make_backend,
                journal,
                stopping=self.stopping,
            )
        tally = report.tally
        later = (
            "; stopped as asked, the next scheduler continues it" if report.left_for_later else ""
        )
        done.say(
            f"Campaign {campaign.id} is {report.campaign.status.value}: this run sent "
            f"{tally.sent:,}, failed {tally.failed:,}, skipped {tally.skipped:,}"
            + (f" ({report.campaign.status_detail})" if report.campaign.status_detail else "")
            + later
            + ".",
            warning=bool(tally.failed) or report.campaign.status == CampaignStatus.PAUSED,
        )

    # Welcome emails ---------------------------------------------------------------------------

    def _welcome(self, done: Tick) -> None:
        """The welcome emails owed to those who confirmed since the last look, one campaign
        per list and language, each followed with [subscribe] send_latest by the latest issue
        the list received: sent now through the one send engine (a crash leaves them running,
        for the campaigns above to continue)."""
        newsletter = self.newsletter
        campaigns = newsletter.store.campaigns
        due = campaigns.welcomes_due(newsletter.config.delivery.list)
        if not due:
            return
        for (list_name, language), subscriber_ids in due.items():
            subject = newsletter.welcome(language).subject
            latest = (
                self._latest(list_name, done) if newsletter.config.subscribe.send_latest else None
            )
            for campaign in campaigns.start_welcome(list_name, subscriber_ids, subject, latest):
                what = "welcome email" if campaign.kind == CampaignKind.WELCOME else "latest issue"
                done.say(
                    f"Campaign {campaign.id}: the {what} to "
                    f"{count(campaign.recipients, 'new subscriber')} of '{list_name}'."
                )
                self._attempt(self._send, campaign, done)

    def _latest(self, list_name: str, done: Tick) -> Latest | None:
        """What follows the welcome: the latest issue the list received, if it can still be
        sent (its commentaries may have gone); None when there is none."""
        newsletter = self.newsletter
        sent = newsletter.store.campaigns.last_sent(list_name)
        if sent is None:
            return None
        try:
            issue = issue_for_sending(newsletter, sent.slugs)
        except MailerError as error:
            done.say(f"The welcome emails go without the latest issue: {error}", warning=True)
            return None
        return Latest(sent.issue, sent.subject, newsletter.readers(issue))

    # Digests ---------------------------------------------------------------------------------

    def _digest(self, done: Tick) -> None:
        """At [schedule] digest, the week's commentaries to the weekly subscribers of each list
        (commentaries are not per list: each list's digest holds what came out since its last
        one). Someone weekly on several lists gets one digest: the biggest they are due, then
        the [delivery] list's, then the first list by name."""
        newsletter = self.newsletter
        when = newsletter.config.schedule.digest
        if not when:
            return
        now = newsletter.clock()
        slot = digests.latest_slot(when, newsletter.config.newsletter.zone, now)
        weeks = self._digests_due(slot)
        if not weeks:
            return
        marks = newsletter.store.schedule
        if now - slot > self.grace:
            for list_name in weeks:
                marks.set_mark(DIGEST_HANDLED + list_name, slot)
            done.say(
                f"The digest due {newsletter.local_time(slot)} was not sent: no scheduler ran "
                f"until {newsletter.local_time(now)}, past the grace of {self.grace}. The next "
                "digest holds its commentaries too.",
                warning=True,
            )
            return
        collection = newsletter.commentaries(bodies=False)
        collection.raise_errors()
        released = collection.public(slot)
        planned = [
            (group, list_name)
            for list_name, since in weeks.items()
            for group in digests.groups([c for c in released if c.public_at > since])
        ]
        planned.sort(key=lambda plan: -len(plan[0].commentaries))  # stable: lists keep order
        made = [self._start_digest(group, list_name, slot) for group, list_name in planned]
        for list_name in weeks:
            marks.set_mark(DIGEST_HANDLED + list_name, slot)
            marks.set_mark(DIGEST_SENT + list_name, slot)
        if not planned:
            done.say(f"No digest for {newsletter.local_time(slot)}: nothing new that week.")
        for campaign in made:
            if campaign is None:  # nobody chose weekly at that point of the week
                continue
            done.say(
                f"Digest campaign {campaign.id} (“{campaign.subject}”): "
                f"{campaign.recipients:,} weekly subscribers of '{campaign.list_name}'."
            )
            self._attempt(self._send, campaign, done)

    def _digests_due(self, slot: dt.datetime) -> dict[str, dt.datetime]:
        """The lists whose digest at `slot` is still to be made, each with the time its week
        starts, [delivery] list first. A list seen for the first time starts counting at
        `slot`; one whose digest was made before a crash is left to the campaigns above."""
        newsletter = self.newsletter
        marks = newsletter.store.schedule
        first = newsletter.config.delivery.list
        names = sorted(newsletter.store.lists.names(), key=lambda name: name != first)
        weeks = {}
        for list_name in names:
            handled = marks.mark(DIGEST_HANDLED + list_name)
            if handled is None:
                marks.set_mark(DIGEST_HANDLED + list_name, slot)
                marks.set_mark(DIGEST_SENT + list_name, slot)
            elif handled < slot:
                weeks[list_name] = marks.mark(DIGEST_SENT + list_name) or slot
        if weeks:
            for campaign in newsletter.store.campaigns.all():
                if campaign.kind == CampaignKind.DIGEST and campaign.scheduled_at == slot:
                    marks.set_mark(DIGEST_HANDLED + campaign.list_name, slot)
                    marks.set_mark(DIGEST_SENT + campaign.list_name, slot)  # the next starts here
                    weeks.pop(campaign.list_name, None)
        return weeks

    def _start_digest(
        self, group: digests.Group, list_name: str, slot: dt.datetime
    ) -> Campaign | None:
        newsletter = self.newsletter
        lead = group.commentaries[0]
        return newsletter.store.campaigns.start_digest(
            " ".join(c.slug for c in group.commentaries),
            list_name,
            digest_subject(
                newsletter.config.newsletter,
                newsletter.config.schedule.digest_subject,
                lead,
                len(group.commentaries),
            ),
            slot,
            (group.chosen_from, group.chosen_until),
        )

    # The bounce mailbox ---------------------------------------------------------------------

    def _bounces(self, done: Tick) -> None:
        """Every [bounces] interval, one pass over the bounce mailbox (as `mailer bounces
        check`). Only the acting scheduler makes it, one look at a time, so two passes never
        overlap; a mailbox that cannot be read is reported and tried at the next interval."""
        newsletter = self.newsletter
        config = newsletter.config
        settings = config.bounces
        if not settings.mailbox:
            return
        now = newsletter.clock()
        marks = newsletter.store.schedule
        last = marks.mark(BOUNCES_READ)
        if last is not None and now - last < dt.timedelta(minutes=settings.interval):
            return
        marks.set_mark(BOUNCES_READ, now)  # before reading: a failing server waits its turn too
        mailbox = open_mailbox(settings, config.path)
        read = check_mailbox(mailbox, newsletter.store, newsletter.links, settings.address)
        if not read.quiet:
            done.say(f"The bounce mailbox: {read.summary}", warning=bool(read.left))
