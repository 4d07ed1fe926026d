"""Sending whole campaigns with the real `mailer send`, against baselines measured in the same run.

1. SMTP: a campaign through the `smtp` backend to Postfix's smtp-sink on loopback, against a
   bare smtplib loop sending the same pre-built messages to the same sink over the same number
   of connections (the most any SMTP client could do here).
2. HTTP: a campaign through a batch HTTP backend (mailgun, 1,000 recipients a request) to a
   local HTTP sink that answers as Mailgun does.
3. Memory: the peak memory (PSS of the `mailer send` process) of an HTTP campaign of
   --small recipients and of --large recipients.

Rates are the ones `mailer send` reports for its sending (claiming, building, handing over and
recording every message), which leaves out the start of the process.

    python benchmarks/send_campaign.py [--smtp 20000] [--http 100000] [--small 100000]
        [--large 1000000] [--connections 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mailer.app.newsletter import Newsletter

REPOSITORY = Path(__file__).resolve().parent.parent
MAILER = Path(sys.executable).parent / "mailer"
SECRET = "benchmark-secret-0123456789"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
HTTP_SINK = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"id": "<batch@sink>", "message": "Queued. Thank you."}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""
REPORT = re.compile(r"this run sent ([\d,]+), .* in ([\d.]+) s \(([\d,]+) messages/s\)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int) -> None:
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def folder_with(recipients: int, root: Path) -> Path:
    """A newsletter folder whose list holds `recipients` active subscribers."""
    folder = root / f"newsletter-{recipients}"
    folder.mkdir()
    shutil.copytree(REPOSITORY / "commentaries", folder / "commentaries")
    shutil.copyfile(REPOSITORY / "config.example.toml", folder / "config.toml")
    people = folder / "people.csv"
    with people.open("w") as stream:
        stream.write("email,name,lists\n")
        for number in range(recipients):
            stream.write(f"reader{number}@example{number % 100}.org,Reader {number},commentaries\n")
    mailer(folder, "subscribers", "import", str(people))
    return folder


def configure(folder: Path, backend: str, extra: str) -> None:
    path = folder / "config.toml"
    text = path.read_text().replace('backend = "outbox"', f'backend = "{backend}"')
    path.write_text(text + "\n" + extra)


def mailer(folder: Path, *args: str) -> str:
    env = {**os.environ, "MAILER_SECRET": SECRET}
    command = [str(MAILER), "--config", str(folder / "config.toml"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mailer {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def send_measured(folder: Path, slug: str) -> tuple[int, float, int]:
    """(messages sent, messages per second, peak PSS bytes) of `mailer send SLUG --yes`."""
    env = {**os.environ, "MAILER_SECRET": SECRET}
    command = [str(MAILER), "--config", str(folder / "config.toml"), "send", slug, "--yes"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text()
            peak = max(peak, int(rollup.split("\nPss:")[1].split()[0]) * 1024)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
        time.sleep(0.05)
    out, err = process.communicate()
    found = REPORT.search(out.decode())
    if process.returncode != 0 or not found:
        raise SystemExit(f"mailer send failed: {out.decode()} {err.decode()}")
    return int(found[1].replace(",", "")), float(found[3].replace(",", "")), peak


def longest_slug() -> str:
    os.environ.setdefault("MAILER_SECRET", SECRET)
    letter = Newsletter.load(REPOSITORY / "config.example.toml")
    return max(letter.commentaries().published(), key=lambda c: len(c.text)).slug


def bare_smtplib(
    folder: Path, slug: str, port: int, count: int, connections: int, nodelay: bool
) -> float:
    """Pre-built messages sent with nothing but smtplib, over `connections` connections
    (with `nodelay`, Nagle's algorithm off, as mailer's smtp backend has it)."""
    letter = Newsletter.load(folder / "config.toml", {"MAILER_SECRET": SECRET})
    template = letter.message_template(letter.render(letter.issue([slug])), "commentaries")
    messages = [
        (
            f"reader{n}@example.org",
            template.personalise(letter.recipient(n, "", f"reader{n}@example.org", "")),
        )
        for n in range(count)
    ]
    shares = [messages[n::connections] for n in range(connections)]

    def send(share: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as connection:
            if nodelay and connection.sock is not None:
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for address, data in share:
                connection.sendmail("commentaries@example.org", [address], data)

    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smtp", type=int, default=20_000)
    parser.add_argument("--http", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    slug = longest_slug()
    print(f"issue: {slug}")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)

        port = free_port()
        sink = subprocess.Popen(
            [SMTP_SINK, "-u", "postfix", f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL
        )
        try:
            wait_for_port(port)
            folder = folder_with(args.smtp, root)
            configure(
                folder,
                "smtp",
                "",
            )
            path = folder / "config.toml"
            path.write_text(
                path.read_text()
                .replace('host = "localhost"', 'host = "127.0.0.1"')
                .replace("port = 587", f"port = {port}")
                .replace('security = "starttls"', 'security = "none"')
                .replace("concurrency = 4", f"concurrency = {args.connections}")
            )
            baseline = bare_smtplib(folder, slug, port, args.smtp, args.connections, False)
            quick = bare_smtplib(folder, slug, port, args.smtp, args.connections, True)
            sent, rate, _ = send_measured(folder, slug)
            print(f"SMTP to smtp-sink, {args.connections} connections, {sent:,} messages:")
            print(f"  bare smtplib loop, pre-built messages: {baseline:8,.0f} messages/s")
            print(f"  the same with TCP_NODELAY:             {quick:8,.0f} messages/s")
            print(f"  mailer send (smtp backend):            {rate:8,.0f} messages/s")
            print(
                f"  mailer / bare: {rate / baseline:.0%}; mailer / bare with TCP_NODELAY: "
                f"{rate / quick:.0%}"
            )
        finally:
            sink.terminate()
            sink.wait()

        port = free_port()
        http_sink = subprocess.Popen([sys.executable, "-c", HTTP_SINK, str(port)])
        try:
            wait_for_port(port)
            endpoint = f'endpoint = "http://127.0.0.1:{port}/v3"'
            peaks = {}
            for recipients in sorted({args.http, args.small, args.large}):
                folder = folder_with(recipients, root)
                path = folder / "config.toml"
                configure(folder, "mailgun", "")
                path.write_text(
                    path.read_text()
                    .replace('endpoint = "https://api.mailgun.net/v3"', endpoint)
                    .replace('api_key = "${MAILGUN_API_KEY}"', 'api_key = "key-benchmark"')
                )
                sent, rate, peak = send_measured(folder, slug)
                peaks[recipients] = peak
                print(
                    f"HTTP batch backend (mailgun) to a local sink, {sent:,} recipients: "
                    f"{rate:,.0f} recipients/s, peak memory {peak / 1e6:.0f} MB"
                )
                shutil.rmtree(folder)
            small, large = peaks[args.small], peaks[args.large]
            print(
                f"peak memory: {args.small:,} recipients {small / 1e6:.0f} MB, "
                f"{args.large:,} recipients {large / 1e6:.0f} MB ({large / small - 1:+.0%})"
            )
        finally:
            http_sink.terminate()
            http_sink.wait()


if __name__ == "__main__":
    main()
