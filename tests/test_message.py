"""The message a subscriber receives: headers, parts, personal values, and nothing forged."""

from __future__ import annotations

import email
import email.policy
import re
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from mailer.render.message import HeaderInjection, MessageTemplate, Recipient, Sender, mailbox
from tests.conftest import Folder

LONGEST = "stalemate-to-escalation"


def template(folder: Folder, *slugs: str, list_name: str = "commentaries") -> MessageTemplate:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue(list(slugs) or [LONGEST]))
    return newsletter.message_template(rendered, list_name)


def recipient(**changes: str) -> Recipient:
    values = {
        "email": "alice@example.net",
        "name": "Alice Example",
        "unsubscribe_url": "https://www.example.org/commentaries/unsubscribe/TOKEN-A",
        "preferences_url": "https://www.example.org/commentaries/preferences/TOKEN-B",
    }
    values.update(changes)
    return Recipient(**values)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


def test_every_header_of_the_spec_is_there_once(folder: Folder) -> None:
    data = template(folder).personalise(recipient())
    names = header_names(data)
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Content-Type",
    ):
        assert names.count(name) == 1, name
    message = parse(data)
    assert message["From"] == "IAI Commentaries <commentaries@example.org>"
    assert message["To"] == "Alice Example <alice@example.net>"
    assert message["Reply-To"] == "press@example.org"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == '"IAI Commentaries: commentaries" <commentaries.example.org>'
    assert re.fullmatch(r"<[\w.]+@example\.org>", message["Message-ID"])
    assert message["Subject"] == "From Stalemate to Escalation: Why Putin Needs More War"


def test_list_unsubscribe_is_written_whole_never_encoded(folder: Folder) -> None:
    long_url = "https://www.example.org/commentaries/unsubscribe/" + "T" * 300
    data = template(folder).personalise(recipient(unsubscribe_url=long_url))
    assert f"List-Unsubscribe: <{long_url}>\r\n".encode() in data


def test_parts_are_plain_text_first_then_html_both_utf8(folder: Folder) -> None:
    message = parse(template(folder).personalise(recipient()))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)


def test_personal_values_are_filled_in_and_the_rest_is_the_rendered_issue(folder: Folder) -> None:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([LONGEST]))
    person = recipient(name="Zoë <Ünal> & Co", email="zoe@example.net")
    message = parse(newsletter.message_template(rendered, "commentaries").personalise(person))
    # On the wire every line ends in CRLF; the parser hands them back as they came.
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    expected_text = rendered.text
    expected_html = rendered.html
    for field in ("name", "email", "unsubscribe_url", "preferences_url"):
        value = getattr(person, field)
        expected_text = expected_text.replace(rendered.placeholder(field), value)
        escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        expected_html = expected_html.replace(rendered.placeholder(field), escaped)
    assert text == expected_text
    assert html == expected_html
    assert person.unsubscribe_url in html and person.preferences_url in text


def test_no_line_of_the_message_is_longer_than_quoted_printable_allows(folder: Folder) -> None:
    long_url = "https://www.example.org/commentaries/unsubscribe/" + "x" * 500
    data = template(folder).personalise(recipient(unsubscribe_url=long_url))
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_each_message_gets_its_own_message_id(folder: Folder) -> None:
    compiled = template(folder)
    ids = {parse(compiled.personalise(recipient()))["Message-ID"] for _ in range(50)}
    assert len(ids) == 50


def test_non_ascii_subject_and_names_are_rfc2047_encoded(folder: Folder) -> None:
    folder.write(
        "commentaries/2025-12-01-cafe.md",
        """
        +++
        title = "Café diplomacy: Ankara’s Black Sea gambit"
        authors = ["Ayşe Güneş"]
        date = 2025-12-01
        +++

        Body.
        """,
    )
    data = template(folder, "cafe").personalise(recipient(name="Jörg Müller"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    message = parse(data)
    assert message["Subject"] == "Café diplomacy: Ankara’s Black Sea gambit"
    assert message["To"] == "Jörg Müller <alice@example.net>"


def test_an_internationalised_domain_is_written_in_idna(folder: Folder) -> None:
    data = template(folder).personalise(recipient(email="anna@bücher.example"))
    assert b"To: Alice Example <anna@xn--bcher-kva.example>\r\n" in data


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "Mallory\r\nBcc: victim@example.com"),
        ("name", "Mallory\nBcc: victim@example.com"),
        ("email", "mallory@example.com\r\nBcc: victim@example.com"),
        ("unsubscribe_url", "https://x.example/u\r\nBcc: victim@example.com"),
    ],
)
def test_a_line_break_in_a_personal_value_never_adds_a_header(
    folder: Folder, field: str, value: str
) -> None:
    with pytest.raises(HeaderInjection):
        template(folder).personalise(recipient(**{field: value}))


def test_a_line_break_in_the_sender_or_list_is_refused_before_building(folder: Folder) -> None:
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([LONGEST]))
    with pytest.raises(HeaderInjection):
        MessageTemplate(rendered, Sender("News <n@example.org>\r\nBcc: x@example.com", "l", "l"))
    with pytest.raises(HeaderInjection):
        MessageTemplate(rendered, Sender("News <n@example.org>", "list\nBcc: x", "l"))


def test_the_optional_mailto_and_feedback_id_come_from_the_config(folder: Folder) -> None:
    folder.configure('unsubscribe_mailto = ""', 'unsubscribe_mailto = "leave@example.org"')
    folder.configure('feedback_id = ""', 'feedback_id = "commentaries:iai"')
    message = parse(template(folder).personalise(recipient()))
    assert message["List-Unsubscribe"] == (
        "<https://www.example.org/commentaries/unsubscribe/TOKEN-A>, <mailto:leave@example.org>"
    )
    assert message["Feedback-ID"] == "commentaries:iai"


def test_without_them_there_is_no_mailto_and_no_feedback_id(folder: Folder) -> None:
    message = parse(template(folder).personalise(recipient()))
    assert "mailto:" not in message["List-Unsubscribe"]
    assert message["Feedback-ID"] is None


def test_a_service_gets_long_names_and_the_list_id_whole_and_unfolded(folder: Folder) -> None:
    """HTTP providers write the headers themselves from these values: a folded one would hand
    them a line break, and a List-Id cut at its first fold would lose its id."""
    long_list = "Europäische Sicherheit und Verteidigung " * 6
    compiled = template(folder, list_name=long_list.strip())
    list_id = compiled.shared_headers()["List-Id"]
    name = "Zoë Ünal-Þórsdóttir " * 8

    to = mailbox(name.strip(), "zoe@example.org", linesep="")

    for value in (list_id, to):
        assert "\r" not in value and "\n" not in value
    assert re.search(rf" <[a-z-]+\.{re.escape(compiled.domain)}>$", list_id), list_id
    assert str(make_header(decode_header(to))) == f"{name.strip()} <zoe@example.org>"
    assert "\r\n " in mailbox(name.strip(), "zoe@example.org")  # in a message, folded


def test_the_date_follows_the_clock_to_the_second(folder: Folder) -> None:
    """The Date string is made once a second for every message of that second, never older."""
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([LONGEST]))
    now = [1_764_633_600.2]
    letter = MessageTemplate(rendered, newsletter.sender("commentaries"), clock=lambda: now[0])

    def date() -> str:
        return str(parse(letter.personalise(recipient()))["Date"])

    first = date()
    now[0] = 1_764_633_600.9
    assert date() == first == "Tue, 02 Dec 2025 00:00:00 +0000"
    now[0] = 1_764_633_601.0
    assert date() == "Tue, 02 Dec 2025 00:00:01 +0000"
