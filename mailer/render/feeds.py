"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 of the newest commentaries.

Every date in a feed comes from the commentaries themselves, never from the clock, so building
twice with no change gives byte-identical files. Ids are the archive URLs, which depend only on a
commentary's slug: editing a file never changes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from mailer import __version__
from mailer.content.commentary import Commentary
from mailer.core.config import NewsletterSettings

RSS_FILE = "rss.xml"
ATOM_FILE = "atom.xml"
JSON_FILE = "feed.json"
PDF_TYPE = "application/pdf"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def render_feeds(
    commentaries: Sequence[Commentary], newsletter: NewsletterSettings, entries: int
) -> dict[str, bytes]:
    """The three feeds by file name; `commentaries` newest first."""
    newest = list(commentaries[:entries])
    return {
        RSS_FILE: _rss(newest, newsletter),
        ATOM_FILE: _atom(newest, newsletter),
        JSON_FILE: _json_feed(newest, newsletter),
    }


def _updated(commentaries: Sequence[Commentary]) -> dt.datetime:
    return max((c.date for c in commentaries), default=EPOCH)


def _description(newsletter: NewsletterSettings) -> str:
    return f"Commentaries from {newsletter.name}"


def _summary(commentary: Commentary) -> str:
    return " ".join(commentary.summary) or commentary.preheader


def _generator(newsletter: NewsletterSettings) -> FeedGenerator:
    feed = FeedGenerator()
    feed.title(newsletter.name)
    feed.description(_description(newsletter))
    feed.language(newsletter.language)
    feed.generator("mailer", version=__version__)
    return feed


def _rss(commentaries: Sequence[Commentary], newsletter: NewsletterSettings) -> bytes:
    feed = _generator(newsletter)
    feed.load_extension("dc", atom=False, rss=True)
    feed.link(href=newsletter.site_url + RSS_FILE, rel="self", type="application/rss+xml")
    # feedgen writes the last link added as the channel's <link>: the home page goes last.
    feed.link(href=newsletter.site_url + "archive/", rel="alternate")
    feed.lastBuildDate(_updated(commentaries))
    for commentary in commentaries:
        entry = _entry(feed, commentary, commentary.date)
        entry.link(href=commentary.link, rel="alternate")
        entry.guid(commentary.archive_url, permalink=True)
        entry.description(_summary(commentary))
        entry.content(commentary.html, type="CDATA")
        for author in commentary.authors:
            entry.dc.dc_creator(author)
        if commentary.pdf and commentary.pdf_size:
            entry.enclosure(commentary.pdf, str(commentary.pdf_size), PDF_TYPE)
    return bytes(feed.rss_str(pretty=True))


def _atom(commentaries: Sequence[Commentary], newsletter: NewsletterSettings) -> bytes:
    feed = _generator(newsletter)
    feed.id(newsletter.site_url + ATOM_FILE)
    feed.link(href=newsletter.site_url + "archive/", rel="alternate", type="text/html")
    feed.link(href=newsletter.site_url + ATOM_FILE, rel="self", type="application/atom+xml")
    feed.updated(_updated(commentaries))
    feed.author(name=newsletter.name)
    feed.register_extension("pdf", BaseExtension, _AtomEnclosure, atom=True, rss=False)
    for commentary, updated in zip(commentaries, _distinct(commentaries), strict=True):
        entry = _entry(feed, commentary, updated)
        entry.id(commentary.archive_url)
        entry.link(href=commentary.link, rel="alternate", type="text/html")
        entry.summary(_summary(commentary))
        entry.content(commentary.html, type="html")
        for author in commentary.authors:
            entry.author(name=author)
        if commentary.pdf:
            entry.pdf.attach(commentary.pdf, commentary.pdf_size)
    return bytes(feed.atom_str(pretty=True))


def _distinct(commentaries: Sequence[Commentary]) -> list[dt.datetime]:
    """Each entry's atom:updated, a second apart where two share a date (feed validators warn
    when entries have the same one), keeping newest-first order and repeatable builds."""
    result: list[dt.datetime] = []
    for index, commentary in enumerate(commentaries):
        later_twins = sum(1 for other in commentaries[index + 1 :] if other.date == commentary.date)
        result.append(commentary.date + dt.timedelta(seconds=later_twins))
    return result


def _entry(feed: FeedGenerator, commentary: Commentary, updated: dt.datetime) -> FeedEntry:
    entry = feed.add_entry(order="append")
    entry.title(commentary.title)
    entry.published(commentary.date)
    entry.updated(updated)  # feedgen's default is now, which would change every build
    for tag in commentary.tags:
        entry.category(term=tag)
    return entry


class _AtomEnclosure(BaseEntryExtension):  # type: ignore[misc]
    """An Atom `<link rel="enclosure">`: feedgen drops a link's rel, type and length in Atom."""

    def __init__(self) -> None:
        self.url = ""
        self.length = 0

    def attach(self, url: str, length: int) -> None:
        self.url, self.length = url, length

    def extend_atom(self, entry: Any) -> Any:
        if self.url:
            link = etree.SubElement(entry, "link", rel="enclosure", type=PDF_TYPE, href=self.url)
            if self.length:
                link.set("length", str(self.length))
        return entry


def _json_feed(commentaries: Sequence[Commentary], newsletter: NewsletterSettings) -> bytes:
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": newsletter.name,
        "home_page_url": newsletter.site_url + "archive/",
        "feed_url": newsletter.site_url + JSON_FILE,
        "description": _description(newsletter),
        "language": newsletter.language,
        "authors": [{"name": newsletter.name}],
        "items": [_json_item(c) for c in commentaries],
    }
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(commentary: Commentary) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": commentary.archive_url,
        "url": commentary.link,
        "title": commentary.title,
        "content_html": commentary.html,
        "content_text": commentary.text,
        "summary": _summary(commentary),
        "date_published": commentary.date.isoformat(),
        "date_modified": commentary.date.isoformat(),
        "authors": [{"name": author} for author in commentary.authors],
    }
    if commentary.tags:
        item["tags"] = list(commentary.tags)
    if commentary.pdf:
        attachment: dict[str, Any] = {"url": commentary.pdf, "mime_type": PDF_TYPE}
        if commentary.pdf_size:
            attachment["size_in_bytes"] = commentary.pdf_size
        item["attachments"] = [attachment]
    return item
