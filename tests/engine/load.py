"""A bounded HTTP load client: a steady request rate for a fixed time, every failure counted.

Run inside the engine's network namespace (`Engine.popen`), where nginx's published ports
answer:

    python -m tests.engine.load URL SECONDS RATE [new|keepalive]

HTTPS is not verified (the stack's self-signed certificate). Two ways to connect:

- `new` (default): each request opens its own connection and TLS handshake. Nothing is
  retried: a connection refused or closed by the server is a failure.
- `keepalive`: each worker keeps one connection open, as browsers and HTTP libraries do
  (a handshake costs more CPU than a request; this machine's 2 shared cores reach 200
  requests/s only this way). A request sent on a reused connection that the server had
  already closed, failing before any byte of an answer, is sent once more on a new
  connection, as HTTP allows for idempotent requests (RFC 9112, 9.3.1) and as those clients
  do; such retries are counted separately, and everything else is a failure.

Prints one JSON object: requests sent, answered 200, failures by kind, retries, the rate of
200s over the run, per answer body the first and last time (seconds since the start) it was
seen, the longest time between two answers, and when the failures (if any) began and ended.
Several processes share the rate (the handshakes then run without one GIL between them);
each keeps at most `WORKERS` requests in flight, so a slow server lowers the rate, never the
bound on the run's length.
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing
import ssl
import sys
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PROCESSES = 4
WORKERS = 16  # threads per process
CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def load(url: str, seconds: float, rate: float, mode: str = "new") -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    lock = threading.Lock()
    local = threading.local()
    failures: Counter[str] = Counter()
    bodies: dict[str, list[float]] = {}
    answered: list[float] = []  # when each 200 arrived
    failed_at: list[float] = []
    counts = {"ok": 0, "retried": 0}
    start = time.monotonic()

    def connect() -> http.client.HTTPConnection:
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=5, context=context
            )
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)

    def get(connection: http.client.HTTPConnection) -> tuple[int, str]:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()[:60]

    def one() -> None:
        try:
            if mode == "keepalive":
                connection = getattr(local, "connection", None)
                reused = connection is not None and connection.sock is not None
                if connection is None:
                    connection = local.connection = connect()
                try:
                    status, body = get(connection)
                except CLOSED:
                    if not reused:
                        raise
                    connection.close()
                    with lock:
                        counts["retried"] += 1
                    status, body = get(connection)  # http.client opens a new connection
            else:
                connection = connect()
                try:
                    status, body = get(connection)
                finally:
                    connection.close()
        except (OSError, http.client.HTTPException) as error:
            if mode == "keepalive":
                local.connection.close()
            with lock:
                failures[type(error).__name__] += 1
                failed_at.append(time.monotonic() - start)
            return
        at = time.monotonic() - start
        with lock:
            if status == 200:
                counts["ok"] += 1
                answered.append(at)
                seen = bodies.setdefault(body, [at, at])
                seen[1] = at
            else:
                failures[f"HTTP {status}"] += 1
                failed_at.append(at)

    sent = 0
    free = threading.BoundedSemaphore(WORKERS)

    def bounded() -> None:
        try:
            one()
        finally:
            free.release()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due and time.monotonic() - start < seconds:
                free.acquire()  # wait for a free worker: the rate drops, not the bound
                pool.submit(bounded)
                sent += 1
            time.sleep(0.002)
    answered.sort()
    return {
        "sent": sent,
        "ok": counts["ok"],
        "retried": counts["retried"],
        "failures": dict(failures),
        "seconds": round(time.monotonic() - start, 2),
        "bodies": bodies,
        "longest_gap": max((b - a for a, b in itertools.pairwise(answered)), default=0.0),
        "failed_between": [min(failed_at), max(failed_at)] if failed_at else None,
    }


def _part(args: tuple[str, float, float, str]) -> dict[str, Any]:
    return load(*args)


def merge(parts: list[dict[str, Any]], seconds: float, mode: str) -> dict[str, Any]:
    """The processes' results as one: counts added, times widened."""
    failures: Counter[str] = Counter()
    bodies: dict[str, list[float]] = {}
    for part in parts:
        failures.update(part["failures"])
        for body, (first, last) in part["bodies"].items():
            seen = bodies.setdefault(body, [first, last])
            bodies[body] = [round(min(seen[0], first), 2), round(max(seen[1], last), 2)]
    spans = [p["failed_between"] for p in parts if p["failed_between"]]
    ok = sum(p["ok"] for p in parts)
    return {
        "mode": mode,
        "sent": sum(p["sent"] for p in parts),
        "ok": ok,
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "retried": sum(p["retried"] for p in parts),
        "seconds": max(p["seconds"] for p in parts),
        "rate": round(ok / seconds, 1),
        "bodies": bodies,
        # per process: an outage shows in each of them
        "longest_gap": round(max(p["longest_gap"] for p in parts), 3),
        "failed_between": [round(min(s[0] for s in spans), 2), round(max(s[1] for s in spans), 2)]
        if spans
        else None,
    }


def main(argv: list[str]) -> None:
    url, seconds, rate = argv[0], float(argv[1]), float(argv[2])
    mode = argv[3] if len(argv) > 3 else "new"
    if mode not in ("new", "keepalive"):
        raise SystemExit(f"mode {mode!r}: expected new or keepalive")
    with multiprocessing.Pool(PROCESSES) as pool:
        parts = pool.map(_part, [(url, seconds, rate / PROCESSES, mode)] * PROCESSES)
    print(json.dumps(merge(parts, seconds, mode)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
