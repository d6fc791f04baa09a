"""The heartbeat a restore drill measures its RPO by: one row the sidecar rewrites every few
seconds on the primary.

`runtime_pitr_heartbeat (id smallint PRIMARY KEY, beat_at timestamptz)` in the `postgres`
database holds a single row (id 1) whose `beat_at` is the primary's `clock_timestamp()` at
the write. A restored copy holds the last beat committed before its recovery target, so
"target minus `beat_at`" is how much committed time the copy lacks (docs/runtime-pitr-drill.md).
A table rather than `pg_logical_emit_message`: the copy answers with a plain SELECT.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import psycopg

from runtime.settings import PitrSettings

log = logging.getLogger("runtime.pitr.heartbeat")

TABLE = "runtime_pitr_heartbeat"
_CREATE = (
    "CREATE TABLE IF NOT EXISTS runtime_pitr_heartbeat (id smallint PRIMARY KEY, "
    "beat_at timestamptz)"
)
_BEAT = (
    "INSERT INTO runtime_pitr_heartbeat VALUES (1, clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"
)


def connect(
    settings: PitrSettings, port: int | None = None, dbname: str = "postgres"
) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit socket connection (the primary's port unless given)."""
    return psycopg.connect(
        host=str(settings.pg_socket),
        port=port or settings.pg_port,
        user=settings.pg_user,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


def beat(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    conn.execute(_CREATE)
    conn.execute(_BEAT)


def last_beat(conn: psycopg.Connection[tuple[Any, ...]]) -> datetime | None:
    """The heartbeat a (restored) server holds; None when it has none."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() in (None, (None,)):
        return None
    row = conn.execute("SELECT beat_at FROM runtime_pitr_heartbeat WHERE id = 1").fetchone()
    value = row[0] if row else None
    return value if isinstance(value, datetime) else None


class Heartbeat:
    """Writes the heartbeat every `interval` seconds on a thread, reconnecting after errors
    (the primary restarting must not end the heartbeat)."""

    def __init__(self, settings: PitrSettings, interval: float | None = None) -> None:
        self.settings = settings
        self.interval = float(interval or settings.heartbeat_interval_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pitr-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.settings)
                beat(conn)
            except psycopg.Error as exc:
                log.warning("heartbeat not written: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
