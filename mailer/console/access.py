"""The console's blueprint and its gate: every route names the least role that may use it.

`needs(role)` is the only way a route is added (a route without it would be open to anybody, which
tests/test_console_routes.py catches: it walks every route and method as each role). Every POST
must carry the CSRF token of its session; the check runs before any route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, make_response, redirect, render_template, request

from mailer.console.service import console
from mailer.console.session import client_address, csrf_token, csrf_valid, set_cookies, signed_in
from mailer.store.staff import Account, Role

blueprint = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
ANYBODY = None
"""Pages for people not signed in: the sign-in form, the password link."""
ROUTE_ROLES: dict[str, Role | None] = {}
"""Each endpoint and the least role it needs, as declared with `needs`."""

Handler = TypeVar("Handler", bound=Callable[..., Any])


def needs(
    role: Role | None, rule: str, methods: tuple[str, ...] = ("GET",)
) -> Callable[[Handler], Handler]:
    """Route `rule` to the function, for `role` and every role above it (None: anybody)."""

    def register(function: Handler) -> Handler:
        @functools.wraps(function)
        def gate(*args: Any, **kwargs: Any) -> Any:
            if role is not None:
                session = signed_in()
                if session is None:
                    if request.method == "GET":
                        return redirect(f"{console().path}/login?next={request.path}")
                    return refusal("Please sign in", "Your session has ended; sign in again.", 401)
                if not session.account.role.may(role):
                    return refusal(
                        "Not for your role",
                        f"This needs the {role.value} role; you are {session.account.role.value}. "
                        "An admin can change roles.",
                        403,
                    )
            return function(*args, **kwargs)

        endpoint = function.__name__
        ROUTE_ROLES[f"console.{endpoint}"] = role
        blueprint.add_url_rule(rule, endpoint, gate, methods=list(methods))
        return function

    return register


def me() -> Account:
    """The signed-in account (only inside a route that `needs` a role)."""
    session = signed_in()
    if session is None:
        raise RuntimeError("me() outside a route that needs a role")
    return session.account


def record(action: str, detail: str = "", actor: str | None = None) -> None:
    """Put a staff action in the audit log: who, what, when, from where."""
    who = actor if actor is not None else me().email
    console().newsletter.store.audit.record(
        who, action, detail, client_address(), console().clock()
    )


def page(template: str, status: int = 200, /, **context: Any) -> Response:
    service = console()
    session = signed_in()
    html = render_template(
        f"console/{template}",
        newsletter=service.newsletter.config.newsletter,
        site_css=service.newsletter.theme.source("site.css"),
        console_path=service.path,
        account=session.account if session else None,
        csrf_token=csrf_token(),
        Role=Role,
        **context,
    )
    response = make_response(html, status)
    response.content_type = "text/html; charset=utf-8"
    return response


def refusal(heading: str, text: str, status: int) -> Response:
    return page("message.html", status, heading=heading, text=text)


@blueprint.before_request
def _check_csrf() -> Response | None:
    if request.method == "POST" and not csrf_valid():
        return refusal(
            "This form has expired",
            "The page was open too long or came from somewhere else. Reload it and try again.",
            403,
        )
    return None


# The console runs a script of its own (htmx, from its folder) and frames its email previews;
# the public pages' headers (mailer.web.headers) only fill in what is not set here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' https: data:",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-src 'self'",
        "frame-ancestors 'self'",
    )
)


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers.setdefault("Cache-Control", "no-store")
    g.pop("console_session", None)
    return set_cookies(response)
