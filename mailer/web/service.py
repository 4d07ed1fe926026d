"""What every page of the web service shares, made once by the app factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

from flask import Response, current_app, g, make_response, request
from werkzeug.exceptions import HTTPException

from mailer.app.newsletter import Newsletter
from mailer.core.addresses import AddressBook
from mailer.core.languages import best_match
from mailer.store.subscribers import Subscriber
from mailer.web.csrf import Csrf
from mailer.web.files import BuiltFiles
from mailer.web.ratelimit import SlidingWindow
from mailer.web.signups import SignUps

EXTENSION = "mailer"
LANGUAGE = "mailer_language"
"""Where flask.g keeps the language of the answer being made."""


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

    @property
    def offered_languages(self) -> list[str]:
        """The languages readers may choose, the newsletter's first."""
        return self.newsletter.config.newsletter.languages

    def language(self) -> str:
        """The language of this answer: the one the request chose (the form's or the query's
        `language`, when offered), else the one set by `speak` or `speak_to`, else the offered
        one that best fits the browser's Accept-Language (a first visit), else the
        newsletter's."""
        try:
            asked = request.values.get("language", "")
        except HTTPException:  # a body too large to read: its error page is answered all the same
            asked = ""
        if asked in self.offered_languages:
            return asked
        if LANGUAGE not in g:
            browser = [tag for tag, _ in request.accept_languages]
            setattr(g, LANGUAGE, best_match(browser, self.offered_languages))
        return getattr(g, LANGUAGE) or self.offered_languages[0]

    def speak(self, language: str) -> None:
        """Answer in `language` (a JSON request's choice) when it is one readers may choose."""
        if language in self.offered_languages:
            setattr(g, LANGUAGE, language)

    def speak_to(self, subscriber: Subscriber) -> None:
        """Answer in the language the subscriber reads (stored: they chose it or were imported
        with it), unless the request chose one."""
        setattr(g, LANGUAGE, subscriber.language or self.offered_languages[0])

    def page(self, template: str, status: int = 200, /, **context: Any) -> Response:
        """A page of the theme in the answer's language, with what page.html needs."""
        theme = self.newsletter.theme
        language = self.language()
        html = theme.render(
            template,
            language=language,
            newsletter=self.newsletter.config.newsletter,
            site_css=self.site_css,
            answer_language=language,
            **context,
        )
        response = make_response(html, status)
        response.content_type = "text/html; charset=utf-8"
        response.vary.add("Accept-Language")
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
