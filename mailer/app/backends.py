"""Making the configured backend: the provider [delivery] backend names, through the registry.

Only the chosen provider's backend module is imported, so an SMTP send never loads the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.core.config import Config, DkimSettings
from mailer.core.errors import ConfigError, Problem
from mailer.delivery.base import Backend, Reconciler, unsigned
from mailer.providers import registry


def backend_factory(config: Config) -> Callable[[], Backend]:
    """Makes the configured backend, one per sending worker. Secrets are read now, so that a
    missing one is reported before anything is sent."""
    delivery = config.delivery
    provider = registry.with_backend(delivery.backend)
    if provider.backend is None:  # with_backend finds only providers that have one
        raise LookupError(delivery.backend)
    options = registry.BackendOptions(connections=delivery.concurrency, sign=signer(config.dkim))
    return provider.backend(config.table(provider.settings), options)


def reconciler_of(config: Config) -> Reconciler | None:
    """What asks the configured service which recipients of a batch it took, or None when it
    cannot be asked."""
    provider = registry.with_backend(config.delivery.backend)
    if provider.reconciler is None:
        return None
    return provider.reconciler(config.table(provider.settings))


def signer(settings: DkimSettings) -> Callable[[bytes], bytes]:
    """DKIM signing when [dkim] names a domain, else messages go as they are."""
    if not settings.domain:
        return unsigned
    if not settings.selector or settings.private_key_file is None:
        raise ConfigError(
            [
                Problem(
                    "config.toml",
                    None,
                    "[dkim] needs selector and private_key_file as well as domain",
                )
            ]
        )
    from mailer.delivery.dkim import Signer

    return Signer.from_file(settings.domain, settings.selector, settings.private_key_file)
