"""Postmark: /email/batch in batches of 500, and webhooks behind basic auth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mailer.core.config import Section, at_least, http_url, setting
from mailer.delivery.base import Backend, Reconciler
from mailer.providers.registry import BackendOptions, Provider, Receiver


@dataclass(frozen=True)
class PostmarkSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "postmark")

    endpoint: str = setting("https://api.postmarkapp.com", check=http_url)
    server_token: str = setting("")
    message_stream: str = setting("broadcast")
    timeout: float = setting(30.0, check=at_least(0.1))
    webhook_username: str = setting("")
    webhook_password: str = setting("")
    """The basic auth Postmark's webhooks must carry (POST /webhooks/postmark)."""


def backend(settings: PostmarkSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.providers.postmark.backend import PostmarkBackend

    endpoint, token, stream = settings.endpoint, settings.server_token, settings.message_stream
    timeout, connections = settings.timeout, options.connections
    return lambda: PostmarkBackend(endpoint, token, stream, timeout, connections)


def receiver(settings: PostmarkSettings) -> Receiver:
    from mailer.providers.postmark import webhook

    user, password = settings.webhook_username, settings.webhook_password
    return lambda incoming, now: webhook.receive(incoming, user, password)


def reconciler(settings: PostmarkSettings) -> Reconciler:
    from mailer.providers.postmark.backend import PostmarkBackend

    return PostmarkBackend(
        settings.endpoint, settings.server_token, settings.message_stream, settings.timeout, 1
    )


PROVIDER = Provider(
    name="postmark",
    settings=PostmarkSettings,
    backend=backend,
    webhook="postmark",
    receiver=receiver,
    reconciler=reconciler,
)
