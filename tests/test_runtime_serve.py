"""`python -m runtime serve` configured only by the stack's app_config file, as in the stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers import PostgresServer, RedisServer, runtime_serve

ROOT = Path(__file__).resolve().parent.parent


def app_config(postgres: PostgresServer, redis_server: RedisServer) -> dict[str, object]:
    """What the stack exports, pointed at the test servers."""
    return {
        "stack": "test",
        "database": {
            "host": "127.0.0.1", "port": postgres.port, "name": postgres.database,
            "user": postgres.user, "password": postgres.password, "dsn": postgres.dsn,
        },
        "pool": {"size": 2, "max_overflow": 1, "timeout_seconds": 5, "statement_timeout_ms": 0},
        "redis": {
            "host": "127.0.0.1", "port": redis_server.port, "password": redis_server.password,
            "url": redis_server.url, "maxmemory": "64mb", "eviction_policy": "allkeys-lru",
        },
        "cache": {"default_ttl_seconds": 60},
        "backup": {"schedule": "* * * * *", "retention_days": 7, "min_keep": 1},
        "monitoring": {
            "interval_seconds": 1, "alert_cooldown_seconds": 60,
            "health_check_timeout_seconds": 5, "restart_attempts": 3,
        },
        "endpoints": {"public_url": "https://localhost:8443"},
    }  # fmt: skip


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_runs_the_sidecar_from_app_config(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    # the stack's telemetry section, at DEBUG: every line, libraries' too, is JSON
    telemetry = {"otlp_endpoint": "", "sampling_ratio": 0.1, "log_level": "DEBUG"}
    config = {**app_config(postgres_server, redis_server), "telemetry": telemetry}
    with runtime_serve(config, tmp_path) as (base, process, log):
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status, _ = get(f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200
        _, metrics = get(f"{base}/metrics")
        assert 'runtime_service_up{service="postgres"} 1.0' in metrics
        assert 'runtime_service_up{service="redis"} 1.0' in metrics
        assert "runtime_backup_next_run_timestamp_seconds" in metrics
        assert postgres_server.password not in metrics
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    assert postgres_server.password not in stderr and redis_server.password not in stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines and all({"timestamp", "level", "logger", "event"} <= set(x) for x in lines)
    assert "debug" in {x["level"] for x in lines}


def test_serve_reports_a_bad_app_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "app_config.json"
    config.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "serve"],
        cwd=ROOT,
        env={**os.environ, "APP_CONFIG_FILE": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "APP_CONFIG_FILE" in result.stderr and "valid JSON" in result.stderr


def test_the_cli_offers_backup_and_serve() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert "backup" in result.stdout and "serve" in result.stdout
