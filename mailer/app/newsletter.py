"""A newsletter folder put together from its config.toml: the one place that wires the pieces.

The command line and the web service hold a Newsletter; everything below it receives plain values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mailer.content.commentary import (
    Collection,
    Commentary,
    Issue,
    Site,
    load_folder,
    with_body,
)
from mailer.content.files import FileProblem, measure
from mailer.content.published import Record
from mailer.content.shelf import Shelf
from mailer.core import config as settings
from mailer.core.clock import Clock, system_clock
from mailer.core.config import Config
from mailer.core.errors import ConfigError, Problem
from mailer.core.events import SoftBounces
from mailer.core.output import Written, write_atomically, write_folder
from mailer.core.tokens import Links, Purpose
from mailer.delivery.base import Backend, Outgoing, Reconciler
from mailer.render.clicks import counted_urls, with_counted_links
from mailer.render.email import (
    RenderedIssue,
    RenderedMessage,
    issue_size_warning,
    render_issue,
    render_welcome,
)
from mailer.render.furniture import Furniture
from mailer.render.message import MessageTemplate, Recipient, Sender
from mailer.render.theme import Theme
from mailer.store.database import Store

PREVIEW_ADDRESS = "reader@example.org"
PREVIEW_NAME = "Reader"
PREVIEW_SUBSCRIBER_ID = 0
_WEAK_SECRETS = {"", "secret", "changeme", "change-me", "mailer", "example", "test", "password"}
MINIMUM_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Built:
    commentaries: int
    written: Written
    embargoed: list[Commentary]
    """Left out: their time is still to come."""


def load_config(path: Path, environment: Mapping[str, str] | None = None) -> Config:
    """config.toml with every provider's table (mailer.providers.registry) read and checked."""
    from mailer.providers import registry

    return settings.load(path, environment, registry.tables(), registry.backends())


class Newsletter:
    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock

    @classmethod
    def load(
        cls,
        path: Path,
        environment: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
    ) -> Newsletter:
        """The newsletter whose config.toml is at `path` ($VARIABLES from `environment`)."""
        return cls(load_config(path, environment), clock)

    def local_time(self, moment: dt.datetime) -> str:
        """A moment as staff read it: in the newsletter's time zone, which is named."""
        zone = self.config.newsletter.zone
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"

    def embargo_note(self, commentary: Commentary) -> str:
        """ "" when it may be published now, else until when it is embargoed."""
        if not commentary.embargoed(self.clock()):
            return ""
        return f"'{commentary.slug}' is embargoed until {self.local_time(commentary.public_at)}"

    @cached_property
    def theme(self) -> Theme:
        return Theme(self.config.paths.templates, self.config.newsletter.language)

    @cached_property
    def site(self) -> Site:
        newsletter = self.config.newsletter
        return Site(
            site_url=newsletter.site_url, zone=newsletter.zone, language=newsletter.language
        )

    @cached_property
    def store(self) -> Store:
        bounces = self.config.bounces
        soft_bounces = SoftBounces(bounces.soft_bounces, bounces.soft_bounce_days)
        return Store.open(self.config.database.url, self.config.folder, self.secret, soft_bounces)

    @cached_property
    def links(self) -> Links:
        return Links(self.config.newsletter.site_url, self.secret())

    def secret(self) -> str:
        """The secret that signs links; refused when missing, short or a well-known default."""
        secret = self.config.newsletter.secret
        if secret.strip().lower() in _WEAK_SECRETS or len(secret) < MINIMUM_SECRET_LENGTH:
            raise ConfigError(
                [
                    Problem(
                        self.config.path,
                        None,
                        "newsletter.secret is too weak to sign unsubscribe links: use at least "
                        f"{MINIMUM_SECRET_LENGTH} random characters, e.g. from "
                        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`",
                    )
                ]
            )
        return secret

    @cached_property
    def shelf(self) -> Shelf:
        """The commentaries as last read, for all that reads them in this process (the
        scheduler's looks, the console's pages): a file is parsed again only once changed."""
        return Shelf(self.site)

    def commentaries(self, bodies: bool = True) -> Collection:
        """Every commentary file, read and checked (problems are kept, not raised); without
        `bodies`, their metadata alone (`whole` reads one back), from the shelf."""
        if not bodies:
            return self.shelf.folder(self.config.paths.commentaries)
        return load_folder(self.config.paths.commentaries, self.site)

    def whole(self, commentary: Commentary) -> Commentary:
        """A commentary with its body, read again if it was let go (the shelf keeps the few
        asked for last)."""
        return with_body(commentary, self.site, self.shelf.whole)

    def issue(self, slugs: Sequence[str]) -> Issue:
        """The issue of these commentaries; with no slugs, the newest released one alone. Only
        its own commentaries are read whole: the others it names (latest) need their metadata."""
        collection = self.commentaries(bodies=False)
        collection.raise_errors()
        if not slugs:
            published = collection.public(self.clock())
            if not published:
                waiting = collection.embargoed(self.clock())
                later = f" ({self.embargo_note(waiting[0])})" if waiting else ""
                raise ConfigError(
                    [
                        Problem(
                            self.config.paths.commentaries,
                            None,
                            f"there is no published commentary{later}; name the one you mean",
                        )
                    ]
                )
            slugs = [published[0].slug]
        issue = collection.issue(slugs, self.config.series.latest)
        return dataclasses.replace(issue, commentaries=tuple(map(self.whole, issue.commentaries)))

    @cached_property
    def furniture(self) -> Furniture:
        """The series' settings, with its logo measured for publishing."""
        series = self.config.series
        if series.logo is None:
            return Furniture(series)
        try:
            logo = measure(series.logo, self.config.newsletter.site_url)
        except OSError as error:
            raise ConfigError(
                [
                    Problem(
                        self.config.path,
                        None,
                        f"[series] logo {series.logo} cannot be read ({error.strerror}); put the "
                        "image there or empty the setting",
                    )
                ]
            ) from None
        except FileProblem as problem:
            raise ConfigError(
                [Problem(self.config.path, None, f"[series] logo {problem}")]
            ) from None
        return Furniture(series, logo)

    def readers(self, issue: Issue) -> list[str] | None:
        """The subscriber languages an issue goes to: those of its lead when the lead exists in
        other languages too ("" being the newsletter's own), else None: everybody."""
        if not self.commentaries(bodies=False).versions(issue.lead):
            return None
        language = issue.lead.language
        return [language, ""] if language == self.config.newsletter.language else [language]

    def render(self, issue: Issue) -> RenderedIssue:
        return render_issue(issue, self.theme, self.config.newsletter, self.furniture)

    def size_warning(self, issue: Issue) -> Problem | None:
        """`render(issue).size_warning()`, inlining the CSS only when the email could be too
        large (what `mailer check` asks of every commentary)."""
        return issue_size_warning(issue, self.theme, self.config.newsletter, self.furniture)

    def sender(self, list_name: str) -> Sender:
        newsletter = self.config.newsletter
        return Sender(
            address=newsletter.sender,
            list_name=f"{newsletter.name}: {list_name}",
            list_label=list_label(list_name),
            reply_to=newsletter.reply_to,
            unsubscribe_mailto=newsletter.unsubscribe_mailto,
            feedback_id=newsletter.feedback_id,
        )

    def message_template(self, rendered: RenderedMessage, list_name: str) -> MessageTemplate:
        return MessageTemplate(rendered, self.sender(list_name))

    def welcome(self, language: str = "") -> RenderedMessage:
        """The welcome email of those who just confirmed (the theme's welcome_email.*), in
        the language they read ("": the newsletter's)."""
        return render_welcome(self.theme, self.config.newsletter, language)

    def campaign_template(
        self, rendered: RenderedIssue, campaign_id: int, list_name: str
    ) -> MessageTemplate:
        """The messages of a campaign: with [analytics] clicks, its links counted."""
        if self.config.analytics.clicks:
            link_ids = self.store.clicks.register(campaign_id, counted_urls(rendered))
            rendered = with_counted_links(
                rendered, link_ids, lambda link_id: self.links.click_url(campaign_id, link_id)
            )
        return self.message_template(rendered, list_name)

    def recipient(self, subscriber_id: int, link_secret: str, email: str, name: str) -> Recipient:
        links = self.links
        return Recipient(
            email=email,
            name=name,
            unsubscribe_url=links.url(Purpose.UNSUBSCRIBE, subscriber_id, link_secret),
            preferences_url=links.url(Purpose.PREFERENCES, subscriber_id, link_secret),
        )

    def envelope_sender(self, subscriber_id: int, link_secret: str) -> str:
        """Where this subscriber's bounces return: the signed VERP address of [bounces]
        address, which the smtp backend sends with as MAIL FROM; "" without one (the From
        address, as HTTP services set their own)."""
        bounces = self.config.bounces.address
        return self.links.bounce_address(bounces, subscriber_id, link_secret) if bounces else ""

    def outgoing(
        self, subscriber_id: int, link_secret: str, email: str, name: str, message_id: str
    ) -> Outgoing:
        """One subscriber's message of a batch: their links and their envelope sender."""
        return Outgoing(
            subscriber_id,
            self.recipient(subscriber_id, link_secret, email, name),
            message_id,
            self.envelope_sender(subscriber_id, link_secret),
        )

    def preview_recipient(self) -> Recipient:
        return self.recipient(PREVIEW_SUBSCRIBER_ID, "", PREVIEW_ADDRESS, PREVIEW_NAME)

    def backend_factory(self) -> Callable[[], Backend]:
        """Makes the configured backend, one per sending worker (see mailer.backends)."""
        from mailer.app.backends import backend_factory  # only the chosen backend is imported

        return backend_factory(self.config)

    def service_can_be_asked(self) -> bool:
        """Whether the configured service can be asked about uncertain deliveries (no secret
        is read to tell)."""
        from mailer.providers import registry

        return registry.with_backend(self.config.delivery.backend).reconciler is not None

    def reconciler(self) -> Reconciler | None:
        """What asks the configured service about uncertain deliveries; None when it cannot be
        asked (see mailer.sending.reconciling)."""
        from mailer.app.backends import reconciler_of

        return reconciler_of(self.config)

    def build(self) -> Built:
        """Feeds and web archive into the output folder, without what is still embargoed;
        nothing is written if anything is wrong. Commentaries are held as metadata and read
        whole one at a time, so memory does not grow with the archive."""
        collection = self.commentaries(bodies=False)
        collection.raise_errors()
        now = self.clock()
        visible = collection.seen_at(now)
        written = write_folder(self.config.paths.output, self.render_files(visible))
        # Only once the feeds are out: an id is recorded as made when it has been published.
        record = self.published_record()
        after = record.with_published(visible.published())
        if after.entries != record.entries:
            write_atomically(after.path, after.as_toml())
        return Built(len(visible.published()), written, collection.embargoed(now))

    def published_record(self) -> Record:
        """Permanent ids and the fingerprints of published texts (commentaries/published.toml)."""
        return Record.read(self.config.paths.commentaries)

    def render_files(
        self, collection: Collection, whole: Callable[[Commentary], Commentary] | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Feeds and archive pages (path in the output folder, bytes), one at a time; each
        commentary whose body is needed is read whole by `whole` (by default `self.whole`).

        When commentaries come in more than one language, each language also has feeds of its own
        in a folder named after it (`it/rss.xml`), beside the newsletter's, which carry them all.
        """
        from mailer.render.feeds import Channel, render_feeds  # feedgen and lxml: when building
        from mailer.render.site import render_site

        whole = whole or self.whole
        newsletter = self.config.newsletter
        entries = self.config.feeds.entries
        published = collection.published()
        versions = collection.every_version()
        record = self.published_record()
        ids = {c.slug: record.id(c) for c in published}
        channel = Channel(newsletter, newsletter.language, versions=versions, ids=ids)
        newest = [self.whole(c) for c in published[:entries]]
        yield from render_feeds(newest, channel, entries).items()
        languages = collection.languages()
        for code in languages if len(languages) > 1 else ():
            own = [self.whole(c) for c in [c for c in published if c.language == code][:entries]]
            folder = Channel(newsletter, code, f"{code}/", versions, ids)
            yield from render_feeds(own, folder, entries).items()
        latest = collection.every_before(self.config.series.latest)
        furniture = self.furniture
        yield from render_site(
            published, self.theme, newsletter, furniture, versions, latest, whole
        )
        beside = [f for c in published for f in c.files] + (
            [furniture.logo] if furniture.logo else []
        )
        for file in beside:
            yield file.published, file.source.read_bytes()


def list_label(list_name: str) -> str:
    """A list's name as the dot-atom label of List-Id: `Commentaries (EN)` → `commentaries-en`."""
    label = re.sub(r"[^a-z0-9]+", "-", list_name.lower()).strip("-")
    return label or "list"
