"""What `mailer publish` and the scheduler's auto_publish send: each released commentary,
once, to the newsletter's list, the oldest first.

A commentary counts as sent to a list once a campaign to that list has it as its lead, however
that campaign ended (a cancelled or missed one was somebody's decision, not something to
repeat); a campaign that stopped half-way is continued rather than started again.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.app.newsletter import Newsletter
from mailer.content.commentary import Collection, Commentary
from mailer.store.campaigns import Campaign, CampaignKind, CampaignStatus

_UNFINISHED = (CampaignStatus.RUNNING, CampaignStatus.PAUSED)


@dataclass(frozen=True)
class Pending:
    commentary: Commentary
    campaign: Campaign | None
    """The campaign of it that stopped half-way, to continue; None: none was started yet."""


def pending(newsletter: Newsletter, collection: Collection, list_name: str) -> list[Pending]:
    """The released commentaries still to send to `list_name`, the oldest first."""
    latest: dict[str, Campaign] = {}
    for earlier in reversed(newsletter.store.campaigns.all()):  # oldest first: newest wins
        if earlier.list_name == list_name and earlier.kind == CampaignKind.ISSUE:
            latest[earlier.slugs[0]] = earlier
    released = sorted(collection.public(newsletter.clock()), key=lambda c: (c.public_at, c.slug))
    found: list[Pending] = []
    for commentary in released:
        campaign = latest.get(commentary.slug)
        if campaign is None or campaign.status in _UNFINISHED:
            found.append(Pending(commentary, campaign))
    return found
