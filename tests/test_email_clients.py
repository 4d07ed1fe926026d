"""The email as real mail clients and filters take it: SpamAssassin's score of our own markup,
and the patterns Outlook's Word engine needs, checked on the built message (parsed by lxml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cssutils

from tests.conftest import Folder, skip_or_fail
from tests.test_email import document, email_of, parts

STALEMATE = "stalemate-to-escalation"
# Rules SpamAssassin fires on any message handed to it straight from a file: they speak of how
# the message travelled (no Received headers, no relays) or only note that it has HTML, and
# score nothing. Anything else it fires is about our markup or headers, and must not fire.
TRANSPORT_ONLY = {"NO_RECEIVED", "NO_RELAYS", "HTML_MESSAGE"}
REPORT_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def spamassassin_rules(message: bytes, home: Path) -> dict[str, float]:
    found = shutil.which("spamassassin")
    if found is None:
        skip_or_fail("spamassassin is not installed (sh .ci/install-system installs it)")
        raise AssertionError  # unreachable: skip_or_fail raises
    result = subprocess.run(
        [found, "-t", "-L"],
        input=message,
        capture_output=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=True,
    )
    report = result.stdout.decode("utf-8", "replace").split("Content analysis details:", 1)[1]
    return {name: float(points) for points, name in REPORT_LINE.findall(report)}


def test_spamassassin_scores_nothing_for_the_message_itself(folder: Folder, tmp_path: Path) -> None:
    _, _, message = email_of(folder, STALEMATE, "mediterranean-energy")
    rules = spamassassin_rules(message, tmp_path)
    assert rules, "SpamAssassin's report listed no rule at all, so it was not read"
    ours = {name: points for name, points in rules.items() if name not in TRANSPORT_ONLY}
    assert not ours, f"rules fired by the message's own markup or headers: {ours}"
    assert sum(rules.values()) <= 0


def test_outlook_gets_96_dpi_and_the_office_namespace(folder: Folder) -> None:
    _, rendered, _ = email_of(folder, STALEMATE)
    head = rendered.html.split("<body", 1)[0]
    assert 'xmlns:o="urn:schemas-microsoft-com:office:office"' in head
    conditional = re.search(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", head, re.DOTALL)
    assert conditional, "no MSO conditional in the head"
    assert "<o:PixelsPerInch>96</o:PixelsPerInch>" in conditional.group(1)
    assert "<o:OfficeDocumentSettings>" in conditional.group(1)


def declarations(style: str) -> dict[str, str]:
    return {p.name: p.value for p in cssutils.parseStyle(style, validate=False)}


def test_outlook_paints_no_background_into_a_margin_and_lists_indent_by_margin(
    folder: Folder,
) -> None:
    _, _, data = email_of(folder, STALEMATE, "mediterranean-energy")
    root = document(parts(data)[1])
    for element in root.iter():
        style = declarations(str(element.get("style") or ""))
        painted = "background-color" in style or "background" in style or element.get("bgcolor")
        margin = {v for k, v in style.items() if k.startswith("margin")} - {"0", "0 0 0 0"}
        assert not (painted and margin), f"<{element.tag} class={element.get('class')}>: {style}"
    lists = root.xpath("//ul | //ol")
    assert len(lists) >= 3
    for element in lists:
        style = declarations(element.get("style"))
        assert style.get("padding") == "0", f"{element.get('class')}: {style}"
        assert style["margin"].split()[-1] != "0", f"{element.get('class')} is not indented"


def test_the_pdf_button_is_a_coloured_table_cell_with_a_valid_bgcolor(folder: Folder) -> None:
    _, _, data = email_of(folder, STALEMATE)
    root = document(parts(data)[1])
    (link,) = root.cssselect("a.button")
    cell = link.getparent()
    assert cell.tag == "td"
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", cell.get("bgcolor") or ""), cell.get("bgcolor")
    assert "padding" in declarations(cell.get("style"))
    assert link.get("bgcolor") is None and "padding" not in declarations(link.get("style"))
    for element in root.xpath("//*[@bgcolor]"):
        assert element.tag in ("body", "table", "td", "tr"), f"bgcolor on <{element.tag}>"
        assert re.fullmatch(r"#[0-9a-fA-F]{6}", element.get("bgcolor")), element.get("bgcolor")


def test_the_preheader_is_hidden_without_a_colour_and_padded(folder: Folder) -> None:
    _, rendered, data = email_of(folder, STALEMATE)
    root = document(parts(data)[1])
    (preheader,) = root.cssselect(".preheader")
    style = declarations(preheader.get("style"))
    assert style["display"] == "none" and "color" not in style
    text = preheader.text_content()
    assert text.startswith(rendered.issue.lead.preheader)
    padding = text[len(rendered.issue.lead.preheader) :]
    assert len(padding) >= 200 and not padding.strip("\u034f\u200c\xa0"), "padding is not blank"


def test_dark_mode_styles_stay_in_the_head_as_written(folder: Folder) -> None:
    _, rendered, _ = email_of(folder, STALEMATE)
    head = rendered.html.split("<body", 1)[0]
    assert '<meta name="color-scheme" content="light dark">' in head
    assert "@media (prefers-color-scheme: dark)" in head
    assert "[data-ogsc] .body a" in head


def test_lang_and_dir_are_on_the_inner_wrapper_as_well_as_html(folder: Folder) -> None:
    folder.configure('language = "en-GB"', 'language = "ar"')
    _, _, data = email_of(folder, STALEMATE)
    root = document(parts(data)[1])
    assert (root.get("lang"), root.get("dir")) == ("ar", "rtl")
    (inner,) = root.cssselect(".wrapper-cell")
    assert (inner.get("lang"), inner.get("dir")) == ("ar", "rtl")
    assert inner.cssselect(".container"), "the wrapper with lang and dir holds the content"
