"""A bounded HTTPS load client: a fixed rate for a fixed time, a new TLS connection per
request (so each handshake sees the certificate nginx serves at that moment), counting
failures and the certificates seen. Not a benchmark: it proves nothing was dropped."""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import ssl
import threading
import time
from dataclasses import dataclass, field

from cryptography import x509


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    serials: collections.Counter[int] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class TlsLoad:
    """GET `path` on https://`host`:`port`, connecting to `address`, `rate` times a second
    for `seconds`; start() returns at once, wait() returns the result."""

    def __init__(
        self,
        port: int,
        host: str,
        path: str,
        rate: int,
        seconds: float,
        workers: int = 32,
        address: str = "127.0.0.1",
    ) -> None:
        self.port, self.host, self.path, self.address = port, host, path, address
        self.rate, self.seconds, self.workers = rate, seconds, workers
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # which certificate, not whether it is trusted
        self._context = context

    def start(self) -> TlsLoad:
        self._thread.start()
        return self

    def wait(self) -> LoadResult:
        self._thread.join(self.seconds + 120)
        return self.result

    def _one(self) -> None:
        connection = http.client.HTTPSConnection(
            self.address, self.port, timeout=10, context=self._context
        )
        try:
            connection.connect()
            sock = connection.sock
            der = sock.getpeercert(binary_form=True)
            connection.request("GET", self.path, headers={"Host": self.host})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            with self._lock:
                self.result.failures.append(f"{type(error).__name__}: {error}")
            return
        finally:
            connection.close()
        with self._lock:
            if status != 200:
                self.result.failures.append(f"HTTP {status}")
                return
            self.result.ok += 1
            if der:
                self.result.serials[x509.load_der_x509_certificate(der).serial_number] += 1

    def _run(self) -> None:
        total = int(self.rate * self.seconds)
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            for i in range(total):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one)
                self.result.sent += 1
        self.result.seconds = time.monotonic() - start


def main() -> None:
    """`python -m tests.tls_load ADDRESS PORT HOST PATH RATE SECONDS`: run inside another
    network namespace (the engine's), printing the result as one JSON line."""
    import json
    import sys

    address, port, host, path, rate, seconds = sys.argv[1:7]
    load = TlsLoad(int(port), host, path, int(rate), float(seconds), address=address)
    result = load.start().wait()
    summary = {
        "sent": result.sent,
        "ok": result.ok,
        "failed": len(result.failures),
        "failures": result.failures[:5],
        "seconds": round(result.seconds, 2),
        "serials": {f"{serial:x}": count for serial, count in result.serials.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
