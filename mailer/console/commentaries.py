"""The commentaries: a list with search, an editor with a live preview, and .docx import.

Every save goes through mailer.console.drafting into the commentaries folder, which stays the
source of truth: the command line and git see the same files the console wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from flask import Response, abort, redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import me, needs, page, record
from mailer.console.drafting import Checked, Conflict, Draft, check, file_name, save, version
from mailer.console.previews import TEST_MARK, checks, email_of
from mailer.console.service import console
from mailer.console.word import NotWord, import_docx
from mailer.content.commentary import FIELDS, Commentary, Issue, slug_of
from mailer.core.errors import ContentError, MailerError, Problem
from mailer.core.output import write_atomically
from mailer.delivery.base import BackendError, Outcome, Outgoing, Result
from mailer.store.staff import Role

MAX_DOCX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    slug: str
    name: str
    title: str
    date: dt.datetime | None
    state: str
    sent: list[tuple[str, dt.datetime]]
    problems: int


def _folder() -> Path:
    return console().newsletter.config.paths.commentaries


def _files() -> list[Path]:
    """The commentary files by name (sorting by the name alone: comparing Paths is slow)."""
    return sorted(_folder().glob("*.md"), key=lambda path: path.name)


def commentary_path(slug: str) -> Path:
    found = [p for p in _files() if slug_of(p) == slug]
    if not found:
        abort(404)
    return found[0]


def _rows(paths: list[Path]) -> list[Row]:
    service = console()
    sent: dict[str, list[tuple[str, dt.datetime]]] = {}
    for campaign in service.newsletter.store.campaigns.all():
        for slug in campaign.slugs:
            sent.setdefault(slug, []).append((campaign.list_name, campaign.created_at))
    now = service.clock()
    rows = []
    for path in paths:
        commentary, problems = service.shelf.read(path)
        slug = slug_of(path)
        rows.append(
            Row(
                slug=slug,
                name=path.name,
                title=commentary.title if commentary else path.name,
                date=commentary.date if commentary else None,
                state=_state(commentary, slug in sent, now),
                sent=sent.get(slug, []),
                problems=len(problems),
            )
        )
    return rows


def _found(rows: list[Row], query: str) -> list[Row]:
    words = query.lower().split()
    return [r for r in rows if all(w in f"{r.title} {r.slug} {r.state}".lower() for w in words)]


def _state(commentary: Commentary | None, sent: bool, now: dt.datetime) -> str:
    if commentary is None:
        return "has problems"
    if sent:
        return "sent"
    if commentary.draft:
        return "draft"
    return "embargoed" if commentary.date > now else "published"


PAGE_SIZE = 50
"""Commentaries a page of the list shows: rendering all 500 of an archive took most of the
page's 125 ms (median from `mailer serve`, benchmarks/console_pages.py), 50 take a tenth."""


@needs(Role.EDITOR, "/commentaries")
def commentaries() -> ResponseReturnValue:
    query = request.args.get("q", "")[:200]
    files = _files()[::-1]  # the newest first
    found = _found(_rows(files), query) if query.strip() else None  # a search reads them all
    total = len(files) if found is None else len(found)
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    window = slice((number - 1) * PAGE_SIZE, number * PAGE_SIZE)
    return page(
        "commentaries.html",
        rows=_rows(files[window]) if found is None else found[window],  # else only the page's
        query=query,
        number=number,
        pages=pages,
        total=total,
        earlier=urlencode({"q": query, "page": number + 1}) if number < pages else "",
        later=urlencode({"q": query, "page": number - 1}) if number > 1 else "",
    )


def _editor(
    draft: Draft, name: str, started_from: str, status: int = 200, problem: str = ""
) -> ResponseReturnValue:
    checked = check(draft, _folder() / (name or file_name(draft)), console().newsletter.site)
    return page(
        "editor.html",
        status,
        draft=draft,
        name=name,
        version=started_from,
        slug=slug_of(Path(name)) if name else "",
        checked=checked,
        html="",
        problem=problem,
    )


@needs(Role.EDITOR, "/commentaries/new")
def new_commentary() -> ResponseReturnValue:
    today = console().clock().astimezone(console().newsletter.config.newsletter.zone).date()
    return _editor(Draft({"date": today.isoformat(), "draft": "on"}, ""), "", "")


@needs(Role.EDITOR, "/commentaries/new", ("POST",))
def create_commentary() -> ResponseReturnValue:
    draft = Draft.from_form(request.form)
    name = file_name(draft)
    return _save(draft, name, _folder() / name, started_from="", created=True)


@needs(Role.EDITOR, "/commentaries/<slug>")
def commentary(slug: str) -> ResponseReturnValue:
    path = commentary_path(slug)
    text = path.read_bytes()
    draft = Draft.from_text(text.decode("utf-8", "replace"), path)
    if isinstance(draft, Problem):
        return page("message.html", 409, heading="This file cannot be edited here", text=str(draft))
    return _editor(draft, path.name, version(path))


@needs(Role.EDITOR, "/commentaries/<slug>", ("POST",))
def save_commentary(slug: str) -> ResponseReturnValue:
    path = commentary_path(slug)
    draft = Draft.from_form(request.form)
    return _save(draft, path.name, path, request.form.get("version", ""), created=False)


def _save(
    draft: Draft, name: str, path: Path, started_from: str, created: bool
) -> ResponseReturnValue:
    checked = check(draft, path, console().newsletter.site)
    if checked.errors:
        return _editor(
            draft,
            "" if created else name,
            started_from,
            400,
            "Not saved: fix the problems marked below first (the file on disk is unchanged).",
        )
    try:
        save(path, draft, started_from)
    except Conflict:
        if created:
            problem = f"Not saved: {name} exists already. Change the title or the date."
        else:
            problem = (
                "Not saved: someone else saved this commentary after you opened it. Your text "
                "is below, unsaved: copy what you changed, reload the page to see theirs, and "
                "apply your changes again."
            )
        return _editor(draft, "" if created else name, started_from, 409, problem)
    record("created commentary" if created else "saved commentary", name)
    console().newsletter.store.approvals.wrote(slug_of(path), me().email, console().clock())
    return redirect(f"{console().path}/commentaries/{slug_of(path)}?saved=1")


@needs(Role.EDITOR, "/commentaries/check", ("POST",))
def check_draft() -> ResponseReturnValue:
    """The live preview (htmx): the email as it would be, and each problem at its field."""
    draft = Draft.from_form(request.form)
    name = Path(request.form.get("name", "")).name or file_name(draft)
    checked = check(draft, _folder() / name, console().newsletter.site)
    html = _preview_html(checked)
    return page("preview_fragment.html", checked=checked, html=html, fields=FIELDS)


def _preview_html(checked: Checked) -> str:
    if checked.commentary is None:
        return ""
    newsletter = console().newsletter
    try:
        return email_of(newsletter, checked.commentary, newsletter.preview_recipient()).html
    except MailerError as error:
        checked.other.append(str(error))
        return ""


@needs(Role.EDITOR, "/commentaries/import", ("POST",))
def import_word() -> ResponseReturnValue:
    upload = request.files.get("document")
    if upload is None or not upload.filename:
        return page("message.html", 400, heading="No document", text="Choose a .docx file first.")
    data = upload.stream.read(MAX_DOCX_BYTES + 1)
    if len(data) > MAX_DOCX_BYTES:
        return page("message.html", 413, heading="Too large", text="The document is over 8 MB.")
    today = console().clock().astimezone(console().newsletter.config.newsletter.zone).date()
    stem = Path(upload.filename).stem
    prefix = f"{today.isoformat()}-{slug_of(Path(stem)) or 'document'}"
    try:
        imported = import_docx(data, today.isoformat(), _safe(prefix))
    except NotWord as error:
        return page("message.html", 400, heading="Not a Word document", text=str(error))
    for image, content in imported.images.items():
        write_atomically(_folder() / image, content)
    record("imported a Word document", upload.filename[:200])
    return _editor(imported.draft, "", "", problem="; ".join(imported.messages))


def _safe(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in name)


def readable(slug: str) -> Commentary:
    """The commentary of this slug, whole, as the folder has it now, or a 409 naming its
    problems (the shelf tells them without parsing a file that did not change)."""
    commentary, problems = console().shelf.read(commentary_path(slug))
    try:
        if commentary is not None:
            return console().newsletter.whole(commentary)
    except ContentError as error:
        problems = list(error.problems)
    abort(409, "; ".join(str(p) for p in problems))


@needs(Role.EDITOR, "/commentaries/<slug>/preview")
def preview(slug: str) -> ResponseReturnValue:
    commentary = readable(slug)
    newsletter = console().newsletter
    shown = email_of(newsletter, commentary, newsletter.preview_recipient())
    return page(
        "preview.html",
        commentary=commentary,
        email=shown,
        checks=checks(shown, commentary, console().clock()),
        backend=newsletter.config.delivery.backend,
        test_addresses=newsletter.store.test_addresses.all(),
    )


@needs(Role.EDITOR, "/commentaries/<slug>/email.html")
def email_html(slug: str) -> ResponseReturnValue:
    """The HTML part alone, for the preview's frames; `?dark=1` as mail apps in dark mode show
    it (see dark)."""
    newsletter = console().newsletter
    html = email_of(newsletter, readable(slug), newsletter.preview_recipient()).html
    return Response(
        dark(html) if request.args.get("dark") else html, content_type="text/html; charset=utf-8"
    )


DARK_MEDIA = "prefers-color-scheme: dark"
INVERTED = (
    "<style>html { filter: invert(1) hue-rotate(180deg); background: #fff; }"
    " img { filter: invert(1) hue-rotate(180deg); }</style>"
)


def dark(html: str) -> str:
    """The email in dark mode: its own dark rules applied whatever this browser prefers, or,
    when it has none, its colours inverted as the mail apps that force dark mode do."""
    if DARK_MEDIA in html:
        return html.replace(DARK_MEDIA, "min-width: 0")
    return html.replace("</head>", INVERTED + "</head>", 1)


@needs(Role.EDITOR, "/commentaries/<slug>/test", ("POST",))
def test_send(slug: str) -> ResponseReturnValue:
    """Send the issue to the signed-in person and the saved test addresses ticked, the subject
    marked as a test."""
    commentary = readable(slug)
    newsletter = console().newsletter
    saved = newsletter.store.test_addresses.all()
    ticked = set(request.form.getlist("to")[: len(saved) + 1])
    addresses = ([me().email] if "me" in ticked or not saved else []) + [
        a for a in saved if a in ticked
    ]
    if not addresses:
        return page("message.html", 400, heading="No address", text="Tick at least one address.")
    refused = {address: _test_to(commentary, address) for address in addresses}
    went = [address for address, reason in refused.items() if not reason]
    failures = [f"{address}: {reason}" for address, reason in refused.items() if reason]
    backend = newsletter.config.delivery.backend
    record("sent a test" if went else "test failed", f"{commentary.slug} to {', '.join(addresses)}")
    subject = TEST_MARK + Issue((commentary,)).subject
    text = f"Sent “{subject}” to {', '.join(went)} through {backend}." if went else ""
    if failures:
        text += f" The {backend} backend refused it for " + "; ".join(failures)
    return page(
        "message.html",
        502 if failures else 200,
        heading="The test was not sent" if not went else "Test sent",
        text=text.strip(),
        link=f"{console().path}/commentaries/{slug}/preview",
        link_text="Back to the preview",
    )


def _test_to(commentary: Commentary, address: str) -> str:
    """Send the test to `address`: what went wrong, or "" when it went."""
    newsletter = console().newsletter
    recipient = newsletter.recipient(0, "", address, "")  # no subscriber: links name nobody
    shown = email_of(newsletter, commentary, recipient, test=True)
    try:
        with newsletter.backend_factory()() as backend:
            (result,) = backend.send(
                shown.template, [Outgoing(0, recipient, shown.template.message_id())]
            )
    except BackendError as error:
        result = Result(Outcome.FAILED, reason=str(error))
    return "" if result.outcome == Outcome.SENT else result.reason or "refused"
