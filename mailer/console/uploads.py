"""A commentary's PDF and images, uploaded in the editor: each checked by what its bytes are (not
by its name), kept under a size, written into the commentary's own folder
(`commentaries/<slug>/`, where `mailer check` and the renderer look) in one step, then named in
the commentary: the PDF in its front matter (`pdf`, `pdf_size`), an image at the end of its text.
The commentary is saved as any other save is: refused if someone saved it meanwhile.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from flask import redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from mailer.console.access import me, needs, page, record
from mailer.console.commentaries import commentary_path
from mailer.console.drafting import Conflict, Draft, save
from mailer.console.service import console
from mailer.content.commentary import slug_of
from mailer.core.errors import Problem
from mailer.core.output import write_atomically
from mailer.store.staff import Role

MAX_PDF_BYTES = 20 * 1024 * 1024
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES = 10
"""Images at most in one upload."""
IMAGE_KINDS = {
    b"\x89PNG\r\n\x1a\n": ".png",
    b"\xff\xd8\xff": ".jpg",
    b"GIF87a": ".gif",
    b"GIF89a": ".gif",
}


class Refused(Exception):
    """An upload that is not what it says, or too large; the message says which."""


def kind_of_image(data: bytes) -> str | None:
    """The file extension an image's bytes call for, None when they are no image mailer takes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in IMAGE_KINDS.items() if data.startswith(magic)), None)


def safe_name(name: str, extension: str) -> str:
    """The uploaded name reduced to letters, digits and dashes, with the extension its bytes
    call for: `Front line (1).PNG` → `front-line-1.png`."""
    words = unicodedata.normalize("NFKD", Path(name).stem).encode("ascii", "ignore").decode()
    stem = "-".join(re.findall(r"[a-z0-9]+", words.lower())[:8]) or "file"
    return stem + extension


def _read(upload: FileStorage, limit: int, what: str) -> bytes:
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{upload.filename}: a {what} is at most {limit // (1024 * 1024)} MB")
    return data


def _pdf(upload: FileStorage) -> tuple[str, bytes]:
    data = _read(upload, MAX_PDF_BYTES, "PDF")
    if not data.startswith(b"%PDF-"):
        raise Refused(f"{upload.filename}: not a PDF (its content does not start like one)")
    return safe_name(upload.filename or "", ".pdf"), data


def _image(upload: FileStorage) -> tuple[str, bytes]:
    data = _read(upload, MAX_IMAGE_BYTES, "image")
    extension = kind_of_image(data)
    if extension is None:
        raise Refused(f"{upload.filename}: not a PNG, JPEG, GIF or WebP image (by its content)")
    return safe_name(upload.filename or "", extension), data


@needs(Role.EDITOR, "/commentaries/<slug>/files", ("POST",))
def upload_files(slug: str) -> ResponseReturnValue:
    path = commentary_path(slug)
    pdf = request.files.get("pdf_file")
    images = [i for i in request.files.getlist("images") if i.filename]
    try:
        if len(images) > MAX_IMAGES:
            raise Refused(f"at most {MAX_IMAGES} images at a time")
        files = ([_pdf(pdf)] if pdf is not None and pdf.filename else []) + [
            _image(i) for i in images
        ]
        if not files:
            raise Refused("choose a PDF or an image first")
        draft = _named(path, files)
    except Refused as refusal:
        return _refused(slug, 400, f"Nothing was uploaded: {refusal}.")
    folder = path.parent / slug_of(path)
    for name, data in files:
        write_atomically(folder / name, data)
    try:
        save(path, draft, request.form.get("version", ""))
    except Conflict:
        return _refused(
            slug,
            409,
            "The files are saved, but the commentary is not: someone saved it after you opened "
            "it. Reload it and name the files again (they are in its folder).",
        )
    record("uploaded files", f"{path.name}: {', '.join(name for name, _ in files)}")
    console().newsletter.store.approvals.wrote(slug, me().email, console().clock())
    return redirect(f"{console().path}/commentaries/{slug}?saved=1")


def _named(path: Path, files: list[tuple[str, bytes]]) -> Draft:
    """The commentary as on disk, naming the new files: the PDF in the front matter, each image
    at the end of the text, with a description to write."""
    draft = Draft.from_text(path.read_bytes().decode("utf-8", "replace"), path)
    if isinstance(draft, Problem):
        raise Refused(f"the commentary cannot be read: {draft}")
    for name, data in files:
        if name.endswith(".pdf"):
            draft.values["pdf"] = name
            draft.values["pdf_size"] = str(len(data))
        else:
            draft.body = draft.body.rstrip("\n") + f"\n\n![Describe this image]({name})\n"
    return draft


def _refused(slug: str, status: int, text: str) -> ResponseReturnValue:
    return page(
        "message.html",
        status,
        heading="Not uploaded" if status == 400 else "Not saved",
        text=text,
        link=f"{console().path}/commentaries/{slug}",
        link_text="Back to the editor",
    )
