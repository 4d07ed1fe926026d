"""Sending whole campaigns with the real `mailer send`, against baselines measured in the same run.

1. SMTP: a campaign through the `smtp` backend to Postfix's smtp-sink on loopback, against a
   bare smtplib loop sending the same pre-built messages to the same sink over the same number
   of connections, and against Postfix's `smtp-source` (C, connections kept) sending messages
   of the same size: the ceiling of an SMTP client on this machine. Then what each of the
   engine's per-message records costs, timed alone (see guarantees).
2. Outbox: a campaign through the `outbox` backend (every message an .eml file, on disk before
   its batch is recorded), against personalising the same messages alone in one process, the
   disk's sequential durable rate (one big file, one fdatasync: what `dd conv=fdatasync`
   says), and a bare loop writing the same bytes made durable as the outbox does (a batch of
   files flushed together, their pages let go, renamed, then the folder), before mailer and
   after it: what the disk allows that scheme. Its files and mailer's stay until the end (see
   disk_ceiling): some 15 GB of free space at 100,000.
3. HTTP: a campaign through a batch HTTP backend (mailgun, 1,000 recipients a request) to a
   local HTTP sink that answers as Mailgun does.
4. Memory: the peak memory (PSS of the `mailer send` process) of an HTTP campaign of
   --small recipients and of --large recipients.

Rates are the ones `mailer send` reports for its sending (claiming, building, handing over and
recording every message), which leaves out the start of the process.

    python benchmarks/send_campaign.py [--smtp 20000] [--outbox 100000] [--http 100000]
        [--small 100000] [--large 1000000] [--connections 4] [--only smtp,outbox,http]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
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

from example import example_folder

from mailer.app.newsletter import Newsletter
from mailer.core import output
from mailer.delivery.outbox import OutboxBackend
from mailer.delivery.smtp import SmtpBackend
from mailer.render.message import MessageTemplate
from mailer.sending.journal import Journal
from mailer.store.campaigns import DeliveryRecord, DeliveryState

REPOSITORY = Path(__file__).resolve().parent.parent
MAILER = Path(sys.executable).parent / "mailer"
SECRET = "benchmark-secret-0123456789"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
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


def folder_with(recipients: int, root: Path, part: str) -> Path:
    """A newsletter folder for the benchmark's `part` whose list holds `recipients` active
    subscribers (each part its own: the outbox's stays to the end, see disk_ceiling)."""
    folder = example_folder(root / f"{part}-{recipients}")
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


def template_and_letter(folder: Path, slug: str) -> tuple[MessageTemplate, Newsletter]:
    letter = Newsletter.load(folder / "config.toml", {"MAILER_SECRET": SECRET})
    return letter.message_template(letter.render(letter.issue([slug])), "commentaries"), letter


def built_messages(folder: Path, slug: str, count: int) -> list[tuple[str, bytes]]:
    """(address, message) for `count` readers, personalised as `mailer send` does."""
    template, letter = template_and_letter(folder, slug)
    return [
        (
            f"reader{n}@example.org",
            template.personalise(
                letter.recipient(n, "", f"reader{n}@example.org", ""), template.message_id()
            ),
        )
        for n in range(count)
    ]


def personalising(folder: Path, slug: str, count: int) -> float:
    """Messages per second that personalising alone makes (each let go once made, as a
    backend does), in one process."""
    template, letter = template_and_letter(folder, slug)
    started = time.perf_counter()
    for n in range(count):
        recipient = letter.recipient(n, "", f"reader{n}@example.org", "")
        template.personalise(recipient, template.message_id())
    return count / (time.perf_counter() - started)


def sequential_ceiling(folder: Path, total: int) -> float:
    """Bytes per second this disk makes durable when written at its easiest: one file, 1 MB
    writes, one fdatasync at the end (as `dd conv=fdatasync` measures it)."""
    folder.mkdir()
    piece = os.urandom(1 << 20)
    started = time.perf_counter()
    handle = os.open(folder / "sequential", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    for _ in range(total // len(piece)):
        os.write(handle, piece)
    os.fdatasync(handle)
    os.close(handle)
    rate = total // len(piece) * len(piece) / (time.perf_counter() - started)
    shutil.rmtree(folder)
    return rate


def disk_ceiling(folder: Path, count: int, size: int, batch: int, threads: int = 1) -> float:
    """Files per second that a bare loop writes of `size` bytes each, made durable as the outbox
    makes its batches (mailer.delivery.outbox): `batch` files written under temporary names,
    all flushed by one syncfs (where there is none, each file's writing begun at once and an
    fsync each), their pages dropped from the page cache, renamed into place, and the folder
    fsynced. What this disk allows with that durability, without personalising, the campaign
    engine or its journal. With `threads`, as many threads share the batches (and the folder),
    as mailer's sending threads do: one writes while another waits for the disk.

    The files stay until the end of the run: on ext4 without a journal, a file made where
    thousands were just deleted costs up to 30 times the CPU (the kernel passes over each
    inode freed in the last minutes, up to six, before it reuses one), so deleting one part's
    files would slow the next part down."""
    libc = ctypes.CDLL(None, use_errno=True)
    syncfs = output._syncfs  # None where syncfs does not report write errors: as mailer does
    start_writeback = None if syncfs is not None else getattr(libc, "sync_file_range", None)
    if start_writeback is not None:
        start_writeback.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    folder.mkdir()
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    data = os.urandom(size)
    batches = iter(range(0, count, batch))  # next() on a range iterator is atomic

    def write_batches() -> None:
        for first in batches:
            names = [f"{n:09d}.eml" for n in range(first, min(first + batch, count))]
            for name in names:
                file = os.open(
                    f".{name}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=handle
                )
                os.write(file, data)
                if start_writeback is not None:
                    start_writeback(file, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE
                os.close(file)
            if syncfs is not None:
                syncfs(handle)
            for name in names:  # each file's pages let go once on disk, as mailer's outbox does
                file = os.open(f".{name}.tmp", os.O_RDONLY, dir_fd=handle)
                if syncfs is None:
                    os.fsync(file)
                os.posix_fadvise(file, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(file)
            for name in names:
                os.rename(f".{name}.tmp", name, src_dir_fd=handle, dst_dir_fd=handle)
            os.fsync(handle)

    workers = [threading.Thread(target=write_batches) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rate = count / (time.perf_counter() - started)
    os.close(handle)
    return rate


def guarantees(folder: Path, slug: str, batch: int) -> dict[str, float]:
    """Microseconds a message that each of the send engine's per-message records costs, timed
    alone in one thread against the folder's own database, for a new campaign to everyone, in
    batches of `batch` as the smtp backend takes them: the journal's line (written before the
    next message's body goes, so that a kill sends at most one message per connection again),
    the send log's claim and record of each batch (what a resumed send goes by), and the look
    at each batch's recipients just before the hand-over (so that nobody who unsubscribed while
    the batch waited is mailed)."""
    letter = Newsletter.load(folder / "config.toml", {"MAILER_SECRET": SECRET})
    campaigns = letter.store.campaigns
    campaign = campaigns.start(slug, "commentaries", letter.issue([slug]).subject)
    lease = dt.timedelta(minutes=5)
    spent = {"journal": 0.0, "send log": 0.0, "still subscribed": 0.0}
    with Journal(folder / "benchmark-journal").entries("benchmark") as entries:
        while True:
            started = time.perf_counter()
            claimed = campaigns.claim(campaign.id, "benchmark", batch, lease)
            if not claimed:
                break
            spent["send log"] += time.perf_counter() - started
            started = time.perf_counter()
            campaigns.statuses([person.subscriber_id for person in claimed])
            spent["still subscribed"] += time.perf_counter() - started
            records = [
                DeliveryRecord(
                    person.subscriber_id, DeliveryState.SENT, 1, f"<{person.subscriber_id}@b>"
                )
                for person in claimed
            ]
            started = time.perf_counter()
            for record in records:
                entries.add(campaign.id, record)
            spent["journal"] += time.perf_counter() - started
            started = time.perf_counter()
            campaigns.record(campaign.id, "benchmark", records)
            entries.clear()
            spent["send log"] += time.perf_counter() - started
    letter.store.close()
    return {name: seconds / campaign.recipients * 1e6 for name, seconds in spent.items()}


def smtp_source(port: int, count: int, connections: int, size: int) -> float:
    """Messages per second that Postfix's smtp-source (C) sends of `size` bytes, connections
    kept (-d), over `connections` sessions."""
    command = [SMTP_SOURCE, "-d", "-s", str(connections), "-m", str(count), "-l", str(size)]
    command += ["-f", "commentaries@example.org", "-t", "reader@example.org"]
    started = time.perf_counter()
    subprocess.run([*command, f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - started)


def bare_smtplib(
    folder: Path, slug: str, port: int, count: int, connections: int, nodelay: bool
) -> float:
    """Pre-built messages sent with nothing but smtplib, over `connections` connections
    (with `nodelay`, Nagle's algorithm off, as mailer's smtp backend has it)."""
    messages = built_messages(folder, slug, count)
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
    parser.add_argument("--outbox", type=int, default=100_000)
    parser.add_argument("--http", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--only", default="smtp,outbox,http", help="the parts to run")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"load average before: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")
    slug = longest_slug()
    print(f"issue: {slug}")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        if "smtp" in parts:
            smtp_part(root, slug, args.smtp, args.connections)
        if "outbox" in parts:
            outbox_part(root, slug, args.outbox)
        if "http" in parts:
            http_part(root, slug, args)


def smtp_part(root: Path, slug: str, count: int, connections: int) -> None:
    port = free_port()
    sink = subprocess.Popen(
        [SMTP_SINK, "-u", "postfix", f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        folder = folder_with(count, root, "smtp")
        configure(folder, "smtp", "")
        path = folder / "config.toml"
        path.write_text(
            path.read_text()
            .replace('host = "localhost"', 'host = "127.0.0.1"')
            .replace("port = 587", f"port = {port}")
            .replace('security = "starttls"', 'security = "none"')
            .replace("concurrency = 4", f"concurrency = {connections}")
        )
        size = len(built_messages(folder, slug, 1)[0][1])
        baseline = bare_smtplib(folder, slug, port, count, connections, False)
        quick = bare_smtplib(folder, slug, port, count, connections, True)
        ceiling = smtp_source(port, count, connections, size)
        sent, rate, _ = send_measured(folder, slug)
        costs = guarantees(folder, slug, SmtpBackend.batch_size)
        print(
            f"SMTP to smtp-sink, {connections} connections, {sent:,} messages of "
            f"{size / 1000:.0f} KB:"
        )
        print(f"  bare smtplib loop, pre-built messages: {baseline:8,.0f} messages/s")
        print(f"  the same with TCP_NODELAY:             {quick:8,.0f} messages/s")
        print(f"  Postfix smtp-source (C), -d:           {ceiling:8,.0f} messages/s")
        print(f"  mailer send (smtp backend):            {rate:8,.0f} messages/s")
        print(
            f"  mailer / bare: {rate / baseline:.0%}; mailer / bare with TCP_NODELAY: "
            f"{rate / quick:.0%}; mailer / smtp-source: {rate / ceiling:.0%}"
        )
        # What a message takes of one sending thread at mailer's rate: the share each costs.
        per_message = connections / rate * 1e6
        print(
            f"  what each record costs, one thread, batches of {SmtpBackend.batch_size} "
            f"(a message takes {per_message:,.0f} µs of a connection at mailer's rate):"
        )
        for name, micros in costs.items():
            print(f"    {name + ':':18} {micros:6.1f} µs a message ({micros / per_message:.1%})")
        shutil.rmtree(folder)
    finally:
        sink.terminate()
        sink.wait()


def concurrency(folder: Path) -> int:
    """The sending threads `mailer send` runs with the folder's configuration."""
    return Newsletter.load(
        folder / "config.toml", {"MAILER_SECRET": SECRET}
    ).config.delivery.concurrency


def outbox_part(root: Path, slug: str, count: int) -> None:
    folder = folder_with(count, root, "outbox")
    size = len(built_messages(folder, slug, 1)[0][1])
    batch = OutboxBackend.batch_size
    alone = personalising(folder, slug, count)
    sequential = sequential_ceiling(root / "sequential", min(count * size, 1 << 30))
    before = disk_ceiling(root / "disk-before", count, size, batch)
    sent, rate, _ = send_measured(folder, slug)
    after = disk_ceiling(root / "disk-after", count, size, batch)
    threads = concurrency(folder)
    overlapped = disk_ceiling(root / "disk-threads", count, size, batch, threads)
    disk = (before + after) / 2
    scheme = "one syncfs" if output._syncfs is not None else "an fsync each"
    print(
        f"outbox, {sent:,} messages of {size / 1000:.0f} KB, each an .eml file on disk before "
        f"its batch is recorded (batches of {batch:,}: {scheme}, the pages let go, renames, "
        "the folder's fsync):"
    )
    print(f"  personalising alone, one process:      {alone:8,.0f} messages/s")
    print(
        f"  one file written sequentially, fdatasync: {sequential / 1e6:5,.0f} MB/s "
        f"({sequential / size:,.0f} files of {size / 1000:.0f} KB/s)"
    )
    print(
        f"  the same bytes, bare loop, same scheme: {before:6,.0f} files/s before mailer, "
        f"{after:,.0f} after ({disk * size / 1e6:,.0f} MB/s)"
    )
    print(
        f"  the same in {threads} threads, as mailer sends: {overlapped:8,.0f} files/s "
        f"({overlapped * size / 1e6:,.0f} MB/s)"
    )
    print(
        f"  mailer send (outbox backend):          {rate:8,.0f} messages/s "
        f"({rate * size / 1e6:,.0f} MB/s)"
    )
    print(
        f"  mailer / personalising alone: {rate / alone:.0%}; mailer / bare loop: "
        f"{rate / disk:.0%}; mailer / bare loop in {threads} threads: {rate / overlapped:.0%}; "
        f"mailer / sequential: {rate * size / sequential:.0%}"
    )


def http_part(root: Path, slug: str, args: argparse.Namespace) -> None:
    port = free_port()
    http_sink = subprocess.Popen([sys.executable, "-c", HTTP_SINK, str(port)])
    try:
        wait_for_port(port)
        endpoint = f'endpoint = "http://127.0.0.1:{port}/v3"'
        peaks = {}
        for recipients in sorted({args.http, args.small, args.large}):
            folder = folder_with(recipients, root, "http")
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
