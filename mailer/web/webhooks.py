"""`POST /webhooks/<provider>`: providers' bounce, complaint and unsubscription events.

Each request is authenticated by its provider's module in mailer.webhooks before anything in it
is read (Mailgun and SNS sign inside the body, which is then parsed first, as data only), then its
events are applied by the store in one transaction. The answer: 200 with counts when the request
was taken (events already seen included, so the provider stops resending them); 404 when the
provider's webhook is not configured (no credentials, a `${VARIABLE}` not set, no SNS topic), as
for a provider mailer does not know; 401 when it is not authentic (no or wrong credentials, bad
signature, stale, replayed, another SNS topic); 400 when an authentic body is not what the
provider sends (JSON nested too deeply included); 503 when it could not be checked for a reason
of ours (an SNS certificate out of reach), so that the provider tries again. Only 200 changes
anything. No form, cookie or CSRF token is involved: the credentials are the provider's. Logs
name subscribers by id, never by address or token.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, Response, abort, jsonify, make_response, request

from mailer.app.newsletter import Newsletter
from mailer.core.errors import ConfigError, Problem
from mailer.providers import registry
from mailer.providers.registry import Provider
from mailer.providers.registry import Receiver as ProviderReceiver
from mailer.store.events import Applied, Replayed
from mailer.webhooks.base import (
    Incoming,
    Malformed,
    NotConfigured,
    Received,
    Refused,
    Unavailable,
)

log = logging.getLogger("mailer.web.webhooks")


class Receiver:
    """Reads the provider's credentials from the configuration when a request first needs them
    (a `${VARIABLE}` that is not set leaves that provider's webhook unconfigured, and the log
    says which)."""

    def __init__(self, newsletter: Newsletter) -> None:
        self.newsletter = newsletter
        self.receivers: dict[str, ProviderReceiver] = {}
        self.lock = threading.Lock()

    def receiver(self, provider: Provider) -> ProviderReceiver:
        """The provider's receiver, made once (SES's keeps the SNS certificates it fetched)."""
        with self.lock:
            found = self.receivers.get(provider.webhook)
            if found is None and provider.receiver is not None:
                settings = self.newsletter.config.table(provider.settings)
                try:
                    found = self.receivers[provider.webhook] = provider.receiver(settings)
                except ConfigError as error:
                    raise NotConfigured(str(error)) from None
        if found is None:
            raise NotConfigured("this provider has no webhook")
        return found

    def receive(self, provider: Provider, incoming: Incoming, now: float) -> Received:
        try:
            return self.receiver(provider)(incoming, now)
        except ConfigError as error:
            raise NotConfigured(str(error)) from None

    def view(self, provider: str) -> Response:
        declared = registry.with_webhook(provider)
        if declared is None:
            abort(404)
        incoming = Incoming(
            body=request.get_data(cache=False),
            headers={name.lower(): value for name, value in request.headers.items()},
        )
        try:
            received = self.receive(declared, incoming, time.time())
            applied = self.newsletter.store.events.apply(
                received.events, received.replay_token, provider
            )
        except NotConfigured as error:
            log.warning("webhook %s is not configured, so not served: %s", provider, error)
            abort(404)
        except (Refused, Replayed) as error:
            log.warning("webhook %s from %s refused: %s", provider, request.remote_addr, error)
            return refusal(provider)
        except Malformed as error:
            log.warning("webhook %s from %s: bad request: %s", provider, request.remote_addr, error)
            return answer(400, error=f"malformed {provider} webhook: {error}")
        except Unavailable as error:
            log.error("webhook %s could not be checked: %s", provider, error)
            return answer(503, error="cannot check the request now; try again later")
        if received.note:
            log.info("webhook %s: %s", provider, received.note)
        if received.events:
            log.info("webhook %s: %s", provider, summary(applied))
        return answer(
            200,
            received=len(received.events),
            recorded=applied.recorded,
            duplicates=applied.duplicates,
        )


def summary(applied: Applied) -> str:
    parts = [f"{applied.recorded} recorded", f"{applied.duplicates} seen before"]
    if applied.unknown:
        parts.append(f"{applied.unknown} about no subscriber")
    parts += [f"subscriber {sid} {status.value}" for sid, status in applied.changed]
    if applied.deliveries:
        parts.append(f"{applied.deliveries} send log entries updated")
    return ", ".join(parts)


def answer(status: int, **body: object) -> Response:
    return make_response(jsonify(body), status)


def refusal(provider: str) -> Response:
    response = answer(401, error="not authenticated")
    if provider == "postmark":
        response.headers["WWW-Authenticate"] = 'Basic realm="mailer webhooks"'
    return response


def webhooks_blueprint(newsletter: Newsletter) -> Blueprint:
    """The webhooks, for the app factory to register under the site's path."""
    config = newsletter.config
    unsafe = [
        Problem(config.path, None, reason)
        for provider in registry.providers()
        if provider.unsafe and (reason := provider.unsafe(config.table(provider.settings)))
    ]
    if unsafe:
        raise ConfigError(unsafe)
    blueprint = Blueprint("webhooks", __name__)
    receiver = Receiver(newsletter)
    blueprint.add_url_rule(
        "/webhooks/<provider>", "receive", receiver.view, methods=["POST"], strict_slashes=True
    )
    return blueprint
