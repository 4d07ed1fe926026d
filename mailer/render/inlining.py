"""The CSS inliner (premailer, with the theme's CSS turned into rules once per process), and how
large its output can be at most, found without inlining.

Inlining is what makes an email's HTML large or small, and it is the dearest step of an email:
17-36 ms for the longest example here, against 0.4-0.8 ms for the bound (2026-12-02, load 8).
`mailer check` only needs to know whether an email may pass Gmail's clipping limit, so it asks
`inlined_size_at_most` first and inlines only the emails that could be too large.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, ClassVar

_OPTIONS: dict[str, Any] = {
    "allow_network": False,
    "strip_important": False,
    "keep_style_tags": False,
    "remove_classes": False,
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
    # The template's width attributes are for Outlook, which ignores CSS widths; the inliner
    # would otherwise overwrite them with the CSS's (width="100%" on an image).
    "disable_basic_attributes": ["width", "height"],
}
_NEW_HEAD = len(b"<head></head>\n")
"""premailer adds a <head> to a document that has none."""
_IMAGE_ALIGN = len(b' align="right"')
"""premailer gives a floating image an align attribute."""
_ATTRIBUTE = "data-premailer"
"""premailer leaves a <style> marked with it as "ignore" as it is."""
_CLASS_SPACE = re.compile(r"[ \t\r\n]+")
"""What separates classes for the XPath premailer matches with (normalize-space)."""


def inline_css(html: str) -> str:
    """Every style copied onto its element; @media rules kept in <style> with their !important."""
    return str(_inliner()(html, **_OPTIONS).transform())


@functools.cache
def _inliner() -> Any:
    """premailer, turning the theme's CSS into rules once per process instead of once per email.

    Measured with `mailer check` on 300 commentaries (cProfile): premailer's _parse_style_rules
    serialised every rule of the same stylesheet again for each email, 18 of the 27 s spent
    inlining, and _css_rules_to_string the kept @media rules, 4 s more. Both depend only on the
    stylesheet's text and the options, which are the same for every email mailer renders.
    """
    import premailer  # lxml and cssutils are heavy: loaded only by what renders an email

    class Inliner(premailer.Premailer):  # type: ignore[misc]
        rules: ClassVar[dict[tuple[str, int], Any]] = {}
        kept: ClassVar[dict[int, tuple[Any, str]]] = {}
        """One entry per stylesheet: a theme has one or two."""

        def _parse_style_rules(self, css_body: str, ruleset_index: int) -> Any:
            key = (css_body, ruleset_index)
            found = Inliner.rules.get(key)
            if found is None:
                found = Inliner.rules[key] = super()._parse_style_rules(css_body, ruleset_index)
            return found

        def _css_rules_to_string(self, rules: Any) -> str:
            found = Inliner.kept.get(id(rules))
            if found is None or found[0] is not rules:  # the pair keeps `rules` and its id alive
                found = Inliner.kept[id(rules)] = (rules, super()._css_rules_to_string(rules))
            return found[1]

    return Inliner


@functools.cache
def _reader() -> Any:
    """An inliner for reading stylesheets with, which holds no document."""
    return _inliner()(None, **_OPTIONS)


@functools.cache
def _sheet(rules: tuple[tuple[str, str], ...]) -> _Sheet:
    """The rules of a theme's stylesheets, read once per process (one entry per theme)."""
    return _Sheet(rules)


def inlined_size_at_most(html: str) -> int:
    """Bytes that `inline_css(html)` encoded as UTF-8 never exceeds, found in a fraction of its
    time (one parse and one serialisation, no selector matching).

    The document is serialised as premailer serialises it; each <style> it inlines counts as the
    rules it keeps; each element gains a style attribute holding every declaration of every rule
    whose last compound selector could match the element by its own tag, classes, id and
    attribute names (ancestors, siblings, pseudo-classes and attribute values are not looked at,
    so no rule that does match is left out), escaped as the worst case, and the HTML attributes
    premailer derives from them (align, valign, bgcolor).
    """
    from lxml import etree

    stripped = html.strip()
    tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
    page = tree.getroot()
    doctype = tree.docinfo.doctype  # type: ignore[union-attr]  # lxml-stubs lack it
    root = tree if stripped.startswith(doctype) else page
    size = len(etree.tostring(root, method="html", pretty_print=True, encoding="utf-8"))
    size += _NEW_HEAD
    inliner = _reader()
    rules: list[tuple[str, str]] = []
    index = 0
    for style in page.iter("style"):
        media = style.get("media")
        if (media and media not in ("all", "screen")) or style.get(_ATTRIBUTE) == "ignore":
            continue  # left as it is (or smaller: premailer drops data-premailer="ignore")
        these, leftover = inliner._parse_style_rules(style.text, index)
        index += 1
        rules.extend((selector, bulk) for _, selector, bulk in these)
        before = len((style.text or "").encode("utf-8"))
        after = len(inliner._css_rules_to_string(leftover).encode("utf-8")) if leftover else 0
        size += after - before
    if not rules:
        return size
    sheet = _sheet(tuple(rules))
    for element in page.iter():
        if isinstance(element.tag, str):
            size += sheet.growth_at_most(element)
    return size


class _Sheet:
    """The rules premailer inlines, and how much each kind of element can grow by them."""

    def __init__(self, rules: tuple[tuple[str, str], ...]) -> None:
        from cssselect import SelectorError, parse
        from premailer.merge_style import csstext_to_pairs

        self.rules: list[tuple[list[Any] | None, list[tuple[str, str]], int]] = []
        for selector, bulk in rules:
            try:
                parsed: list[Any] | None = [s.parsed_tree for s in parse(selector)]
            except SelectorError:
                parsed = None  # premailer will fail on it too; count it everywhere
            pairs = csstext_to_pairs(bulk, validate=False)
            # merge_styles writes "k:v; k:v", with "{...}" and the selector around a pseudo-class
            cost = sum(_attribute_bytes(f"{k}:{v}") + 2 for k, v in pairs) + len(selector) + 4
            self.rules.append((parsed, pairs, cost))
        self.known: dict[tuple[Any, ...], int] = {}

    def growth_at_most(self, element: Any) -> int:
        style = element.get("style")
        key = (
            element.tag,
            element.get("class"),
            element.get("id"),
            frozenset(element.attrib),
            style,
        )
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self._growth_at_most(element, style)
        return found

    def _growth_at_most(self, element: Any, style: str | None) -> int:
        from premailer.merge_style import csstext_to_pairs

        tag = element.tag.lower()
        classes = set(_CLASS_SPACE.split(element.get("class", "")))
        identifier = element.get("id")
        names = {name.lower() for name in element.attrib}
        growth = 0
        declared: list[tuple[str, str]] = []
        for parsed, pairs, cost in self.rules:
            if parsed is None or any(
                _could_match(tree, tag, classes, identifier, names) for tree in parsed
            ):
                growth += cost
                declared.extend(pairs)
        if not growth:
            return 0
        if style:
            pairs = csstext_to_pairs(style, validate=False)
            growth += sum(_attribute_bytes(f"{k}:{v}") + 2 for k, v in pairs)
            declared.extend(pairs)
        growth += len(b' style=""')
        for name, value in declared:
            attribute = {"text-align": "align", "vertical-align": "valign"}.get(name.strip())
            if name.strip() == "background-color":
                attribute = "bgcolor"  # a three-digit colour is written with six
            if attribute:
                growth += len(f' {attribute}=""') + 2 * _attribute_bytes(value)
        if tag == "img":
            growth += _IMAGE_ALIGN
        return growth


def _could_match(
    node: Any, tag: str, classes: set[str], identifier: str | None, names: set[str]
) -> bool:
    """Whether an element of this tag, classes, id and attribute names could be what the last
    compound of a parsed selector matches; True whenever that cannot be told from those alone."""
    kind = type(node).__name__
    if kind == "CombinedSelector":
        return _could_match(node.subselector, tag, classes, identifier, names)
    if kind == "Element":
        return node.element in (None, "*") or node.element.lower() == tag
    if kind == "Class" and node.class_name not in classes:
        return False
    if kind == "Hash" and node.id != identifier:
        return False
    if kind == "Attrib" and node.attrib.lower() not in names:
        return False
    inner = getattr(node, "selector", None)
    return inner is None or _could_match(inner, tag, classes, identifier, names)


def _attribute_bytes(text: str) -> int:
    """The most bytes `text` can take as an attribute value in lxml's HTML output: & and "
    become entities, and so may <, >, tabs, line ends and characters beyond ASCII."""
    size = len(text.encode("utf-8"))
    size += 4 * text.count("&") + 5 * text.count('"') + 3 * (text.count("<") + text.count(">"))
    size += 4 * sum(text.count(c) for c in "\t\r\n")
    return size + sum(10 for c in text if ord(c) > 127)
