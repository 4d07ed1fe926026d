"""The web service (`mailer serve`, or any WSGI server): a Flask app made from a Newsletter.

`create_app` is, with the command line, the only place that reads the configuration and picks
concrete parts (the backend for confirmation messages, the database, the build folder). Every route
lives under the path of site_url, so the links in emails work against the service directly or
behind a proxy that keeps the path.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, make_response, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer.app.confirmation import ConfirmationMail, PreferencesLinkMail
from mailer.app.newsletter import Newsletter
from mailer.web.clicks import SCANNER_REQUESTS, SCANNER_SECONDS, clicks
from mailer.web.csrf import Csrf
from mailer.web.files import BuiltFiles, Shortcut
from mailer.web.headers import add_security_headers
from mailer.web.limits import MAX_REQUEST_BYTES
from mailer.web.pages import pages, wants_json
from mailer.web.ratelimit import SlidingWindow
from mailer.web.service import EXTENSION, Service, service
from mailer.web.signups import SignUps
from mailer.web.texts import _
from mailer.web.webhooks import webhooks_blueprint

ADDRESS_LIMIT = (3, 3600.0)
"""Subscribe and preferences-link requests per address, counted together: 3 an hour (each may
send a message)."""
CLIENT_LIMIT = (20, 600.0)
"""Subscribe and preferences-link requests per client network (a /24 of IPv4, a /64 of IPv6),
counted together: 20 in ten minutes."""

log = logging.getLogger("mailer.web")


def url_prefix(site_url: str) -> str:
    """`https://www.example.org/commentaries/` → `/commentaries`; a site at the root → ``."""
    return urlsplit(site_url).path.rstrip("/")


def create_app(newsletter: Newsletter, *, proxies: int = 0) -> Flask:
    """The web service of this newsletter.

    `proxies`: how many reverse proxies in front of it set X-Forwarded-For and
    X-Forwarded-Proto; their values are trusted for that many hops (the client address the rate
    limit counts, https for secure cookies). 0, the default, trusts none.
    """
    config = newsletter.config
    prefix = url_prefix(config.newsletter.site_url)
    secret = newsletter.secret()  # a weak secret stops the service before it starts
    newsletter.store  # noqa: B018  (opens the database: an old schema stops it too)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    files = BuiltFiles(config.paths.output)
    backend = newsletter.backend_factory()
    app.extensions[EXTENSION] = Service(
        newsletter=newsletter,
        csrf=Csrf(secret, prefix or "/"),
        files=files,
        address_limit=SlidingWindow(*ADDRESS_LIMIT),
        client_limit=SlidingWindow(*CLIENT_LIMIT),
        signups=SignUps(
            newsletter.store,
            ConfirmationMail(newsletter, backend),
            PreferencesLinkMail(newsletter, backend),
        ),
        click_networks=SlidingWindow(SCANNER_REQUESTS, SCANNER_SECONDS),
    )
    app.register_blueprint(pages, url_prefix=prefix)
    app.register_blueprint(webhooks_blueprint(newsletter), url_prefix=prefix)
    app.register_blueprint(clicks, url_prefix=prefix)
    app.after_request(lambda response: service().csrf.set_cookie(response))
    app.after_request(add_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _failure)
    app.wsgi_app = Shortcut(app.wsgi_app, files, prefix)  # type: ignore[method-assign]
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0
        )
    return app


def _error_page(error: HTTPException) -> tuple[str, str]:
    """The heading and text of the page for an HTTP error, in the answer's language."""
    if error.code == 404:
        return _("Page not found"), _("There is no page at this address.")
    if error.code == 405:
        return _("Not allowed"), _("This address does not take that kind of request.")
    if error.code == 413:
        return _("Too large"), _("The request is larger than this service takes.")
    return error.name, error.description or ""


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    heading, text = _error_page(error)
    if wants_json():
        response = make_response(jsonify(error=text), status)
    else:
        response = service().message(heading, text, status, problem=True)
    allowed = getattr(error, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _failure(error: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.endpoint)  # a path may hold a token
    text = _("Something went wrong on our side; nothing you did. Please try again later.")
    if wants_json():
        return make_response(jsonify(error=text), 500)
    return service().message(_("Something went wrong"), text, 500, problem=True)
