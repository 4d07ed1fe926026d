"""SendGrid: v3 Mail Send with 1,000 personalizations a request, and its signed Event Webhook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mailer.core.config import Section, at_least, http_url, setting
from mailer.delivery.base import Backend
from mailer.providers.registry import BackendOptions, Provider, Receiver


@dataclass(frozen=True)
class SendgridSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "sendgrid")

    endpoint: str = setting("https://api.sendgrid.com/v3", check=http_url)
    api_key: str = setting("")
    timeout: float = setting(30.0, check=at_least(0.1))
    webhook_public_key: str = setting("")
    """The signed Event Webhook's verification key (base64), for POST /webhooks/sendgrid."""


def backend(settings: SendgridSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.providers.sendgrid.backend import SendgridBackend

    endpoint, key, timeout = settings.endpoint, settings.api_key, settings.timeout
    connections = options.connections
    return lambda: SendgridBackend(endpoint, key, timeout, connections)


def receiver(settings: SendgridSettings) -> Receiver:
    from mailer.providers.sendgrid import webhook

    key = settings.webhook_public_key
    return lambda incoming, now: webhook.receive(incoming, key, now)


PROVIDER = Provider(
    name="sendgrid",
    settings=SendgridSettings,
    backend=backend,
    webhook="sendgrid",
    receiver=receiver,
)
