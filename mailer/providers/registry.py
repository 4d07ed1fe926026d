"""Every sending service mailer knows: the one place where a new provider is added.

A provider is a package of mailer.providers whose `__init__` declares PROVIDER: its settings
table, how it makes a backend, and how it reads its webhook. Adding one is that package and a
line in PACKAGES below (docs/http-backend.md, "Adding a provider"). A provider's heavy parts
(requests, the cryptography of signed webhooks) are imported only when they are used, so that
reading config.toml, which declares every provider's table, stays cheap.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailer.core.config import Section
from mailer.delivery.base import Backend, Reconciler
from mailer.webhooks.base import Incoming, Received

PACKAGES = ("outbox", "smtp", "mailgun", "sendgrid", "postmark", "generic", "ses")
"""The providers, by package name under mailer.providers."""


@dataclass(frozen=True)
class BackendOptions:
    """What every backend is made with, besides its own settings."""

    connections: int
    """The messages in flight at once ([delivery] concurrency): an HTTP pool's size."""
    sign: Callable[[bytes], bytes]
    """DKIM signing of whole messages, for the backends that hand them over as they are."""


MakeBackend = Callable[[Any, BackendOptions], Callable[[], Backend]]
"""From the provider's settings: a maker of backends, one per sending worker. Secrets are read
now, so that a missing one is reported before anything is sent."""
Receiver = Callable[[Incoming, float], Received]
"""Checks a webhook request (at this Unix time) and reads its events."""
MakeReceiver = Callable[[Any], Receiver]
"""From the provider's settings: its webhook's receiver (ConfigError when a secret is missing)."""
MakeReconciler = Callable[[Any], Reconciler]
"""From the provider's settings: what asks its service which recipients of a batch it took."""


@dataclass(frozen=True)
class Provider:
    name: str
    """Its name in `[delivery] backend`, or the webhook's name for a provider with no backend."""
    settings: type[Section]
    """Its table in config.toml, where `settings.TABLE` says."""
    backend: MakeBackend | None = None
    webhook: str = ""
    """The last part of its webhook's path, `POST /webhooks/<webhook>`; "" for none."""
    receiver: MakeReceiver | None = None
    unsafe: Callable[[Any], str] | None = None
    """From the provider's settings: why its webhook must not be served with them, or "" when
    it may; the web service does not start while it is unsafe."""
    reconciler: MakeReconciler | None = None
    """For a service that can be asked afterwards what it took of a batch whose answer never
    came (an uncertain one); None for one that cannot."""


@functools.cache
def providers() -> tuple[Provider, ...]:
    found = []
    for package in PACKAGES:
        provider = importlib.import_module(f"mailer.providers.{package}").PROVIDER
        if not isinstance(provider, Provider):
            raise TypeError(f"mailer.providers.{package}.PROVIDER is not a Provider")
        found.append(provider)
    return tuple(found)


def tables() -> list[type[Section]]:
    return [provider.settings for provider in providers()]


def backends() -> list[str]:
    """The names `[delivery] backend` may take."""
    return [provider.name for provider in providers() if provider.backend is not None]


def with_backend(name: str) -> Provider:
    return next(p for p in providers() if p.backend is not None and p.name == name)


def with_webhook(name: str) -> Provider | None:
    return next((p for p in providers() if p.webhook and p.webhook == name), None)
