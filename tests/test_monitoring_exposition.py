"""The Prometheus collectors against the real objects they read: the runtime's pool
(`DatabasePool`), its cache client (`CacheClient`) and `BackupManager` runs driven by the
`BackupScheduler`, on real PostgreSQL and Redis."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.backup import BackupManager, BackupScheduler, BackupSettings, LocalStorage
from runtime.cache import RedisManager
from runtime.contracts import ConnectionPool
from runtime.database import DatabaseManager, DatabasePool
from runtime.errors import ConfigError
from runtime.monitoring import MonitoringService
from runtime.settings import load_settings
from tests.servers import PostgresServer, RedisServer, free_port

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
def pool(postgres_server: PostgresServer) -> Iterator[DatabasePool]:
    settings = load_settings(
        {"pool": {"size": 1, "max_overflow": 3, "timeout_seconds": 3}},
        env={"DATABASE_URL": postgres_server.dsn},
        require=("database",),
    )
    pool = DatabaseManager(settings).create_connection_pool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.mark.req("UT-INFRA-04.1")
def test_pool_series_follow_the_runtime_pool_at_scrape_time(pool: DatabasePool) -> None:
    service = MonitoringService(pools={"app": pool})
    before = scrape(service)
    assert before[("runtime_db_pool_max_connections", (("pool", "app"),))] == 4
    assert before[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))] == 0
    assert before[("runtime_collector_up", (("collector", "pool"),))] == 1
    with pool.connection() as first, pool.connection() as second:
        first.execute("SELECT 1")
        second.execute("SELECT 1")
        during = scrape(service)
        snapshot = pool.stats()
    active = during[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))]
    available = during[("runtime_db_pool_connections", (("pool", "app"), ("state", "available")))]
    assert active == 2 == snapshot.active_connections
    assert available == snapshot.available_connections
    assert during[("runtime_db_pool_connection_timeout_seconds", (("pool", "app"),))] == 3
    after = scrape(service)
    assert after[("runtime_db_pool_connections", (("pool", "app"), ("state", "active")))] == 0


@pytest.mark.req("UT-INFRA-04.1")
def test_the_real_cache_client_behind_monitoring_counts_requests_by_result(
    fresh_redis: RedisServer,
) -> None:
    """`MonitoringService(cache=CacheClient)`: the collector reads the client's `CacheStats`."""
    settings = load_settings(env={"REDIS_URL": fresh_redis.url}, require=("redis",))
    manager = RedisManager(settings, namespace=f"m{uuid.uuid4().hex[:8]}", timeout=0.5)
    cache = manager.get_cache_client()
    service = MonitoringService(cache=cache)
    try:
        for key in ("a", "b", "a", "a", "b", "c"):  # 3 misses (a, b, c), then 3 hits
            assert (
                cache.get_or_load(key, functools.partial(str.format, "db:{}", key)) == f"db:{key}"
            )
        values = scrape(service)

        def requests(result: str) -> float:
            return values[("runtime_cache_requests_total", (("result", result),))]

        assert values[("runtime_collector_up", (("collector", "cache"),))] == 1
        assert (requests("hit"), requests("miss"), requests("error")) == (3, 3, 0)
        assert requests("fallback") == 0
        assert values[("runtime_cache_breaker_open", ())] == 0
        fresh_redis.kill9()
        assert cache.get_or_load("a", lambda: "db:a") == "db:a"  # Redis down: from the loader
        assert cache.get_or_load("a", lambda: "db:a") == "db:a"  # breaker open: no Redis call
        values = scrape(service)
        stats = cache.stats()
        assert requests("error") == stats.errors >= 1
        assert requests("fallback") == stats.fallbacks == 2
        assert values[("runtime_cache_breaker_open", ())] == 1
        assert values[("runtime_cache_breaker_state", (("state", "open"),))] == 1
        assert values[("runtime_cache_breaker_state", (("state", "closed"),))] == 0
    finally:
        manager.close()


@pytest.mark.req("UT-INFRA-04.1")
def test_backup_series_from_real_backup_manager_runs(pgbench_db: str, tmp_path: Path) -> None:
    """The scheduler runs real `BackupManager.run_scheduled` jobs; a run against a server
    that is not there fails, and the series say so."""
    now = [datetime(2026, 3, 1, 2, tzinfo=UTC)]
    good = BackupManager(BackupSettings(), LocalStorage(tmp_path), database_url=pgbench_db)
    dead = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"
    bad = BackupManager(BackupSettings(), LocalStorage(tmp_path / "bad"), database_url=dead)
    current = [good]
    scheduler = BackupScheduler(
        "0 2 * * *", lambda: current[0].run_scheduled(), clock=lambda: now[0]
    )
    service = MonitoringService(backups=scheduler)
    values = scrape(service)
    assert ("runtime_backup_last_success_timestamp_seconds", ()) not in values
    assert values[("runtime_backup_failures_total", ())] == 0
    assert values[("runtime_backup_next_run_timestamp_seconds", ())] == (
        datetime(2026, 3, 2, 2, tzinfo=UTC).timestamp()
    )
    assert scheduler.tick() == "ran"
    values = scrape(service)
    stored = good.list_backups()[0]
    assert stored.state == "verified"
    assert values[("runtime_backup_last_size_bytes", ())] == stored.size_bytes > 0
    assert values[("runtime_backup_last_success_timestamp_seconds", ())] == now[0].timestamp()
    assert values[("runtime_backup_last_duration_seconds", ())] > 0
    current[0] = bad
    now[0] += timedelta(days=1)
    assert scheduler.tick() == "failed"
    values = scrape(service)
    assert values[("runtime_backup_failures_total", ())] == 1
    assert values[("runtime_backup_successes_total", ())] == 1
    assert values[("runtime_backup_last_size_bytes", ())] == stored.size_bytes  # last *good*


def test_scheduler_runs_on_its_cron_schedule_and_stops() -> None:
    runs: list[float] = []
    done = threading.Event()

    def job() -> None:
        runs.append(time.time())
        if len(runs) >= 3:
            done.set()

    scheduler = BackupScheduler("* * * * * *", job)  # every second (6th field: seconds)
    scheduler.start()
    try:
        assert done.wait(10)
    finally:
        scheduler.stop(5)
    assert runs[2] - runs[1] >= 0.5  # one run per second, not a busy loop
    count = len(runs)
    time.sleep(1.2)
    assert len(runs) == count  # stopped
    with pytest.raises(ConfigError, match="BACKUP_SCHEDULE: got 'nightly'; allowed: a cron"):
        BackupScheduler("nightly", job)


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
