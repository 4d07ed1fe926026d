"""The SMTP backend: one connection, kept open for many messages, with certificate checks.

STARTTLS (port 587) or implicit TLS (port 465) always verify the server's certificate; `none` is
for a server on the same machine. A dropped connection or a 421 reconnects before the next
message. Replies map to outcomes: 4xx is temporary, 5xx permanent, and 5.1.x (no such mailbox or
domain) a hard bounce.

Once the final dot of a message has gone, the server may have taken it even if its reply never
comes: the wait for that reply is RFC 5321's (section 4.5.3.2.6, 10 minutes by default), longer
than the wait for anything else, and a message whose reply does not come is UNCERTAIN, never
retried on its own.

Past smtplib, for speed: where the server offers PIPELINING (RFC 2920) a message's MAIL, RCPT and
DATA go in one write, and the next message's with this one's final dot (one round trip a
message); the issue's text is dot-stuffed once, not per recipient; replies are read with a line
or two of work. Each message's fate is still known, and told to the engine, before the next
message's body goes.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from typing import NamedTuple

from mailer.delivery.base import (
    Backend,
    BackendError,
    Outcome,
    Outgoing,
    Result,
    Settled,
    unheard,
    unsigned,
)
from mailer.render.message import END_OF_DATA, MessageTemplate, dot_stuffed, idna_address

_ENHANCED = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_LONGEST_LINE = 8192
"""The longest reply line read (as smtplib): a longer one is no SMTP server's."""
DATA_TIMEOUT = 600.0
"""RFC 5321 section 4.5.3.2.6: the wait for the reply to the final dot, 10 minutes."""


def outcome_of(code: int, reply: bytes | str) -> Outcome:
    """What an SMTP reply means for one message."""
    if code < 400:
        return Outcome.SENT
    if code < 500:
        return Outcome.RETRY
    enhanced = _ENHANCED.search(reply.encode() if isinstance(reply, str) else reply)
    if enhanced and enhanced.group(1) == b"5" and enhanced.group(2) == b"1":
        return Outcome.BOUNCED
    return Outcome.FAILED


def _envelope(connection: _Connection, outgoing: Outgoing, sender: str) -> _Envelope | Result:
    """The message's MAIL FROM (its own envelope sender, else the issue's) and RCPT TO; or its
    failure when the server cannot take its address."""
    if outgoing.envelope_sender:
        sender = idna_address(outgoing.envelope_sender)
    address = outgoing.recipient.email
    options = b""
    if not address.rpartition("@")[0].isascii():
        if not connection.has_extn("smtputf8"):
            return Result(
                Outcome.FAILED, reason="the address needs SMTPUTF8, which the server does not offer"
            )
        options = b" SMTPUTF8 BODY=8BITMIME"
    else:
        address = idna_address(address)
    return _Envelope(
        sender,
        b"MAIL FROM:<%s>%s\r\n" % (sender.encode(), options),
        b"RCPT TO:<%s>\r\n" % address.encode(),
    )


def _reason(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


class _Envelope(NamedTuple):
    """One message's MAIL FROM and RCPT TO, as written."""

    sender: str
    mail: bytes
    rcpt: bytes

    @property
    def commands(self) -> tuple[tuple[str, bytes], ...]:
        return ("mail", self.mail), ("rcpt", self.rcpt), ("data", b"DATA\r\n")


class _Connection(smtplib.SMTP):
    """smtplib's connection for what comes before the messages (EHLO, STARTTLS, AUTH) and after
    them (QUIT). Messages go through `transact`, which, where the server offers PIPELINING
    (RFC 2920), writes MAIL, RCPT and DATA in one go, and the next message's with this one's
    final dot; it takes the message already dot-stuffed, reads replies with a line or two of
    work, tells a message whose final dot went (the server may have it) from one that never
    reached the server whole, and waits RFC 5321's time for the reply to the dot."""

    data_timeout: float = DATA_TIMEOUT
    dot_sent: bool = False
    announced: _Envelope | None = None
    """The envelope already written behind the last final dot, its replies still unread."""

    def transact(
        self, envelope: _Envelope, message: bytes, following: _Envelope | None = None
    ) -> tuple[str, int, bytes]:
        """Hand one message over; (stage, code, reply) of the reply that decides its fate: the
        first refusal ("mail", "rcpt" or "data", nothing of the message sent), else the reply
        to the final dot ("end"). The `following` message's envelope goes with the final dot
        where the server pipelines; its body waits for its own transact, so that this message's
        fate is known (and recorded) before the next one is handed over. Raises OSError or
        SMTPServerDisconnected when the connection fails; `dot_sent` then tells whether the
        whole message had gone."""
        self.dot_sent = False
        pipelined = "pipelining" in self.esmtp_features
        if pipelined and self.announced != envelope:
            self._write(b"".join(command for _, command in envelope.commands))
        self.announced = None
        refusal: tuple[str, int, bytes] | None = None
        code = 0
        for stage, command in envelope.commands:
            if not pipelined:
                if refusal is not None:
                    break
                self._write(command)
            try:
                code, reply = self._reply()
            except (OSError, smtplib.SMTPServerDisconnected):
                if refusal is None:
                    raise
                self.close()  # gone after refusing (a 421): what it said stands
                return refusal
            accepted = code == 354 if stage == "data" else 200 <= code < 300
            if refusal is None and not accepted:
                if code < 400:
                    self.close()
                    raise smtplib.SMTPServerDisconnected(f"{code} is no answer to {stage}")
                refusal = (stage, code, reply)
        if refusal is not None:
            if code == 354:  # asked for a message with nobody to take it: end it empty
                self._write(END_OF_DATA)
                self._reply()
            self._reset(refusal[1])
            return refusal
        if pipelined and following is not None:
            # After the reply to the dot a new transaction begins whatever that reply says, so
            # the next envelope may follow the dot in the same write (RFC 2920 section 3.1).
            self._write(message + b"".join(command for _, command in following.commands))
            self.announced = following
        else:
            self._write(message)
        self.dot_sent = True
        code, reply = self._reply(self.data_timeout)
        return "end", code, reply

    def _write(self, data: bytes) -> None:
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("not connected")
        self.sock.sendall(data)

    def _reply(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The server's next reply: its code and its text (lines joined by LF)."""
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("not connected")
        if self.file is None:
            self.file = self.sock.makefile("rb")
        waiting = timeout is not None and timeout != self.timeout
        if waiting:
            self.sock.settimeout(timeout)
        try:
            line = self.file.readline(_LONGEST_LINE + 1)
            lines = [line]
            while line[3:4] == b"-" and len(line) <= _LONGEST_LINE:
                line = self.file.readline(_LONGEST_LINE + 1)
                lines.append(line)
        finally:
            if waiting and self.sock is not None:
                self.sock.settimeout(self.timeout)
        code = line[:3]
        if not code.isdigit() or len(line) > _LONGEST_LINE or line[3:4] not in (b" ", b"\r"):
            self.close()
            raise smtplib.SMTPServerDisconnected(
                f"the connection closed or the server said something unreadable: {line[:80]!r}"
            )
        return int(code), b"\n".join(part[4:].rstrip(b"\r\n") for part in lines)

    def _reset(self, code: int) -> None:
        """Back to a clean state after a refusal, unless the server is closing (421)."""
        if code == 421:
            return
        try:
            self._write(b"RSET\r\n")
            self._reply()
        except (OSError, smtplib.SMTPServerDisconnected):
            self.close()


class _TlsConnection(smtplib.SMTP_SSL, _Connection):
    """The same over implicit TLS (SMTP_SSL only changes how the socket is made)."""


class SmtpBackend(Backend):
    name = "smtp"
    batch_size = 200

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str = "",
        password: Callable[[], str] = lambda: "",
        timeout: float = 30.0,
        data_timeout: float = DATA_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        sign: Callable[[bytes], bytes] = unsigned,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.context = ssl_context or ssl.create_default_context()
        self.sign = sign
        self.local_hostname = local_hostname
        self.connection: _Connection | None = None

    # Connection --------------------------------------------------------------------------------

    def connect(self) -> _Connection:
        """The open connection, opened first if there is none."""
        if self.connection is not None:
            return self.connection
        where = f"{self.host}:{self.port}"
        try:
            connection = self._connect()
        except smtplib.SMTPAuthenticationError as error:
            raise BackendError(
                f"smtp: {where} refused the login of '{self.username}' "
                f"({_reason(error.smtp_code, error.smtp_error)}); check [delivery.smtp] username "
                "and SMTP_PASSWORD",
                temporary=False,
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise BackendError(
                f"smtp: the certificate of {where} cannot be trusted ({error.verify_message}); "
                "check [delivery.smtp] host, or name the certificate authority in ca_file",
                temporary=False,
            ) from None
        except ssl.SSLError as error:
            # Not a certificate: no TLS at all where it was expected (a plain server on the
            # implicit-TLS port), or no protocol both sides speak. Only a connection cut in the
            # middle of the handshake may go better next time.
            cut = isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError)
            raise BackendError(
                f"smtp: the TLS handshake with {where} failed ({error.reason or error}); check "
                '[delivery.smtp] security and port: "tls" is implicit TLS (port 465), '
                '"starttls" upgrades a plain connection (port 587)',
                temporary=cut,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise BackendError(
                f'smtp: {where} does not offer STARTTLS; use security = "tls" on port 465, or '
                '"none" only for a server on this machine',
                temporary=False,
            ) from None
        except smtplib.SMTPResponseException as error:
            raise BackendError(
                f"smtp: {where} answered {_reason(error.smtp_code, error.smtp_error)}",
                temporary=error.smtp_code < 500,
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            raise BackendError(
                f"smtp: cannot connect to {where}: {error}", temporary=True
            ) from None
        self.connection = connection
        return connection

    def _connect(self) -> _Connection:
        """A connection that has said EHLO, secured itself and logged in; closed on failure."""
        connection: _Connection
        if self.security == "tls":
            connection = _TlsConnection(
                self.host,
                self.port,
                timeout=self.timeout,
                context=self.context,
                local_hostname=self.local_hostname,
            )
        else:
            connection = _Connection(
                self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname
            )
        connection.data_timeout = self.data_timeout
        try:
            # Without this, Nagle's algorithm holds each message's last segment until the
            # server's delayed ACK: about 40 ms a message, a tenth of the throughput on loopback.
            if connection.sock is not None:
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.ehlo()
            if self.security == "starttls":
                connection.starttls(context=self.context)
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password())
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()

    def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()

    # Sending -----------------------------------------------------------------------------------

    def send(
        self, template: MessageTemplate, batch: Sequence[Outgoing], settled: Settled = unheard
    ) -> list[Result]:
        sender = idna_address(parseaddr(template.sender.address)[1])
        results: list[Result] = []
        for index, outgoing in enumerate(batch):
            following = batch[index + 1] if index + 1 < len(batch) else None
            try:
                connection = self.connect()
                result = self._send_one(connection, template, outgoing, sender, following)
            except BackendError as error:
                if not results:
                    raise  # nothing of this batch went: the engine decides
                # Part of the batch went: it must be recorded as sent, or a resumed campaign sends
                # it again. The rest waits; its next batch meets the error before anything goes.
                rest = Result(Outcome.RETRY, reason=str(error), retry_after=error.retry_after)
                results += [rest] * (len(batch) - len(results))
                break
            settled(outgoing, result)
            results.append(result)
        return results

    def _send_one(
        self,
        connection: _Connection,
        template: MessageTemplate,
        outgoing: Outgoing,
        sender: str,
        following: Outgoing | None,
    ) -> Result:
        envelope = _envelope(connection, outgoing, sender)
        if isinstance(envelope, Result):
            return envelope
        ahead = _envelope(connection, following, sender) if following else None
        try:
            stage, code, reply = connection.transact(
                envelope,
                self._data(template, outgoing),
                ahead if isinstance(ahead, _Envelope) else None,
            )
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            if connection.dot_sent:
                return Result(
                    Outcome.UNCERTAIN,
                    message_id=outgoing.message_id,
                    reason=f"the whole message went, but no reply came: {error}",
                )
            return Result(Outcome.RETRY, reason=f"the connection was lost: {error}")
        if connection.sock is None:  # it hung up after its reply
            self._drop()
        if stage == "mail" and code >= 500:
            raise BackendError(
                f"smtp: the server refused the sender {envelope.sender} ({_reason(code, reply)})",
                temporary=False,
            )
        if code < 400:
            return Result(Outcome.SENT, message_id=outgoing.message_id)
        return self._refused(code, reply)

    def _data(self, template: MessageTemplate, outgoing: Outgoing) -> bytes:
        """The message as DATA carries it. Unsigned, its static text was dot-stuffed once for
        the whole issue; a signature covers the message as it is, so a signed one is stuffed
        whole."""
        if self.sign is unsigned:
            return template.transmitted(outgoing.recipient, outgoing.message_id)
        signed = self.sign(template.personalise(outgoing.recipient, outgoing.message_id))
        return dot_stuffed(signed) + END_OF_DATA

    def _refused(self, code: int, reply: bytes | str) -> Result:
        if code == 421:  # the server is closing this connection: open a new one next time
            self._drop()
        return Result(outcome_of(code, reply), reason=_reason(code, reply))
