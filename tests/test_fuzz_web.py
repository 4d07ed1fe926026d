"""The web service under arbitrary input: any path and body below the token and webhook routes
gets a 4xx answer (or a page), never a 500, and nothing in the database changes."""

from __future__ import annotations

from collections.abc import Iterator

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
