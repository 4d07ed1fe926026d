"""What every page of the web service shares, made once by the app factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

from flask import Response, current_app, make_response

from mailer.app.newsletter import Newsletter
from mailer.core.addresses import AddressBook
from mailer.web.csrf import Csrf
from mailer.web.files import BuiltFiles
from mailer.web.ratelimit import SlidingWindow
from mailer.web.signups import SignUps

EXTENSION = "mailer"


@dataclass
class Service:
    newsletter: Newsletter
    csrf: Csrf
    files: BuiltFiles
    address_limit: SlidingWindow
    """Subscribe and preferences-link requests for one address: each may send a message."""
    client_limit: SlidingWindow
    """Subscribe and preferences-link requests from one client network."""
    signups: SignUps
    """Subscribe and preferences-link requests, handled after the answer."""
    click_networks: SlidingWindow
    """Counted clicks of one campaign from one network soon after its delivery (link scanners)."""
    addresses: AddressBook = field(default_factory=AddressBook)
    clock: Callable[[], float] = time.time

    @property
    def default_list(self) -> str:
        return self.newsletter.config.delivery.list

    @cached_property
    def site_css(self) -> str:
        return self.newsletter.theme.source("site.css")

    def page(self, template: str, status: int = 200, /, **context: Any) -> Response:
        """A page of the theme, with what page.html needs."""
        theme = self.newsletter.theme
        html = theme.render(
            template,
            newsletter=self.newsletter.config.newsletter,
            site_css=self.site_css,
            **context,
        )
        response = make_response(html, status)
        response.content_type = "text/html; charset=utf-8"
        return response

    def message(
        self,
        heading: str,
        text: str,
        status: int = 200,
        *,
        problem: bool = False,
        link: str = "",
        link_text: str = "",
    ) -> Response:
        """The page that says what happened, or what went wrong and what to do."""
        return self.page(
            "message.html",
            status,
            heading=heading,
            text=text,
            problem=problem,
            link=link,
            link_text=link_text,
        )


def service() -> Service:
    """The service of the app handling the current request."""
    return cast(Service, current_app.extensions[EXTENSION])
