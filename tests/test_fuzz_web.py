"""The web service under arbitrary input: any path and body below the token and webhook routes
gets a 4xx answer (or a page), never a 500, and nothing in the database changes; any form or JSON
posted to /subscribe is answered below 500 too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailer.app.newsletter import Newsletter
from mailer.core.lifecycle import Status
from mailer.store.database import Store
from mailer.store.schema import history, subscribers
from mailer.web import create_app
from mailer.web.csrf import COOKIE
from mailer.web.service import EXTENSION
from tests.conftest import Folder, Run

PREFIX = "/commentaries"
ROUTES = ["unsubscribe", "confirm", "preferences", "webhooks"]
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

segments = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", ".", "..", "%2e%2e", "mailgun", "ses", "generic", "sendgrid", "postmark"]),
    st.from_regex(r"[0-9a-f]{1,6}\.[0-9a-f]{4,5}\.[A-Za-z0-9_-]{22}", fullmatch=True),
)
bodies = st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode))
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/plain",
        "application/octet-stream",
        "",
    ]
)


@pytest.fixture
def app(folder: Folder, run: Run) -> Iterator[Flask]:
    assert run("build").exit_code == 0
    assert run("subscribers", "add", "reader@example.org").exit_code == 0
    newsletter: Newsletter = folder.newsletter()
    app = create_app(newsletter)
    app.testing = False  # errors become answers, as in production
    yield app
    newsletter.store.close()


def database_state(store: Store) -> tuple[int, int]:
    """Active subscribers and recorded changes of status: what a request could alter."""
    with store.engine.connect() as connection:
        active = connection.scalar(
            select(func.count()).where(subscribers.c.status == Status.ACTIVE.value)
        )
        changes = connection.scalar(select(func.count()).select_from(history))
    return int(active or 0), int(changes or 0)


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    segment=segments,
    extra=st.lists(segments, max_size=2),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    body=bodies,
    content_type=content_types,
)
def test_any_request_under_the_token_and_webhook_routes_is_answered_below_500(
    app: Flask,
    folder: Folder,
    route: str,
    segment: str,
    extra: list[str],
    method: str,
    body: bytes,
    content_type: str,
) -> None:
    client: FlaskClient = app.test_client()
    path = "/".join([PREFIX, route, segment, *extra])
    headers = {"Content-Type": content_type} if content_type else {}
    store = folder.newsletter().store
    before = database_state(store)
    try:
        response = client.open(path, method=method, data=body, headers=headers)
    finally:
        after = database_state(store)
        store.close()
    assert response.status_code < 500, (path, method, response.status_code)
    assert after == before, f"{method} {path} changed the database"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
subscribe_fields = st.sampled_from(["email", "name", "website", "lists", "csrf_token", "x"])
subscribe_json = st.one_of(
    json_values, st.dictionaries(subscribe_fields, json_values, max_size=5)
).map(lambda value: json.dumps(value).encode())
subscribe_form = st.lists(st.tuples(subscribe_fields, st.text(max_size=60)), max_size=8).map(
    lambda pairs: urlencode(pairs).encode()
)


@FUZZ
@given(
    body=st.one_of(subscribe_json, subscribe_form, bodies),
    content_type=content_types,
    cookie=st.one_of(st.none(), st.text(max_size=50)),
)
def test_any_form_or_json_posted_to_subscribe_is_answered_below_500(
    app: Flask, body: bytes, content_type: str, cookie: str | None
) -> None:
    client: FlaskClient = app.test_client()
    if cookie is not None:
        client.set_cookie(COOKIE, cookie, path=PREFIX)
    headers = {"Content-Type": content_type} if content_type else {}

    response = client.post(f"{PREFIX}/subscribe", data=body, headers=headers)

    assert response.status_code < 500, (body, content_type, response.status_code)
    assert app.extensions[EXTENSION].signups.drain(60) == 0


DEEP = b"[" * 200_000 + b"]" * 200_000
"""Nested far past the JSON parser's recursion limit."""


@pytest.mark.parametrize("path", ["subscribe", "webhooks/mailgun", "webhooks/ses"])
def test_json_nested_too_deeply_is_a_bad_request_not_a_failure(folder: Folder, path: str) -> None:
    folder.configure(
        'webhook_signing_key = "${MAILGUN_WEBHOOK_SIGNING_KEY}"',
        'webhook_signing_key = "key-0123456789abcdef"',
    )
    folder.configure('topic_arn = ""', 'topic_arn = "arn:aws:sns:eu-west-1:123456789012:ses"')
    newsletter = folder.newsletter()
    app = create_app(newsletter)
    app.testing = False

    response = app.test_client().post(
        f"{PREFIX}/{path}", data=DEEP, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.get_data(as_text=True)
    newsletter.store.close()


def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_failure(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    page = client.get(f"{PREFIX}/subscribe")
    assert page.status_code == 200

    response = client.post(
        f"{PREFIX}/subscribe", data={"email": "ada@example.org", "csrf_token": "é" * 64}
    )

    assert response.status_code == 400 and "This form has expired" in response.text
