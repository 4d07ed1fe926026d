"""SMTP: any mail server, with STARTTLS or implicit TLS, certificates checked."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mailer.core.config import Section, at_least, one_of, setting
from mailer.delivery.base import Backend
from mailer.providers.registry import BackendOptions, Provider


@dataclass(frozen=True)
class SmtpSettings(Section):
    TABLE: ClassVar[tuple[str, ...]] = ("delivery", "smtp")

    host: str = setting("localhost")
    port: int = setting(587, check=at_least(1))
    security: str = setting("starttls", check=one_of("starttls", "tls", "none"))
    username: str = setting("")
    password: str = setting("")
    timeout: float = setting(30.0, check=at_least(0.1))
    data_timeout: float = setting(600.0, check=at_least(0.1))
    """Seconds to wait for the reply once a whole message went (RFC 5321 section 4.5.3.2.6)."""
    ca_file: Path | None = setting(None)
    """Certificates to trust besides the system's (a private CA); empty: the system's only."""


def backend(settings: SmtpSettings, options: BackendOptions) -> Callable[[], Backend]:
    from mailer.delivery.smtp import SmtpBackend

    password = settings.password if settings.username else ""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return lambda: SmtpBackend(
        settings.host,
        settings.port,
        security=settings.security,
        username=settings.username,
        password=lambda: password,
        timeout=settings.timeout,
        data_timeout=settings.data_timeout,
        ssl_context=context,
        sign=options.sign,
    )


PROVIDER = Provider(name="smtp", settings=SmtpSettings, backend=backend)
