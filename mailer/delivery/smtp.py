"""The SMTP backend: one connection, kept open for many messages, with certificate checks.

STARTTLS (port 587) or implicit TLS (port 465) always verify the server's certificate; `none` is
for a server on the same machine. A dropped connection or a 421 reconnects before the next
message. Replies map to outcomes: 4xx is temporary, 5xx permanent, and 5.1.x (no such mailbox or
domain) a hard bounce.

Once the final dot of a message has gone, the server may have taken it even if its reply never
comes: the wait for that reply is RFC 5321's (section 4.5.3.2.6, 10 minutes by default), longer
than the wait for anything else, and a message whose reply does not come is UNCERTAIN, never
retried on its own.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING

from mailer.delivery.base import Backend, BackendError, Outcome, Outgoing, Result, Settled, unheard
from mailer.render.message import MessageTemplate, idna_address

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_ENHANCED = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_DOT = re.compile(rb"(?m)^\.")
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


def _reason(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


class _Connection(smtplib.SMTP):
    """smtplib's connection, telling a message whose final dot went (the server may have it)
    from one that never reached the server whole, and waiting RFC 5321's time for the reply."""

    data_timeout: float = DATA_TIMEOUT
    dot_sent: bool = False

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.dot_sent = False
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        quoted = _LEADING_DOT.sub(b"..", msg.encode() if isinstance(msg, str) else bytes(msg))
        if not quoted.endswith(b"\r\n"):
            quoted += b"\r\n"
        self.send(quoted + b".\r\n")
        self.dot_sent = True
        if self.sock is not None:
            self.sock.settimeout(self.data_timeout)
        try:
            return self.getreply()
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)


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
        sign: Callable[[bytes], bytes] = lambda data: data,
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

    def connect(self) -> None:
        if self.connection is not None:
            return
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
        for outgoing in batch:
            try:
                self.connect()
                result = self._send_one(template, outgoing, sender)
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

    def _send_one(self, template: MessageTemplate, outgoing: Outgoing, sender: str) -> Result:
        connection = self.connection
        if connection is None:  # send() opens it first; a caller skipping that gets this
            raise BackendError("smtp: not connected", temporary=True)
        address = outgoing.recipient.email
        options: list[str] = []
        if not address.rpartition("@")[0].isascii():
            if not connection.has_extn("smtputf8"):
                return Result(
                    Outcome.FAILED,
                    reason="the address needs SMTPUTF8, which the server does not offer",
                )
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        else:
            address = idna_address(address)
        data = self.sign(template.personalise(outgoing.recipient, outgoing.message_id))
        connection.dot_sent = False
        try:  # with one recipient, sendmail raises for every refusal
            connection.sendmail(sender, [address], data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = error.recipients[address]
            return self._refused(code, reply)
        except smtplib.SMTPSenderRefused as error:
            if error.smtp_code >= 500:
                raise BackendError(
                    f"smtp: the server refused the sender {sender} "
                    f"({_reason(error.smtp_code, error.smtp_error)})",
                    temporary=False,
                ) from None
            return self._refused(error.smtp_code, error.smtp_error)
        except smtplib.SMTPDataError as error:
            return self._refused(error.smtp_code, error.smtp_error)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            if connection.dot_sent:
                return Result(
                    Outcome.UNCERTAIN,
                    message_id=outgoing.message_id,
                    reason=f"the whole message went, but no reply came: {error}",
                )
            return Result(Outcome.RETRY, reason=f"the connection was lost: {error}")
        except smtplib.SMTPResponseException as error:
            return self._refused(error.smtp_code, error.smtp_error)
        return Result(Outcome.SENT, message_id=outgoing.message_id)

    def _refused(self, code: int, reply: bytes | str) -> Result:
        if code == 421:  # the server is closing this connection: open a new one next time
            self._drop()
        return Result(outcome_of(code, reply), reason=_reason(code, reply))
