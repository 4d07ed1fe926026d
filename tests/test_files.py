"""Files beside the text: the example's map and PDF published by the build under content-addressed
names, linked absolutely and measured in the email and feeds; and what `check` says of them."""

from __future__ import annotations

import hashlib
import json

import feedparser

from tests.conftest import Folder, Run
from tests.test_email import document, email_of, parts
from tests.test_feeds import build

STALEMATE = "stalemate-to-escalation"
SITE = "https://www.example.org/commentaries/"
BESIDE = "commentaries/stalemate-to-escalation"


def published_name(folder: Folder, name: str) -> str:
    data = (folder.path / BESIDE / name).read_bytes()
    return f"files/{hashlib.sha256(data).hexdigest()[:16]}/{name}"


def test_the_build_publishes_the_map_and_pdf_and_everything_links_them_absolutely(
    folder: Folder, run: Run
) -> None:
    files = build(folder, run)
    pdf, image = published_name(folder, "2553.pdf"), published_name(folder, "front-line.png")
    assert files[pdf] == (folder.path / BESIDE / "2553.pdf").read_bytes()
    assert files[image] == (folder.path / BESIDE / "front-line.png").read_bytes()
    size = len(files[pdf])

    _, _, data = email_of(folder, STALEMATE)
    text, html = parts(data)
    root = document(html)
    (img,) = root.xpath(f"//img[@src='{SITE}{image}']")
    assert img.get("width") == "536", "Outlook needs the width, as it ignores max-width"
    assert img.get("alt", "").startswith("A schematic map")
    (button,) = root.cssselect("a.button")
    assert button.get("href") == SITE + pdf
    assert button.text_content() == f"Download the PDF ({size / 1000:.0f} kB)"
    assert f"Download the PDF ({size / 1000:.0f} kB):\n{SITE}{pdf}" in text.replace("\r\n", "\n")

    rss = next(e for e in feedparser.parse(files["rss.xml"]).entries if STALEMATE in e.id)
    (enclosure,) = rss.enclosures
    assert (enclosure.href, int(enclosure.length), enclosure.type) == (
        SITE + pdf,
        size,
        "application/pdf",
    )
    assert f'src="{SITE}{image}"' in rss.content[0].value
    atom = next(e for e in feedparser.parse(files["atom.xml"]).entries if STALEMATE in e.id)
    (attached,) = [link for link in atom.links if link.rel == "enclosure"]
    assert (attached.href, int(attached.length)) == (SITE + pdf, size)
    item = next(i for i in json.loads(files["feed.json"])["items"] if STALEMATE in i["id"])
    assert item["attachments"] == [
        {"url": SITE + pdf, "mime_type": "application/pdf", "size_in_bytes": size}
    ]
    page = document(files[f"archive/{STALEMATE}/index.html"].decode())
    assert page.xpath(f"//img[@src='{SITE}{image}']") and page.xpath(f"//a[@href='{SITE}{pdf}']")


def test_a_corrected_file_gets_a_new_address_and_the_old_one_goes(folder: Folder, run: Run) -> None:
    old = published_name(folder, "front-line.png")
    build(folder, run)
    folder.image(f"{BESIDE}/front-line.png", 900)
    files = build(folder, run)
    new = published_name(folder, "front-line.png")
    assert new != old and new in files and old not in files
    assert not (folder.output / old).exists()


def test_a_file_beside_the_commentary_works_like_one_in_its_folder(
    folder: Folder, run: Run
) -> None:
    (folder.path / BESIDE / "2553.pdf").rename(folder.commentaries / "2553.pdf")
    files = build(folder, run)
    assert published_name(folder, "front-line.png") in files
    assert any(name.endswith("/2553.pdf") for name in files)


CHECKED = """
    +++
    title = "A chart"
    authors = ["A. Author"]
    date = 2025-11-01
    pdf = "{pdf}"
    +++

    The numbers:

    ![The numbers by year](chart.png)

    ![]({wide})
    """


def test_check_reports_missing_files_at_their_lines_and_warns_of_wide_images(
    folder: Folder, run: Run
) -> None:
    path = folder.write(
        "commentaries/2025-11-01-chart.md", CHECKED.format(pdf="chart.pdf", wide="wide.png")
    )
    folder.image("commentaries/wide.png", 1600)
    result = run("check")
    assert result.exit_code == 2
    assert f"{path}:5: pdf 'chart.pdf' is not there: put it beside 2025-11-01-chart.md" in (
        result.output
    )
    assert f"{path}:10: image 'chart.png' is not there" in result.output
    assert f"{path}:12: warning: image has no description" in result.output
    assert f"{path}:12: warning: image 'wide.png' is 1600 px wide" in result.output
    assert run("build").exit_code == 2
    assert not folder.output.exists() or not folder.output_files()


def test_a_pdf_address_without_its_size_warns_and_rss_links_it_in_the_text(
    folder: Folder, run: Run
) -> None:
    url = "https://www.example.org/files/chart.pdf"
    path = folder.write("commentaries/2025-11-01-chart.md", CHECKED.format(pdf=url, wide="c.png"))
    folder.image("commentaries/chart.png", 500)
    folder.image("commentaries/c.png", 500)
    result = run("check")
    assert result.exit_code == 0, result.output
    assert f"{path}:5: warning: pdf has no pdf_size, so RSS readers get no enclosure" in (
        result.output
    )
    files = build(folder, run)
    entry = next(e for e in feedparser.parse(files["rss.xml"]).entries if "chart" in e.id)
    assert not entry.get("enclosures")
    assert f'<a href="{url}">Download the PDF</a>' in entry.content[0].value
