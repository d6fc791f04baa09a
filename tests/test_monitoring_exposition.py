"""Prometheus exposition: pool, cache and backup series read at scrape time from real
objects (psycopg_pool and redis-py on the real servers, a real scheduled job)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.contracts import BackupResult, ConnectionPool
from runtime.monitoring import MonitoringService
from runtime.monitoring.adapters import PsycopgPoolStats, RedisServerCacheStats
from runtime.monitoring.scheduler import BackupScheduler
from tests.servers import PostgresServer, RedisServer

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(service: MonitoringService) -> Values:
    """The registry's text exposition, parsed back with prometheus-client's parser."""
    text = generate_latest(service.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def pool(postgres_server: PostgresServer) -> Iterator[Any]:
    pool = psycopg_pool.ConnectionPool(
        postgres_server.dsn, min_size=1, max_size=4, timeout=3, open=False
    )
    pool.open(wait=True, timeout=10)
    try:
        yield pool
    finally:
        pool.close()


@pytest.mark.req("UT-INFRA-04.1")
def test_pool_series_follow_the_real_pool_at_scrape_time(pool: Any) -> None:
    service = MonitoringService(pools={"app": PsycopgPoolStats(pool)})
    before = scrape(service)
    assert before[("runtime_db_pool_max_connections", (("pool", "app"),))] == 4
    assert before[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))] == 0
    assert before[("runtime_collector_up", (("collector", "pool"),))] == 1
    with pool.connection() as first, pool.connection() as second:
        first.execute("SELECT 1")
        second.execute("SELECT 1")
        during = scrape(service)
        raw = pool.get_stats()
    active = during[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))]
    available = during[("runtime_db_pool_connections", (("pool", "app"), ("state", "available")))]
    assert active == 2
    assert available == raw.get("pool_available", 0)
    assert during[("runtime_db_pool_connection_timeout_seconds", (("pool", "app"),))] == 3
    after = scrape(service)
    assert after[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))] == 0


class BreakerCache:
    """A minimal real cache client on redis-py with a circuit breaker and a fallback,
    counting what the collector reads (the shared cache module will report the same keys)."""

    def __init__(self, url: str, load: Callable[[str], str]) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self.load = load
        self.counts = {"hits": 0, "misses": 0, "errors": 0, "fallbacks": 0}
        self.open_until = 0.0

    def get(self, key: str) -> str:
        if time.monotonic() < self.open_until:
            self.counts["fallbacks"] += 1
            return self.load(key)
        try:
            cached = self.client.get(key)
        except redis.ConnectionError:
            self.counts["errors"] += 1
            self.counts["fallbacks"] += 1
            self.open_until = time.monotonic() + 30
            return self.load(key)
        if cached is not None:
            self.counts["hits"] += 1
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        self.counts["misses"] += 1
        value = self.load(key)
        self.client.set(key, value)
        return value

    def stats(self) -> dict[str, float | str]:
        state = "open" if time.monotonic() < self.open_until else "closed"
        return {**{k: float(v) for k, v in self.counts.items()}, "breaker_state": state}


@pytest.mark.req("UT-INFRA-04.1")
def test_cache_series_count_hits_misses_errors_and_breaker(fresh_redis: RedisServer) -> None:
    cache = BreakerCache(fresh_redis.url, load=lambda key: f"db:{key}")
    service = MonitoringService(cache=cache)
    for key in ("a", "b", "a", "a", "b", "c"):
        cache.get(key)
    values = scrape(service)

    def requests(result: str) -> float:
        return values[("runtime_cache_requests_total", (("result", result),))]

    assert (requests("hit"), requests("miss"), requests("error")) == (3, 3, 0)
    assert values[("runtime_cache_breaker_open", ())] == 0
    fresh_redis.kill9()
    assert cache.get("a") == "db:a"
    assert cache.get("a") == "db:a"
    values = scrape(service)
    assert (requests("error"), requests("fallback")) == (1, 2)
    assert values[("runtime_cache_breaker_open", ())] == 1
    assert values[("runtime_cache_breaker_state", (("state", "open"),))] == 1
    assert values[("runtime_cache_breaker_state", (("state", "closed"),))] == 0


def test_redis_server_stats_adapter_reads_info(fresh_redis: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    client.set("k", "v")
    for _ in range(3):
        client.get("k")
    client.get("missing")
    service = MonitoringService(cache=RedisServerCacheStats(client))
    values = scrape(service)
    assert values[("runtime_cache_requests_total", (("result", "hit"),))] == 3
    assert values[("runtime_cache_requests_total", (("result", "miss"),))] == 1
    client.close()


@pytest.mark.req("UT-INFRA-04.1")
def test_backup_series_from_a_real_scheduled_job(tmp_path: Path) -> None:
    outcome = {"fail": False}

    def job() -> BackupResult:
        if outcome["fail"]:
            raise OSError("disk full")
        target = tmp_path / "backup.dump"
        target.write_bytes(b"x" * 12345)
        return BackupResult("b1", datetime.now(UTC), target.stat().st_size, "success", str(target))

    scheduler = BackupScheduler(job, "0 2 * * *")
    service = MonitoringService(backups=scheduler)
    values = scrape(service)
    assert ("runtime_backup_last_success_timestamp_seconds", ()) not in values
    assert values[("runtime_backup_failures_total", ())] == 0
    assert values[("runtime_backup_next_run_timestamp_seconds", ())] > time.time()
    assert scheduler.run_now()
    values = scrape(service)
    assert values[("runtime_backup_last_size_bytes", ())] == 12345
    assert values[("runtime_backup_last_success_timestamp_seconds", ())] == pytest.approx(
        time.time(), abs=60
    )
    assert values[("runtime_backup_last_duration_seconds", ())] >= 0
    outcome["fail"] = True
    assert not scheduler.run_now()
    values = scrape(service)
    assert values[("runtime_backup_failures_total", ())] == 1
    assert values[("runtime_backup_successes_total", ())] == 1
    assert values[("runtime_backup_last_size_bytes", ())] == 12345  # the last *successful*


def test_scheduler_runs_on_its_cron_schedule_and_stops() -> None:
    runs: list[float] = []
    done = threading.Event()

    def job() -> None:
        runs.append(time.time())
        if len(runs) >= 2:
            done.set()

    scheduler = BackupScheduler(job, "* * * * * *")  # every second (6th field: seconds)
    scheduler.start()
    try:
        assert done.wait(5)
    finally:
        scheduler.stop(5)
    assert runs[1] - runs[0] >= 0.5  # one run per second, not a busy loop
    count = len(runs)
    time.sleep(1.2)
    assert len(runs) == count  # stopped
    with pytest.raises(ValueError, match="schedule: got 'nightly'; allowed: a cron"):
        BackupScheduler(job, "nightly")


class _DownPool:
    def stats(self) -> ConnectionPool:
        raise ConnectionError("pool closed")


@pytest.mark.req("ET-INFRA-04.1")
def test_a_failing_source_does_not_break_the_scrape() -> None:
    broken = MonitoringService(pools={"app": _DownPool()})
    values = scrape(broken)
    assert values[("runtime_collector_up", (("collector", "pool"),))] == 0
    assert values[("runtime_up", ())] == 1
    assert values[("runtime_monitoring_errors_total", (("source", "pool"),))] == 1
    assert ("runtime_db_pool_max_connections", (("pool", "app"),)) not in values
