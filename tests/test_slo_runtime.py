"""The SLIs the runtime feeds are real: the pool times statements against a real PostgreSQL,
the backup scheduler times its runs, and both reach Prometheus through the runtime's own
exposition with the exact `le` labels the generated SLO rules select."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from components.monitoring.slo import BACKUP_BUCKETS_SECONDS, QUERY_BUCKETS_MS, SLOS, le
from runtime.backup import BackupScheduler
from runtime.database import DatabaseManager
from runtime.errors import StatementTimeout
from runtime.monitoring import MonitoringService
from runtime.settings import load_settings
from tests.servers import PostgresServer

SLOW = 0.15  # pg_sleep never returns sooner: a lower bound, whatever the machine's load


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposed(service: MonitoringService, family: str) -> Samples:
    """Samples of one family from the runtime's real exposition."""
    return parsed(generate_latest(service.registry).decode(), family)


def parsed(text: str, family: str) -> Samples:
    """Samples of one family in a Prometheus text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
    }


def bucket(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.mark.req("UT-INFRA-04.1")
def test_the_pool_exposes_each_statements_duration_in_the_latency_histogram(
    postgres_server: PostgresServer,
) -> None:
    env = {"DATABASE_URL": postgres_server.dsn}
    settings = load_settings(
        {"pool": {"size": 1, "max_overflow": 1}}, env=env, require=("database",)
    )
    pool = DatabaseManager(settings).create_connection_pool()
    service = MonitoringService([], health_check_timeout=2, pools={"app": pool})
    try:
        fast, slow = 6, 3
        for _ in range(fast - 2):
            pool.execute("SELECT 1")
        for _ in range(slow):
            pool.execute("SELECT pg_sleep(%s)", (SLOW,))
        with pool.connection() as conn:  # each statement of a block counts, not the checkout
            conn.execute("SELECT 1")
            time.sleep(SLOW)  # the application's own work while it holds the connection
            conn.execute("SELECT 2")
        samples = exposed(service, "runtime_db_query_duration_seconds")
    finally:
        pool.close()
    name = "runtime_db_query_duration_seconds"
    count = bucket(samples, f"{name}_count", pool="app")
    assert count == fast + slow
    assert bucket(samples, f"{name}_bucket", pool="app", le="+Inf") == count
    assert bucket(samples, f"{name}_sum", pool="app") >= slow * SLOW
    # the slow statements are above 0.1 s, and the block's sleep was not timed as a query
    under_100ms = bucket(samples, f"{name}_bucket", pool="app", le="0.1")
    assert 1 <= under_100ms <= fast
    assert bucket(samples, f"{name}_bucket", pool="app", le="0.001") <= under_100ms
    assert count - bucket(samples, f"{name}_bucket", pool="app", le="0.1") >= slow


@pytest.mark.req("UT-INFRA-04.1")
def test_an_application_serves_its_pools_latency_histogram_on_its_own_metrics_endpoint(
    postgres_server: PostgresServer,
) -> None:
    """The documented one-liner (docs/runtime-monitoring.md): prometheus_client's own HTTP
    server over the service's registry is what the stack's `app` scrape job reads."""
    env = {"DATABASE_URL": postgres_server.dsn}
    settings = load_settings({"pool": {"size": 1}}, env=env, require=("database",))
    pool = DatabaseManager(settings).create_connection_pool()
    service = MonitoringService([], health_check_timeout=2, pools={"app": pool})
    server, thread = start_http_server(0, addr="127.0.0.1", registry=service.registry)
    try:
        for _ in range(4):
            pool.execute("SELECT 1")
        pool.execute("SELECT pg_sleep(%s)", (SLOW,))
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
            text = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        pool.close()
    name = "runtime_db_query_duration_seconds"
    samples = parsed(text, name)
    assert bucket(samples, f"{name}_count", pool="app") == 5
    assert bucket(samples, f"{name}_bucket", pool="app", le="+Inf") == 5
    assert bucket(samples, f"{name}_bucket", pool="app", le="0.1") <= 4
    assert bucket(samples, f"{name}_sum", pool="app") >= SLOW


def test_a_statement_cut_by_the_statement_timeout_counts_as_a_slow_query(
    postgres_server: PostgresServer,
) -> None:
    env = {"DATABASE_URL": postgres_server.dsn}
    settings = load_settings(
        {"pool": {"size": 1, "max_overflow": 0, "statement_timeout_ms": 200}},
        env=env,
        require=("database",),
    )
    pool = DatabaseManager(settings).create_connection_pool()
    try:
        with pytest.raises(StatementTimeout):
            pool.execute("SELECT pg_sleep(5)")
        snapshot = pool.query_durations()
    finally:
        pool.close()
    assert snapshot.count == 1
    assert snapshot.sum >= 0.2
    assert snapshot.cumulative[snapshot.bounds.index(0.1)] == 0


def test_the_backup_scheduler_exposes_each_runs_duration_by_outcome() -> None:
    runs: Iterator[Callable[[], object]] = iter(
        [lambda: None, lambda: time.sleep(2.1), lambda: 1 / 0]
    )

    def job() -> object:
        return next(runs)()

    scheduler = BackupScheduler("* * * * *", job)
    service = MonitoringService([], health_check_timeout=2, backups=scheduler)
    for _ in range(3):
        scheduler.last_slot = None  # due again
        scheduler.tick()
    samples = exposed(service, "runtime_backup_duration_seconds")
    name = "runtime_backup_duration_seconds"
    assert bucket(samples, f"{name}_count", outcome="success") == 2
    assert bucket(samples, f"{name}_count", outcome="failure") == 1
    # the 2.1 s run is over the 2 s bound, whatever the load
    assert bucket(samples, f"{name}_bucket", outcome="success", le="2.0") <= 1
    assert bucket(samples, f"{name}_bucket", outcome="success", le="+Inf") == 2
    assert bucket(samples, f"{name}_sum", outcome="success") >= 2.1


def test_the_slo_settings_bounds_are_buckets_the_runtime_exposes(
    postgres_server: PostgresServer,
) -> None:
    """components/ may not import runtime/: the bucket bounds are a contract checked here."""
    env = {"DATABASE_URL": postgres_server.dsn}
    pool = DatabaseManager(
        load_settings({}, env=env, require=("database",))
    ).create_connection_pool()
    scheduler = BackupScheduler("0 2 * * *", lambda: None)
    service = MonitoringService([], health_check_timeout=2, pools={"app": pool}, backups=scheduler)
    try:
        pool.execute("SELECT 1")
        scheduler.tick()
        queries = exposed(service, "runtime_db_query_duration_seconds")
        backups = exposed(service, "runtime_backup_duration_seconds")
    finally:
        pool.close()
    query_les = {dict(labels).get("le") for _, labels in queries}
    backup_les = {dict(labels).get("le") for _, labels in backups}
    assert {le(ms / 1000) for ms in QUERY_BUCKETS_MS} | {"+Inf"} == query_les - {None}
    assert {le(s) for s in BACKUP_BUCKETS_SECONDS} | {"+Inf"} == backup_les - {None}
    # and the default SLOs select one of them
    rules = " ".join(s.error_ratio for s in SLOS)
    assert 'runtime_db_query_duration_seconds_bucket{le="0.1"}' in rules
    assert 'runtime_backup_duration_seconds_bucket{outcome="success",le="5.0"}' in rules
