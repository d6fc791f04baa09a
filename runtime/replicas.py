"""Read routing to streaming replicas: which replica may serve a read, and how each is doing.

`DatabasePool.connection(readonly=True)` asks `ReplicaSet.acquire(mark)` for a connection.
A replica serves a read only when all of these hold, otherwise the read goes to the primary
(no error reaches the caller):

- its last health check found it up: reachable, `pg_is_in_recovery()` true (a promoted or
  wrong server is skipped) and no more than `max_replica_lag_bytes` behind the primary's WAL
  (`pg_current_wal_insert_lsn()` on the primary minus `pg_last_wal_replay_lsn()` on the
  replica: exact, unlike `pg_stat_replication.replay_lag`, which stays stale while replay is
  paused, or `now() - pg_last_xact_replay_timestamp()`, which grows while the primary idles);
- read-your-writes: it has replayed the pool's write mark (a primary WAL insert position
  taken after the pool's last completed write, by `primary_position()` over a connection of
  its own; `mark()` is asked only when some replica is up, None meaning "not known": the
  read goes to the primary). The replay position seen last (by the health check or a read)
  is kept per replica: replay only moves forward, so a known position at or past the mark
  proves the replica has the write. Only when the mark is past it is the chosen connection
  asked again (one query);
- the connection handed out is alive: a zero-timeout poll of its socket (a server killed
  since closed it, which makes it readable) sends it through that query too.

One background thread checks every replica each `replica_check_interval_seconds` over a
connection of its own, so a replica marked down (by the check, or at once by a failed read)
is used again by itself once healthy. Each replica has its own small psycopg_pool
(`min_size=0`: a replica that is down costs no reconnection attempts).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from runtime.errors import redact
from runtime.settings import DatabaseSettings, PoolSettings
from runtime.statelog import StateLog

Connection = psycopg.Connection[TupleRow]

# Replica states, and the reasons a read went to the primary (metric label values).
UP, LAGGING, DOWN, NOT_STANDBY = "up", "lagging", "down", "not_standby"
STATES = (UP, LAGGING, DOWN, NOT_STANDBY)
PRIMARY_REASONS = (
    "no_replica",  # none configured
    DOWN,  # every replica down
    LAGGING,  # the best replica lags more than max_replica_lag_bytes
    NOT_STANDBY,  # the best replica is not in recovery (promoted, or a wrong server)
    "behind_write",  # read-your-writes: no replica has replayed the pool's last write yet
    "busy",  # every connection of the replica stayed in use
    "failed",  # the replica's connection failed as the read began (it is now down)
)

_CHECK = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"
_WAL_PAGE = 8192


def parse_lsn(text: str | None) -> int | None:
    """'16/B374D848' -> an integer position in the WAL (None stays None)."""
    if text is None:
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def write_mark(insert_lsn: int) -> int:
    """The insert position as a record *end*: at the start of a WAL page PostgreSQL reports
    the position after the page header (24 bytes, 40 on a segment's first page), while a
    replayed record that filled the previous page ends at the boundary. No record ends at
    those offsets, so the boundary is the same point in the WAL."""
    offset = insert_lsn % _WAL_PAGE
    return insert_lsn - offset if offset in (24, 40) else insert_lsn


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as of its last check (`lag_bytes`/`replay_lsn` None: not known)."""

    name: str
    state: str
    lag_bytes: int | None
    replay_lsn: str | None
    reads: int
    failures: int


@dataclass(frozen=True)
class ReadStats:
    """Where reads went: to a replica, or to the primary by reason (see PRIMARY_REASONS)."""

    replica_reads: int
    primary_reads: Mapping[str, int]
    replicas: tuple[ReplicaStatus, ...] = ()
    write_mark: str | None = None
    fallbacks: int = field(init=False)

    def __post_init__(self) -> None:
        # Reads that a configured replica could not take (everything but "no_replica").
        fallbacks = sum(n for reason, n in self.primary_reads.items() if reason != "no_replica")
        object.__setattr__(self, "fallbacks", fallbacks)


def _looks_closed(conn: Connection) -> bool:
    """True when the server sent something on an idle connection: usually EOF (it died)."""
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:
        return True
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


class Replica:
    """One standby: its pool, its last known state and replay position, its counters."""

    def __init__(self, settings: DatabaseSettings, pool: psycopg_pool.ConnectionPool[Any]):
        self.settings = settings
        self.pool = pool
        self.name = f"{settings.host}:{settings.port}"
        self.state = DOWN
        self.replay_lsn: int | None = None
        self.lag_bytes: int | None = None
        self.reads = 0
        self.failures = 0
        self.log = StateLog(f"database.replica.{self.name}", DOWN)
        self.checker: Connection | None = None  # the health check's own connection

    def status(self) -> ReplicaStatus:
        lsn = self.replay_lsn
        return ReplicaStatus(
            name=self.name,
            state=self.state,
            lag_bytes=self.lag_bytes,
            replay_lsn=format_lsn(lsn) if lsn is not None else None,
            reads=self.reads,
            failures=self.failures,
        )


class ReplicaSet:
    """The replicas of one pool: routing decisions, health checks, statistics."""

    def __init__(
        self,
        replicas: Sequence[DatabaseSettings],
        primary: DatabaseSettings,
        settings: PoolSettings,
        connect_kwargs: Mapping[str, Any],
        *,
        name: str,
    ) -> None:
        self._primary = primary
        self._settings = settings
        self._kwargs = dict(connect_kwargs)
        self._connect_timeout = max(1, math.ceil(min(settings.timeout_seconds, 2)))
        # Wait this long for a replica connection, then read from the primary ("busy"). A
        # connection being opened meanwhile still joins the pool for the next reads; and a
        # read racing a replica's death waits no longer than this.
        self._checkout_timeout = min(settings.timeout_seconds, 0.1)
        self._lock = threading.Lock()
        self._round_robin = itertools.count()
        self._closed = threading.Event()
        self._primary_conn: Connection | None = None  # the health check's
        self._position_conn: Connection | None = None  # primary_position()'s
        self._position_lock = threading.Lock()
        self.replicas = [
            Replica(
                r,
                psycopg_pool.ConnectionPool(
                    r.dsn.reveal(),
                    kwargs={**self._kwargs, "application_name": f"{name}-read"},
                    min_size=0,
                    max_size=settings.size,
                    timeout=self._checkout_timeout,
                    reconnect_timeout=1.0,
                    name=f"{name}-replica-{i}",
                    open=True,
                ),
            )
            for i, r in enumerate(replicas)
        ]
        self._thread: threading.Thread | None = None

    # -- routing ---------------------------------------------------------------------------
    def acquire(self, mark: Callable[[], int | None]) -> tuple[Replica, Connection] | str:
        """A live replica connection that has replayed `mark()`, or why the primary reads."""
        candidates = [r for r in self.replicas if r.state == UP]
        if not candidates:
            return self._best_state()
        need = mark()
        if need is None:
            return "behind_write"
        start = next(self._round_robin)
        reason = "behind_write"
        for k in range(len(candidates)):
            replica = candidates[(start + k) % len(candidates)]
            try:
                conn = replica.pool.getconn(self._checkout_timeout)
            except psycopg_pool.PoolTimeout:
                reason = "busy"
                continue
            except psycopg_pool.PoolClosed:
                reason = DOWN
                continue
            if need > (replica.replay_lsn or 0) or _looks_closed(conn):
                verdict = self._verify(replica, conn, need)
                if verdict is not None:
                    replica.pool.putconn(conn)
                    reason = verdict
                    continue
            with self._lock:
                replica.reads += 1
            return replica, conn
        return reason

    def _verify(self, replica: Replica, conn: Connection, mark: int) -> str | None:
        """One query on the chosen connection: None if it may serve, else the reason."""
        try:
            conn.autocommit = True  # no transaction left open for the caller's block
            row = conn.execute(_CHECK).fetchone()
            conn.autocommit = False
        except psycopg.Error as exc:
            self._drop(conn)  # the pool discards a closed connection
            self.mark_failed(replica, exc)
            return "failed"
        in_recovery, lsn = row if row is not None else (False, None)
        if not in_recovery:
            self._set_state(replica, NOT_STANDBY, reason="pg_is_in_recovery() is false")
            return NOT_STANDBY
        replay = parse_lsn(lsn)
        replica.replay_lsn = replay
        return None if replay is not None and replay >= mark else "behind_write"

    def mark_failed(self, replica: Replica, exc: BaseException) -> None:
        """A read lost its replica connection: down at once; the health check revives it."""
        with self._lock:
            replica.failures += 1
        self._set_state(replica, DOWN, reason=self._reason(replica, exc))

    def primary_position(self) -> int | None:
        """The primary's WAL insert position now, as a write mark; None when it cannot be had.
        Over a connection of its own (one query, autocommit): a read never waits for a free
        connection of the application's pool, which writes may all be holding."""
        with self._position_lock:
            if self._closed.is_set():
                return None
            try:
                if self._position_conn is None or self._position_conn.closed:
                    self._position_conn = self._connect(self._primary, "write-mark")
                row = self._position_conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
            except psycopg.Error:
                self._drop(self._position_conn)  # the next call connects again
                self._position_conn = None
                return None
        return write_mark(parse_lsn(row[0]) or 0) if row is not None else None

    def _best_state(self) -> str:
        if not self.replicas:
            return "no_replica"
        states = {r.state for r in self.replicas}
        return next(s for s in (LAGGING, NOT_STANDBY, DOWN) if s in states)

    # -- health ----------------------------------------------------------------------------
    def start(self) -> None:
        """Check every replica once (so reads route at once), then keep checking."""
        self.check_all()
        self._thread = threading.Thread(target=self._run, name="db-replica-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self._settings.replica_check_interval_seconds):
            self.check_all()

    def check_all(self) -> None:
        primary_lsn = self._primary_lsn()
        for replica in self.replicas:
            if not self._closed.is_set():
                self._check(replica, primary_lsn)

    def _connect(self, settings: DatabaseSettings, purpose: str) -> Connection:
        return psycopg.connect(
            settings.dsn.reveal(),
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name=f"runtime-{purpose}",
        )

    def _primary_lsn(self) -> int | None:
        try:
            if self._primary_conn is None or self._primary_conn.closed:
                self._primary_conn = self._connect(self._primary, "replica-check")
            row = self._primary_conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        except psycopg.Error:
            self._drop(self._primary_conn)
            self._primary_conn = None
            return None  # primary unreachable: lag unknown; replicas keep serving reads
        return parse_lsn(row[0]) if row is not None else None

    def _check(self, replica: Replica, primary_lsn: int | None) -> None:
        try:
            if replica.checker is None or replica.checker.closed:
                replica.checker = self._connect(replica.settings, "replica-check")
            row = replica.checker.execute(_CHECK).fetchone()
        except psycopg.Error as exc:
            self._drop(replica.checker)
            replica.checker = None
            replica.lag_bytes = None
            self._set_state(replica, DOWN, reason=self._reason(replica, exc))
            return
        in_recovery, lsn = row if row is not None else (False, None)
        if not in_recovery:
            replica.lag_bytes = None
            self._set_state(replica, NOT_STANDBY, reason="pg_is_in_recovery() is false")
            return
        replay = parse_lsn(lsn)
        replica.replay_lsn = replay
        if primary_lsn is not None and replay is not None:
            replica.lag_bytes = max(0, write_mark(primary_lsn) - replay)
        if replica.state in (DOWN, NOT_STANDBY):
            replica.pool.check()  # drop connections broken while it was away
        lag = replica.lag_bytes
        if lag is not None and lag > self._settings.max_replica_lag_bytes:
            self._set_state(replica, LAGGING, lag_bytes=lag)
        else:
            self._set_state(replica, UP, lag_bytes=lag)

    def _set_state(self, replica: Replica, state: str, **fields: Any) -> None:
        level = logging.INFO if state == UP else logging.WARNING
        replica.state = state
        replica.log.transition(state, level, replica=replica.name, **fields)

    def _reason(self, replica: Replica, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return redact(text, replica.settings.secrets)

    @staticmethod
    def _drop(conn: Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    # -- stats and lifecycle ---------------------------------------------------------------
    def statuses(self) -> tuple[ReplicaStatus, ...]:
        with self._lock:
            return tuple(r.status() for r in self.replicas)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(10)
        for replica in self.replicas:
            replica.pool.close()
            self._drop(replica.checker)
        self._drop(self._primary_conn)
        with self._position_lock:
            self._drop(self._position_conn)
