"""Run a migration command under the platform's guarantees, and say where the schema stands.

`run_migration`: connect to the primary (never a replica: `database.dsn` only), take the
advisory lock (lock.py), create the restore point (restore_point.py), run the command with
the primary and the session bounds in its environment (session.py), pass its output and exit
code through, and release the lock by closing its session. The command is any program:
Alembic, Django's `migrate`, yoyo, psql with SQL files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO

import psycopg
from psycopg import sql

from runtime.errors import ConfigError, PlatformError, redact
from runtime.migrate import lock, restore_point
from runtime.migrate.lock import Holder
from runtime.migrate.restore_point import RestorePoint
from runtime.migrate.session import child_env
from runtime.settings import Settings, secrets_of

LOCK_APPLICATION_NAME = "runtime-migrate-lock"


class LockBusy(PlatformError):
    """Another runner held the migration lock for the whole wait: nothing was run."""


@dataclass(frozen=True)
class MigrationRun:
    """How one run went: the command's exit code and the restore point made before it."""

    returncode: int
    restore_point: RestorePoint | None
    timed_out: str | None  # "lock timeout" / "statement timeout" when the command's output said so


@dataclass(frozen=True)
class MigrationStatus:
    revisions: tuple[str, ...] | None  # None: no version table, the revision is unknown
    version_table: str
    holder: Holder | None  # the runner holding the lock now, if any


def _connect(settings: Settings) -> lock.Connection:
    database = settings.need_database()
    try:
        return psycopg.connect(
            database.dsn.reveal(),
            autocommit=True,
            application_name=LOCK_APPLICATION_NAME,
            options=lock.LOCK_SESSION_OPTIONS,
            connect_timeout=10,
        )
    except psycopg.Error as exc:
        raise PlatformError(
            f"cannot connect to the primary {database.host}:{database.port}: "
            + redact(str(exc).strip(), secrets_of(settings))
        ) from None


def _note(message: str) -> None:
    print(f"migrate: {message}", file=sys.stderr, flush=True)


_TIMEOUTS = ("lock timeout", "statement timeout")


def _relay(source: IO[bytes], seen: list[str]) -> None:
    """Copy the command's stderr to ours, noting whether a session bound cut it short."""
    sink = getattr(sys.stderr, "buffer", None)  # an application's stderr may be text-only
    for line in iter(source.readline, b""):
        if sink is not None:
            sink.write(line)
            sink.flush()
        else:
            sys.stderr.write(line.decode(errors="replace"))
        lowered = line.decode(errors="replace").lower()
        seen.extend(t for t in _TIMEOUTS if f"due to {t}" in lowered and t not in seen)


def _forward_sigterm(child: subprocess.Popen[bytes]) -> Callable[[], None]:
    """Pass SIGTERM on to the command (a stopped Job or container); returns what undoes it.
    Only the main thread may set a handler: elsewhere the caller's own handling stays."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)

    def undo() -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return undo


def _run_child(command: Sequence[str], env: Mapping[str, str]) -> tuple[int, str | None]:
    child = subprocess.Popen(list(command), env=dict(env), stderr=subprocess.PIPE)
    assert child.stderr is not None
    seen: list[str] = []
    relay = threading.Thread(target=_relay, args=(child.stderr, seen))
    relay.start()
    undo = _forward_sigterm(child)
    try:
        returncode = child.wait()
    finally:
        undo()
        relay.join()
    return returncode, (seen[0] if seen else None)


def check_command(command: Sequence[str]) -> None:
    """Refuse an empty or missing command before anything is locked or created."""
    if not command:
        raise ConfigError("COMMAND", "", "a command after `--`, e.g. alembic upgrade head")
    if shutil.which(command[0]) is None:
        raise ConfigError(
            "COMMAND", command[0], "an executable on PATH or a path to one (it was not found)"
        )


def run_migration(
    settings: Settings, command: Sequence[str], env: Mapping[str, str] | None = None
) -> MigrationRun:
    """Run `command` under the migration lock, after a restore point. Raises `LockBusy` when
    another runner kept the lock for `migrate.lock_wait_seconds`, `RestorePointError` when
    there is no way back; else returns the command's exit code (its output went through)."""
    check_command(command)
    database = settings.need_database()
    options = settings.migrate
    conn = _connect(settings)
    try:
        standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if standby and standby[0]:
            raise PlatformError(
                f"{database.host}:{database.port} is a standby (pg_is_in_recovery): migrations "
                "run on the primary; DATABASE_URL (database.dsn) must name it"
            )
        busy = lock.acquire(conn, options.lock_wait_seconds)
        if busy is not None:
            since = f", since {busy.since:%Y-%m-%d %H:%M:%S%z}" if busy.since else ""
            raise LockBusy(
                f"another migration holds the lock (server pid {busy.pid}{since}); waited "
                f"{options.lock_wait_seconds:g} s (MIGRATE_LOCK_WAIT) and ran nothing"
            )
        _note(f"lock held (advisory lock {lock.LOCK_KEY:#x} on database {database.name!r})")
        point = None
        if options.restore_point:
            point = restore_point.create(conn)
            if settings.pitr is not None:
                point = restore_point.wait_archived(conn, point, options.archive_wait_seconds)
            archived = {None: "archiving not checked: no pitr section", True: "archived"}
            _note(
                f"restore point {point.name} at {point.lsn} (WAL {point.wal_file}, "
                f"{archived.get(point.archived, 'not archived')}); to return to it: "
                f"python -m runtime pitr restore --target-name {point.name}"
            )
        returncode, timed_out = _run_child(
            command, child_env(database, options, os.environ if env is None else env)
        )
        return MigrationRun(returncode, point, timed_out)
    finally:
        conn.close()  # the server releases the advisory lock with the session


def _revisions(conn: lock.Connection, table: str) -> tuple[str, ...] | None:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    if not row or not row[0]:
        return None
    name = sql.Identifier(*table.split("."))
    rows = conn.execute(
        sql.SQL("SELECT version_num FROM {} ORDER BY version_num").format(name)
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def migration_status(settings: Settings) -> MigrationStatus:
    """The schema revision(s) in `migrate.version_table` and the runner holding the lock."""
    table = settings.migrate.version_table
    with _connect(settings) as conn:
        conn.execute("SET lock_timeout = 2000")  # a report never queues behind a migration
        return MigrationStatus(_revisions(conn, table), table, lock.holder(conn))
