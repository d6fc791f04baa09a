"""Reads routed to streaming replicas, against a real PostgreSQL 15 primary and hot standby.

Faults are real: the standby is SIGKILLed under load, its replay is paused while the primary
writes, it is promoted, it is wiped and rebuilt by the runbook (docs/runbook-replica.md).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from runtime.database import DatabaseManager, DatabasePool
from runtime.errors import PoolTimeout
from runtime.replicas import DOWN, LAGGING, NOT_STANDBY, PRIMARY_REASONS, STATES, UP
from runtime.settings import load_settings
from tests.servers import PostgresServer, StandbyServer, free_port

IN_RECOVERY = "SELECT pg_is_in_recovery()"


def routed_pool(
    primary: PostgresServer,
    replica_dsns: list[str],
    *,
    max_lag_bytes: int = 16 * 1024 * 1024,
    interval: float = 0.1,
) -> DatabasePool:
    settings = load_settings(
        env={
            "DATABASE_URL": primary.dsn,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_REPLICA_URLS": ",".join(replica_dsns),
            "DB_POOL_SIZE": "2",
            "DB_MAX_OVERFLOW": "4",
            "DB_POOL_TIMEOUT": "5",
            "DB_MAX_REPLICA_LAG_BYTES": str(max_lag_bytes),
            "DB_REPLICA_CHECK_INTERVAL": str(interval),
        }
    )
    return DatabaseManager(settings, name=f"rr-{uuid.uuid4().hex[:8]}").create_connection_pool()


OpenPool = Callable[..., DatabasePool]


@pytest.fixture
def open_pool(replication_primary: PostgresServer) -> Iterator[OpenPool]:
    """`routed_pool` on the replication primary (same arguments after it), closed afterwards."""
    opened: list[DatabasePool] = []

    def open_routed(replica_dsns: list[str], **kwargs: Any) -> DatabasePool:
        pool = routed_pool(replication_primary, replica_dsns, **kwargs)
        opened.append(pool)
        return pool

    yield open_routed
    for pool in opened:
        pool.close()


def on_replica(pool: DatabasePool) -> bool:
    """Where the read path went: True on a standby, False on the primary."""
    return bool(pool.execute(IN_RECOVERY, readonly=True)[0][0])


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def q(template: str, table: str) -> sql.Composed:
    """`template` with `{}` replaced by the quoted table name."""
    return sql.SQL(template).format(sql.Identifier(table))


def slot(server: PostgresServer, name: str) -> tuple[Any, ...] | None:
    """(active, restart_lsn is kept) of a replication slot on `server`."""
    with psycopg.connect(server.dsn) as conn:
        return conn.execute(
            "SELECT active, restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = %s",
            (name,),
        ).fetchone()


def replica_state(pool: DatabasePool) -> str:
    return pool.read_stats().replicas[0].state


def test_reads_go_to_the_replica_and_writes_to_the_primary(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn])
    assert replica_state(pool) == UP  # checked once before the pool is handed out
    assert [on_replica(pool) for _ in range(5)] == [True] * 5
    assert pool.execute(IN_RECOVERY) == [(False,)]  # the default path is the primary
    with pool.connection(readonly=True) as conn:
        assert conn.execute(IN_RECOVERY).fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE nope (v int)")
    stats = pool.read_stats()
    assert stats.replica_reads == 6
    assert stats.primary_reads == {}
    assert stats.replicas[0].reads == 6
    assert stats.replicas[0].lag_bytes is not None


def test_without_replicas_reads_go_to_the_primary_read_only(open_pool: OpenPool) -> None:
    pool = open_pool([])
    assert not on_replica(pool)
    ro = pytest.raises(psycopg.errors.ReadOnlySqlTransaction)
    with pool.connection(readonly=True) as conn, ro:  # as strict as a replica would be
        conn.execute("CREATE TABLE nope (v int)")
    with pool.connection() as conn:  # and the flag does not stick to the connection
        assert conn.read_only is None
        conn.execute("CREATE TEMP TABLE fine (v int)")
    assert pool.read_stats().primary_reads == {"no_replica": 2}
    assert pool.read_stats().fallbacks == 0


def test_a_replica_down_at_start_does_not_stop_the_pool_and_reads_use_the_primary(
    open_pool: OpenPool,
) -> None:
    nothing = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"
    pool = open_pool([nothing])
    assert replica_state(pool) == DOWN
    assert not on_replica(pool)
    assert pool.read_stats().primary_reads == {DOWN: 1}
    assert "pw" not in repr(pool.read_stats())


@pytest.mark.slow
def test_a_killed_replica_under_read_load_costs_callers_no_error_and_comes_back_by_itself(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn], interval=0.1)
    stop = threading.Event()
    reads: list[tuple[float, bool]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                reads.append((time.monotonic(), on_replica(pool)))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        eventually(lambda: sum(1 for _, r in reads if r) > 50, what="reads on the replica")
        killed = time.monotonic()
        standby.kill9()
        eventually(lambda: any(t > killed + 0.5 for t, _ in reads), what="reads after the kill")
        after = [(t, r) for t, r in reads if t > killed]
        moved = min(t for t, r in after if not r) - killed
        print(f"\nreads moved to the primary {moved * 1000:.1f} ms after the SIGKILL")
        assert replica_state(pool) == DOWN
        late = [r for t, r in reads if t > killed + 0.3]
        assert late and not any(late)  # everything after the kill settled is on the primary
        standby.start()  # crash recovery, then it streams again
        eventually(lambda: any(r for t, r in reads[-20:]), what="reads back on the replica")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    stats = pool.read_stats()
    assert stats.primary_reads.get(DOWN, 0) > 0
    assert replica_state(pool) == UP


def test_a_lagging_replica_is_skipped_and_used_again_after_replay_resumes(
    replication_primary: PostgresServer, standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn], max_lag_bytes=256 * 1024)
    assert on_replica(pool)
    standby.pause_replay()
    table = f"lag_{uuid.uuid4().hex[:8]}"
    try:
        # Written behind the pool's back: only the lag limit can keep reads off the replica.
        with psycopg.connect(replication_primary.dsn, autocommit=True) as conn:
            conn.execute(q("CREATE TABLE {} AS SELECT generate_series(1, 50000) AS v", table))
        eventually(lambda: replica_state(pool) == LAGGING, what="replica marked lagging")
        lag = pool.read_stats().replicas[0].lag_bytes
        assert lag is not None and lag > 256 * 1024
        assert not on_replica(pool)
        assert pool.read_stats().primary_reads[LAGGING] >= 1
    finally:
        standby.resume_replay()
    eventually(lambda: on_replica(pool), what="reads back on the replica after resume")
    assert replica_state(pool) == UP
    assert pool.execute(q("SELECT count(*) FROM {}", table), readonly=True) == [(50000,)]


def test_read_your_writes_holds_while_replay_is_paused(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn])
    table = f"ryw_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} (v int)", table))
    standby.wait_caught_up()
    standby.pause_replay()
    try:
        pool.execute(q("INSERT INTO {} VALUES (1)", table))
        # A tiny write: the replica is well within the lag limit, yet behind this write.
        assert replica_state(pool) == UP
        rows = pool.execute(q("SELECT count(*), pg_is_in_recovery() FROM {}", table), readonly=True)
        assert rows == [(1, False)]
        assert pool.read_stats().primary_reads == {"behind_write": 1}
    finally:
        standby.resume_replay()
    eventually(lambda: on_replica(pool), what="reads back on the replica once it replayed")
    assert pool.execute(q("SELECT count(*) FROM {}", table), readonly=True) == [(1,)]


class Boom(Exception):
    """Raised by a block after its write committed."""


def commit_then_raise(pool: DatabasePool, statement: sql.Composed, how: str) -> None:
    """A write block that commits (`conn.commit()` or autocommit), then raises."""
    with pytest.raises(Boom), pool.connection() as conn:
        conn.autocommit = how == "autocommit"
        try:
            conn.execute(statement)
            if how == "commit":
                conn.commit()
            raise Boom
        finally:
            conn.autocommit = False


@pytest.mark.parametrize("how", ["commit", "autocommit", "read inside the block"])
def test_a_write_committed_before_its_block_raises_is_seen_by_the_next_read(
    standby: StandbyServer, open_pool: OpenPool, how: str
) -> None:
    pool = open_pool([standby.dsn])
    table = f"raise_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} (v int)", table))
    standby.wait_caught_up()
    assert on_replica(pool)  # the replica's known position now covers the pool's writes
    standby.pause_replay()
    read = q("SELECT count(*), pg_is_in_recovery() FROM {}", table)
    try:
        if how == "read inside the block":  # committed, the block still open
            with pool.connection() as conn:
                conn.execute(q("INSERT INTO {} VALUES (1)", table))
                conn.commit()
                assert pool.execute(read, readonly=True) == [(1, False)]
        else:
            commit_then_raise(pool, q("INSERT INTO {} VALUES (1)", table), how)
            assert pool.execute(read, readonly=True) == [(1, False)]
        assert pool.read_stats().primary_reads == {"behind_write": 1}
    finally:
        standby.resume_replay()
    eventually(lambda: on_replica(pool), what="reads back on the replica once it replayed")


def test_a_write_through_a_pool_with_replicas_sends_only_its_own_statement(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    """Read-your-writes costs a write nothing: its position is taken when a read needs it."""
    pool = open_pool([standby.dsn])
    table = f"cost_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} (v int)", table))
    before = pool.query_durations().count
    for v in range(3):
        pool.execute(q("INSERT INTO {} VALUES (%s)", table), (v,))
    with pool.connection() as conn:
        conn.execute(q("INSERT INTO {} VALUES (3)", table))
        conn.commit()
    assert pool.query_durations().count - before == 4


def test_a_read_after_writes_goes_to_the_replica_while_every_primary_connection_is_busy(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    """The write mark is taken over a connection of its own, not one of the pool's."""
    pool = open_pool([standby.dsn])
    table = f"busy_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} AS SELECT 1 AS v", table))
    standby.wait_caught_up()
    held, release = threading.Event(), threading.Event()

    def hold_every_connection() -> None:
        with contextlib.ExitStack() as stack:
            for _ in range(pool.max_connections):
                stack.enter_context(pool.connection())
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_every_connection)
    holder.start()
    served: list[bool] = []
    try:
        assert held.wait(30)
        for _ in range(10):  # a read that finds the replica behind goes to the busy primary
            try:
                served.append(pool.execute(IN_RECOVERY, timeout=0.3, readonly=True)[0][0])
                break
            except PoolTimeout:
                time.sleep(0.1)
    finally:
        release.set()
        holder.join(30)
    assert served == [True]
    assert pool.read_stats().write_mark is not None


def test_a_single_statement_read_on_a_replica_opens_no_transaction_around_it(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    """No BEGIN and COMMIT round trips: the statement is its own transaction, as it would be
    inside one. `run` and `connection` blocks keep one transaction for all their statements."""
    pool = open_pool([standby.dsn])
    alone = "SELECT now() = statement_timestamp(), pg_is_in_recovery()"
    assert pool.execute(alone, readonly=True) == [(True, True)]
    assert pool.run(lambda conn: conn.execute(alone).fetchall(), readonly=True) == [(False, True)]
    with pool.connection(readonly=True) as conn:  # and the connection went back as it was
        assert not conn.autocommit
    assert pool.read_stats().replica_reads == 3


@pytest.mark.req("PT-INFRA-02.1")
def test_every_read_sees_the_latest_write_through_the_pool_whatever_replay_does(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn])
    table = f"prop_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} (id int PRIMARY KEY, v int)", table))
    pool.execute(q("INSERT INTO {} VALUES (1, 0)", table))
    read = q("SELECT v, pg_is_in_recovery() FROM {}", table)
    state = {"value": 0, "paused": False}
    seen = {"replica": 0, "primary": 0}

    ops = st.lists(
        st.sampled_from(
            [
                *("write", "commit_raise", "autocommit_raise"),
                *("read", "read", "pause", "resume", "settle"),
            ]
        ),
        min_size=5,
        max_size=25,
    )

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops)
    # Always included, so both paths are taken whatever hypothesis draws.
    @example(["settle", "read", "pause", "write", "read", "resume", "settle", "read"])
    # Blocks that commit, then raise: their writes count as much as any other.
    @example(["settle", "read", "pause", "commit_raise", "read", "autocommit_raise", "read"])
    def sequence(steps: list[str]) -> None:
        for step in steps:
            update = q("UPDATE {} SET v = v + 1 WHERE id = 1", table)
            if step == "write":
                state["value"] += 1
                pool.execute(update)
            elif step in ("commit_raise", "autocommit_raise"):
                state["value"] += 1
                commit_then_raise(pool, update, step.removesuffix("_raise"))
            elif step == "read":
                rows = pool.execute(read, readonly=True)
                value, replica = rows[0]
                assert value == state["value"], f"stale read: {value} < {state['value']}"
                seen["replica" if replica else "primary"] += 1
            elif step == "pause" and not state["paused"]:
                standby.pause_replay()
                state["paused"] = True
            elif step == "resume" and state["paused"]:
                standby.resume_replay()
                state["paused"] = False
            elif step == "settle" and not state["paused"]:
                standby.wait_caught_up()

    try:
        sequence()
    finally:
        standby.resume_replay()
    # Both paths were exercised: the property is not vacuous.
    assert seen["replica"] > 0 and seen["primary"] > 0, seen


def test_a_promoted_replica_is_skipped(standby: StandbyServer, open_pool: OpenPool) -> None:
    pool = open_pool([standby.dsn])
    assert on_replica(pool)
    standby.promote()
    eventually(lambda: replica_state(pool) == NOT_STANDBY, what="promoted replica skipped")
    assert [on_replica(pool) for _ in range(3)] == [False] * 3
    assert pool.read_stats().primary_reads[NOT_STANDBY] == 3


def test_a_replica_address_that_points_at_another_primary_is_skipped(
    replication_primary: PostgresServer, fresh_postgres: PostgresServer, open_pool: OpenPool
) -> None:
    pool = open_pool([fresh_postgres.dsn])
    assert replica_state(pool) == NOT_STANDBY
    rows = pool.execute("SELECT inet_server_port(), pg_is_in_recovery()", readonly=True)
    assert rows == [(replication_primary.port, False)]


@pytest.mark.slow
def test_rebuilding_a_failed_replica_by_the_runbook_puts_it_back_in_service(
    replication_primary: PostgresServer, standby: StandbyServer, open_pool: OpenPool
) -> None:
    """docs/runbook-replica.md, step by step."""
    pool = open_pool([standby.dsn])
    table = f"rebuild_{uuid.uuid4().hex[:8]}"
    pool.execute(q("CREATE TABLE {} AS SELECT 1 AS v", table))
    # The failure: the replica crashes and its data directory is lost.
    standby.kill9()
    standby.wipe()
    eventually(lambda: replica_state(pool) == DOWN, what="replica marked down")
    pool.execute(q("INSERT INTO {} VALUES (2)", table))  # the primary goes on; the slot keeps WAL
    assert slot(replication_primary, standby.slot) == (False, True)
    # Steps 2-4: base backup again through the same slot (no -C), start it.
    standby.basebackup(create_slot=False)
    standby.start()
    assert standby.in_recovery()
    eventually(
        lambda: (
            replication_primary.psql(
                "SELECT state FROM pg_stat_replication WHERE application_name = 'walreceiver'"
            ).strip()
            == "streaming"
        ),
        what="streaming again",
    )
    # Step 5: the pool uses it again by itself, and it has everything.
    eventually(lambda: on_replica(pool), what="reads back on the rebuilt replica")
    assert pool.execute(q("SELECT count(*) FROM {}", table), readonly=True) == [(2,)]
    assert slot(replication_primary, standby.slot) == (True, True)


def test_read_stats_name_every_state_and_reason_the_metrics_use(
    standby: StandbyServer, open_pool: OpenPool
) -> None:
    pool = open_pool([standby.dsn])
    on_replica(pool)
    pool.execute("SELECT 1")  # a write checkout counts; the next read takes the mark
    on_replica(pool)
    stats = pool.read_stats()
    assert stats.write_mark is not None and "/" in stats.write_mark
    (replica,) = stats.replicas
    assert replica.name == f"127.0.0.1:{standby.port}"
    assert replica.state in STATES
    assert set(stats.primary_reads) <= set(PRIMARY_REASONS)
    assert standby.password not in repr(stats)
