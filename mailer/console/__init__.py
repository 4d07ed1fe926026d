"""The staff console: accounts, sessions, the audit log and the pages staff work in.

`mount` adds it to a Flask app (mailer.wsgi puts it beside the public pages): the console is a
sibling of mailer.web, sharing nothing with it but the Newsletter below them both.
"""

from __future__ import annotations

from flask import Flask

from mailer.app.newsletter import Newsletter
from mailer.console import (
    campaigns,
    commentaries,
    imports,
    lists,
    people,
    sending,
    signing_in,
    subscribers,
    testers,
    uploads,
)
from mailer.console.access import blueprint
from mailer.console.accounts import Clock, utc_now
from mailer.console.service import EXTENSION, Console

ROUTES = (
    signing_in,
    people,
    commentaries,
    campaigns,
    sending,
    testers,
    uploads,
    subscribers,
    lists,
    imports,
)
"""The modules whose routes make the console (importing them registers their routes)."""


def mount(app: Flask, newsletter: Newsletter, clock: Clock = utc_now) -> None:
    service = Console.make(newsletter, clock)
    app.extensions[EXTENSION] = service
    app.register_blueprint(blueprint, url_prefix=service.path)
