"""The smtp backend's own SMTP: MAIL, RCPT and DATA in one write where the server offers
PIPELINING (RFC 2920), one command at a time where it does not, and the message dot-stuffed
from the issue's once-stuffed text, arriving byte for byte as built. A real server on loopback
(aiosmtpd, tests/smtp_server.py) answers.
"""

from __future__ import annotations

import ssl

import pytest

from mailer.delivery.base import Outcome, Outgoing, Result
from mailer.delivery.smtp import SmtpBackend
from mailer.render.message import MessageTemplate, Recipient
from tests.conftest import Folder
from tests.smtp_server import (
    SmtpServer,
    StartServer,
    certificates_fixture,  # noqa: F401  (the fixture `certificates`)
    smtp_server_fixture,  # noqa: F401  (the fixture `smtp_server`)
)

SLUG = "stalemate-to-escalation"
DOTTED = "\n.NET and .dotfiles open these lines.\n\n.\n"
"""Paragraphs whose text-part lines start with a dot, and one line that is a dot alone."""


def template(folder: Folder) -> MessageTemplate:
    source = next(folder.commentaries.glob(f"*{SLUG}.md"))
    source.write_text(source.read_text(encoding="utf-8") + DOTTED, encoding="utf-8")
    newsletter = folder.newsletter()
    rendered = newsletter.render(newsletter.issue([SLUG]))
    return MessageTemplate(rendered, newsletter.sender("commentaries"), clock=lambda: 1.76e9)


def outgoing(number: int, *, envelope_sender: str = "") -> Outgoing:
    address = f"reader{number}@example.net"
    recipient = Recipient(
        email=address,
        name=f".Reader {number}",  # a personal value that starts a line with a dot
        unsubscribe_url=f"https://www.example.org/commentaries/unsubscribe/T{number}",
        preferences_url=f"https://www.example.org/commentaries/preferences/T{number}",
    )
    return Outgoing(number, recipient, f"<{number}.test@example.org>", envelope_sender)


def backend(server: SmtpServer) -> SmtpBackend:
    assert server.certificates is not None
    context = ssl.create_default_context(cafile=str(server.certificates.ca_file))
    return SmtpBackend(server.host, server.port, security="starttls", ssl_context=context)


def send(server: SmtpServer, letter: MessageTemplate, batch: list[Outgoing]) -> list[Result]:
    """The batch sent; each result was also settled, in order, as it came."""
    settled: list[tuple[Outgoing, Result]] = []
    with backend(server) as smtp:
        results = smtp.send(
            letter, batch, lambda message, result: settled.append((message, result))
        )
    assert settled == list(zip(batch, results, strict=True))
    return results


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_every_message_arrives_byte_for_byte_as_built(
    folder: Folder, smtp_server: StartServer, pipelining: bool
) -> None:
    server = smtp_server(pipelining=pipelining)
    letter = template(folder)
    batch = [outgoing(n) for n in range(3)]
    built = letter.personalise(batch[0].recipient, batch[0].message_id)
    assert b"\r\n.NET" in built and b"\r\n=2E\r\n" in built  # lines the server must get back

    results = send(server, letter, batch)

    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    arrived = {m.recipients[0]: m.data for m in server.messages()}
    for message in batch:
        expected = letter.personalise(message.recipient, message.message_id)
        assert arrived[message.recipient.email] == expected
    assert server.connections == 1


def test_with_pipelining_the_envelope_and_data_go_in_one_write(
    folder: Folder, smtp_server: StartServer
) -> None:
    server = smtp_server()
    send(server, template(folder), [outgoing(n) for n in range(2)])
    assert len(server.behind_mail) == 2
    for waiting in server.behind_mail:
        assert waiting.startswith(b"RCPT TO:<") and waiting.endswith(b"\r\nDATA\r\n")


def test_without_pipelining_each_command_waits_for_its_reply(
    folder: Folder, smtp_server: StartServer
) -> None:
    server = smtp_server(pipelining=False)
    results = send(server, template(folder), [outgoing(n) for n in range(2)])
    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert server.behind_mail == [b"", b""]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_a_refused_recipient_fails_alone_and_the_connection_goes_on(
    folder: Folder, smtp_server: StartServer, pipelining: bool
) -> None:
    server = smtp_server(pipelining=pipelining)
    server.refuse("reader1@example.net", "550 5.1.1 <reader1@example.net>: no such user")
    server.refuse("reader2@example.net", "452 4.2.2 mailbox full")
    batch = [outgoing(n) for n in range(4)]

    results = send(server, template(folder), batch)

    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.BOUNCED,
        Outcome.RETRY,
        Outcome.SENT,
    ]
    assert results[1].reason == "550 5.1.1 <reader1@example.net>: no such user"
    assert [m.recipients for m in server.messages()] == [
        ("reader0@example.net",),
        ("reader3@example.net",),
    ]
    assert server.connections == 1


def test_a_421_in_a_pipelined_group_retries_on_a_new_connection(
    folder: Folder, smtp_server: StartServer
) -> None:
    server = smtp_server()
    server.refuse("reader1@example.net", "421 4.3.2 closing, try later", times=1)
    results = send(server, template(folder), [outgoing(n) for n in range(3)])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert server.connections == 2


def test_each_message_may_have_its_own_envelope_sender(
    folder: Folder, smtp_server: StartServer
) -> None:
    server = smtp_server()
    batch = [outgoing(0, envelope_sender="bounces+r0@example.org"), outgoing(1)]
    send(server, template(folder), batch)
    senders = {m.recipients[0]: m.mail_from for m in server.messages()}
    assert senders == {
        "reader0@example.net": "bounces+r0@example.org",
        "reader1@example.net": "commentaries@example.org",
    }


def test_a_message_whose_reply_never_comes_is_uncertain_and_the_next_goes_on_anew(
    folder: Folder, smtp_server: StartServer
) -> None:
    server = smtp_server()
    server.drop_after_data("reader0@example.net")
    results = send(server, template(folder), [outgoing(n) for n in range(2)])
    assert [r.outcome for r in results] == [Outcome.UNCERTAIN, Outcome.SENT]
    assert server.connections == 2
