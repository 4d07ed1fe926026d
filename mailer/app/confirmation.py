"""The message that asks a new subscriber to confirm (double opt-in), sent through the backend.

It is rendered with the theme (confirm_email.txt and confirm_email.html) and built by the same
MessageTemplate as an issue, so it gets the same header checks, and it goes out through whichever
backend config.toml names. Its List-Unsubscribe header lets someone who never asked for it say so
in one click.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.app.newsletter import Newsletter
from mailer.core.tokens import MAX_AGE_DAYS, Purpose
from mailer.delivery.base import Backend, Outgoing, Result
from mailer.render.email import render_confirmation
from mailer.render.message import MessageTemplate
from mailer.store.subscribers import Subscriber


class ConfirmationMail:
    def __init__(self, newsletter: Newsletter, backend: Callable[[], Backend]) -> None:
        self.newsletter = newsletter
        self.backend = backend

    def template(self, subscriber: Subscriber) -> MessageTemplate:
        newsletter = self.newsletter
        rendered = render_confirmation(
            newsletter.theme,
            newsletter.config.newsletter,
            newsletter.links.url(Purpose.CONFIRM, subscriber.id, subscriber.link_secret),
            subscriber.lists,
            MAX_AGE_DAYS[Purpose.CONFIRM],
        )
        list_name = subscriber.lists[0] if subscriber.lists else newsletter.config.delivery.list
        return MessageTemplate(rendered, newsletter.sender(list_name))

    def send(self, subscriber: Subscriber) -> Result:
        """Hand the message to the backend; raises BackendError when it could not be."""
        template = self.template(subscriber)
        recipient = self.newsletter.recipient(
            subscriber.id, subscriber.link_secret, subscriber.email, subscriber.name
        )
        outgoing = Outgoing(subscriber.id, recipient, template.message_id())
        with self.backend() as backend:
            (result,) = backend.send(template, [outgoing])
        return result
