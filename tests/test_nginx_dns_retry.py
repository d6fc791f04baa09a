"""nginx asks once more when an upstream's name fails to resolve, and never after it has
contacted the upstream.

Docker's embedded DNS was seen answering SERVFAIL, after about 2 s, for an upstream name it
knew, under load on the real engine (docs/changes.md): every request then waiting on that
lookup got a 502. The dev stack's real nginx.conf runs in a real nginx here, its upstreams
named `app.test` and resolved per request through a DNS server this test controls.
"""

from __future__ import annotations

import http.server
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import NginxServer, free_port
from tests.stack_harness import stack_run, uploads

NAME = "app.test"
SERVFAIL, NOERROR = 2, 0


class Dns:
    """A DNS server on loopback: `NAME` is 127.0.0.1, after `fail` SERVFAIL answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.fail = 0
        self.queries = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            ident = query[:2]
            question = query[12:]  # the name, then type and class
            code = SERVFAIL if self.fail > 0 else NOERROR
            self.fail -= 1
            answers = 0 if code else 1
            header = ident + struct.pack(">HHHHH", 0x8180 | code, 1, answers, 0, 0)
            # the answer: a pointer to the question's name, A, IN, TTL 600, 127.0.0.1
            answer = struct.pack(">HHHIH", 0xC00C, 1, 1, 600, 4) + socket.inet_aton("127.0.0.1")
            self.sock.sendto(header + question + (answer if answers else b""), client)

    def close(self) -> None:
        self.sock.close()


class App:
    """The application: answers every request with its method, and counts connections."""

    def __init__(self, close_without_answer: bool = False) -> None:
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.requests += 1
                if close_without_answer:
                    self.close_connection = True
                    return
                body = self.command.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.requests = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dns() -> Iterator[Dns]:
    server = Dns()
    yield server
    server.close()


def edge(dns: Dns, app: App, tmp_path: Path) -> NginxServer:
    """The dev stack's nginx with every upstream `NAME`:`app.port`, resolved through `dns`
    (nginx caches an answer for 10 s, so each test starts its own)."""
    files = uploads(stack_run("dev"), "nginx")
    upstreams = dict.fromkeys(("backend", "frontend", "grafana"), app.port)
    return NginxServer(files, tmp_path, upstreams, resolver=dns.address, upstream_host=NAME)


@pytest.mark.parametrize("path", ["/", "/api/orders", "/grafana/api/health"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_failed_lookup_is_asked_once_more_and_the_request_answered(
    dns: Dns, tmp_path: Path, path: str, method: str
) -> None:
    app = App()
    nginx = edge(dns, app, tmp_path)
    try:
        dns.fail = 1
        result = nginx.curl(
            "-X", method, "-d", "x", "-w", " %{http_code}", f"https://localhost:{nginx.https}{path}"
        )
        assert result.stdout == f"{method} 200", result
        assert (dns.queries, app.requests) == (2, 1)
    finally:
        nginx.close()
        app.close()


def test_a_name_that_never_resolves_is_a_502_after_two_lookups(dns: Dns, tmp_path: Path) -> None:
    app = App()
    nginx = edge(dns, app, tmp_path)
    try:
        dns.fail = 100
        result = nginx.curl(
            "-o", "/dev/null", "-w", "%{http_code}", f"https://localhost:{nginx.https}/"
        )
        assert result.stdout == "502", result
        assert (dns.queries, app.requests) == (2, 0)
    finally:
        nginx.close()
        app.close()


def test_a_502_from_a_contacted_upstream_is_never_retried(dns: Dns, tmp_path: Path) -> None:
    """The upstream closed the connection without an answer: the request may have reached it,
    so a POST is not sent again."""
    app = App(close_without_answer=True)
    nginx = edge(dns, app, tmp_path)
    try:
        result = nginx.curl(
            "-X",
            "POST",
            "-d",
            "x",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"https://localhost:{nginx.https}/api/orders",
        )
        assert result.stdout == "502", result
        assert app.requests == 1
    finally:
        nginx.close()
        app.close()
