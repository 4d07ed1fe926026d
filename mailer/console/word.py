"""A Word document (.docx) turned into a draft commentary, through mammoth.

mammoth reads the document's structure, not its looks: the Title paragraph becomes the title,
a Subtitle or Author paragraph the authors, a bulleted list before the text the key points,
headings the ### sections, and a paragraph set wholly in italics (or in a Quote style) a pull
quote. Images are kept as files beside the commentary. What cannot be recognised is left in the
body for the writer to review in the editor.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import mammoth

from mailer.console.drafting import Draft

STYLE_MAP = """
p[style-name='Title'] => h1:fresh
p[style-name='Subtitle'] => h6:fresh
p[style-name='Author'] => h6:fresh
p[style-name='heading 1'] => h3:fresh
p[style-name='heading 2'] => h3:fresh
p[style-name='heading 3'] => h4:fresh
p[style-name='Quote'] => blockquote > p:fresh
p[style-name='Intense Quote'] => blockquote > p:fresh
"""
_NEEDLESS_ESCAPE = re.compile(r"\\([()])|(?<=\S)\\([.!\-#+])")
_AUTHORS = re.compile(r"\s*(?:,|\band\b|&)\s*")
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


class NotWord(ValueError):
    """The upload is not a .docx mammoth can read."""


@dataclass
class Imported:
    draft: Draft
    images: dict[str, bytes] = field(default_factory=dict)
    """File name → bytes, to be written beside the commentary."""
    messages: list[str] = field(default_factory=list)


def import_docx(data: bytes, date: str, image_prefix: str) -> Imported:
    """A draft (dated `date`, marked draft) from the document; images named `prefix-N.ext`."""
    images: dict[str, bytes] = {}

    def keep(image: Any) -> dict[str, str]:
        with image.open() as stream:
            content = stream.read()
        name = f"{image_prefix}-{len(images) + 1}.{_IMAGE_TYPES.get(image.content_type, 'bin')}"
        images[name] = content
        return {"src": name, "alt": image.alt_text or ""}

    try:
        result = mammoth.convert_to_markdown(
            io.BytesIO(data),
            style_map=STYLE_MAP,
            convert_image=mammoth.images.img_element(keep),
        )
    except Exception as error:  # mammoth raises zipfile, KeyError, XML errors: all "not a .docx"
        raise NotWord(f"this file cannot be read as a Word document (.docx): {error}") from None
    title, authors, summary, body = _parts(result.value)
    values = {"title": title, "authors": "\n".join(authors), "date": date, "draft": "on"}
    values["summary"] = "\n".join(summary)
    messages = [
        m.message for m in result.messages if "Unrecognised paragraph style" not in m.message
    ]
    return Imported(Draft(values, body), images, messages)


def _parts(markdown: str) -> tuple[str, list[str], list[str], str]:
    """Title, authors and key points taken from the top of the document; the rest the body."""
    blocks = [_clean(block) for block in re.split(r"\n\s*\n", markdown.strip()) if block.strip()]
    title = ""
    authors: list[str] = []
    summary: list[str] = []
    body: list[str] = []
    for block in blocks:
        at_top = not body
        if at_top and block.startswith("# ") and not title:
            title = block[2:].strip()
        elif at_top and block.startswith("###### "):
            authors.extend(a for a in _AUTHORS.split(block[7:].strip().removeprefix("By ")) if a)
        elif at_top and not summary and all(line.startswith("- ") for line in block.splitlines()):
            summary = [line[2:].strip() for line in block.splitlines()]
        else:
            body.append(_pull_quote(block))
    return title, authors, summary, "\n\n".join(body) + "\n"


def _clean(block: str) -> str:
    """mammoth escapes every character Markdown might read; most of them it would not."""
    lines = [
        _NEEDLESS_ESCAPE.sub(lambda m: m[1] or m[2], line) for line in block.strip().splitlines()
    ]
    return "\n".join(lines)


def _pull_quote(block: str) -> str:
    """A paragraph wholly in italics is a display quote: a blockquote, which is a pull quote."""
    if block.startswith("# "):
        return "### " + block[2:]
    emphasised = re.fullmatch(r"[*_]([^*_\n].*[^*_\n])[*_]", block)
    if emphasised:
        return f"> {emphasised[1]}"
    return block
