"""The bounce mailbox, over IMAP or POP3 with implicit TLS and certificates checked.

A message is taken out of the mailbox only once what it says is recorded (moved to a folder or
deleted, as [bounces] processed says); one that cannot be read is left where it is. IMAP reads
with BODY.PEEK, so even a message left behind keeps its unread flag for the person who looks.
"""

from __future__ import annotations

import imaplib
import poplib
import ssl
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from mailer.core.config import BounceSettings
from mailer.core.errors import ConfigError, MailerError, Problem

IMAPS_PORT = 993
POP3S_PORT = 995


class MailboxError(MailerError):
    """The mailbox cannot be reached or refuses us: nothing was read or changed."""

    exit_code = 1


@dataclass(frozen=True)
class Where:
    """A mailbox URL taken apart: imaps://user@host:port/folder or pop3s://user@host:port."""

    scheme: str
    host: str
    port: int
    user: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> Where:
        parts = urlsplit(url)
        default = IMAPS_PORT if parts.scheme == "imaps" else POP3S_PORT
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or default,
            user=unquote(parts.username or ""),
            folder=unquote(parts.path.strip("/")) or "INBOX",
        )

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class Mailbox(ABC):
    """One session with the mailbox: the messages in it, and taking out those recorded."""

    def __init__(self, where: Where, password: str, context: ssl.SSLContext, timeout: float):
        self.where = where
        self.password = password
        self.context = context
        self.timeout = timeout

    @abstractmethod
    def __enter__(self) -> Mailbox: ...

    @abstractmethod
    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    @abstractmethod
    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(key, the message as received) for every message in the mailbox."""

    @abstractmethod
    def processed(self, key: str) -> None:
        """Take a recorded message out of the mailbox."""

    def refused(self, doing: str, error: Exception) -> MailboxError:
        return MailboxError(
            f"the bounce mailbox {self.where} {doing}: {error}; check [bounces] mailbox, "
            "password and ca_file"
        )


class ImapMailbox(Mailbox):
    def __init__(
        self,
        where: Where,
        password: str,
        context: ssl.SSLContext,
        timeout: float,
        processed_to: str,
    ) -> None:
        super().__init__(where, password, context, timeout)
        self.processed_to = processed_to
        """The folder processed messages go to; empty: they are deleted."""
        self.client: imaplib.IMAP4_SSL | None = None
        self.deleted = False

    def __enter__(self) -> ImapMailbox:
        where = self.where
        try:
            client = imaplib.IMAP4_SSL(
                where.host, where.port, ssl_context=self.context, timeout=self.timeout
            )
        except (OSError, imaplib.IMAP4.error) as error:
            raise self.refused("cannot be reached", error) from None
        try:
            client.login(where.user, self.password)
            status, said = client.select(_quoted(where.folder))
            if status != "OK":
                raise imaplib.IMAP4.error(f"no folder {where.folder!r} ({_text(said)})")
            if self.processed_to:
                client.create(_quoted(self.processed_to))  # "already exists" is fine
        except (OSError, imaplib.IMAP4.error) as error:
            client.shutdown()
            raise self.refused("refused us", error) from None
        self.client = client
        return self

    def __exit__(self, *_: object) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.deleted:
                client.expunge()
            client.close()
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            client.shutdown()

    def _command(self, *arguments: str) -> list[bytes]:
        if self.client is None:
            raise RuntimeError("the mailbox is not open")
        try:
            status, data = self.client.uid(*arguments)
        except (OSError, imaplib.IMAP4.error) as error:
            raise self.refused(f"failed at {arguments[0]}", error) from None
        if status != "OK":
            raise self.refused(f"refused {arguments[0]}", ValueError(_text(data)))
        return data

    def messages(self) -> Iterator[tuple[str, bytes]]:
        (found,) = self._command("SEARCH", "ALL")
        for uid in found.split():
            data = self._command("FETCH", uid.decode(), "(BODY.PEEK[])")
            body = next((item[1] for item in data if isinstance(item, tuple)), None)
            if isinstance(body, bytes):
                yield uid.decode(), body

    def processed(self, key: str) -> None:
        if self.processed_to:
            # MOVE (RFC 6851) when offered; else copy, then delete the original.
            if self.client is not None and "MOVE" in self.client.capabilities:
                self._command("MOVE", key, _quoted(self.processed_to))
                return
            self._command("COPY", key, _quoted(self.processed_to))
        self._command("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
        self.deleted = True


class Pop3Mailbox(Mailbox):
    """POP3 has no folders: processed messages are deleted (when the session ends well)."""

    def __init__(
        self, where: Where, password: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(where, password, context, timeout)
        self.client: poplib.POP3_SSL | None = None

    def __enter__(self) -> Pop3Mailbox:
        where = self.where
        try:
            client = poplib.POP3_SSL(
                where.host, where.port, context=self.context, timeout=self.timeout
            )
        except OSError as error:
            raise self.refused("cannot be reached", error) from None
        try:
            client.user(where.user)
            client.pass_(self.password)
        except (OSError, poplib.error_proto) as error:
            client.close()
            raise self.refused("refused us", error) from None
        self.client = client
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if kind is None:
                client.quit()  # deletions take effect only now
            else:
                client.rset()  # a pass that failed keeps every message
                client.quit()
        except (OSError, poplib.error_proto):
            client.close()

    def _client(self) -> poplib.POP3_SSL:
        if self.client is None:
            raise RuntimeError("the mailbox is not open")
        return self.client

    def messages(self) -> Iterator[tuple[str, bytes]]:
        client = self._client()
        try:
            _, listing, _ = client.list()
            for line in listing:
                number = line.split()[0].decode()
                _, lines, _ = client.retr(int(number))
                yield number, b"\r\n".join(lines) + b"\r\n"
        except (OSError, poplib.error_proto) as error:
            raise self.refused("failed while reading", error) from None

    def processed(self, key: str) -> None:
        try:
            self._client().dele(int(key))
        except (OSError, poplib.error_proto) as error:
            raise self.refused("refused to delete a message", error) from None


def open_mailbox(settings: BounceSettings, config_path: Path) -> Mailbox:
    """The mailbox [bounces] names, not yet connected."""
    where = Where.parse(settings.mailbox)
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.ca_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                [Problem(config_path, None, f"[bounces] ca_file cannot be read: {error}")]
            ) from None
    password = settings.password
    if where.scheme == "pop3s":
        if settings.processed == "move":
            raise ConfigError(
                [
                    Problem(
                        config_path,
                        None,
                        "[bounces] processed: a POP3 mailbox has no folders; set processed = "
                        '"delete", or read the mailbox over IMAP',
                    )
                ]
            )
        return Pop3Mailbox(where, password, context, settings.timeout)
    folder = settings.folder if settings.processed == "move" else ""
    return ImapMailbox(where, password, context, settings.timeout, folder)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: object) -> str:
    if isinstance(data, list):
        return " ".join(_text(item) for item in data)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)
