"""Mailgun: the Messages API in batches of 1,000, and its signed webhooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mailer.core.config import Section, at_least, http_url, setting
from mailer.delivery.base import Backend, Reconciler
from mailer.providers.registry import BackendOptions, Provider, Receiver


@dataclass(frozen=True)
class MailgunSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "mailgun")

    endpoint: str = setting("https://api.mailgun.net/v3", check=http_url)
    domain: str = setting("")
    api_key: str = setting("")
    timeout: float = setting(30.0, check=at_least(0.1))
    webhook_signing_key: str = setting("")
    """Checks the signature of Mailgun's webhooks (POST /webhooks/mailgun)."""


def backend(settings: MailgunSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.providers.mailgun.backend import MailgunBackend

    endpoint, domain, key = settings.endpoint, settings.domain, settings.api_key
    timeout, connections = settings.timeout, options.connections
    return lambda: MailgunBackend(endpoint, domain, key, timeout, connections)


def receiver(settings: MailgunSettings) -> Receiver:
    from mailer.providers.mailgun import webhook

    key = settings.webhook_signing_key
    return lambda incoming, now: webhook.receive(incoming, key, now)


def reconciler(settings: MailgunSettings) -> Reconciler:
    from mailer.providers.mailgun.backend import MailgunBackend

    return MailgunBackend(
        settings.endpoint, settings.domain, settings.api_key, settings.timeout, connections=1
    )


PROVIDER = Provider(
    name="mailgun",
    settings=MailgunSettings,
    backend=backend,
    webhook="mailgun",
    receiver=receiver,
    reconciler=reconciler,
)
