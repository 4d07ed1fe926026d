"""Click counts ([analytics] clicks): per link of a campaign's issue, never per person.

A link is registered once per campaign when the campaign's messages are made (again on resume,
finding the same rows), and counted when someone follows it through the web service. Nothing
about who clicked is stored: no subscriber, no address, no client address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailer.store.schema import campaign_links, deliveries


@dataclass(frozen=True)
class LinkCount:
    link_id: int
    url: str
    clicks: int
    clicks_apart: int
    """HEAD requests and link scanners: counted, but not as people's clicks."""


class Clicks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, campaign_id: int, urls: Sequence[str]) -> dict[str, int]:
        """Each URL's link id in this campaign, made on first sight."""
        if not urls:
            return {}
        hashes = {url: _hash(url) for url in urls}
        rows = [
            {"campaign_id": campaign_id, "url_hash": h, "url": url, "clicks": 0, "clicks_apart": 0}
            for url, h in hashes.items()
        ]
        with self.engine.begin() as connection:
            insert = (
                postgresql.insert(campaign_links)
                if connection.dialect.name == "postgresql"
                else sqlite.insert(campaign_links)
            )
            connection.execute(
                insert.on_conflict_do_nothing(index_elements=["campaign_id", "url_hash"]), rows
            )
            found = connection.execute(
                select(campaign_links.c.url_hash, campaign_links.c.id).where(
                    campaign_links.c.campaign_id == campaign_id,
                    campaign_links.c.url_hash.in_(hashes.values()),
                )
            ).all()
        ids = {row.url_hash: row.id for row in found}
        return {url: ids[h] for url, h in hashes.items()}

    def target(self, campaign_id: int, link_id: int) -> str | None:
        with self.engine.connect() as connection:
            url: str | None = connection.scalar(
                select(campaign_links.c.url).where(
                    campaign_links.c.id == link_id, campaign_links.c.campaign_id == campaign_id
                )
            )
        return url

    def count(self, campaign_id: int, link_id: int, *, apart: bool) -> None:
        column = campaign_links.c.clicks_apart if apart else campaign_links.c.clicks
        with self.engine.begin() as connection:
            connection.execute(
                update(campaign_links)
                .where(campaign_links.c.id == link_id, campaign_links.c.campaign_id == campaign_id)
                .values({column.name: column + 1})
            )

    def last_delivery(self, campaign_id: int) -> dt.datetime | None:
        """When the campaign's latest message was handed over (or otherwise settled)."""
        with self.engine.connect() as connection:
            when: dt.datetime | None = connection.scalar(
                select(func.max(deliveries.c.updated_at)).where(
                    deliveries.c.campaign_id == campaign_id
                )
            )
        return when

    def of_campaign(self, campaign_id: int) -> list[LinkCount]:
        """The campaign's links, the most clicked first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(campaign_links)
                .where(campaign_links.c.campaign_id == campaign_id)
                .order_by(campaign_links.c.clicks.desc(), campaign_links.c.id)
            ).all()
        return [LinkCount(r.id, r.url, r.clicks, r.clicks_apart) for r in rows]


def _hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()
