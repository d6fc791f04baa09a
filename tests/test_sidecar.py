"""The sidecar as a real subprocess against real PostgreSQL and Redis, over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.http_receiver import Receiver
from tests.servers import PostgresServer, RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]

LAUNCH = """
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from runtime.contracts import BackupResult
from runtime.settings import load_settings
from runtime.sidecar import serve

def backup_job():
    (Path(sys.argv[1]) / "started").touch()
    time.sleep(float(os.environ.get("TEST_BACKUP_SECONDS", "0")))
    target = Path(sys.argv[1]) / "backup.dump"
    target.write_bytes(b"x" * 4321)
    return BackupResult("b", datetime.now(UTC), 4321, "success", str(target))

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
settings = load_settings(require=())
sys.exit(serve(settings, host=sys.argv[2], port=int(sys.argv[3]), backup_job=backup_job))
"""


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_until(check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def sidecar_env(
    postgres_server: PostgresServer,
    fresh_redis: RedisServer,
    receiver: Receiver,
    second_receiver: Receiver,
) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": postgres_server.dsn,
        "REDIS_URL": fresh_redis.url,
        "MONITORING_INTERVAL": "0.5",
        "ALERT_EVALUATION_INTERVAL": "0.2",
        "ALERT_FOR": "0",
        "ALERT_COOLDOWN": "300",
        "HEALTH_CHECK_TIMEOUT": "1",
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "ALERTMANAGER_URL": second_receiver.url,
        "BACKUP_SCHEDULE": "* * * * * *",  # every second, so a run happens during the test
    }


@contextlib.contextmanager
def running_sidecar(
    env: dict[str, str], workdir: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The sidecar as a subprocess, answering HTTP; killed afterwards whatever happened."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(workdir), "127.0.0.1", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        up = wait_until(lambda: _answers(base), timeout=20)
        assert up, "the sidecar did not answer /healthz"
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def sidecar(
    sidecar_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    with running_sidecar(sidecar_env, tmp_path) as running:
        yield running


def _answers(base: str) -> bool:
    try:
        get(base + "/healthz", timeout=2)
    except OSError:
        return False
    return True


@pytest.mark.req("UT-INFRA-04.1", "ET-INFRA-04.1", "UT-INFRA-04.2")
def test_sidecar_serves_metrics_and_health_and_follows_redis(
    sidecar: tuple[subprocess.Popen[str], str],
    fresh_redis: RedisServer,
    receiver: Receiver,
    second_receiver: Receiver,
) -> None:
    proc, base = sidecar
    status, body = get(base + "/healthz")
    assert status == 200, body
    report = json.loads(body)
    assert report["status"] == "healthy"
    assert {s["service_name"]: s["status"] for s in report["services"]} == {
        "postgres": "running",
        "redis": "running",
    }
    assert fresh_redis.password not in body.decode()

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return metric_values(get(base + "/metrics")[1].decode())

    def ready() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        # a backup has run and the first monitoring round has finished
        v = scraped()
        done = ("runtime_backup_successes_total", ()) in v and v[
            ("runtime_backup_successes_total", ())
        ] > 0
        return v if done and ("runtime_cpu_usage_percent", ()) in v else None

    values = wait_until(ready, timeout=15)
    assert values, "no backup ran or no monitoring round finished"
    assert values[("runtime_up", ())] == 1
    assert values[("runtime_db_pool_max_connections", (("pool", "sidecar"),))] == 3
    assert ("runtime_db_pool_connections", (("pool", "sidecar"), ("state", "available"))) in values
    assert ("runtime_cache_requests_total", (("result", "hit"),)) in values
    assert values[("runtime_backup_last_size_bytes", ())] == 4321
    assert values[("runtime_backup_last_success_timestamp_seconds", ())] > time.time() - 60
    assert values[("runtime_service_up", (("service", "redis"),))] == 1
    assert 0 <= values[("runtime_cpu_usage_percent", ())] <= 100
    assert (
        "runtime_alert_notifications_total",
        (("notifier", "webhook"), ("status", "firing")),
    ) in values

    fresh_redis.kill9()
    status, body = get(base + "/healthz")
    assert status == 503
    report = json.loads(body)
    assert report["status"] == "unhealthy"
    assert {s["service_name"]: s["status"] for s in report["services"]}["redis"] == "stopped"
    values = scraped()
    assert values[("runtime_collector_up", (("collector", "cache"),))] == 0
    # the alert loop notices and the webhook hears about it
    firing = wait_until(
        lambda: [
            b
            for b in receiver.bodies()
            if b["groupLabels"].get("alertname") == "RuntimeServiceDown" and b["status"] == "firing"
        ],
        timeout=10,
    )
    assert firing and firing[0]["alerts"][0]["labels"]["service"] == "redis"

    am_alerts = wait_until(
        lambda: [
            alert
            for received in second_receiver.received
            if received.path == "/api/v2/alerts"
            for alert in received.body
            if alert["labels"]["alertname"] == "RuntimeServiceDown"
        ],
        timeout=10,
    )
    assert am_alerts and am_alerts[0]["labels"]["service"] == "redis"

    fresh_redis.start()
    assert wait_until(lambda: get(base + "/healthz")[0] == 200, timeout=10)
    resolved = wait_until(
        lambda: [
            b
            for b in receiver.bodies()
            if b["groupLabels"].get("alertname") == "RuntimeServiceDown"
            and b["status"] == "resolved"
        ],
        timeout=10,
    )
    assert resolved

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    output = proc.stdout.read() if proc.stdout else ""
    assert "runtime sidecar stopping" in output
    assert fresh_redis.password not in output
    assert PostgresServer.password not in output
    with pytest.raises(OSError):
        get(base + "/healthz", timeout=1)


def test_sidecar_rejects_bad_settings_without_leaking_secrets(
    sidecar_env: dict[str, str],
) -> None:
    env = {**sidecar_env, "MONITORING_INTERVAL": "-5"}
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--port", str(free_port())],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "MONITORING_INTERVAL: got '-5'" in result.stderr
    env = {**sidecar_env, "REDIS_URL": "http://:rd-s3cret@redis:6379"}
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--port", str(free_port())],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "s3cret" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--port", "99999"],
        env=sidecar_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "allowed: an integer in [0, 65535]" in result.stderr


def test_sigterm_waits_for_a_running_backup_then_exits_cleanly(
    sidecar_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**sidecar_env, "TEST_BACKUP_SECONDS": "2"}
    with running_sidecar(env, tmp_path) as (proc, _base):
        assert wait_until(lambda: (tmp_path / "started").exists(), timeout=10)
        assert not (tmp_path / "backup.dump").exists()  # the backup is still running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert (tmp_path / "backup.dump").stat().st_size == 4321  # it was allowed to finish
