"""The runtime sidecar (`python -m runtime serve`, see runtime/cli.py).

Serves `/metrics` (Prometheus text format) and `/healthz` (JSON; 503 while PostgreSQL or
Redis is not running), runs the monitoring loop (every monitoring.interval_seconds), the
alert evaluation loop (every alerting.evaluation_interval_seconds), scheduled logical backups
(backup.schedule, when a database is configured) and scheduled physical backups (pitr's full
and differential schedules, when `settings.pitr` is set), all from the runtime's one
`Settings`.
SIGTERM or SIGINT stops it cleanly: the HTTP server closes, a backup in progress is waited
for, queued notifications get a few seconds to go out, then exit 0.
"""

from __future__ import annotations

import http.server
import json
import logging
import math
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import psycopg_pool
import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.backup.manager import BackupManager
from runtime.backup.schedule import BackupScheduler
from runtime.cache import CacheStats
from runtime.contracts import ConnectionPool
from runtime.database import timed_cursor
from runtime.histogram import QUERY_BUCKETS, DurationHistogram, HistogramSnapshot
from runtime.monitoring.alerting import (
    AlertEngine,
    AlertmanagerNotifier,
    Notifier,
    WebhookNotifier,
    default_rules,
)
from runtime.monitoring.exposition import PoolStatsSource
from runtime.monitoring.service import MonitoringService
from runtime.monitoring.status import PostgresProbe, Probe, RedisProbe, probe_for_url
from runtime.pitr.drill_metrics import DrillCollector
from runtime.pitr.drill_schedule import RestoreDrills
from runtime.pitr.metrics import PitrCollector, PitrState
from runtime.pitr.schedule import PhysicalBackups
from runtime.settings import Settings

log = logging.getLogger("runtime.sidecar")

REQUIRED = ("postgres", "redis")  # /healthz is unhealthy while one of these is not running


class _Loop:
    """Calls `step` every `interval` seconds on a thread until stopped; a step that raises
    is logged and the loop goes on."""

    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self.interval = interval
        self.step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s failed", self._thread.name)
            self._stop.wait(self.interval)

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


class _OwnPool:
    """The sidecar's small psycopg pool as a `PoolStatsSource`: its probe borrows straight
    from psycopg_pool, so occupancy comes from psycopg_pool's counters (keys at 0 are
    omitted by `get_stats()`)."""

    def __init__(
        self, pool: psycopg_pool.ConnectionPool[Any], durations: DurationHistogram
    ) -> None:
        self.pool = pool
        self.durations = durations

    def query_durations(self) -> HistogramSnapshot:
        """The probe's statements: in the stack, the latency SLO's steady canary."""
        return self.durations.snapshot()

    def stats(self) -> ConnectionPool:
        raw = self.pool.get_stats()
        size = int(raw.get("pool_size", 0))
        available = int(raw.get("pool_available", 0))
        return ConnectionPool(
            max_connections=int(self.pool.max_size),
            active_connections=max(0, size - available),
            available_connections=available,
            connection_timeout=max(1, math.ceil(float(self.pool.timeout))),
        )


class _ServerCacheStats:
    """The Redis server's keyspace hits and misses (`INFO stats`) as `CacheStats`: the
    sidecar has no cache of its own, and the server's ratio is what the platform's caches
    achieve together. Raises while Redis is down (the cache collector then reports 0)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def stats(self) -> CacheStats:
        info = self.client.info("stats")
        return CacheStats(hits=int(info["keyspace_hits"]), misses=int(info["keyspace_misses"]))


class Sidecar:
    """Everything `serve` runs, built from the runtime's `Settings`; `backup_job` replaces
    the default job (`BackupManager.run_scheduled`), e.g. in tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        backup_job: Callable[[], object] | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        mon, alerting = settings.monitoring, settings.alerting
        timeout = mon.health_check_timeout_seconds
        self._pool: Any = None
        self._redis: redis.Redis | None = None
        probes: list[Probe] = []
        pools: dict[str, PoolStatsSource] = {}
        self.backups: BackupManager | None = None
        last_run = None
        if settings.database is not None:
            dsn = settings.database.dsn.reveal()
            # The sidecar's own small pool: its PostgreSQL probe borrows from it, so the pool
            # series show a pool in use. open(wait=False): PostgreSQL may still be starting.
            durations = DurationHistogram(QUERY_BUCKETS)
            self._pool = psycopg_pool.ConnectionPool(
                dsn,
                min_size=1,
                max_size=3,
                timeout=timeout,
                open=False,
                name="sidecar",
                kwargs={
                    "autocommit": True,
                    "connect_timeout": max(2, round(timeout)),
                    "cursor_factory": timed_cursor(durations),
                },
            )
            self._pool.open(wait=False)
            pools["sidecar"] = _OwnPool(self._pool, durations)
            probes.append(PostgresProbe("postgres", dsn, pool=self._pool))
            if backup_job is None:
                self.backups = BackupManager.from_settings(settings)
                backup_job = self.backups.run_scheduled
                last_run = self.backups.newest_backup_time()
        cache = None
        if settings.redis is not None:
            url = settings.redis.url.reveal()
            self._redis = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            cache = _ServerCacheStats(self._redis)
            probes.append(RedisProbe("redis", url))
        probes += [probe_for_url(name, url) for name, url in mon.health_probes.items()]
        notifiers: list[Notifier] = []
        if alerting.webhook_url is not None:
            notifiers.append(
                WebhookNotifier(alerting.webhook_url.reveal(), timeout=min(timeout, 10))
            )
        if alerting.alertmanager_url is not None:
            notifiers.append(
                AlertmanagerNotifier(
                    alerting.alertmanager_url.reveal(),
                    timeout=min(timeout, 10),
                    firing_ttl=max(900.0, 3 * alerting.cooldown_seconds),
                )
            )
        self.alerts = AlertEngine(
            default_rules(
                alerting.cpu_threshold,
                alerting.memory_threshold,
                alerting.for_seconds,
                alerting.disk_threshold,
            ),
            notifiers,
            cooldown=alerting.cooldown_seconds,
            rate_limit_per_minute=alerting.rate_limit_per_minute,
        )
        self.scheduler = (
            BackupScheduler(settings.backup.schedule, backup_job, last_run=last_run)
            if backup_job
            else None
        )
        self.monitoring = MonitoringService(
            probes,
            health_check_timeout=timeout,
            pools=pools,
            cache=cache,
            backups=self.scheduler,
            alert_manager=None,  # evaluated by the alert loop below, not by run_once
            disk_paths=mon.disk_paths,
        )
        self.monitoring.registry.register(self.alerts.collector())
        self.pitr_state = PitrState()
        self.physical_backups = (
            PhysicalBackups(settings.pitr, self.pitr_state) if settings.pitr is not None else None
        )
        if self.physical_backups is not None:
            self.monitoring.registry.register(PitrCollector(self.pitr_state))
        self.drills = RestoreDrills(settings.pitr) if settings.pitr is not None else None
        if self.drills is not None:
            self.monitoring.registry.register(DrillCollector(self.drills.state))
        self._loops = [
            _Loop("monitoring-loop", mon.interval_seconds, self._collect),
            _Loop(
                "alert-evaluation-loop", alerting.evaluation_interval_seconds, self._evaluate_alerts
            ),
        ]
        self.server = http.server.ThreadingHTTPServer(
            (host or mon.sidecar_host, mon.sidecar_port if port is None else port),
            _handler(self),
        )
        self.server.daemon_threads = True
        self.stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def _collect(self) -> None:
        self.monitoring.run_once()

    def _evaluate_alerts(self) -> None:
        self.monitoring.check_services()
        self.alerts.evaluate(self.monitoring.samples(self.monitoring.last_metrics))

    def health(self) -> tuple[bool, dict[str, object]]:
        """Live probes: healthy unless PostgreSQL or Redis (when configured) is not running."""
        statuses = self.monitoring.check_services()
        healthy = all(s.status == "running" for s in statuses if s.service_name in REQUIRED)
        return healthy, {
            "status": "healthy" if healthy else "unhealthy",
            "services": [
                {
                    "service_name": s.service_name,
                    "status": s.status,
                    "uptime_seconds": s.uptime_seconds,
                    "health_check_url": s.health_check_url,
                }
                for s in statuses
            ],
            "failing_notifiers": self.alerts.failing_notifiers(),
        }

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()
        for loop in self._loops:
            loop.start()
        if self.scheduler is not None:
            self.scheduler.start()
        if self.physical_backups is not None:
            self.physical_backups.start()
        if self.drills is not None:
            self.drills.start()
        log.info("runtime sidecar listening on %s:%d", *self.server.server_address[:2])

    def stop(self) -> None:
        """Stop serving, wait for running backups, give notifications time to go out."""
        log.info("runtime sidecar stopping")
        self.server.shutdown()
        self.server.server_close()
        for loop in self._loops:
            loop.stop(self.settings.monitoring.health_check_timeout_seconds + 5)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.drills is not None:
            self.drills.stop()  # a drill in progress is cancelled and cleaned up
        if self.physical_backups is not None:
            self.physical_backups.stop()
        self.alerts.wait_delivered(5)
        self.alerts.close(1)
        if self._pool is not None:
            self._pool.close(timeout=5)
        if self._redis is not None:
            self._redis.close()
        self.stopped.set()


def _handler(sidecar: Sidecar) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body = generate_latest(sidecar.monitoring.registry)
                self._reply(200, CONTENT_TYPE_LATEST, body)
            elif path == "/healthz":
                healthy, report = sidecar.health()
                self._reply(200 if healthy else 503, "application/json", json.dumps(report))
            else:
                self._reply(404, "text/plain", "not found: try /metrics or /healthz\n")

        def _reply(self, code: int, content_type: str, body: bytes | str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    backup_job: Callable[[], object] | None = None,
) -> int:
    """Run the sidecar until SIGTERM/SIGINT; 0 after a clean stop, 1 if it cannot listen."""
    try:
        sidecar = Sidecar(settings, backup_job=backup_job, host=host, port=port)
    except OSError as exc:
        log.error("cannot listen: %s", exc.strerror or exc)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        sidecar.start()
        log.info("serving on port %d", sidecar.port, extra={"fields": {"port": sidecar.port}})
        stop.wait()
    finally:
        sidecar.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
