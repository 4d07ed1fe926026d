"""Choosing the configured backend: the one place that turns [delivery] into a concrete class.

Each branch imports only its own backend, so an SMTP send never loads the HTTP stack.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from mailer.core.config import DeliverySettings, DkimSettings
from mailer.core.errors import ConfigError, Problem
from mailer.delivery.base import Backend


def backend_factory(delivery: DeliverySettings, dkim: DkimSettings) -> Callable[[], Backend]:
    """Makes the configured backend, one per sending worker. Secrets are read now, so that a
    missing one is reported before anything is sent."""
    sign = signer(dkim)
    connections = delivery.concurrency
    if delivery.backend == "outbox":
        from mailer.delivery.outbox import OutboxBackend

        folder = delivery.outbox.path
        return lambda: OutboxBackend(folder, sign)
    if delivery.backend == "smtp":
        from mailer.delivery.smtp import SmtpBackend

        smtp = delivery.smtp
        password = smtp.password if smtp.username else ""
        context = ssl.create_default_context()
        if smtp.ca_file is not None:
            context.load_verify_locations(cafile=str(smtp.ca_file))
        return lambda: SmtpBackend(
            smtp.host,
            smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=lambda: password,
            timeout=smtp.timeout,
            ssl_context=context,
            sign=sign,
        )
    if delivery.backend == "mailgun":
        from mailer.providers.mailgun.backend import MailgunBackend

        mailgun = delivery.mailgun
        domain, key = mailgun.domain, mailgun.api_key
        return lambda: MailgunBackend(mailgun.endpoint, domain, key, mailgun.timeout, connections)
    if delivery.backend == "sendgrid":
        from mailer.providers.sendgrid.backend import SendgridBackend

        sendgrid = delivery.sendgrid
        key = sendgrid.api_key
        return lambda: SendgridBackend(sendgrid.endpoint, key, sendgrid.timeout, connections)
    if delivery.backend == "postmark":
        from mailer.providers.postmark.backend import PostmarkBackend

        postmark = delivery.postmark
        token, stream = postmark.server_token, postmark.message_stream
        return lambda: PostmarkBackend(
            postmark.endpoint, token, stream, postmark.timeout, connections
        )
    from mailer.providers.generic.backend import GenericHttpBackend

    generic = delivery.http
    url, token, secret = generic.url, generic.token, generic.signing_secret
    return lambda: GenericHttpBackend(url, token, secret, generic.timeout, connections)


def signer(settings: DkimSettings) -> Callable[[bytes], bytes]:
    """DKIM signing when [dkim] names a domain, else messages go as they are."""
    if not settings.domain:
        return lambda data: data
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
