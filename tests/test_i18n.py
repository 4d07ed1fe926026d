"""Languages: complete catalogs, an Italian newsletter with no English left in what readers see,
commentaries linked to their translations, and the catalogs inside the wheel."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from io import BytesIO

import feedparser
import lxml.html
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from mailer.render import i18n
from tests.conftest import REPOSITORY, Folder, Run
from tests.test_feeds import build

LOCALE = REPOSITORY / "mailer" / "locale"
SHIPPED = ("en", "it")

ITALIAN = """
    +++
    title = "Dallo stallo all'escalation: perché Putin ha bisogno di più guerra"
    authors = ["Nona Mikhelidze", "Ana Ćosić"]
    date = 2025-09-17
    number = "25 | 53"
    summary = ["L'economia di guerra russa è un sistema politico.", "Mosca saggia la NATO."]
    pdf = "https://www.example.org/files/commentaries/2553-it.pdf"
    pdf_size = 482133
    language = "it"
    translation_of = "stalemate-to-escalation"
    +++

    Tre anni e mezzo dopo l'invasione, la guerra in Ucraina viene spesso descritta come uno
    stallo.[^1]

    ### Un'economia di guerra che non può fermarsi

    La spesa militare assorbe quasi due quinti del bilancio federale.

    [^1]: Legge di bilancio federale 2025–2027.
    """


def catalog(code: str) -> Catalog:
    with (LOCALE / code / "LC_MESSAGES" / "mailer.po").open("rb") as file:
        return read_po(file, locale=code)


def extracted() -> set[str]:
    """Every msgid the code and the theme use, found as `pybabel extract` finds them."""
    with (REPOSITORY / "babel.cfg").open(encoding="utf-8") as file:
        methods, options = parse_mapping_cfg(file)
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(REPOSITORY),
        methods,
        options,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_english_and_italian_catalogs_hold_every_string_translated_and_compiled() -> None:
    used = extracted()
    assert len(used) > 40, used
    assert {
        "Key points",
        "Unsubscribe",
        "Download the PDF",
        "Commentaries from %(newsletter)s",
    } <= used
    for code in SHIPPED:
        po = catalog(code)
        ids = {m.id if isinstance(m.id, str) else m.id[0] for m in po if m.id}
        assert used <= ids, f"{code}: untranslatable, not in the catalog: {used - ids}"
        empty = [
            m.id
            for m in po
            if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])
        ]
        assert not empty, f"{code}: untranslated: {empty}"
        with (LOCALE / code / "LC_MESSAGES" / "mailer.mo").open("rb") as file:
            compiled = read_mo(file)
        expected = BytesIO()
        write_mo(expected, po)
        fresh = read_mo(BytesIO(expected.getvalue()))
        assert texts(compiled) == texts(fresh), (
            f"{code}: mailer.mo is older than mailer.po; "
            "run pybabel compile -d mailer/locale -D mailer"
        )
    assert sorted(i18n.catalogued()) == sorted(SHIPPED)


def texts(compiled: Catalog) -> dict[str, str]:
    return {repr(m.id): repr(m.string) for m in compiled if m.id}


def english_phrases() -> list[str]:
    """The English catalog's texts that Italian says differently, cut at their placeholders."""
    italian = {m.id: m.string for m in catalog("it") if m.id}
    phrases = []
    for message in catalog("en"):
        if not message.id or italian[message.id] == message.string:
            continue
        for text in (message.id,) if isinstance(message.id, str) else message.id:
            phrases += [p.strip(" .:?()") for p in re.split(r"%\(\w+\)[sd]", text)]
    return sorted({p for p in phrases if len(p) >= 4})


def visible_text(html: str | bytes) -> str:
    root = lxml.html.document_fromstring(html)
    for hidden in root.xpath("//style | //script"):
        hidden.drop_tree()
    attributes = " ".join(root.xpath("//@title | //@alt | //@aria-label | //@placeholder"))
    return " ".join((root.text_content() + " " + attributes).split())


def italian_newsletter(folder: Folder) -> None:
    folder.configure('language = "en-GB"', 'language = "it"')
    for path in folder.commentaries.glob("*.md"):
        path.unlink()
    alone = ITALIAN.replace('translation_of = "stalemate-to-escalation"\n', "")
    folder.write("commentaries/2025-09-17-dallo-stallo-all-escalation.md", alone)


def test_an_italian_newsletter_leaves_no_english_in_email_archive_and_feeds(
    folder: Folder, run: Run
) -> None:
    italian_newsletter(folder)
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([]))
    data = newsletter.message_template(rendered, "commentaries").personalise(
        newsletter.preview_recipient()
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = (message.get_body((kind,)) for kind in ("html", "plain"))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    files = build(folder, run)
    readers_see = {
        "email (HTML)": visible_text(html.get_content()),
        "email (text)": " ".join(str(text.get_content()).split()),
        "archive": visible_text(files["archive/index.html"]),
        "page": visible_text(files["archive/dallo-stallo-all-escalation/index.html"]),
    }
    for name in ("rss.xml", "atom.xml", "feed.json"):
        feed = feedparser.parse(files[name]).feed
        readers_see[name] = f"{feed.get('title')} {feed.get('subtitle')} {feed.get('description')}"
    phrases = english_phrases()
    assert "Key points" in phrases and "Download the PDF" in phrases and "Unsubscribe" in phrases
    for where, seen in readers_see.items():
        seen = re.sub(r"https?://\S+", "", seen)  # addresses are not text, and say /archive/
        left = [p for p in phrases if re.search(rf"\b{re.escape(p)}\b", seen)]
        assert not left, f"{where} still says in English: {left}"
    assert "Punti chiave" in readers_see["email (HTML)"]
    assert "Disiscriviti" in readers_see["email (text)"]
    assert "17 settembre 2025" in readers_see["email (HTML)"] and "September" not in str(
        readers_see
    )
    assert "Nona Mikhelidze e Ana Ćosić" in readers_see["page"]
    assert "I commenti di IAI Commentaries" in readers_see["rss.xml"]
    root = lxml.html.document_fromstring(html.get_content())
    assert root.get("lang") == "it" and root.cssselect(".wrapper-cell")[0].get("lang") == "it"


def test_dates_and_lists_follow_the_language() -> None:
    day = dt.date(2025, 9, 17)
    assert i18n.language("it").long_date(day) == "17 settembre 2025"
    assert i18n.language("en-GB").long_date(day) == "17 September 2025"
    assert i18n.language("it").names(["A", "B", "C"]) == "A, B e C"
    assert i18n.language("en-GB").names(["A", "B"]) == "A and B"
    assert i18n.language("ar").direction == "rtl" and i18n.language("it").direction == "ltr"


def test_translations_link_each_other_and_each_language_has_its_own_feeds(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2025-09-18-dallo-stallo-all-escalation.md", ITALIAN)
    files = build(folder, run)
    english = lxml.html.document_fromstring(files["archive/stalemate-to-escalation/index.html"])
    italian = lxml.html.document_fromstring(files["archive/dallo-stallo-all-escalation/index.html"])
    site = "https://www.example.org/commentaries/archive/"
    alternates = {
        link.get("hreflang"): link.get("href")
        for link in english.xpath("//head/link[@rel='alternate'][@hreflang]")
    }
    assert alternates == {
        "en-GB": f"{site}stalemate-to-escalation/",
        "it": f"{site}dallo-stallo-all-escalation/",
    }
    assert italian.get("lang") == "it" and "Scarica il PDF" in italian.text_content()
    (offer,) = english.cssselect(".versions a")
    assert (offer.get("hreflang"), offer.text_content()) == ("it", "italiano")

    assert {"it/rss.xml", "it/atom.xml", "it/feed.json", "en-GB/rss.xml"} <= files.keys()
    own = feedparser.parse(files["it/atom.xml"])
    assert [e.title for e in own.entries] == [
        "Dallo stallo all’escalation: perché Putin ha bisogno di più guerra"
    ]
    assert own.feed.language == "it"
    assert "I commenti di" in own.feed.subtitle
    english_feed = feedparser.parse(files["en-GB/atom.xml"])
    assert len(english_feed.entries) == 4
    assert not [e for e in english_feed.entries if "dallo" in e.id]
    whole = feedparser.parse(files["atom.xml"])
    entry = next(e for e in whole.entries if e.id.endswith("stalemate-to-escalation/"))
    links = {(link.get("rel"), link.get("hreflang")): link.href for link in entry.links}
    assert links[("alternate", "it")] == f"{site}dallo-stallo-all-escalation/"


def test_one_language_makes_no_language_folders(folder: Folder, run: Run) -> None:
    files = build(folder, run)
    assert not [name for name in files if name.startswith(("en-GB/", "en/"))]


def test_translation_of_an_unknown_slug_and_an_unknown_language_are_reported_at_their_lines(
    folder: Folder, run: Run
) -> None:
    path = folder.write(
        "commentaries/2025-09-18-dallo-stallo.md",
        ITALIAN.replace(
            'translation_of = "stalemate-to-escalation"', 'translation_of = "stalemate"'
        ),
    )
    result = run("check")
    assert result.exit_code == 2
    assert f"{path}:10: translation_of names 'stalemate'" in result.output
    path.write_text(path.read_text().replace('language = "it"', 'language = "xx-bogus"'))
    result = run("check")
    assert result.exit_code == 2
    assert f"{path}:9: language 'xx-bogus' is not a language code" in result.output


def test_the_wheel_ships_the_compiled_catalogs(wheel_files: set[str]) -> None:
    for code in SHIPPED:
        assert f"mailer/locale/{code}/LC_MESSAGES/mailer.mo" in wheel_files, sorted(wheel_files)
    assert "mailer/theme/versions.html" in wheel_files
    assert "mailer/theme/email-dark.css" in wheel_files


READERS = """\
email,name,lists,language
anna@example.org,Anna,commentaries,it
ben@example.org,Ben,commentaries,en-GB
cleo@example.org,Cleo,commentaries,
"""


def recipients(folder: Folder) -> set[str]:
    """Who the outbox holds a message for, each .eml read back."""
    found = set()
    for path in (folder.path / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.add(str(message["To"]).rpartition("<")[2].rstrip(">"))
        path.unlink()
    return found


def test_an_issue_with_a_translation_goes_to_the_readers_of_its_language(
    folder: Folder, run: Run
) -> None:
    folder.write("commentaries/2025-09-18-dallo-stallo-all-escalation.md", ITALIAN)
    folder.write("readers.csv", READERS)
    assert run("subscribers", "import", str(folder.path / "readers.csv")).exit_code == 0
    exported = run("subscribers", "export").output
    assert "anna@example.org,Anna,active,commentaries," in exported and exported.splitlines()[
        0
    ].endswith(",language,frequency")
    assert [line.split(",")[-2] for line in exported.splitlines()[1:]] == ["it", "en-GB", ""]

    assert run("send", "dallo-stallo-all-escalation", "--yes").exit_code == 0
    assert recipients(folder) == {"anna@example.org"}
    assert run("send", "stalemate-to-escalation", "--yes").exit_code == 0
    assert recipients(folder) == {"ben@example.org", "cleo@example.org"}, "blank: en-GB"
    assert run("send", "sahel-after-the-juntas", "--yes").exit_code == 0
    assert recipients(folder) == {"anna@example.org", "ben@example.org", "cleo@example.org"}


def test_an_unknown_language_in_an_import_rejects_that_row_at_its_line(
    folder: Folder, run: Run
) -> None:
    folder.write("readers.csv", READERS.replace(",it\n", ",klingon-xx\n"))
    result = run("subscribers", "import", str(folder.path / "readers.csv"))
    assert result.exit_code == 1
    assert f"{folder.path / 'readers.csv'}:2: 'klingon-xx' is not a language code" in result.output


def test_every_version_and_every_before_agree_with_asking_for_each(folder: Folder) -> None:
    """The build finds translations and "latest" boxes for thousands of commentaries in one pass;
    what it finds is what asking commentary by commentary gives."""
    folder.write("commentaries/2025-09-18-dallo-stallo-all-escalation.md", ITALIAN)
    later = ITALIAN.replace("date = 2025-09-17", "date = 2025-12-01").replace(
        'translation_of = "stalemate-to-escalation"\n', ""
    )
    folder.write("commentaries/2025-12-01-un-altro-pezzo.md", later)
    collection = folder.newsletter().commentaries()
    published = collection.published()
    assert any(collection.versions(c) for c in published)
    assert collection.every_version() == {c.slug: collection.versions(c) for c in published}
    for count in (0, 1, 2, 10):
        expected = {c.slug: collection.before(c, count) for c in published}
        assert collection.every_before(count) == expected
