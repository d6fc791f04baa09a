"""The one-at-a-time guarantee: a session-level PostgreSQL advisory lock on the primary.

The lock is held by a connection of its own for the whole run of the migration command, so
it is released when the runner ends however it ends (exit, kill, lost connection: the server
drops a session's advisory locks with the session). Advisory locks are scoped to the
database, so one key serves every database: runners of different databases never wait for
each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

# The key: the bytes of "migrate!" as one bigint (0x6D69677261746521). pg_locks shows a bigint
# key as classid = its high 32 bits, objid = its low 32 bits, objsubid = 1.
LOCK_KEY = int.from_bytes(b"migrate!", "big")
_CLASSID, _OBJID = LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF

# The lock's session idles while the command runs: no server-side idle timeout may end it.
LOCK_SESSION_OPTIONS = "-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0"

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Holder:
    """The session holding the migration lock, as pg_stat_activity shows it."""

    pid: int
    application_name: str
    since: datetime | None


def holder(conn: Connection) -> Holder | None:
    """Who holds the migration lock in `conn`'s database, or None."""
    row = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, ''), a.backend_start"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.classid = %s AND l.objid = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (_CLASSID, _OBJID),
    ).fetchone()
    return Holder(int(row[0]), str(row[1]), row[2]) if row else None


def try_lock(conn: Connection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def acquire(conn: Connection, wait_seconds: float, poll_seconds: float = 0.2) -> Holder | None:
    """Take the lock on `conn` (autocommit), polling for up to `wait_seconds`. Returns None
    once held, else the session that still held it when the wait ran out."""
    deadline = time.monotonic() + wait_seconds
    while not try_lock(conn):
        if time.monotonic() >= deadline:
            return holder(conn) or Holder(0, "", None)
        time.sleep(poll_seconds)
    return None
