"""The web service for any WSGI server, built from the config file that $MAILER_CONFIG names.

    export MAILER_CONFIG=/srv/newsletter/config.toml MAILER_SECRET=…
    waitress-serve --listen 127.0.0.1:8000 --threads 8 mailer.web.wsgi:app  # + docs/web.md's limits
    waitress-serve --listen 127.0.0.1:8000 --call mailer.web.wsgi:make_app
    gunicorn --bind 127.0.0.1:8000 --workers 2 --threads 8 mailer.web.wsgi:app

`app` is made on first use, so importing this module for `--call make_app` builds one app only.
$MAILER_PROXIES says how many reverse proxies in front of the service to trust for
X-Forwarded-For and X-Forwarded-Proto (default 0: none).
"""

from __future__ import annotations

import logging
import os

from flask import Flask

from mailer.app.newsletter import Newsletter
from mailer.core import config
from mailer.web import create_app

_made: list[Flask] = []


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
