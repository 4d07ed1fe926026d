"""A real SMTP server for tests, in the test process, on a loopback port (aiosmtpd).

It records every message as it arrived (envelope sender, recipients, the raw bytes) and can play
the parts of a real submission server: STARTTLS or implicit TLS on a throwaway certificate made
for the test, AUTH LOGIN/PLAIN with one username and password, SMTPUTF8 offered or not. Its fault
mode answers chosen recipients with chosen replies (421, 451, 452, 550 5.1.1, 550 5.7.1 …),
possibly only for their first N attempts so that a retry can succeed, drops the connection at
DATA, or stalls longer than the client waits; or it takes the whole message and then
answers late or hangs up without answering (the client cannot know whether it went). The server
runs on its own event loop in a thread: every wait in it is an `asyncio.sleep`, never a blocking
call, so one stalled session never stalls the others.

Tests import the fixtures explicitly (the functions carry other names than the fixtures, so that
a test's `smtp_server` argument does not shadow an import):

    from tests.smtp_server import certificates_fixture, smtp_server_fixture  # noqa: F401
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"


# A throwaway certificate authority and a server certificate for localhost / 127.0.0.1 ------------


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    """The CA certificate (PEM): what the client trusts through [delivery.smtp] ca_file."""
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(folder: Path) -> Certificates:
    """A self-signed CA and a server certificate it signed, valid for a day, written to folder."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    certificates = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certificates.ca_file.write_bytes(ca.public_bytes(pem))
    certificates.cert_file.write_bytes(server.public_bytes(pem))
    certificates.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificates


# What arrived ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message as the server accepted it."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    """The message exactly as received (dot-unstuffed, CRLF line endings)."""
    mail_options: tuple[str, ...]
    tls: bool
    login: str | None
    at: float = field(default_factory=time.monotonic)
    """When it was accepted (time.monotonic)."""

    @property
    def head(self) -> bytes:
        """The raw header block, up to the blank line."""
        return self.data.split(b"\r\n\r\n", 1)[0]

    @property
    def header_lines(self) -> list[bytes]:
        """Each header line of the raw head, with its folded continuation lines joined."""
        lines: list[bytes] = []
        for line in self.head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t") and lines:
                lines[-1] += b"\r\n" + line
            else:
                lines.append(line)
        return lines

    def message(self) -> EmailMessage:
        """The message parsed; UTF-8 headers (SMTPUTF8) read as UTF-8, not as escaped bytes."""
        if self.head.isascii():
            parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        else:
            text = self.data.decode("utf-8")
            parsed = email.message_from_string(text, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


# Faults ------------------------------------------------------------------------------------------

Stage = Literal["rcpt", "data", "end"]
"""At RCPT TO, at the DATA command, or once the whole message arrived (the final dot)."""


@dataclass
class Fault:
    """What the server does to one recipient (or to everyone) instead of accepting."""

    kind: Literal["reply", "drop", "stall", "late"]
    reply: str = ""
    seconds: float = 0.0
    stage: Stage = "rcpt"
    times: int | None = None
    """How many attempts it hits; None: every one."""

    def hits(self) -> bool:
        """Whether this attempt is hit, using up one of `times`."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


EVERYONE = "*"


class _Session(SMTP):
    """aiosmtpd's SMTP session, able to drop the connection at DATA."""

    server: SmtpServer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # a new connection, not the STARTTLS upgrade of one
            with self.server.lock:
                self.server.connections += 1
        super().connection_made(transport)

    async def smtp_MAIL(self, arg: str) -> None:
        waiting = bytes(self._reader._buffer)  # type: ignore[attr-defined]
        with self.server.lock:
            self.server.behind_mail.append(waiting)
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and not arg:
            fault = self.server.fault_for(envelope.rcpt_tos, "drop", "data")
            if fault is not None:  # gone before asking for the message: the client knows
                with self.server.lock:
                    self.server.dropped += 1
                assert isinstance(self.transport, asyncio.Transport)
                self.transport.abort()
                return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, server: SmtpServer, **kwargs: Any) -> None:
        self.owner = server
        super().__init__(server, **kwargs)

    def factory(self) -> SMTP:
        session = _Session(self.handler, **self.SMTP_kwargs)
        session.server = self.owner
        return session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    """The server and what it saw. Also its own aiosmtpd handler (the `handle_*` hooks)."""

    def __init__(
        self,
        certificates: Certificates | None = None,
        *,
        starttls: bool = True,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        smtputf8: bool = True,
        pipelining: bool = True,
        delay: float = 0.0,
        port: int = 0,
    ) -> None:
        if (starttls or implicit_tls) and certificates is None:
            raise ValueError("TLS needs certificates")
        self.certificates = certificates
        self.starttls = starttls and not implicit_tls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.smtputf8 = smtputf8
        self.pipelining = pipelining
        """Offer PIPELINING (RFC 2920), as most servers do; aiosmtpd reads commands in order
        however they arrive, so offering it is all it takes."""
        self.behind_mail: list[bytes] = []
        """For each MAIL FROM, what had arrived behind it before it was answered: a client that
        pipelines has sent its RCPT TO and DATA already, one that waits nothing."""
        self.delay = delay
        """Seconds each accepted message takes (a slow server), waited with asyncio.sleep."""
        self.host = HOST
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.attempts: Counter[str] = Counter()
        """RCPT commands per recipient address (lower case), whatever the answer."""
        self.refused: list[tuple[str, str]] = []
        """(address, reply) for every recipient refused by a fault."""
        self.logins: list[tuple[str, bool]] = []
        """(username, accepted) for every AUTH attempt."""
        self.max_logins: int | None = None
        """Refuse every login after this many accepted ones (a provider's login limit)."""
        self.connections = 0
        self.dropped = 0
        self.faults: dict[str, list[Fault]] = {}
        self.controller: _Controller | None = None
        self.flowing = threading.Event()
        """Cleared by hold(): every message then waits at the end of DATA until release()."""
        self.flowing.set()
        self.held = 0
        """Messages waiting now because of hold()."""

    # Setting faults ----------------------------------------------------------------------------

    def _add(self, address: str, fault: Fault) -> None:
        with self.lock:
            self.faults.setdefault(address.lower(), []).append(fault)

    def refuse(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Answer RCPT TO for `address` with `reply` (a 421 also closes the connection)."""
        self._add(address, Fault("reply", reply=reply, times=times))

    def refuse_everyone(self, reply: str, *, times: int | None = None) -> None:
        self.refuse(EVERYONE, reply, times=times)

    def drop_during_data(self, address: str, *, times: int | None = 1) -> None:
        """Cut the connection at the DATA command of a message to `address`, before the
        message went (once the message has gone, the client cannot know: drop_after_data)."""
        self._add(address, Fault("drop", stage="data", times=times))

    def stall(
        self, address: str, seconds: float, *, stage: Stage = "rcpt", times: int | None = None
    ) -> None:
        """Say nothing for `seconds` at RCPT TO (or at the end of DATA) of `address`; a
        stalled DATA is not accepted."""
        self._add(address, Fault("stall", seconds=seconds, stage=stage, times=times))

    def hold(self) -> None:
        """Keep every message waiting at the end of DATA, unanswered, until release(): a
        sender stays busy for as long as a test needs, however fast or slow the machine."""
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    def answer_late(self, address: str, seconds: float, *, times: int | None = None) -> None:
        """Take the whole message to `address`, then wait `seconds` before answering 250."""
        self._add(address, Fault("late", seconds=seconds, stage="end", times=times))

    def drop_after_data(self, address: str, *, times: int | None = 1) -> None:
        """Take the whole message to `address`, then hang up without answering."""
        self._add(address, Fault("drop", stage="end", times=times))

    def fault_for(self, addresses: list[str], kind: str, stage: Stage) -> Fault | None:
        with self.lock:
            for address in [*addresses, EVERYONE]:
                for fault in self.faults.get(address.lower(), []):
                    if fault.kind == kind and fault.stage == stage and fault.hits():
                        return fault
        return None

    # What arrived ------------------------------------------------------------------------------

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def arrivals(self) -> Counter[str]:
        """How many messages reached each recipient address (lower case)."""
        with self.lock:
            return Counter(r.lower() for m in self.received for r in m.recipients)

    def messages_to(self, address: str) -> list[Received]:
        return [m for m in self.messages() if address.lower() in map(str.lower, m.recipients)]

    def only_message_to(self, address: str) -> Received:
        found = self.messages_to(address)
        assert len(found) == 1, f"{len(found)} messages reached {address}"
        return found[0]

    # aiosmtpd handler hooks (run on the server's event loop) -----------------------------------

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.attempts[address.lower()] += 1
        stall = self.fault_for([address], "stall", "rcpt")
        if stall is not None:
            await asyncio.sleep(stall.seconds)
            return "451 4.4.2 Timeout, try again"
        fault = self.fault_for([address], "reply", "rcpt")
        if fault is not None:
            with self.lock:
                self.refused.append((address, fault.reply))
            if fault.reply.startswith("421"):  # the server closes right after saying so
                assert server.transport is not None
                server.loop.call_soon(server.transport.close)
            return fault.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        stall = self.fault_for(envelope.rcpt_tos, "stall", "data")
        if stall is not None:
            await asyncio.sleep(stall.seconds)
            return "451 4.4.2 Timeout, try again"
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.flowing.is_set():
            with self.lock:
                self.held += 1
            while not self.flowing.is_set():  # polled, so that other sessions go on
                await asyncio.sleep(0.01)
            with self.lock:
                self.held -= 1
        number = self._take(session, envelope)
        late = self.fault_for(envelope.rcpt_tos, "late", "end")
        if late is not None:
            await asyncio.sleep(late.seconds)
        if self.fault_for(envelope.rcpt_tos, "drop", "end") is not None:
            with self.lock:
                self.dropped += 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return f"250 2.0.0 Ok: queued as T{number:06d}"

    def _take(self, session: Any, envelope: Any) -> int:
        """Record the message as arrived; its number."""
        login = session.auth_data.login.decode() if session.auth_data else None
        received = Received(
            mail_from=envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            mail_options=tuple(envelope.mail_options),
            tls=session.ssl is not None,
            login=login,
        )
        with self.lock:
            self.received.append(received)
            return len(self.received)

    def authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        username, password = self.auth
        ok = (
            isinstance(data, LoginPassword)
            and data.login == username.encode()
            and data.password == password.encode()
        )
        with self.lock:
            accepted = sum(1 for _, earlier in self.logins if earlier)
            if self.max_logins is not None and accepted >= self.max_logins:
                ok = False
            self.logins.append((data.login.decode() if isinstance(data, LoginPassword) else "", ok))
        if not ok:  # handled=False: aiosmtpd answers 535 itself
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data)

    # Running -----------------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",
            "enable_SMTPUTF8": self.smtputf8,
            "decode_data": False,
            "ready_timeout": 10.0,
        }
        if self.starttls:
            assert self.certificates is not None
            options["tls_context"] = self.certificates.server_context()
            options["require_starttls"] = True
        if self.implicit_tls:
            assert self.certificates is not None
            options["ssl_context"] = self.certificates.server_context()
            options["auth_require_tls"] = False  # the whole connection is TLS already
        elif not self.starttls:
            options["auth_require_tls"] = False
        if self.auth is not None:
            options["authenticator"] = self.authenticate
            options["auth_required"] = True
        controller = _Controller(self, **options)
        controller.start()
        self.controller = controller
        with self.lock:  # the controller's own probe connection is not a client's
            self.connections = 0
        return self

    def stop(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# Fixtures ----------------------------------------------------------------------------------------


class StartServer(Protocol):
    def __call__(
        self,
        *,
        starttls: bool = True,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        smtputf8: bool = True,
        pipelining: bool = True,
        delay: float = 0.0,
        port: int = 0,
    ) -> SmtpServer: ...


@pytest.fixture(scope="session", name="certificates")
def certificates_fixture(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA and a certificate for localhost / 127.0.0.1, made once per test run."""
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(name="smtp_server")
def smtp_server_fixture(certificates: Certificates) -> Iterator[StartServer]:
    """Starts real SMTP servers on loopback ports; every one is stopped after the test.

    `smtp_server()` offers STARTTLS on the throwaway certificate; pass `auth=(user, password)`
    to require a login, `smtputf8=False` to withhold SMTPUTF8 (`pipelining=False`, PIPELINING),
    `starttls=False` for plain SMTP.
    """
    started: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        server = SmtpServer(certificates, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
