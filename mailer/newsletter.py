"""A newsletter folder put together from its config.toml: the one place that wires the pieces.

The command line and the web service hold a Newsletter; everything below it receives plain values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from mailer.config import Config
from mailer.content import Collection, Commentary, Issue, Site, load_folder
from mailer.delivery.base import Backend
from mailer.delivery.dkim import Signer
from mailer.delivery.generic import GenericHttpBackend
from mailer.delivery.mailgun import MailgunBackend
from mailer.delivery.outbox import OutboxBackend
from mailer.delivery.postmark import PostmarkBackend
from mailer.delivery.sendgrid import SendgridBackend
from mailer.delivery.smtp import SmtpBackend
from mailer.errors import ConfigError, Problem
from mailer.links import Links, Purpose
from mailer.output import Written, write_folder
from mailer.render.email import RenderedIssue, render_issue
from mailer.render.feeds import render_feeds
from mailer.render.message import MessageTemplate, Recipient, Sender
from mailer.render.site import render_site
from mailer.store import Store
from mailer.theme import Theme

PREVIEW_ADDRESS = "reader@example.org"
PREVIEW_NAME = "Reader"
PREVIEW_SUBSCRIBER_ID = 0
_WEAK_SECRETS = {"", "secret", "changeme", "change-me", "mailer", "example", "test", "password"}
MINIMUM_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Built:
    commentaries: int
    written: Written


class Newsletter:
    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def theme(self) -> Theme:
        return Theme(self.config.paths.templates)

    @cached_property
    def site(self) -> Site:
        newsletter = self.config.newsletter
        return Site(site_url=newsletter.site_url, zone=newsletter.zone)

    @cached_property
    def store(self) -> Store:
        return Store.open(self.config.database.url, self.config.folder)

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

    def commentaries(self) -> Collection:
        """Every commentary file, read and checked (problems are kept, not raised)."""
        return load_folder(self.config.paths.commentaries, self.site)

    def issue(self, slugs: Sequence[str]) -> Issue:
        """The issue of these commentaries; with no slugs, the newest published one alone."""
        collection = self.commentaries()
        collection.raise_errors()
        if not slugs:
            published = collection.published()
            if not published:
                raise ConfigError(
                    [
                        Problem(
                            self.config.paths.commentaries, None, "there is no published commentary"
                        )
                    ]
                )
            slugs = [published[0].slug]
        return collection.issue(slugs)

    def render(self, issue: Issue) -> RenderedIssue:
        return render_issue(issue, self.theme, self.config.newsletter)

    def sender(self, list_name: str) -> Sender:
        newsletter = self.config.newsletter
        return Sender(
            address=newsletter.sender,
            list_name=f"{newsletter.name}: {list_name}",
            list_label=list_label(list_name),
            reply_to=newsletter.reply_to,
        )

    def message_template(self, rendered: RenderedIssue, list_name: str) -> MessageTemplate:
        return MessageTemplate(rendered, self.sender(list_name))

    def recipient(self, subscriber_id: int, email: str, name: str) -> Recipient:
        return Recipient(
            email=email,
            name=name,
            unsubscribe_url=self.links.url(Purpose.UNSUBSCRIBE, subscriber_id),
            preferences_url=self.links.url(Purpose.PREFERENCES, subscriber_id),
        )

    def preview_recipient(self) -> Recipient:
        return self.recipient(PREVIEW_SUBSCRIBER_ID, PREVIEW_ADDRESS, PREVIEW_NAME)

    def backend_factory(self) -> Callable[[], Backend]:
        """Makes the configured backend, one per sending worker. Secrets are read now, so that
        a missing one is reported before anything is sent."""
        delivery = self.config.delivery
        sign = self.signer()
        connections = delivery.concurrency
        if delivery.backend == "outbox":
            folder = delivery.outbox.path
            return lambda: OutboxBackend(folder, sign)
        if delivery.backend == "smtp":
            smtp = delivery.smtp
            password = smtp.password if smtp.username else ""
            return lambda: SmtpBackend(
                smtp.host,
                smtp.port,
                security=smtp.security,
                username=smtp.username,
                password=lambda: password,
                timeout=smtp.timeout,
                sign=sign,
            )
        if delivery.backend == "mailgun":
            mailgun = delivery.mailgun
            domain, key = mailgun.domain, mailgun.api_key
            return lambda: MailgunBackend(
                mailgun.endpoint, domain, key, mailgun.timeout, connections
            )
        if delivery.backend == "sendgrid":
            sendgrid = delivery.sendgrid
            key = sendgrid.api_key
            return lambda: SendgridBackend(sendgrid.endpoint, key, sendgrid.timeout, connections)
        if delivery.backend == "postmark":
            postmark = delivery.postmark
            token, stream = postmark.server_token, postmark.message_stream
            return lambda: PostmarkBackend(
                postmark.endpoint, token, stream, postmark.timeout, connections
            )
        generic = delivery.http
        url, token, secret = generic.url, generic.token, generic.signing_secret
        return lambda: GenericHttpBackend(url, token, secret, generic.timeout, connections)

    def signer(self) -> Callable[[bytes], bytes]:
        """DKIM signing when [dkim] names a domain, else messages go as they are."""
        settings = self.config.dkim
        if not settings.domain:
            return lambda data: data
        if not settings.selector or settings.private_key_file is None:
            raise ConfigError(
                [
                    Problem(
                        self.config.path,
                        None,
                        "[dkim] needs selector and private_key_file as well as domain",
                    )
                ]
            )
        return Signer.from_file(settings.domain, settings.selector, settings.private_key_file)

    def build(self) -> Built:
        """Feeds and web archive into the output folder; nothing is written if anything is wrong."""
        collection = self.commentaries()
        collection.raise_errors()
        published = collection.published()
        files = self.render_files(published)
        return Built(len(published), write_folder(self.config.paths.output, files))

    def render_files(self, published: Sequence[Commentary]) -> dict[str, bytes]:
        """Feeds and archive pages by path in the output folder, in memory."""
        newsletter = self.config.newsletter
        files = render_feeds(published, newsletter, self.config.feeds.entries)
        files.update(render_site(published, self.theme, newsletter))
        return files


def list_label(list_name: str) -> str:
    """A list's name as the dot-atom label of List-Id: `Commentaries (EN)` → `commentaries-en`."""
    label = re.sub(r"[^a-z0-9]+", "-", list_name.lower()).strip("-")
    return label or "list"
