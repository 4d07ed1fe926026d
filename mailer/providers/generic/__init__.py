"""The `http` backend: mailer's own documented JSON batch format, and its signed webhook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mailer.core.config import Section, at_least, setting
from mailer.delivery.base import Backend
from mailer.providers.registry import BackendOptions, Provider, Receiver


@dataclass(frozen=True)
class HttpSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "http")

    url: str = setting("")
    token: str = setting("")
    signing_secret: str = setting("")
    timeout: float = setting(30.0, check=at_least(0.1))
    webhook_secret: str = setting("")
    """Checks POST /webhooks/generic; empty: signing_secret does."""


def backend(settings: HttpSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.providers.generic.backend import GenericHttpBackend

    url, token, secret = settings.url, settings.token, settings.signing_secret
    timeout, connections = settings.timeout, options.connections
    return lambda: GenericHttpBackend(url, token, secret, timeout, connections)


def receiver(settings: HttpSettings) -> Receiver:
    from mailer.providers.generic import webhook

    secret = settings.webhook_secret or settings.signing_secret
    return lambda incoming, now: webhook.receive(incoming, secret, now)


PROVIDER = Provider(
    name="http", settings=HttpSettings, backend=backend, webhook="generic", receiver=receiver
)
