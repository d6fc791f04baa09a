"""Service status from real probes: TCP, HTTP, PostgreSQL and Redis.

Each probe first opens a TCP connection: refused (nothing listens) means `stopped`; then it
speaks the service's protocol: a wrong answer, a timeout or an authentication failure means
`error`; a good answer means `running`. Uptime is the server's own where it says (PostgreSQL
`pg_postmaster_start_time()`, Redis `uptime_in_seconds`), otherwise the time this prober
has seen the service running without interruption.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.contracts import ServiceState, ServiceStatus
from runtime.settings import mask_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome; `detail` never contains credentials."""

    state: ServiceState
    elapsed_ms: float
    server_uptime_seconds: int | None = None
    detail: str = ""


class Probe(Protocol):
    """Something whose liveness can be checked within a timeout."""

    name: str
    health_check_url: str | None

    def check(self, timeout: float) -> ProbeResult: ...


def _tcp_state(host: str, port: int, timeout: float) -> tuple[ServiceState, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "running", ""
    except ConnectionRefusedError:
        return "stopped", f"connection refused by {host}:{port}"
    except TimeoutError:
        return "error", f"TCP connect to {host}:{port} timed out after {timeout:g}s"
    except OSError as exc:
        return "error", f"TCP connect to {host}:{port} failed: {exc.strerror or type(exc).__name__}"


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


class TcpProbe:
    """Liveness of anything that listens on a TCP port."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.health_check_url: str | None = f"tcp://{host}:{port}"

    def check(self, timeout: float) -> ProbeResult:
        started = time.perf_counter()
        state, detail = _tcp_state(self.host, self.port, timeout)
        return ProbeResult(state, (time.perf_counter() - started) * 1000, None, detail)


class HttpProbe:
    """An HTTP health endpoint: a 2xx answer within the timeout is `running`."""

    def __init__(self, name: str, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: got {mask_url(url)!r}; allowed: an http(s) URL with a host")
        self.name = name
        self.url = url
        self.health_check_url: str | None = mask_url(url)

    def check(self, timeout: float) -> ProbeResult:
        started = time.perf_counter()
        host, port = _host_port(self.url, 443 if self.url.startswith("https") else 80)
        state, detail = _tcp_state(host, port, timeout)
        if state == "running":
            try:
                with urllib.request.urlopen(self.url, timeout=timeout) as response:  # noqa: S310
                    status = response.status
                state, detail = ("running", "") if 200 <= status < 300 else ("error", str(status))
            except urllib.error.HTTPError as exc:
                state, detail = "error", f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                state, detail = "error", f"HTTP probe failed: {type(exc).__name__}"
        return ProbeResult(state, (time.perf_counter() - started) * 1000, None, detail)


class PostgresProbe:
    """PostgreSQL answers a query; uptime is the postmaster's."""

    def __init__(self, name: str, dsn: str, pool: Any = None) -> None:
        self.name = name
        self._dsn = dsn
        self._pool = pool  # a psycopg_pool.ConnectionPool to borrow from, else connect
        self.health_check_url: str | None = mask_url(dsn)

    def _connection(self, timeout: float) -> AbstractContextManager[psycopg.Connection[Any]]:
        if self._pool is not None:
            conn: AbstractContextManager[psycopg.Connection[Any]] = self._pool.connection(
                timeout=timeout
            )
            return conn
        # libpq's connect_timeout is whole seconds, at least 2.
        return psycopg.connect(self._dsn, connect_timeout=max(2, round(timeout)), autocommit=True)

    def __repr__(self) -> str:
        return f"PostgresProbe({self.name!r}, {self.health_check_url!r})"

    def check(self, timeout: float) -> ProbeResult:
        started = time.perf_counter()
        state, detail = _tcp_state(*_host_port(self._dsn, 5432), timeout)
        uptime = None
        if state == "running":
            try:
                with self._connection(timeout) as conn:
                    row = conn.execute(
                        "SELECT extract(epoch FROM now() - pg_postmaster_start_time())"
                    ).fetchone()
                uptime = max(0, int(row[0])) if row else None
            except (psycopg.Error, OSError) as exc:
                if self._pool is not None:
                    with contextlib.suppress(Exception):  # drop what a restart broke
                        self._pool.check()
                state, detail = "error", f"PostgreSQL: {type(exc).__name__}"
        return ProbeResult(state, (time.perf_counter() - started) * 1000, uptime, detail)


class RedisProbe:
    """Redis answers PING; uptime is the server's. No retries: a probe must not wait 3.6 s."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self._url = url
        self.health_check_url: str | None = mask_url(url)

    def __repr__(self) -> str:
        return f"RedisProbe({self.name!r}, {self.health_check_url!r})"

    def check(self, timeout: float) -> ProbeResult:
        started = time.perf_counter()
        state, detail = _tcp_state(*_host_port(self._url, 6379), timeout)
        uptime = None
        if state == "running":
            client = redis.Redis.from_url(
                self._url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                client.ping()
                uptime = int(client.info("server")["uptime_in_seconds"])
            except redis.RedisError as exc:
                state, detail = "error", f"Redis: {type(exc).__name__}"
            finally:
                client.close()
        return ProbeResult(state, (time.perf_counter() - started) * 1000, uptime, detail)


class ServiceProber:
    """Runs probes and turns results into `ServiceStatus`, tracking observed uptime."""

    def __init__(self, probes: Iterable[Probe], timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout: got {timeout!r}; allowed: a number of seconds > 0")
        self.probes: Sequence[Probe] = list(probes)
        self.timeout = timeout
        self._up_since: dict[str, float] = {}
        self._lock = threading.Lock()
        self.last_results: dict[str, ProbeResult] = {}

    def check(self) -> list[ServiceStatus]:
        statuses = []
        for probe in self.probes:
            try:
                result = probe.check(self.timeout)
            except Exception as exc:  # a probe bug must not take down the status report
                log.exception("probe %s raised", probe.name)
                result = ProbeResult("error", 0.0, None, f"probe raised {type(exc).__name__}")
            statuses.append(self._status(probe, result))
        return statuses

    def _status(self, probe: Probe, result: ProbeResult) -> ServiceStatus:
        now = time.monotonic()
        with self._lock:
            self.last_results[probe.name] = result
            if result.state == "running":
                since = self._up_since.setdefault(probe.name, now)
            else:
                self._up_since.pop(probe.name, None)
                since = now
        if result.state != "running":
            uptime = 0
        elif result.server_uptime_seconds is not None:
            uptime = result.server_uptime_seconds
        else:
            uptime = int(now - since)
        if result.state != "running":
            log.warning("service %s is %s: %s", probe.name, result.state, result.detail)
        return ServiceStatus(probe.name, result.state, uptime, probe.health_check_url)


def probe_for_url(name: str, url: str) -> Probe:
    """The probe a URL's scheme calls for (postgresql, redis, http(s), tcp)."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return PostgresProbe(name, url)
    if scheme in ("redis", "rediss"):
        return RedisProbe(name, url)
    if scheme in ("http", "https"):
        return HttpProbe(name, url)
    if scheme == "tcp":
        host, port = _host_port(url, 0)
        if port == 0:
            raise ValueError(f"url: got {url!r}; allowed: tcp://host:port with a port")
        return TcpProbe(name, host, port)
    raise ValueError(
        f"url for {name!r}: got scheme {scheme!r}; allowed: postgresql, redis, http(s) or tcp"
    )
