"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 of the newest commentaries.

Every date in a feed comes from the commentaries themselves, never from the clock, so building
twice with no change gives byte-identical files. Ids are made once (content.published): editing
a file, or moving the site to another address, never changes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from mailer import __version__
from mailer.content.commentary import Commentary
from mailer.core.config import NewsletterSettings
from mailer.render import i18n

RSS_FILE = "rss.xml"
ATOM_FILE = "atom.xml"
JSON_FILE = "feed.json"
PDF_TYPE = "application/pdf"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Channel:
    """One set of feeds: the newsletter's, or one language's in a folder of its own (`it/`)."""

    newsletter: NewsletterSettings
    language: str
    folder: str = ""
    versions: Mapping[str, Sequence[Commentary]] = field(default_factory=dict)
    """The other languages' versions of each commentary, by slug (for hreflang links)."""
    ids: Mapping[str, str] = field(default_factory=dict)
    """Each commentary's permanent id by slug (content.published); else its archive URL."""

    def id(self, commentary: Commentary) -> str:
        return self.ids.get(commentary.slug, commentary.archive_url)

    def url(self, name: str) -> str:
        return self.newsletter.site_url + self.folder + name

    @property
    def home(self) -> str:
        return self.newsletter.site_url + "archive/"

    @property
    def description(self) -> str:
        texts = i18n.language(self.language)
        return texts.gettext("Commentaries from %(newsletter)s") % {
            "newsletter": self.newsletter.name
        }


def render_feeds(
    commentaries: Sequence[Commentary], channel: Channel, entries: int
) -> dict[str, bytes]:
    """The three feeds by path in the output folder; `commentaries` newest first."""
    newest = list(commentaries[:entries])
    return {
        channel.folder + RSS_FILE: _rss(newest, channel),
        channel.folder + ATOM_FILE: _atom(newest, channel),
        channel.folder + JSON_FILE: _json_feed(newest, channel),
    }


def _modified(commentary: Commentary) -> dt.datetime:
    """When it last changed: its correction's date, else its publication's."""
    return max(commentary.date, commentary.updated or commentary.date)


def _updated(commentaries: Sequence[Commentary]) -> dt.datetime:
    return max((_modified(c) for c in commentaries), default=EPOCH)


def _summary(commentary: Commentary) -> str:
    return " ".join(commentary.summary) or commentary.preheader


def _generator(channel: Channel) -> FeedGenerator:
    feed = FeedGenerator()
    feed.title(channel.newsletter.name)
    feed.description(channel.description)
    feed.language(channel.language)
    feed.generator("mailer", version=__version__)
    return feed


def _rss(commentaries: Sequence[Commentary], channel: Channel) -> bytes:
    feed = _generator(channel)
    feed.load_extension("dc", atom=False, rss=True)
    feed.link(href=channel.url(RSS_FILE), rel="self", type="application/rss+xml")
    # feedgen writes the last link added as the channel's <link>: the home page goes last.
    feed.link(href=channel.home, rel="alternate")
    feed.lastBuildDate(_updated(commentaries))
    for commentary in commentaries:
        entry = _entry(feed, commentary, commentary.date)
        entry.link(href=commentary.link, rel="alternate")
        identity = channel.id(commentary)
        entry.guid(identity, permalink=identity == commentary.archive_url)
        entry.description(_summary(commentary))
        for author in commentary.authors:
            entry.dc.dc_creator(author)
        content = commentary.html
        if commentary.pdf and commentary.pdf_size:
            entry.enclosure(commentary.pdf, str(commentary.pdf_size), PDF_TYPE)
        elif commentary.pdf:
            # RSS requires an enclosure's length: without it, the PDF is a link in the text.
            download = i18n.language(commentary.language).gettext("Download the PDF")
            content += f'\n<p><a href="{escape(commentary.pdf)}">{escape(download)}</a></p>'
        entry.content(content, type="CDATA")
    return bytes(feed.rss_str(pretty=True))


def _atom(commentaries: Sequence[Commentary], channel: Channel) -> bytes:
    feed = _generator(channel)
    feed.id(channel.url(ATOM_FILE))
    feed.link(href=channel.home, rel="alternate", type="text/html")
    feed.link(href=channel.url(ATOM_FILE), rel="self", type="application/atom+xml")
    feed.updated(_updated(commentaries))
    feed.author(name=channel.newsletter.name)
    feed.register_extension("links", BaseExtension, _AtomLinks, atom=True, rss=False)
    for commentary, updated in zip(commentaries, _distinct(commentaries), strict=True):
        entry = _entry(feed, commentary, updated)
        entry.id(channel.id(commentary))
        entry.link(href=commentary.link, rel="alternate", type="text/html")
        entry.summary(_summary(commentary))
        entry.content(commentary.html, type="html")
        for author in commentary.authors:
            entry.author(name=author)
        for version in channel.versions.get(commentary.slug, ()):
            entry.links.add(
                rel="alternate", type="text/html", hreflang=version.language, href=version.link
            )
        if commentary.pdf:
            length = {"length": str(commentary.pdf_size)} if commentary.pdf_size else {}
            entry.links.add(rel="enclosure", type=PDF_TYPE, href=commentary.pdf, **length)
    return bytes(feed.atom_str(pretty=True))


def _distinct(commentaries: Sequence[Commentary]) -> list[dt.datetime]:
    """Each entry's atom:updated, a second apart where two share a date (feed validators warn
    when entries have the same one), keeping newest-first order and repeatable builds."""
    result: list[dt.datetime] = []
    for index, commentary in enumerate(commentaries):
        modified = _modified(commentary)
        later_twins = sum(1 for other in commentaries[index + 1 :] if _modified(other) == modified)
        result.append(modified + dt.timedelta(seconds=later_twins))
    return result


def _entry(feed: FeedGenerator, commentary: Commentary, updated: dt.datetime) -> FeedEntry:
    entry = feed.add_entry(order="append")
    entry.title(commentary.title)
    entry.published(commentary.date)
    entry.updated(updated)  # feedgen's default is now, which would change every build
    for tag in commentary.tags:
        entry.category(term=tag)
    return entry


class _AtomLinks(BaseEntryExtension):  # type: ignore[misc]
    """Atom `<link>`s written as given: feedgen drops a link's rel, type, length and hreflang."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def add(self, **attributes: str) -> None:
        self.links.append(attributes)

    def extend_atom(self, entry: Any) -> Any:
        for attributes in self.links:
            etree.SubElement(entry, "link", attributes)
        return entry


def _json_feed(commentaries: Sequence[Commentary], channel: Channel) -> bytes:
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": channel.newsletter.name,
        "home_page_url": channel.home,
        "feed_url": channel.url(JSON_FILE),
        "description": channel.description,
        "language": channel.language,
        "authors": [{"name": channel.newsletter.name}],
        "items": [_json_item(c, channel.id(c)) for c in commentaries],
    }
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(commentary: Commentary, identity: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": identity,
        "url": commentary.link,
        "title": commentary.title,
        "content_html": commentary.html,
        "content_text": commentary.text,
        "summary": _summary(commentary),
        "date_published": commentary.date.isoformat(),
        "date_modified": _modified(commentary).isoformat(),
        "authors": [{"name": author} for author in commentary.authors],
        "language": commentary.language,
    }
    if commentary.tags:
        item["tags"] = list(commentary.tags)
    if commentary.pdf:
        attachment: dict[str, Any] = {"url": commentary.pdf, "mime_type": PDF_TYPE}
        if commentary.pdf_size:
            attachment["size_in_bytes"] = commentary.pdf_size
        item["attachments"] = [attachment]
    return item
