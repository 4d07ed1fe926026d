"""The messages made for one person at their request, sent through the backend: the one that asks
a new subscriber to confirm (double opt-in) and the one that brings back a lost preferences link.

Each is rendered with the theme (confirm_email.* and preferences_email.*) in the subscriber's
language (the newsletter's when they have none) and built by the same
MessageTemplate as an issue, so it gets the same header checks, and it goes out through whichever
backend config.toml names. Its List-Unsubscribe header lets someone who never asked for it say so
in one click.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from mailer.app.newsletter import Newsletter
from mailer.core.tokens import MAX_AGE_DAYS, Purpose
from mailer.delivery.base import Backend, Result
from mailer.render.email import RenderedMessage, render_confirmation, render_preferences_link
from mailer.render.message import MessageTemplate
from mailer.store.subscribers import Subscriber


class PersonalMail(ABC):
    def __init__(self, newsletter: Newsletter, backend: Callable[[], Backend]) -> None:
        self.newsletter = newsletter
        self.backend = backend

    @abstractmethod
    def rendered(self, subscriber: Subscriber) -> RenderedMessage: ...

    def template(self, subscriber: Subscriber) -> MessageTemplate:
        list_name = (
            subscriber.lists[0] if subscriber.lists else self.newsletter.config.delivery.list
        )
        return MessageTemplate(self.rendered(subscriber), self.newsletter.sender(list_name))

    def link(self, purpose: Purpose, subscriber: Subscriber) -> str:
        return self.newsletter.links.url(purpose, subscriber.id, subscriber.link_secret)

    def send(self, subscriber: Subscriber) -> Result:
        """Hand the message to the backend; raises BackendError when it could not be."""
        template = self.template(subscriber)
        outgoing = self.newsletter.outgoing(
            subscriber.id,
            subscriber.link_secret,
            subscriber.email,
            subscriber.name,
            template.message_id(),
        )
        with self.backend() as backend:
            (result,) = backend.send(template, [outgoing])
        return result


class ConfirmationMail(PersonalMail):
    def rendered(self, subscriber: Subscriber) -> RenderedMessage:
        newsletter = self.newsletter
        return render_confirmation(
            newsletter.theme,
            newsletter.config.newsletter,
            self.link(Purpose.CONFIRM, subscriber),
            newsletter.store.lists.titles(subscriber.lists),
            MAX_AGE_DAYS[Purpose.CONFIRM],
            subscriber.language,
        )


class PreferencesLinkMail(PersonalMail):
    def rendered(self, subscriber: Subscriber) -> RenderedMessage:
        newsletter = self.newsletter
        return render_preferences_link(
            newsletter.theme,
            newsletter.config.newsletter,
            self.link(Purpose.PREFERENCES, subscriber),
            subscriber.language,
        )
