"""A commentary's Markdown body, made safe: HTML for email, feeds and web, and plain text for email.

Raw HTML is never passed through (it shows as text), links are limited to http, https and mailto,
and relative links and images are made absolute against the commentary's own web page, because an
email has no base URL.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.footnote import footnote_plugin

from mailer.content.files import WIDEST_IMAGE, Beside, FileProblem, is_local
from mailer.core.errors import Problem

ALLOWED_SCHEMES = ("http", "https", "mailto")
TEXT_WIDTH = 72
SECTION_LEVEL = 2
"""The level of a body's first headings: the page or email has the title as its one <h1>."""
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


@dataclass(frozen=True)
class Body:
    html: str
    text: str
    problems: tuple[Problem, ...]


def is_allowed_link(url: str) -> bool:
    """True for http, https and mailto links and for relative ones (made absolute later)."""
    found = _SCHEME.match(url.strip())
    return found is None or found.group(1).lower() in ALLOWED_SCHEMES


class _SafeMarkdown(MarkdownIt):
    """CommonMark with raw HTML off and only allowed links, remembering the links it refused."""

    def __init__(self) -> None:
        super().__init__("commonmark", {"html": False, "typographer": True})
        self.enable(["replacements", "smartquotes", "table", "strikethrough"])
        self.use(footnote_plugin, inline=False)
        self.refused: list[str] = []

    def validateLink(self, url: str) -> bool:
        if is_allowed_link(url):
            return True
        self.refused.append(self.normalizeLinkText(url))  # as written, not percent-encoded
        return False


class _Typographer(MarkdownIt):
    """Only the typographer: every character but quotes and dashes stays as written."""

    def __init__(self) -> None:
        super().__init__("zero", {"typographer": True})
        self.enable(["replacements", "smartquotes"])


def typeset(text: str) -> str:
    """A line of front matter (a title, a key point) with the body's curly quotes and dashes."""
    tokens = _Typographer().parseInline(text)
    return "".join(child.content for token in tokens for child in token.children or ())


def render(
    source: str, *, base_url: str, path: Path, first_line: int, anchor: str, files: Beside
) -> Body:
    """The body as HTML and text; problems carry file lines (`first_line` is the body's first).

    `anchor` names the footnotes' ids, which must differ between commentaries sharing a page
    (a feed, an issue). An image named by a bare file name is one of the `files` beside the
    commentary, linked at its published address with its width.
    """
    markdown = _SafeMarkdown()
    for rule in ("footnote_ref", "footnote_anchor"):
        original = markdown.renderer.rules[rule]  # type: ignore[attr-defined]
        markdown.add_render_rule(rule, _absolute_fragment(original, base_url))
    env = {"docId": anchor}
    tokens = markdown.parse(source, env)
    _shift_headings(tokens)
    problems = [
        Problem(
            path,
            first_line + _line_of(source, url),
            f"link to '{url}' is not allowed: links may only use http, https or mailto",
        )
        for url in markdown.refused
    ]
    for token, line in _inline_tokens(tokens):
        if token.type == "image":
            problems.extend(_image(token, files, path, first_line + line))
        _make_absolute(token, base_url)
    html = markdown.renderer.render(tokens, markdown.options, env)
    text = "\n\n".join(_blocks(SyntaxTreeNode(tokens), TEXT_WIDTH))
    return Body(html=html, text=text, problems=tuple(problems))


def _absolute_fragment(render: Callable[..., str], base_url: str) -> Callable[..., str]:
    """A footnote's `#fn…` link made absolute: an email has no page to jump within, so there the
    number opens the archive page at the note; on that page the same link stays in place."""

    def rule(self: object, tokens: Sequence[Token], idx: int, options: object, env: object) -> str:
        return render(tokens, idx, options, env).replace('href="#', f'href="{escape(base_url)}#')

    return rule


def _shift_headings(tokens: list[Token]) -> None:
    """Section headings one level below the title, whatever level the writer typed (`###`),
    keeping their order and never skipping a level (screen readers navigate by them)."""
    headings = [t for t in tokens if t.type in ("heading_open", "heading_close")]
    levels = sorted({int(t.tag[1]) for t in headings})
    for token in headings:
        token.tag = f"h{min(SECTION_LEVEL + levels.index(int(token.tag[1])), 6)}"


def _image(token: Token, files: Beside, path: Path, line: int) -> Iterator[Problem]:
    if not token.content.strip():
        yield Problem(
            path,
            line,
            "image has no description; write one for readers who cannot see it: "
            "![what the image shows](address)",
            warning=True,
        )
    src = str(token.attrGet("src") or "")
    if not is_local(src):
        return
    try:
        found = files.image(src)
    except FileProblem as problem:
        yield Problem(path, line, f"image {problem}")
        return
    token.attrSet("src", found.url)
    token.attrSet("width", str(found.shown_width))
    # As wide as the column allows and no wider than itself, even while images are blocked and
    # the client lays out an empty box of the width attribute's size.
    token.attrSet("style", f"width: 100%; max-width: {found.shown_width}px; height: auto")
    if found.width > WIDEST_IMAGE:
        yield Problem(
            path,
            line,
            f"image '{src}' is {found.width} px wide, more than the {WIDEST_IMAGE} px even a "
            "high-density screen shows of the 600 px email: readers download it for nothing; "
            f"scale it down to {WIDEST_IMAGE} px",
            warning=True,
        )


def _line_of(source: str, fragment: str) -> int:
    """Zero-based line of the first occurrence of fragment (0 when it is not found verbatim)."""
    at = source.find(fragment)
    return source.count("\n", 0, at) if at >= 0 else 0


def _inline_tokens(tokens: list[Token]) -> Iterator[tuple[Token, int]]:
    for token in tokens:
        line = token.map[0] if token.map else 0
        for child in token.children or ():
            yield child, line


def _make_absolute(token: Token, base_url: str) -> None:
    name = {"link_open": "href", "image": "src"}.get(token.type)
    if name is None:
        return
    value = str(token.attrGet(name) or "")
    if urlsplit(value).scheme == "":
        token.attrSet(name, urljoin(base_url, value))


# Plain text ------------------------------------------------------------------------------------


def _blocks(node: SyntaxTreeNode, width: int) -> Iterator[str]:
    """Each block of a container as wrapped text (blank lines go between them)."""
    for child in node.children:
        block = _block(child, width)
        if block:
            yield block


def _block(node: SyntaxTreeNode, width: int) -> str:
    kind = node.type
    if kind == "heading":
        title = _inline(node)
        # The title above carries the `=` underline; sections are all one step below it.
        return f"{wrap(title, width)}\n{'-' * min(len(title), width)}"
    if kind == "paragraph":
        return wrap(_inline(node), width)
    if kind == "blockquote":
        inner = "\n\n".join(_blocks(node, width - 2))
        return "\n".join(f"| {line}".rstrip() for line in inner.splitlines())
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, width)
    if kind in ("code_block", "fence"):
        return "\n".join("    " + line for line in node.content.rstrip("\n").splitlines())
    if kind == "hr":
        return "* * *".center(width).rstrip()
    if kind == "table":
        return _table(node)
    if kind == "footnote_block":
        rule = "* * *".center(width).rstrip()
        return "\n\n".join([rule, *(_footnote(note, width) for note in node.children)])
    return "\n\n".join(_blocks(node, width))


def _list(node: SyntaxTreeNode, width: int) -> str:
    start = int(str(node.attrs.get("start", 1)))
    items = []
    for number, item in enumerate(node.children, start=start):
        marker = f"{number}. " if node.type == "ordered_list" else "* "
        items.append(_hanging(marker, item, width))
    return "\n".join(items)


def _hanging(marker: str, node: SyntaxTreeNode, width: int) -> str:
    """The node's blocks after a marker (`* `, `1. `, `[1] `), later lines indented under it."""
    inner = "\n\n".join(_blocks(node, width - len(marker)))
    lines = inner.splitlines() or [""]
    indent = " " * len(marker)
    return "\n".join([marker + lines[0]] + [(indent + line).rstrip() for line in lines[1:]])


def _footnote(node: SyntaxTreeNode, width: int) -> str:
    return _hanging(f"[{_note_number(node)}] ", node, width)


def _note_number(node: SyntaxTreeNode) -> int:
    return int(str(node.meta["id"])) + 1


def _table(node: SyntaxTreeNode) -> str:
    rows = [
        " | ".join(_inline(cell) for cell in row.children)
        for section in node.children
        for row in section.children
    ]
    return "\n".join(rows)


def _inline(node: SyntaxTreeNode) -> str:
    return "".join(_inline_parts(node))


def _inline_parts(node: SyntaxTreeNode) -> Iterator[str]:
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline"):
            yield child.content
        elif kind == "softbreak":
            yield " "
        elif kind == "hardbreak":
            yield "\n"
        elif kind == "link":
            label = _inline(child)
            href = str(child.attrs.get("href", ""))
            shown = href.removeprefix("mailto:")
            yield shown if label in (href, shown) else f"{label} ({shown})"
        elif kind == "footnote_ref":
            yield f"[{_note_number(child)}]"
        elif kind == "image":
            yield f"[{child.content or 'image'}: {child.attrs.get('src', '')}]"
        else:
            yield from _inline_parts(child)


def wrap(
    text: str, width: int = TEXT_WIDTH, indent: str = "", subsequent: str | None = None
) -> str:
    """Plain text wrapped for email, never breaking a word or a URL, keeping hard line breaks.

    `indent` starts the first line (a bullet, say); the following lines are indented as far unless
    `subsequent` says otherwise.
    """
    following = " " * len(indent) if subsequent is None else subsequent
    lines = text.split("\n")
    return "\n".join(
        textwrap.fill(
            line,
            width=max(width, 20),
            initial_indent=indent if number == 0 else following,
            subsequent_indent=following,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for number, line in enumerate(lines)
    )
