"""The PostgreSQL connection pool applications use: psycopg_pool, plus what it lacks.

psycopg_pool already queues waiters with a timeout, reconnects with backoff, recycles idle
and old connections and keeps statistics; this module adds only:

- a first connection retried with exponential backoff, then `DatabaseUnavailable` naming host
  and port (never the password);
- typed errors instead of driver ones (`PoolTimeout`, `DatabaseUnavailable`,
  `StatementTimeout`), so callers can tell "busy" from "down" from "too slow";
- fast healing after a server restart. Measured (docs/runtime-pool-cache.md): the pool's
  `check=` callback makes the first request after a restart wait the whole pool timeout, while "on a
  connection error, `pool.check()` and retry once" heals in 0.02 s. While the server is down,
  callers fail fast and one background prober watches for it to come back;
- `stats()` as the specification's `ConnectionPool` snapshot;
- `query_durations()`: every statement's duration (each cursor `execute`, from sending it to
  having its whole result, failures included) in a histogram, the latency SLO's SLI
  (docs/slo.md). Per statement rather than per checkout: a checkout also holds the
  application's own work between statements, and its wait for a free connection, which
  the pool series and `PoolTimeout` already show;
- read routing: `connection(readonly=True)` / `run(..., readonly=True)` /
  `execute(..., readonly=True)` go to a streaming replica when one is healthy and has
  replayed the pool's last completed write, else to the primary (runtime/replicas.py,
  docs/runtime-read-routing.md). Writes only count; the WAL position that marks them is
  taken when a read needs it, so neither writes nor reads pay for the other's bookkeeping.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from runtime.contracts import ConnectionPool
from runtime.errors import DatabaseUnavailable, PoolTimeout, StatementTimeout, redact
from runtime.histogram import QUERY_BUCKETS, DurationHistogram, HistogramSnapshot
from runtime.replicas import ReadStats, Replica, ReplicaSet, format_lsn
from runtime.settings import DatabaseSettings, PoolSettings, Settings
from runtime.statelog import StateLog
from runtime.telemetry.spans import would_record

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]

# SQLSTATEs that mean "this connection (or the server) is gone", as opposed to an error in
# the statement: class 08 (connection exception) and 57P01-57P03 (shutdown, crash, starting).
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


_TRACER = trace.get_tracer("runtime.database")


def _statement(query: Any) -> str:
    """The SQL text for a span (never the parameters, which may hold personal data)."""
    return query if isinstance(query, str) else type(query).__name__


def is_connection_failure(exc: BaseException) -> bool:
    """True when `exc` says the connection or the server is gone, not that the SQL failed."""
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.TooManyRequests):
        return False
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        state = getattr(exc, "sqlstate", None)
        return state is None or state.startswith(_CONNECTION_LOST)
    return False


def timed_cursor(histogram: DurationHistogram) -> type[psycopg.Cursor[Any]]:
    """A cursor class that adds each `execute`'s duration to `histogram` (the connection's
    `cursor_factory`: `conn.execute()` and every cursor of the connection use it)."""

    class TimedCursor(psycopg.Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> TimedCursor:
            began = time.perf_counter()
            try:
                return super().execute(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - began)

        def executemany(self, *args: Any, **kwargs: Any) -> None:
            began = time.perf_counter()
            try:
                super().executemany(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - began)

    return TimedCursor


class _ConnectionLost(DatabaseUnavailable):
    """A caller's connection broke mid-use: `run()` may retry once on a checked pool."""


class DatabasePool:
    """A bounded, self-healing pool; use `connection()` or `run()`, read `stats()`."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Connection],
        database: DatabaseSettings,
        settings: PoolSettings,
        *,
        probe_interval: float = 0.1,
        replicas: ReplicaSet | None = None,
        durations: DurationHistogram | None = None,
    ) -> None:
        self._pool = pool
        self._durations = durations or DurationHistogram(QUERY_BUCKETS)
        self._replicas = replicas
        # Read-your-writes (see _mark): write checkouts completed, how many of them _write_lsn
        # covers, and each thread's open write checkouts.
        self._writes = 0
        self._marked = 0
        self._write_lsn = 0
        self._open_writes = threading.local()
        self._mark_lock = threading.Lock()  # one position query at a time serves every reader
        self._primary_reads: Counter[str] = Counter()
        self._database = database
        self._settings = settings
        self._probe_interval = probe_interval
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._active = 0
        self._errors_seen = 0
        self._down_since: float | None = None
        self._closed = threading.Event()
        self._healer: threading.Thread | None = None
        self.state = StateLog("database.pool", "healthy")
        self.failures = 0  # connection failures seen by callers

    # -- public ----------------------------------------------------------------------------
    @property
    def max_connections(self) -> int:
        return self._settings.max_connections

    @property
    def healthy(self) -> bool:
        return self._down_since is None

    def connection(
        self, timeout: float | None = None, *, readonly: bool = False
    ) -> AbstractContextManager[Connection]:
        """A connection for the duration of the block (committed on success, rolled back on
        error). Raises `PoolTimeout` when every connection stays busy for `timeout`
        (default DB_POOL_TIMEOUT), `DatabaseUnavailable` when the server is down, and
        `StatementTimeout` when a statement outlives DB_STATEMENT_TIMEOUT_MS.

        `readonly=True`: a read-only transaction on a healthy replica that has replayed this
        pool's completed writes, else on the primary (never an error for a replica's sake).
        Without it the block is a write: it counts for read-your-writes when it ends, even
        by raising after committing.

        Inside a recorded trace the block is a `db.pool.connection` span."""
        return self._checkout(timeout, readonly, one_statement=False)

    def _checkout(
        self, timeout: float | None, readonly: bool, *, one_statement: bool
    ) -> AbstractContextManager[Connection]:
        if not would_record():
            return self._connection(timeout, readonly, one_statement)
        return self._traced_connection(timeout, readonly, one_statement)

    @contextmanager
    def _traced_connection(
        self, timeout: float | None, readonly: bool, one_statement: bool
    ) -> Iterator[Connection]:
        attributes: dict[str, AttributeValue] = {"db.system": "postgresql", "db.readonly": readonly}
        with (
            _TRACER.start_as_current_span("db.pool.connection", attributes=attributes),
            self._connection(timeout, readonly, one_statement) as conn,
        ):
            yield conn

    @contextmanager
    def _connection(
        self, timeout: float | None, readonly: bool, one_statement: bool = False
    ) -> Iterator[Connection]:
        if readonly:
            lease = self._replicas.acquire(self._mark) if self._replicas else "no_replica"
            if not isinstance(lease, str):
                with self._on_replica(*lease, one_statement) as conn:
                    yield conn
                return
            with self._lock:
                self._primary_reads[lease] += 1
        with self._on_primary(timeout, readonly) as conn:
            yield conn

    @contextmanager
    def _on_replica(
        self, replica: Replica, conn: Connection, one_statement: bool
    ) -> Iterator[Connection]:
        try:
            # execute(): one statement is its own transaction on a standby, which is read-only
            # anyway, so BEGIN and COMMIT would be two round trips for nothing.
            if one_statement:
                conn.autocommit = True
            with conn:  # commit / roll back, as psycopg_pool.connection() does
                yield conn
        except psycopg.errors.QueryCanceled:
            if self._settings.statement_timeout_ms <= 0:
                raise
            raise StatementTimeout(self._settings.statement_timeout_ms) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if not is_connection_failure(exc) or self._replicas is None:
                raise
            self._replicas.mark_failed(replica, exc)
            s = replica.settings
            raise _ConnectionLost(s.host, s.port, self._reason(exc)) from None
        finally:
            if one_statement:
                with suppress(psycopg.Error):  # a broken connection: the pool discards it
                    conn.autocommit = False
            replica.pool.putconn(conn)

    @contextmanager
    def _on_primary(self, timeout: float | None, readonly: bool) -> Iterator[Connection]:
        """A read-only transaction, or a write: counted for read-your-writes once it has
        ended, however it ended (it may have committed before raising)."""
        self._fail_fast()
        wait = self._settings.timeout_seconds if timeout is None else timeout
        counted = not readonly and self._replicas is not None
        handed_out = False
        try:
            with self._pool.connection(wait) as conn:
                with self._lock:
                    self._active += 1
                try:
                    if readonly:
                        conn.read_only = True  # fails as a replica would if it writes
                        try:
                            with conn:
                                yield conn
                        finally:
                            if conn.info.transaction_status == TransactionStatus.IDLE:
                                conn.read_only = None
                    elif counted:
                        handed_out = True
                        self._open_writes.n = getattr(self._open_writes, "n", 0) + 1
                        try:
                            yield conn
                        finally:
                            self._open_writes.n -= 1
                    else:
                        yield conn
                finally:
                    with self._lock:  # before the pool takes it back: active+available <= max
                        self._active -= 1
        except psycopg_pool.TooManyRequests:
            raise PoolTimeout(0.0, self.max_connections) from None
        except psycopg_pool.PoolClosed:
            raise self._unavailable("the pool is closed (close() was called)") from None
        except psycopg_pool.PoolTimeout:
            if self._down_since is None and self._new_connection_errors():
                # The pool failed to open connections lately: busy, or down?
                if self._probe():
                    raise PoolTimeout(wait, self.max_connections) from None
                self._mark_down("server not accepting connections")
            if self._down_since is not None:
                raise self._unavailable("no connection could be opened") from None
            raise PoolTimeout(wait, self.max_connections) from None
        except psycopg.errors.QueryCanceled:
            if self._settings.statement_timeout_ms <= 0:
                raise
            raise StatementTimeout(self._settings.statement_timeout_ms) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if not is_connection_failure(exc):
                raise
            self._on_connection_failure()
            raise _ConnectionLost(
                self._database.host, self._database.port, self._reason(exc)
            ) from None
        finally:
            if handed_out:  # after psycopg_pool's commit or rollback: whatever it wrote is in
                with self._lock:
                    self._writes += 1

    def run(
        self,
        work: Callable[[Connection], T],
        timeout: float | None = None,
        *,
        readonly: bool = False,
    ) -> T:
        """`work(conn)` in a transaction; after a lost connection the pool is checked and
        `work` retried once (so it must be safe to repeat: it was rolled back). With
        `readonly=True` a replica that fails mid-read is marked down and the retry goes to
        the primary (or another replica)."""
        return self._run(work, timeout, readonly, one_statement=False)

    def _run(
        self,
        work: Callable[[Connection], T],
        timeout: float | None,
        readonly: bool,
        *,
        one_statement: bool,
    ) -> T:
        try:
            with self._checkout(timeout, readonly, one_statement=one_statement) as conn:
                return work(conn)
        except _ConnectionLost:
            if self._down_since is not None:
                raise
        with self._checkout(timeout, readonly, one_statement=one_statement) as conn:
            return work(conn)

    def execute(
        self,
        query: Any,
        params: Any = None,
        timeout: float | None = None,
        *,
        readonly: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Run one statement with `run()`; the rows it returns (empty when it returns none).
        On a replica the statement runs in autocommit: its own transaction, no BEGIN/COMMIT."""

        def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description is not None else []

        if not would_record():
            return self._run(work, timeout, readonly, one_statement=True)
        attributes: dict[str, AttributeValue] = {
            "db.system": "postgresql",
            "db.statement": _statement(query),
        }
        with _TRACER.start_as_current_span("db.query", attributes=attributes):
            return self._run(work, timeout, readonly, one_statement=True)

    def read_stats(self) -> ReadStats:
        """Reads by target (replica, or primary by reason) and each replica's state."""
        with self._lock:
            primary = dict(self._primary_reads)
        replicas = self._replicas.statuses() if self._replicas else ()
        return ReadStats(
            replica_reads=sum(r.reads for r in replicas),
            primary_reads=primary,
            replicas=replicas,
            write_mark=format_lsn(self._write_lsn) if self._write_lsn else None,
        )

    def stats(self) -> ConnectionPool:
        """The specification's snapshot; its invariants are checked on construction."""
        with self._lock:
            active = self._active
        available = self._pool.get_stats().get("pool_available", 0)
        return ConnectionPool(
            max_connections=self.max_connections,
            active_connections=active,
            available_connections=available,
            connection_timeout=max(1, math.ceil(self._settings.timeout_seconds)),
        )

    def query_durations(self) -> HistogramSnapshot:
        """Every statement's duration so far, on the primary and the replicas alike."""
        return self._durations.snapshot()

    def driver_stats(self) -> dict[str, int]:
        """psycopg_pool's own counters (requests, waits, errors...), for metrics."""
        return self._pool.get_stats()

    def close(self) -> None:
        self._closed.set()
        if self._replicas is not None:
            self._replicas.close()
        self._pool.close()
        if self._healer is not None:
            self._healer.join(5)

    def __enter__(self) -> DatabasePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        d = self._database
        return f"DatabasePool({d.host}:{d.port}/{d.name}, max={self.max_connections})"

    # -- read-your-writes ------------------------------------------------------------------
    def _mark(self) -> int | None:
        """A primary WAL position at or past the commit of every write checkout that has ended
        (committed in the block, in autocommit or on the way out, raised or not) and of every
        commit made so far in this thread's open write blocks: a replica serves a read only
        once it has replayed this far. None: not known now (the read goes to the primary).

        Taken lazily: a write only counts itself (no query); the first replica-routable read
        after writes asks the primary for its insert position, one query. That position is
        read after those writes' commits returned, so it is at or past each of them."""
        in_block = getattr(self._open_writes, "n", 0) > 0
        with self._lock:
            if self._writes == self._marked and not in_block:
                return self._write_lsn
        if self._down_since is not None or self._replicas is None:
            return None
        with self._mark_lock:
            with self._lock:  # a query made while we waited may cover our writes already
                writes = self._writes
                if writes == self._marked and not in_block:
                    return self._write_lsn
            position = self._replicas.primary_position()  # sent after `writes` ended
            if position is None:
                return None
            with self._lock:
                self._write_lsn = max(self._write_lsn, position)
                self._marked = max(self._marked, writes)
                return self._write_lsn

    # -- failure handling ------------------------------------------------------------------
    def _new_connection_errors(self) -> bool:
        """Did the pool fail to connect since we last looked? (Read only on a timeout, to
        keep `get_stats()` off the checkout path.)"""
        errors = self._pool.get_stats().get("connections_errors", 0)
        with self._lock:
            seen, self._errors_seen = self._errors_seen, errors
        return errors > seen

    def _reason(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return redact(text, self._database.secrets)

    def _unavailable(self, reason: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(self._database.host, self._database.port, reason)

    def _fail_fast(self) -> None:
        if self._down_since is not None:
            raise self._unavailable("the server is down; reconnecting in the background")

    def _on_connection_failure(self) -> None:
        """A caller lost its connection: drop broken idle ones, then see if the server lives."""
        with self._lock:
            self.failures += 1
        self._pool.check()
        if not self._probe():
            self._mark_down("server not accepting connections")

    def _probe(self) -> bool:
        """One real login (not TCP: a starting or stopping server accepts TCP but no logins)."""
        with self._probe_lock:
            try:
                conn = psycopg.connect(
                    self._database.dsn.reveal(),
                    connect_timeout=max(1, math.ceil(min(self._settings.timeout_seconds, 5))),
                    application_name="runtime-pool-probe",
                )
            except psycopg.Error:
                return False
            conn.close()
            return True

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            if self._down_since is not None or self._closed.is_set():
                return
            self._down_since = time.monotonic()
            self._healer = threading.Thread(target=self._heal, name="db-pool-healer", daemon=True)
            self._healer.start()
        d = self._database
        self.state.transition(
            "reconnecting", logging.WARNING, host=d.host, port=d.port, reason=reason
        )

    def _heal(self) -> None:
        while not self._closed.wait(self._probe_interval):
            if self._probe():
                self._pool.check()  # drop connections broken by the restart, grow again
                with self._lock:
                    since, self._down_since = self._down_since, None
                downtime = time.monotonic() - since if since is not None else 0.0
                self.state.transition("healthy", down_seconds=round(downtime, 3))
                return

    def _reconnect_failed(self, pool: psycopg_pool.ConnectionPool[Any]) -> None:
        """psycopg_pool gave up re-opening a slot: the server is down even without traffic."""
        self._mark_down("the pool could not reopen a connection")


class DatabaseManager:
    """Builds the application's pool from settings (REQ-INFRA-02's pool half)."""

    def __init__(
        self,
        database: DatabaseSettings | Settings,
        pool: PoolSettings | None = None,
        *,
        connect_attempts: int = 3,
        backoff_seconds: float = 0.2,
        probe_interval: float = 0.1,
        name: str = "runtime",
    ) -> None:
        if isinstance(database, Settings):
            pool = pool or database.pool
            database = database.need_database()
        if connect_attempts < 1:
            raise ValueError(f"connect_attempts: got {connect_attempts!r}; allowed: >= 1")
        if backoff_seconds < 0:
            raise ValueError(f"backoff_seconds: got {backoff_seconds!r}; allowed: >= 0")
        if probe_interval <= 0:
            raise ValueError(f"probe_interval: got {probe_interval!r}; allowed: > 0")
        self.database = database
        self.pool_settings = pool or PoolSettings()
        self.connect_attempts = connect_attempts
        self.backoff_seconds = backoff_seconds
        self.probe_interval = probe_interval
        self.name = name

    def __repr__(self) -> str:
        d = self.database
        return f"DatabaseManager({d.host}:{d.port}/{d.name}, {self.pool_settings})"

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "application_name": self.name,
            "connect_timeout": max(1, math.ceil(min(self.pool_settings.timeout_seconds, 10))),
        }
        if self.pool_settings.statement_timeout_ms > 0:
            kwargs["options"] = f"-c statement_timeout={self.pool_settings.statement_timeout_ms}"
        return kwargs

    def _first_connection(self) -> None:
        """Retry the first login with exponential backoff; then fail naming host and port."""
        reason = ""
        for attempt in range(self.connect_attempts):
            if attempt:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                psycopg.connect(self.database.dsn.reveal(), **self._connect_kwargs()).close()
                return
            except psycopg.Error as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise DatabaseUnavailable(
            self.database.host,
            self.database.port,
            redact(reason, self.database.secrets),
            attempts=self.connect_attempts,
        ) from None

    def create_connection_pool(self) -> DatabasePool:
        """Open the pool (DB_POOL_SIZE kept open, up to DB_POOL_SIZE + DB_MAX_OVERFLOW)."""
        self._first_connection()
        s = self.pool_settings
        handle: DatabasePool | None = None
        durations = DurationHistogram(QUERY_BUCKETS)  # this pool's, primary and replicas
        kwargs = {**self._connect_kwargs(), "cursor_factory": timed_cursor(durations)}

        def reconnect_failed(pool: psycopg_pool.ConnectionPool[Any]) -> None:
            if handle is not None:
                handle._reconnect_failed(pool)

        pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            self.database.dsn.reveal(),
            kwargs=kwargs,
            min_size=s.size,
            max_size=s.max_connections,
            timeout=s.timeout_seconds,
            # Give up on a slot quickly while the server is down: new requests regrow the pool
            # at once when it is back, instead of waiting out a 1-2-4-8 s backoff.
            reconnect_timeout=max(0.25, self.probe_interval),
            reconnect_failed=reconnect_failed,
            name=self.name,
            open=False,
        )
        replicas = (
            ReplicaSet(
                self.database.replicas,
                self.database,
                s,
                kwargs,
                name=self.name,
            )
            if self.database.replicas
            else None
        )
        handle = DatabasePool(
            pool,
            self.database,
            s,
            probe_interval=self.probe_interval,
            replicas=replicas,
            durations=durations,
        )
        try:
            pool.open(wait=True, timeout=max(s.timeout_seconds, 5.0))
        except psycopg_pool.PoolTimeout:
            pool.close()
            if replicas is not None:
                replicas.close()
            raise DatabaseUnavailable(
                self.database.host, self.database.port, "the pool could not open its connections"
            ) from None
        if replicas is not None:
            replicas.start()  # a replica that is down is not an error: reads use the primary
        return handle
