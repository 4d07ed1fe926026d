"""Cross-site request forgery protection for the forms of mailer's own pages.

A signed double submit, needing no server-side session: the page sets a random value in a cookie
and puts an HMAC of it, keyed with the newsletter's secret, in a hidden field. Another site can make
a browser post a form here, but it can read neither the cookie nor the page, so it cannot write the
field; a cookie planted from a sibling domain fails too, since its HMAC cannot be made without the
secret. Only forms that need it ask for a token: the RFC 8058 one-click unsubscribe (posted by mail
providers, with no cookie at all) and the JSON subscribe endpoint (which a browser sends to another
origin only after a CORS preflight that this service never grants) do not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import Response, g, request

COOKIE = "mailer_csrf"
FIELD = "csrf_token"
_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Csrf:
    def __init__(self, secret: str, cookie_path: str) -> None:
        self.key = hashlib.sha256(f"mailer-csrf\0{secret}".encode()).digest()
        self.cookie_path = cookie_path

    def _sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode("ascii"), "sha256").hexdigest()

    def token(self) -> str:
        """The hidden field's value for a form on the page being made (the cookie comes too)."""
        value = request.cookies.get(COOKIE, "")
        if not _VALUE.fullmatch(value):
            value = secrets.token_urlsafe(32)
            g.csrf_cookie = value
        return self._sign(value)

    def valid(self) -> bool:
        """Whether the form posted carries the token matching its cookie."""
        value = request.cookies.get(COOKIE, "")
        field = request.form.get(FIELD, "")
        if not _VALUE.fullmatch(value):
            return False
        # As bytes: compare_digest raises TypeError on text holding non-ASCII characters.
        return hmac.compare_digest(field.encode(), self._sign(value).encode("ascii"))

    def set_cookie(self, response: Response) -> Response:
        """After a page that asked for a token: give the browser the cookie it belongs to."""
        value = g.pop("csrf_cookie", None)
        if value is not None:
            response.set_cookie(
                COOKIE,
                value,
                path=self.cookie_path,
                secure=request.is_secure,
                httponly=True,
                samesite="Strict",
            )
        return response
