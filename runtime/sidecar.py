"""The runtime sidecar: `python -m runtime.sidecar serve [--host H] [--port P]`.

Serves `/metrics` (Prometheus text format) and `/healthz` (JSON; 503 while PostgreSQL or
Redis is not running), runs the monitoring loop (every MONITORING_INTERVAL), the alert
evaluation loop (every ALERT_EVALUATION_INTERVAL) and scheduled backups (BACKUP_SCHEDULE,
when a backup job is plugged in), all configured from the same environment variables as
applications. SIGTERM or SIGINT stops it cleanly: the HTTP server closes, a backup in
progress is waited for, queued notifications get a few seconds to go out, then exit 0.

`add_serve_subcommand(subparsers)` plugs `serve` into the `python -m runtime` CLI.
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import psycopg_pool
import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.monitoring.adapters import PsycopgPoolStats, RedisServerCacheStats
from runtime.monitoring.alerting import (
    AlertManager,
    AlertmanagerNotifier,
    Notifier,
    WebhookNotifier,
    default_rules,
)
from runtime.monitoring.exposition import PoolStatsSource
from runtime.monitoring.scheduler import BackupScheduler
from runtime.monitoring.service import MonitoringService
from runtime.monitoring.settings import MonitoringSettings, MonitoringSettingsError
from runtime.monitoring.status import PostgresProbe, Probe, RedisProbe, probe_for_url

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


class Sidecar:
    """Everything `serve` runs, built from `MonitoringSettings`."""

    def __init__(
        self,
        settings: MonitoringSettings,
        *,
        backup_job: Callable[[], object] | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        timeout = settings.health_check_timeout_seconds
        self._pool: Any = None
        self._redis: redis.Redis | None = None
        probes: list[Probe] = []
        pools: dict[str, PoolStatsSource] = {}
        if settings.database_url:
            # The sidecar's own small pool: its PostgreSQL probe borrows from it, so the pool
            # series show a pool in use. open(wait=False): PostgreSQL may still be starting.
            self._pool = psycopg_pool.ConnectionPool(
                settings.database_url,
                min_size=1,
                max_size=3,
                timeout=timeout,
                open=False,
                name="sidecar",
                kwargs={"autocommit": True, "connect_timeout": max(2, round(timeout))},
            )
            self._pool.open(wait=False)
            pools["sidecar"] = PsycopgPoolStats(self._pool)
            probes.append(PostgresProbe("postgres", settings.database_url, pool=self._pool))
        cache = None
        if settings.redis_url:
            self._redis = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            cache = RedisServerCacheStats(self._redis)
            probes.append(RedisProbe("redis", settings.redis_url))
        probes += [probe_for_url(name, url) for name, url in settings.health_probes.items()]
        notifiers: list[Notifier] = []
        if settings.alert_webhook_url:
            notifiers.append(WebhookNotifier(settings.alert_webhook_url, timeout=min(timeout, 10)))
        if settings.alertmanager_url:
            notifiers.append(
                AlertmanagerNotifier(
                    settings.alertmanager_url,
                    timeout=min(timeout, 10),
                    firing_ttl=max(900.0, 3 * settings.alert_cooldown_seconds),
                )
            )
        self.alerts = AlertManager(
            default_rules(
                settings.cpu_alert_threshold,
                settings.memory_alert_threshold,
                settings.alert_for_seconds,
                settings.disk_alert_threshold,
            ),
            notifiers,
            cooldown=settings.alert_cooldown_seconds,
            rate_limit_per_minute=settings.alert_rate_limit_per_minute,
        )
        self.scheduler = (
            BackupScheduler(backup_job, settings.backup_schedule) if backup_job else None
        )
        self.monitoring = MonitoringService(
            probes,
            health_check_timeout=timeout,
            pools=pools,
            cache=cache,
            backups=self.scheduler,
            alert_manager=None,  # evaluated by the alert loop below, not by run_once
            disk_paths=settings.disk_paths,
        )
        self.monitoring.registry.register(self.alerts.collector())
        self._loops = [
            _Loop("monitoring-loop", settings.interval_seconds, self._collect),
            _Loop(
                "alert-evaluation-loop",
                settings.alert_evaluation_interval_seconds,
                self._evaluate_alerts,
            ),
        ]
        self.server = http.server.ThreadingHTTPServer(
            (host or settings.sidecar_host, settings.sidecar_port if port is None else port),
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
        log.info("runtime sidecar listening on %s:%d", *self.server.server_address[:2])

    def stop(self) -> None:
        """Stop serving, wait for a running backup, give notifications time to go out."""
        log.info("runtime sidecar stopping")
        self.server.shutdown()
        self.server.server_close()
        for loop in self._loops:
            loop.stop(self.settings.health_check_timeout_seconds + 5)
        if self.scheduler is not None:
            self.scheduler.stop()
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
    args: argparse.Namespace,
    backup_job: Callable[[], object] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the sidecar until SIGTERM/SIGINT; 2 on bad settings, 0 after a clean stop."""
    try:
        settings = MonitoringSettings.from_env(env)
    except MonitoringSettingsError as exc:
        print(f"runtime sidecar: bad settings: {exc}", file=sys.stderr)
        return 2
    try:
        sidecar = Sidecar(settings, backup_job=backup_job, host=args.host, port=args.port)
    except OSError as exc:
        print(f"runtime sidecar: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        sidecar.start()
        print(f"runtime sidecar: serving on port {sidecar.port}", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        sidecar.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer in [0, 65535]")
    return int(text)


def add_serve_subcommand(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    backup_job: Callable[[], object] | None = None,
) -> argparse.ArgumentParser:
    """Add `serve` to a CLI's subcommands; the parsed args carry `func(args) -> int`."""
    parser = subparsers.add_parser(
        "serve", help="run the runtime sidecar: /metrics, /healthz, alerts, scheduled backups"
    )
    parser.add_argument("--host", default=None, help="listen address (default: SIDECAR_HOST)")
    parser.add_argument(
        "--port", type=_port, default=None, help="listen port (default: SIDECAR_PORT, 9180)"
    )
    parser.set_defaults(func=lambda args: serve(args, backup_job))
    return parser


def main(argv: Sequence[str] | None = None, backup_job: Callable[[], object] | None = None) -> int:
    """`serve [--host H] [--port P]`; settings come from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m runtime.sidecar")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_subcommand(subparsers, backup_job)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
