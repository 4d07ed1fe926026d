"""The whole web service: the public pages (mailer.web) with the staff console (mailer.console)
beside them. `mailer serve` runs it; so can any WSGI server, from the config file that
$MAILER_CONFIG names:

    export MAILER_CONFIG=/srv/newsletter/config.toml MAILER_SECRET=…
    waitress-serve --listen 127.0.0.1:8000 --threads 8 mailer.wsgi:app  # + docs/web.md's limits
    waitress-serve --listen 127.0.0.1:8000 --call mailer.wsgi:make_app
    gunicorn --bind 127.0.0.1:8000 --workers 2 --threads 8 mailer.wsgi:app

`app` is made on first use, so importing this module for `--call make_app` builds one app only.
$MAILER_PROXIES says how many reverse proxies in front of the service to trust for
X-Forwarded-For and X-Forwarded-Proto (default 0: none).
"""

from __future__ import annotations

import logging
import os

from flask import Flask

from mailer import console, web
from mailer.app.newsletter import Newsletter
from mailer.console.accounts import Clock, utc_now
from mailer.core import config

_made: list[Flask] = []


def create_app(newsletter: Newsletter, *, proxies: int = 0, clock: Clock = utc_now) -> Flask:
    """The public pages and the console of this newsletter (see mailer.web.create_app)."""
    app = web.create_app(newsletter, proxies=proxies)
    console.mount(app, newsletter, clock)
    return app


def make_app() -> Flask:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a line per queued request
    proxies = int(os.environ.get("MAILER_PROXIES", "0") or 0)
    return create_app(Newsletter.load(config.locate(None)), proxies=proxies)


def __getattr__(name: str) -> Flask:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _made:
        _made.append(make_app())
    return _made[0]
