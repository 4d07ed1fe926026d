"""The click counter ([analytics] clicks): `/r/<campaign>/<link>/<signature>` counts one click
of that link of that campaign and redirects (302) to where the link goes.

The URL is the same for every recipient, so it names nobody, and nothing about the request is
stored but the count. The signature (mailer.core.tokens) covers campaign and link and the target
comes from the database, never from the URL: a changed URL is a 404, not an open redirect.

Not every request is a person: HEAD requests, and a burst from one network within seconds of the
campaign's latest delivery (a mail provider's link scanner opens every link of a message as it
arrives), are counted apart.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, redirect, request
from werkzeug.wrappers import Response

from mailer.web.ratelimit import client_key
from mailer.web.service import service

SCANNER_SECONDS = 120.0
"""How soon after the campaign's latest delivery a burst of requests looks like a scanner."""
SCANNER_REQUESTS = 3
"""Requests from one network within that time taken as people's; more are a scanner's."""

clicks = Blueprint("clicks", __name__)
log = logging.getLogger("mailer.web")


@clicks.route("/r/<int:campaign_id>/<int:link_id>/<signature>", methods=["GET", "HEAD"])
def follow(campaign_id: int, link_id: int, signature: str) -> Response:
    current = service()
    newsletter = current.newsletter
    if not newsletter.config.analytics.clicks:
        abort(404)
    if not newsletter.links.valid_click(campaign_id, link_id, signature):
        abort(404)
    store = newsletter.store
    target = store.clicks.target(campaign_id, link_id)
    if target is None:
        abort(404)
    apart = request.method == "HEAD" or _scanner(current.clock(), campaign_id)
    store.clicks.count(campaign_id, link_id, apart=apart)
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


def _scanner(now: float, campaign_id: int) -> bool:
    current = service()
    delivered = current.newsletter.store.clicks.last_delivery(campaign_id)
    if delivered is None or now - delivered.timestamp() > SCANNER_SECONDS:
        return False
    network = client_key(request.remote_addr or "")
    return current.click_networks.hit(f"{campaign_id} {network}") > 0
