"""Campaign commands and DKIM, through the outbox: what staff see and what a receiver verifies."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Folder, Run

PEOPLE = "email,name,lists\n" + "".join(
    f"reader{n}@example.net,Reader {n},commentaries\n" for n in range(6)
)


def subscribe(folder: Folder, run: Run) -> None:
    path = folder.write("people.csv", PEOPLE)
    assert run("subscribers", "import", str(path)).exit_code == 0


def outbox(folder: Folder) -> list[Path]:
    return sorted((folder.path / "outbox").glob("*.eml"))


def dkim_keys(folder: Folder, tmp_path: Path) -> Callable[..., bytes]:
    """Configure DKIM signing with a fresh key; return the DNS lookup that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    folder.configure('domain = ""', 'domain = "example.org"')
    folder.configure('selector = ""', 'selector = "news2026"')
    folder.configure('private_key_file = ""', f'private_key_file = "{key_file}"')

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news2026._domainkey.example.org."
        return record

    return dns


def test_a_dkim_signature_covers_the_list_headers_and_verifies(
    folder: Folder, run: Run, tmp_path: Path
) -> None:
    dns = dkim_keys(folder, tmp_path)
    subscribe(folder, run)

    result = run("send", "--yes")

    assert result.exit_code == 0, result.output
    files = outbox(folder)
    assert len(files) == 6
    for path in files:
        data = path.read_bytes()
        assert data.startswith(b"DKIM-Signature:")
        signature = email.message_from_bytes(data, policy=email.policy.default)["DKIM-Signature"]
        signed = {name.strip().lower() for name in re.search(r"h=([^;]+)", signature)[1].split(":")}  # type: ignore[index]
        assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= signed
        assert dkim.verify(data, dnsfunc=dns)
        tampered = data.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <http://")
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_header_prepended_in_transit_breaks_the_dkim_signature(
    folder: Folder, run: Run, tmp_path: Path
) -> None:
    dns = dkim_keys(folder, tmp_path)
    subscribe(folder, run)

    assert run("send", "--yes").exit_code == 0
    data = outbox(folder)[0].read_bytes()
    signature = email.message_from_bytes(data, policy=email.policy.default)["DKIM-Signature"]
    listed = [name.strip().lower() for name in re.search(r"h=([^;]+)", signature)[1].split(":")]  # type: ignore[index]

    # Each header a receiver acts on is listed once more than the message holds it.
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe"):
        assert listed.count(name) == 2, (name, listed)
    assert listed.count("list-unsubscribe-post") == 2
    assert dkim.verify(data, dnsfunc=dns)
    for added in (
        b"List-Unsubscribe: <https://unsubscribe.example.com/trap>\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"From: Someone Else <else@example.com>\r\n",
        b"Subject: Act now\r\n",
    ):
        assert not dkim.verify(added + data, dnsfunc=dns), added


def test_campaigns_list_show_and_cancel(folder: Folder, run: Run) -> None:
    subscribe(folder, run)
    assert run("send", "stalemate-to-escalation", "--yes").exit_code == 0

    listed = run("campaigns", "list")
    assert listed.exit_code == 0
    assert re.search(r"^\s+1\s+done\s+6\s+0\s+6\s", listed.output, re.M), listed.output

    shown = run("campaigns", "show", "1")
    assert "issue:      stalemate-to-escalation" in shown.output
    assert re.search(r"sent:\s+6", shown.output)

    again = run("campaigns", "cancel", "1", "--yes")
    assert "already done" in again.output

    # A campaign cancelled before it finished sends nothing more until resumed.
    newsletter = folder.newsletter()
    campaign = newsletter.store.campaigns.start("sahel-after-the-juntas", "commentaries", "S")
    newsletter.store.close()
    cancelled = run("campaigns", "cancel", str(campaign.id), "--yes")
    assert cancelled.exit_code == 0 and "Cancelled" in cancelled.output
    before = len(outbox(folder))
    refused = run("send", "sahel-after-the-juntas", "--yes")
    assert refused.exit_code == 2 and "was cancelled" in refused.stderr
    assert len(outbox(folder)) == before
    resumed = run("campaigns", "resume", str(campaign.id), "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert len(outbox(folder)) == before + 6
