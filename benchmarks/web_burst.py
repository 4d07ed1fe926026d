"""The client side of the web service's load test: a bounded burst of requests from threads.

Run as a separate process (so the server's process does nothing but serve), it reads a job as
JSON on standard input and prints what happened as JSON on standard output:

    {"base": "http://127.0.0.1:8000", "feed": "/commentaries/rss.xml", "feed_requests": 1000,
     "unsubscribe": ["/commentaries/unsubscribe/TOKEN", ...], "threads": 16}

Feed requests alternate between a plain GET and one with If-None-Match (the ETag of a first
GET); one-click unsubscribes (RFC 8058) alternate between form-urlencoded and multipart bodies.
Each thread keeps its connection alive, as a feed reader or a mail provider would, and sends no
cookie. Only `requests` and the standard library are used.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
from typing import Any

import requests

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def burst(job: dict[str, Any]) -> dict[str, Any]:
    base, feed = job["base"], job["feed"]
    etag = requests.get(base + feed, timeout=30).headers["ETag"]
    work: list[tuple[str, str, int]] = [
        ("feed", base + feed, i) for i in range(job["feed_requests"])
    ] + [("unsubscribe", base + path, i) for i, path in enumerate(job["unsubscribe"])]
    # Interleave the kinds so that feeds and unsubscribes are in flight at the same time.
    work.sort(key=lambda item: (item[2], item[0]))
    lock = threading.Lock()
    position = 0
    statuses: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    redirects = 0

    def worker() -> None:
        nonlocal position, redirects
        session = requests.Session()
        while True:
            with lock:
                if position >= len(work):
                    return
                kind, url, number = work[position]
                position += 1
            try:
                if kind == "feed":
                    headers = {"If-None-Match": etag} if number % 2 else {}
                    answer = session.get(url, headers=headers, timeout=30)
                    key = f"feed {'conditional' if number % 2 else 'plain'} {answer.status_code}"
                elif number % 2:
                    files = {name: (None, value) for name, value in ONE_CLICK.items()}
                    answer = session.post(url, files=files, allow_redirects=False, timeout=30)
                    key = f"unsubscribe multipart {answer.status_code}"
                else:
                    answer = session.post(url, data=ONE_CLICK, allow_redirects=False, timeout=30)
                    key = f"unsubscribe form {answer.status_code}"
                with lock:
                    statuses[key] += 1
                    redirects += "Location" in answer.headers
            except requests.RequestException as error:
                with lock:
                    errors.append(f"{kind} {url}: {error}")
            finally:
                session.cookies.clear()

    threads = [threading.Thread(target=worker) for _ in range(job["threads"])]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(work),
        "seconds": round(elapsed, 3),
        "per_second": round(len(work) / elapsed, 1),
        "statuses": dict(sorted(statuses.items())),
        "errors": errors[:20],
        "error_count": len(errors),
        "redirects": redirects,
    }


if __name__ == "__main__":
    print(json.dumps(burst(json.load(sys.stdin))))
