"""Lists in the console: every list with its numbers and audience chart; publishers create,
rename, retitle, describe, make public or private, and archive them (store/lists.py does it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote

from flask import abort, redirect, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from mailer.console.access import needs, page, record
from mailer.console.service import console
from mailer.core.addresses import clean_list_name
from mailer.core.audience import ListAudience
from mailer.core.errors import RequestError
from mailer.core.lifecycle import Status
from mailer.render.audience import chart
from mailer.store.lists import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TITLE_LENGTH,
    ListSummary,
    clean_description,
    clean_title,
)
from mailer.store.staff import Role

WEEKS = 12
"""Weeks a chart shows unless the page asks for more (at most MAX_WEEKS)."""
MAX_WEEKS = 520
MAX_NAME = 200


@dataclass(frozen=True)
class Pictured:
    """A list's audience, and its chart as markup to put in the page."""

    audience: ListAudience
    svg: Markup


def pictured(name: str, weeks: int = WEEKS) -> Pictured:
    now = console().clock()
    since = now.date() - dt.timedelta(weeks=weeks - 1)
    audience = console().newsletter.store.audience.of(name, since, now)
    return Pictured(audience, Markup(chart(audience)))  # chart() escapes what it draws


def _summary(name: str) -> ListSummary:
    found = console().newsletter.store.lists.summaries(name)
    if not found:
        abort(404)
    return found[0]


def _address(name: str) -> str:
    return f"{console().path}/lists/{quote(name)}"


def _lists_page(status: int = 200, problem: str = "") -> ResponseReturnValue:
    return page(
        "lists.html",
        status,
        lists=console().newsletter.store.lists.summaries(),
        problem=problem,
        max_title=MAX_TITLE_LENGTH,
        max_description=MAX_DESCRIPTION_LENGTH,
    )


@needs(Role.EDITOR, "/lists")
def lists() -> ResponseReturnValue:
    return _lists_page()


def _described() -> tuple[str, str, bool]:
    form = request.form
    return (
        form.get("title", "")[: MAX_TITLE_LENGTH + 1],
        form.get("description", "")[: MAX_DESCRIPTION_LENGTH + 1],
        form.get("public") == "yes",
    )


@needs(Role.PUBLISHER, "/lists", ("POST",))
def create_list() -> ResponseReturnValue:
    name = request.form.get("name", "")[: MAX_NAME + 1]
    title, description, public = _described()
    try:
        console().newsletter.store.lists.create(
            name, title=title, description=description, public=public
        )
    except (RequestError, ValueError) as error:
        return _lists_page(400, str(error))
    record("created a list", f"{name.strip()} ({'public' if public else 'private'})")
    return redirect(_address(name.strip()))


def _list_page(name: str, status: int = 200, problem: str = "") -> ResponseReturnValue:
    summary = _summary(name)
    try:
        weeks = min(max(int(request.args.get("weeks", WEEKS)), 1), MAX_WEEKS)
    except ValueError:
        abort(400)
    return page(
        "list.html",
        status,
        summary=summary,
        picture=pictured(summary.name, weeks),
        weeks=weeks,
        statuses=[s.value for s in Status],
        problem=problem,
        max_title=MAX_TITLE_LENGTH,
        max_description=MAX_DESCRIPTION_LENGTH,
    )


@needs(Role.EDITOR, "/lists/<path:name>")
def list_page(name: str) -> ResponseReturnValue:
    """The list's page; asked by htmx (the dashboard, once it is shown), only its chart: at a
    million members drawing one takes a while, which the dashboard need not wait for."""
    if "HX-Request" in request.headers:
        summary = _summary(name)
        return page("audience_fragment.html", picture=pictured(summary.name), summary=summary)
    return _list_page(name)


@needs(Role.PUBLISHER, "/lists/<path:name>", ("POST",))
def change_list(name: str) -> ResponseReturnValue:
    """Save the form (name, title, description, public), or archive or restore the list."""
    summary = _summary(name)
    store = console().newsletter.store.lists
    action = request.form.get("action", "")
    try:
        if action in ("archive", "restore"):
            store.archive(summary.name, archived=action == "archive")
            record(f"{action}d a list", summary.name)
            return redirect(_address(summary.name))
        if action != "save":
            abort(400)
        title, description, public = _described()
        clean_title(title), clean_description(description)  # refused before anything changes
        new = clean_list_name(request.form.get("name", summary.name)[: MAX_NAME + 1])
        if new != summary.name:
            store.rename(summary.name, new)
            record("renamed a list", f"{summary.name} → {new}")
        store.describe(new, title=title, description=description, public=public)
    except (RequestError, ValueError) as error:
        return _list_page(name, 400, str(error))
    record(
        "described a list", f"{new}: {title or '(no title)'}, {'public' if public else 'private'}"
    )
    return redirect(_address(new))
