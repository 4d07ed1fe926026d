"""The import wizard: upload a CSV, see how it is read, map its columns, preview its first rows
(the rejected ones with why), choose the lists, then run it in the background with progress,
and download the rejected rows. mailer.store.importing does the reading and the importing,
exactly as `mailer subscribers import` does.

An upload is held in a private temporary folder until it is imported (then deleted) or a day
old; an import runs in a thread of the server, whose page polls it (htmx). The server's request
limit caps uploads (MAX_CSV_BYTES); larger files go through `mailer subscribers import`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flask import Response, abort, current_app, redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import me, needs, page, record
from mailer.console.service import Console, console
from mailer.console.session import client_address
from mailer.core.errors import MailerError
from mailer.store.importing.columns import FIELDS, LEFT_OUT, spelling
from mailer.store.importing.detection import DELIMITERS, encoding_name
from mailer.store.importing.reader import (
    Reading,
    header_of,
    spreadsheet_safe,
)
from mailer.store.importing.writer import ImportReport, Preview, import_csv, preview
from mailer.store.lists import list_key
from mailer.store.staff import Role

MAX_CSV_BYTES = 9 * 1024 * 1024
"""Under the 10 MB the server takes in one request (mailer.web.limits), leaving room for the
rest of the form."""
KEPT = dt.timedelta(days=1)
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
_EXTENSION = "mailer.console.imports"
_made = threading.Lock()
log = logging.getLogger(__name__)


@dataclass
class Run:
    """An import under way or done: how far it got, then what it did."""

    total: int
    done: int = 0
    report: ImportReport | None = None
    problem: str = ""
    finished: bool = False

    def advance(self, read: int) -> None:
        self.done = min(self.done + read, self.total)

    @property
    def percent(self) -> int:
        return 100 if self.finished else self.done * 100 // max(self.total, 1)


@dataclass
class Upload:
    token: str
    name: str
    """The file's name as uploaded, for people (the file itself is kept under the token)."""
    path: Path
    size: int
    at: dt.datetime
    run: Run | None = None


@dataclass
class Uploads:
    folder: Path
    held: dict[str, Upload] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, content: bytes, now: dt.datetime) -> Upload:
        self.forget_old(now)
        token = secrets.token_urlsafe(16)
        # Named as uploaded: the consent record of each person says "import of NAME".
        path = self.folder / token / (re.sub(r"[^\w.() -]+", "-", name).strip(". ") or "upload.csv")
        path.parent.mkdir(mode=0o700)
        path.write_bytes(content)
        upload = Upload(token, name, path, len(content), now)
        with self.lock:
            self.held[token] = upload
        return upload

    def get(self, token: str) -> Upload:
        upload = self.held.get(token) if _TOKEN.fullmatch(token) else None
        if upload is None:
            abort(404)
        return upload

    def forget_old(self, now: dt.datetime) -> None:
        """Uploads a day old, unless importing: gone, with their file."""
        with self.lock:
            old = [
                u
                for u in self.held.values()
                if now - u.at > KEPT and (u.run is None or u.run.finished)
            ]
            for upload in old:
                del self.held[upload.token]
                shutil.rmtree(upload.path.parent, ignore_errors=True)


def uploads() -> Uploads:
    """The uploads of this app, in a private folder made on first use."""
    with _made:
        if _EXTENSION not in current_app.extensions:
            folder = Path(tempfile.mkdtemp(prefix="mailer-imports-"))
            current_app.extensions[_EXTENSION] = Uploads(folder)
        found: Uploads = current_app.extensions[_EXTENSION]
        return found


@needs(Role.PUBLISHER, "/import")
def upload_form() -> ResponseReturnValue:
    return page("import_upload.html", max_bytes=MAX_CSV_BYTES, problem="")


@needs(Role.PUBLISHER, "/import", ("POST",))
def upload() -> ResponseReturnValue:
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        return page("import_upload.html", 400, max_bytes=MAX_CSV_BYTES, problem="Choose a file.")
    content = sent.stream.read(MAX_CSV_BYTES + 1)
    if len(content) > MAX_CSV_BYTES:
        return page(
            "import_upload.html",
            413,
            max_bytes=MAX_CSV_BYTES,
            problem=f"The file is over {MAX_CSV_BYTES // 1024 // 1024} MB; import it with "
            "`mailer subscribers import` on the server instead.",
        )
    name = Path(sent.filename).name[:200]
    held = uploads().add(name, content, console().clock())
    record("uploaded a file to import", f"{name} ({len(content):,} bytes)")
    return redirect(f"{console().path}/import/{held.token}")


@dataclass(frozen=True)
class Choices:
    """What staff chose on the wizard's page (nothing: everything detected, no extra list)."""

    encoding: str = ""
    delimiter: str = ""
    fields: dict[int, str] = field(default_factory=dict)
    """A field (or LEFT_OUT) for each column, by position, as the form last showed them."""
    header: tuple[str, ...] = ()
    """The header the fields were chosen for: read otherwise, the choices no longer apply."""
    lists: tuple[str, ...] = ()
    new_list: str = ""
    create_lists: bool = False

    @classmethod
    def of_form(cls) -> Choices:
        form = request.form
        encoding = form.get("encoding", "")
        delimiter = form.get("delimiter", "")
        if encoding not in ("", *ENCODINGS) or delimiter not in ("", *DELIMITERS.values()):
            abort(400)
        try:
            header = tuple(str(cell) for cell in json.loads(form.get("header", "[]")[:65536]))
        except (ValueError, TypeError, RecursionError):
            abort(400)
        fields = {}
        for index in range(min(len(header), 1000)):
            chosen = form.get(f"column-{index}", LEFT_OUT)
            fields[index] = chosen if chosen in FIELDS else LEFT_OUT
        return cls(
            encoding=encoding,
            delimiter=delimiter,
            fields=fields,
            header=header,
            lists=tuple(form.getlist("list")[:200]),
            new_list=form.get("new_list", "")[:200].strip(),
            create_lists=form.get("create_lists") == "yes",
        )

    def reading(self, header: Sequence[str] | None = None) -> Reading:
        """The Reading these choices make; the column fields only for the header they were
        chosen for (another encoding or separator reads other columns)."""
        separator = {word: c for c, word in DELIMITERS.items()}.get(self.delimiter)
        mapping = {}
        if header is not None and tuple(header) == self.header:
            mapping = {
                spelling(header[i]): chosen
                for i, chosen in self.fields.items()
                if spelling(header[i])
            }
        return Reading(self.encoding or None, separator, mapping)

    @property
    def every_row_joins(self) -> list[str]:
        return [*self.lists, *([self.new_list] if self.new_list else [])]


_IN_THE_WIZARD = {
    "--encoding cp1252": "the encoding Windows-1252",
    "--encoding": "the encoding below",
    "--delimiter": "the separator below",
    "--map COLUMN=FIELD": "a field in the table of columns",
    "--create-lists creates every list a file names": "or tick the box to create them",
}
"""The command line's options, as the wizard's page offers them."""


def in_the_wizard(message: str, upload: Upload) -> str:
    """A message of the importing package as the wizard says it: the file named as it was
    uploaded, the command line's options as the page's controls."""
    shown = message.replace(str(upload.path), upload.name)
    for option, control in _IN_THE_WIZARD.items():
        shown = shown.replace(option, control)
    return shown


def _wizard(upload: Upload, choices: Choices, status: int = 200) -> ResponseReturnValue:
    store = console().newsletter.store
    problem = ""
    seen: Preview | None = None
    header: list[str] = []
    detected = None
    try:
        detected, header = header_of(upload.path, choices.reading())
        reading = choices.reading(header)
        known = store.lists.by_key()
        if choices.new_list and list_key(choices.new_list) in known:
            problem = f"the list '{choices.new_list}' exists already: tick it above instead"
        seen = preview(
            upload.path,
            store.subscribers.engine,
            lists=choices.every_row_joins,
            default_list=console().newsletter.config.delivery.list,
            reading=reading,
            create_lists=choices.create_lists,
            made=[choices.new_list] if choices.new_list else [],
        )
    except MailerError as error:
        problem = problem or in_the_wizard(str(error), upload)
        status = 400
    except ValueError as error:
        problem = str(error)
        status = 400
    at = dict(seen.layout.columns.at) if seen else {}
    fields = {index: name for name, index in at.items()}
    return page(
        "import_preview.html",
        status,
        upload=upload,
        choices=choices,
        detected=detected,
        encoding_name=encoding_name,
        delimiters=DELIMITERS,
        encodings=ENCODINGS,
        header=header,
        header_json=json.dumps(header),
        fields=fields,
        all_fields=FIELDS,
        preview=seen,
        rows=_rows(seen, upload, store.lists.by_key()) if seen else [],
        lists=store.lists.names(),
        default_list=console().newsletter.config.delivery.list,
        problem=problem,
    )


def _rows(
    seen: Preview, upload: Upload, known: dict[str, str]
) -> list[tuple[int, str, str, str, str]]:
    """(line, address, name, lists, why it is rejected) for each row of the preview, in order;
    a list named as it exists, whatever the case the file gives it."""
    rows = [
        (p.line, p.email, p.name, ", ".join(sorted(known.get(list_key(n), n) for n in p.lists)), "")
        for p in seen.people
    ]
    rows += [(r.line or 0, "", "", "", in_the_wizard(r.message, upload)) for r in seen.rejected]
    return sorted(rows)


@needs(Role.PUBLISHER, "/import/<token>")
def wizard(token: str) -> ResponseReturnValue:
    held = uploads().get(token)
    if held.run is not None:
        return redirect(f"{console().path}/import/{token}/progress")
    return _wizard(held, Choices())


@needs(Role.PUBLISHER, "/import/<token>", ("POST",))
def choose(token: str) -> ResponseReturnValue:
    """Preview again with these choices, or (action=run) start the import with them."""
    held = uploads().get(token)
    choices = Choices.of_form()
    if request.form.get("action") != "run":
        return _wizard(held, choices)
    if held.run is not None:
        return redirect(f"{console().path}/import/{token}/progress")
    store = console().newsletter.store
    try:
        _, header = header_of(held.path, choices.reading())
        if choices.new_list:
            store.lists.create(choices.new_list)
            record("created a list", f"{choices.new_list} (for the import of {held.name})")
    except (MailerError, ValueError):
        return _wizard(held, choices, 400)
    with uploads().lock:  # one import per upload, however often the button is pressed
        if held.run is not None:
            return redirect(f"{console().path}/import/{token}/progress")
        held.run = Run(total=held.size)
    settings = _Settings(
        reading=choices.reading(header),
        lists=choices.every_row_joins,
        default_list=console().newsletter.config.delivery.list,
        create_lists=choices.create_lists,
        actor=me().email,
        address=client_address(),
    )
    record("started an import", held.name)
    threading.Thread(target=_import, args=(console(), held, settings), daemon=True).start()
    return redirect(f"{console().path}/import/{token}/progress")


@dataclass(frozen=True)
class _Settings:
    reading: Reading
    lists: list[str]
    default_list: str
    create_lists: bool
    actor: str
    address: str


def _import(service: Console, held: Upload, settings: _Settings) -> None:
    """The import itself, in its own thread; what it did goes in the audit log."""
    run = held.run
    if run is None:
        return
    try:
        detail = f"{held.name}: {_imported(service, held, settings, run)}"
        service.newsletter.store.audit.record(
            settings.actor, "imported subscribers", detail, settings.address, service.clock()
        )
    except Exception:
        log.exception("the import of an uploaded file stopped")
        run.problem = run.problem or "the import stopped unexpectedly; the server's log says why"
    finally:
        held.path.unlink(missing_ok=True)  # personal data: kept no longer than needed
        run.finished = True


def _imported(service: Console, held: Upload, settings: _Settings, run: Run) -> str:
    """Import the file; what it did, or why it stopped, for the audit log."""
    try:
        run.report = import_csv(
            held.path,
            service.newsletter.store.subscribers,
            lists=settings.lists,
            default_list=settings.default_list,
            reading=settings.reading,
            create_lists=settings.create_lists,
            progress=run.advance,
        )
    except MailerError as error:
        run.problem = in_the_wizard(str(error), held)
        return f"stopped ({run.problem})"
    merged = run.report.merged
    return (
        f"{run.report.rows:,} rows, {merged.added:,} added, {merged.updated:,} updated, "
        f"{merged.unchanged:,} unchanged, {len(run.report.rejected):,} rejected, "
        f"{merged.kept_out:,} kept out"
    )


@needs(Role.PUBLISHER, "/import/<token>/progress")
def import_progress(token: str) -> ResponseReturnValue:
    held = uploads().get(token)
    if held.run is None:
        return redirect(f"{console().path}/import/{token}")
    template = "import_progress.html" if "HX-Request" not in request.headers else "import_run.html"
    return page(template, upload=held, run=held.run)


@needs(Role.PUBLISHER, "/import/<token>/rejects.csv")
def rejects(token: str) -> ResponseReturnValue:
    held = uploads().get(token)
    report = held.run.report if held.run else None
    if report is None:
        abort(404)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason"])
    for problem in report.rejected:
        writer.writerow([problem.line or "", spreadsheet_safe(problem.message)])
    response = Response(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    stem = re.sub(r"[^\w.-]+", "-", Path(held.name).stem, flags=re.ASCII) or "import"
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}-rejected.csv"'
    return response
