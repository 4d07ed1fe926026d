"""A real IMAP and POP3 server for the bounce mailbox tests: Debian's Dovecot, with its whole
configuration in a temporary folder, listening on loopback ports with implicit TLS from the
tests' throwaway certificate, one user whose password the test knows.

Run as root (as CI does), the mail is kept by the `dovecot` system user; run as anybody else,
Dovecot runs as that user.
"""

from __future__ import annotations

import getpass
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.smtp_server import HOST, Certificates, free_port

DOVECOT = Path("/usr/sbin/dovecot")
USER = "bounces"
PASSWORD = "a-password-for-the-bounce-mailbox"
STARTED_WITHIN = 60.0


@dataclass
class MailServer:
    folder: Path
    imap_port: int
    pop3_port: int
    certificates: Certificates
    process: subprocess.Popen[bytes]

    @property
    def imap_url(self) -> str:
        return f"imaps://{USER}@{HOST}:{self.imap_port}/INBOX"

    @property
    def pop3_url(self) -> str:
        return f"pop3s://{USER}@{HOST}:{self.pop3_port}"

    def imap(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.certificates.ca_file))
        client = imaplib.IMAP4_SSL(HOST, self.imap_port, ssl_context=context, timeout=30)
        client.login(USER, PASSWORD)
        return client

    def deliver(self, *messages: bytes) -> None:
        """Put messages into INBOX, as the mail server's delivery would."""
        client = self.imap()
        try:
            for message in messages:
                status, _ = client.append("INBOX", "", None, message.replace(b"\n", b"\r\n"))
                assert status == "OK"
        finally:
            client.logout()

    def subjects(self, folder: str) -> list[str]:
        """The subjects of the messages in a folder ([] when it does not exist)."""
        client = self.imap()
        try:
            status, _ = client.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = client.uid("SEARCH", "ALL")
            subjects = []
            for uid in found[0].split():
                _, data = client.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                header = data[0][1] if isinstance(data[0], tuple) else b""
                subjects.append(header.decode().partition(":")[2].strip())
            return sorted(subjects)
        finally:
            client.logout()


def _config(folder: Path, certificates: Certificates, imap_port: int, pop3_port: int) -> str:
    if os.geteuid() == 0:
        owner = pwd.getpwnam("dovecot")
        internal, login = "dovecot", "dovenull"
    else:
        owner = pwd.getpwuid(os.getuid())
        internal = login = getpass.getuser()
    home = folder / "home"
    home.mkdir()
    os.chown(home, owner.pw_uid, owner.pw_gid)
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n", encoding="utf-8")
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
protocols = imap pop3
listen = {HOST}
ssl = required
ssl_cert = <{certificates.cert_file}
ssl_key = <{certificates.key_file}
auth_mechanisms = plain
disable_plaintext_auth = yes
default_internal_user = {internal}
default_internal_group = {pwd.getpwnam(internal).pw_name if os.geteuid() == 0 else internal}
default_login_user = {login}
first_valid_uid = {min(owner.pw_uid, 100)}
mail_location = maildir:{home}/%u/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {imap_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = {HOST}
    port = {pop3_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(name="mail_server")
def mail_server_fixture(certificates: Certificates) -> Iterator[MailServer]:
    """Dovecot serving one mailbox over IMAPS and POP3S; stopped after the test."""
    if not DOVECOT.is_file():
        skip_or_fail(f"no Dovecot at {DOVECOT} (Debian: dovecot-imapd, dovecot-pop3d)")
    # Not under pytest's folder: as root, Dovecot's processes run as its own users, which must
    # reach the configuration and the mail.
    folder = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
    folder.chmod(0o711)
    imap_port, pop3_port = free_port(), free_port()
    config = folder / "dovecot.conf"
    config.write_text(_config(folder, certificates, imap_port, pop3_port), encoding="utf-8")
    process = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = MailServer(folder, imap_port, pop3_port, certificates, process)
    try:
        deadline = time.monotonic() + STARTED_WITHIN
        while not (_listening(imap_port) and _listening(pop3_port)):
            if process.poll() is not None or time.monotonic() > deadline:
                log = folder / "dovecot.log"
                said = log.read_text() if log.exists() else ""
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"Dovecot did not start: {stderr}{said}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
