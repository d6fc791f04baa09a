"""The connection pool against a real PostgreSQL: bounds, exhaustion, crashes, restarts."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.contracts import ConnectionPool
from runtime.database import DatabaseManager, DatabasePool
from runtime.errors import DatabaseUnavailable, PlatformError, PoolTimeout, StatementTimeout
from runtime.settings import PoolSettings, Secret, load_settings
from tests.servers import PostgresServer, free_port


def manager_for(
    server: PostgresServer,
    size: int = 2,
    overflow: int = 2,
    timeout: float = 2.0,
    statement_ms: int = 5000,
    dsn: str | None = None,
    **kwargs: object,
) -> DatabaseManager:
    settings = load_settings(
        env={
            "DATABASE_URL": dsn or server.dsn,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DB_POOL_SIZE": str(size),
            "DB_MAX_OVERFLOW": str(overflow),
            "DB_POOL_TIMEOUT": str(timeout),
            "DB_STATEMENT_TIMEOUT_MS": str(statement_ms),
        }
    )
    return DatabaseManager(settings, name=f"test-{uuid.uuid4().hex[:8]}", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def open_pools() -> Iterator[list[DatabasePool]]:
    pools: list[DatabasePool] = []
    yield pools
    for pool in pools:
        pool.close()


def server_connections(server: PostgresServer, application_name: str) -> int:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.req("UT-INFRA-02.1")
def test_pool_opens_with_the_configured_parameters(
    postgres_server: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    manager = manager_for(postgres_server, size=2, overflow=3, timeout=1.5, statement_ms=250)
    pool = manager.create_connection_pool()
    open_pools.append(pool)
    stats = pool.stats()
    assert isinstance(stats, ConnectionPool)
    assert stats == ConnectionPool(
        max_connections=5, active_connections=0, available_connections=2, connection_timeout=2
    )
    assert server_connections(postgres_server, manager.name) == 2  # DB_POOL_SIZE kept open
    with pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("250ms",)
        assert pool.stats().active_connections == 1
    assert pool.execute("SELECT 1 + 1") == [(2,)]
    assert pool.stats().active_connections == 0


@pytest.mark.req("UT-INFRA-02.1")
def test_statement_timeout_is_typed_and_the_pool_survives(
    postgres_server: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    pool = manager_for(postgres_server, statement_ms=100).create_connection_pool()
    open_pools.append(pool)
    started = time.monotonic()
    with pytest.raises(StatementTimeout, match="100 ms"):
        pool.execute("SELECT pg_sleep(3)")
    assert time.monotonic() - started < 2.0  # cancelled, not retried
    assert pool.execute("SELECT 1") == [(1,)]
    assert pool.healthy


@pytest.mark.req("UT-INFRA-02.1", "ET-INFRA-02.1")
def test_first_connection_retries_with_backoff_then_names_host_and_port() -> None:
    port = free_port()  # nothing listens there
    dsn = f"postgresql://app:pw-not-to-leak@127.0.0.1:{port}/app"
    settings = load_settings(env={"DATABASE_URL": dsn, "REDIS_URL": "redis://h:1/0"})
    manager = DatabaseManager(settings, backoff_seconds=0.1)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        manager.create_connection_pool()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.1 + 0.2  # two backoff sleeps: 0.1 s, then 0.2 s
    assert caught.value.attempts == 3
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "after 3 attempts" in message
    rendered = "".join(traceback.format_exception(caught.value))
    assert "pw-not-to-leak" not in rendered and "pw-not-to-leak" not in repr(manager)


@pytest.mark.req("ET-INFRA-02.1")
def test_wrong_password_fails_clearly_without_the_password(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-but-still-secret"
    dsn = postgres_server.dsn.replace(postgres_server.password, secret)
    manager = manager_for(postgres_server, dsn=dsn, backoff_seconds=0.01)
    with caplog.at_level(logging.DEBUG), pytest.raises(DatabaseUnavailable) as caught:
        manager.create_connection_pool()
    assert "password authentication failed" in str(caught.value)
    rendered = "".join(traceback.format_exception(caught.value))
    assert secret not in rendered and secret not in caplog.text


@pytest.mark.req("ET-INFRA-02.1")
def test_first_connection_succeeds_when_the_server_comes_up_during_the_backoff(
    fresh_postgres: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    fresh_postgres.stop()
    manager = manager_for(fresh_postgres, backoff_seconds=0.4)
    starter = threading.Timer(0.2, fresh_postgres.start)
    starter.start()
    try:
        pool = manager.create_connection_pool()
        open_pools.append(pool)
    finally:
        starter.join()
    assert pool.execute("SELECT 1") == [(1,)]


@dataclass
class Occupancy:
    """Counts connections held at once, by the callers and as seen by the server."""

    held: int = 0
    max_held: int = 0
    max_server: int = 0
    max_stats_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)

    def leave(self) -> None:
        with self.lock:
            self.held -= 1


def watch(
    server: PostgresServer, pool: DatabasePool, name: str, seen: Occupancy, stop: threading.Event
) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            assert row is not None
            snapshot = pool.stats()  # raises ContractError if an invariant broke
            seen.max_server = max(seen.max_server, int(row[0]))
            seen.max_stats_active = max(seen.max_stats_active, snapshot.active_connections)
            time.sleep(0.005)


@pytest.mark.req("UT-INFRA-02.2")
def test_exhaustion_queues_then_times_out_with_a_clear_error(
    postgres_server: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    manager = manager_for(postgres_server, size=1, overflow=1, timeout=0.5)
    pool = manager.create_connection_pool()
    open_pools.append(pool)
    seen, stop = Occupancy(), threading.Event()
    watcher = threading.Thread(target=watch, args=(postgres_server, pool, manager.name, seen, stop))
    watcher.start()
    outcomes: list[tuple[str, float]] = []

    def worker(hold: float) -> None:
        started = time.monotonic()
        try:
            with pool.connection():
                seen.enter()
                time.sleep(hold)
                seen.leave()
            outcomes.append(("ok", time.monotonic() - started))
        except PoolTimeout as exc:
            assert "within 0.5 s" in str(exc) and "all 2 connections in use" in str(exc)
            outcomes.append(("timeout", time.monotonic() - started))

    threads = [threading.Thread(target=worker, args=(2.0,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert sorted(kind for kind, _ in outcomes) == ["ok", "ok"] + ["timeout"] * 4
    for kind, elapsed in outcomes:
        if kind == "timeout":
            assert 0.45 <= elapsed < 0.5 + 1.0  # DB_POOL_TIMEOUT, generous margin
    assert seen.max_held <= 2 and seen.max_server <= 2 and seen.max_stats_active <= 2

    # Queued waiters are served in turn when holders are quick.
    quick: list[str] = []

    def short_worker() -> None:
        with pool.connection(timeout=5.0):
            time.sleep(0.05)
        quick.append("ok")

    threads = [threading.Thread(target=short_worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert quick == ["ok"] * 8
    assert pool.stats().active_connections == 0


@pytest.mark.req("PT-INFRA-02.1")
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(1, 3),
    overflow=st.integers(0, 3),
    holds=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=12),
)
def test_random_concurrent_workloads_never_exceed_max_connections(
    postgres_server: PostgresServer, size: int, overflow: int, holds: list[float]
) -> None:
    manager = manager_for(postgres_server, size=size, overflow=overflow, timeout=0.3)
    pool = manager.create_connection_pool()
    seen, stop = Occupancy(), threading.Event()
    watcher = threading.Thread(target=watch, args=(postgres_server, pool, manager.name, seen, stop))
    watcher.start()
    errors: list[BaseException] = []

    def worker(hold: float) -> None:
        try:
            with pool.connection() as conn:
                seen.enter()
                conn.execute("SELECT pg_sleep(%s)", (hold,))
                seen.leave()
        except PoolTimeout:
            pass
        except BaseException as exc:  # anything untyped is a failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(hold,)) for hold in holds]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        watcher.join()
        pool.close()
    limit = size + overflow
    assert not errors
    assert seen.max_held <= limit
    assert seen.max_server <= limit
    assert seen.max_stats_active <= limit


@dataclass
class Call:
    started: float
    ended: float
    error: BaseException | None


def load(pool: DatabasePool, stop: threading.Event, calls: list[Call]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            assert pool.execute("SELECT 1") == [(1,)]
            calls.append(Call(started, time.monotonic(), None))
        except Exception as exc:
            calls.append(Call(started, time.monotonic(), exc))
            time.sleep(0.01)
        time.sleep(0.005)


@pytest.mark.req("ET-INFRA-02.1")
@pytest.mark.parametrize("fault", ["stop", "kill9"])
def test_server_down_under_load_gives_typed_errors_then_heals_within_1s(
    fresh_postgres: PostgresServer,
    open_pools: list[DatabasePool],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    pool = manager_for(fresh_postgres, size=2, overflow=2, timeout=2.0).create_connection_pool()
    open_pools.append(pool)
    calls: list[Call] = []
    stop = threading.Event()
    workers = [threading.Thread(target=load, args=(pool, stop, calls)) for _ in range(3)]
    with caplog.at_level(logging.INFO, logger="runtime.database.pool"):
        for worker in workers:
            worker.start()
        time.sleep(0.4)
        went_down = time.monotonic()
        fresh_postgres.stop() if fault == "stop" else fresh_postgres.kill9()
        time.sleep(1.0)
        fresh_postgres.start()  # returns once the server accepts connections
        came_up = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join()

    errors = [c for c in calls if c.error is not None]
    assert errors, "the outage was not noticed"
    for call in errors:
        assert isinstance(call.error, DatabaseUnavailable | PoolTimeout), repr(call.error)
        assert call.ended >= went_down
        assert fresh_postgres.password not in str(call.error)
    assert all(c.error is None for c in calls if c.started >= came_up + 1.0)
    first_ok = min(c.ended for c in calls if c.error is None and c.started >= came_up)
    assert first_ok - came_up < 1.0
    assert sum(1 for c in calls if c.error is None and c.started >= came_up + 1.0) > 10
    # One log line per state change, not one per failed request.
    lines = [getattr(r, "fields", {}) for r in caplog.records if r.name == "runtime.database.pool"]
    assert len(lines) == 2, lines
    assert [x["to"] for x in lines] == ["reconnecting", "healthy"]
    assert fresh_postgres.password not in caplog.text


@pytest.mark.req("ET-INFRA-02.1")
def test_idle_pool_heals_at_once_after_a_restart(
    fresh_postgres: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    pool = manager_for(fresh_postgres, size=3, overflow=0).create_connection_pool()
    open_pools.append(pool)
    fresh_postgres.restart()  # every idle connection in the pool is now broken
    started = time.monotonic()
    assert pool.execute("SELECT 1") == [(1,)]  # check() + one retry, no error to the caller
    assert time.monotonic() - started < 1.0
    assert pool.healthy


def test_reprs_and_stats_hold_no_secrets(
    postgres_server: PostgresServer, open_pools: list[DatabasePool]
) -> None:
    manager = manager_for(postgres_server)
    pool = manager.create_connection_pool()
    open_pools.append(pool)
    for text in (repr(manager), repr(pool), repr(pool.stats()), str(pool.driver_stats())):
        assert postgres_server.password not in text
    assert isinstance(manager.database.dsn, Secret)


def test_bad_arguments_are_named() -> None:
    settings = load_settings(env={"DATABASE_URL": "postgresql://h/d", "REDIS_URL": "redis://h"})
    with pytest.raises(ValueError, match="connect_attempts: got 0"):
        DatabaseManager(settings, connect_attempts=0)
    with pytest.raises(ValueError, match="probe_interval: got -1"):
        DatabaseManager(settings, probe_interval=-1)
    assert isinstance(DatabaseManager(settings).pool_settings, PoolSettings)
    assert issubclass(PoolTimeout, PlatformError) and issubclass(DatabaseUnavailable, PlatformError)


def test_a_closed_pool_says_so(postgres_server: PostgresServer) -> None:
    pool = manager_for(postgres_server).create_connection_pool()
    pool.close()
    with pytest.raises(DatabaseUnavailable, match="the pool is closed"):
        pool.execute("SELECT 1")
    assert pool.healthy  # closing is not an outage: no healer, no log line
