"""The way back: a named restore point before the migration, and proof that the WAL holding it
reached the archive.

`pg_create_restore_point(name)` writes a WAL record recovery can stop at
(`recovery_target_name`); `pg_switch_wal()` closes the segment holding it, so the archiver
pushes it now instead of at `archive_timeout`. Where pgBackRest archives the cluster (a `pitr`
section), the runner waits until `pg_stat_archiver` reports that segment archived: a restore
point that is not in the archive is no way back.

The name carries the server's UTC time (`migrate-20261205T012345Z`, runtime/pitr/restore.py):
recovery to a name needs a backup that ended before it, and `pitr restore --target-name` picks
that backup by this time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from runtime.errors import PlatformError
from runtime.pitr.restore import restore_point_name

Connection = psycopg.Connection[tuple[Any, ...]]


class RestorePointError(PlatformError):
    """No restore point (or not archived): the migration is not run."""


@dataclass(frozen=True)
class RestorePoint:
    name: str
    lsn: str
    wal_file: str  # the segment holding the restore point's record
    created_at: datetime
    archived: bool | None = None  # None: no pitr section, archiving not checked


def create(conn: Connection) -> RestorePoint:
    """Create the restore point and switch to a new WAL segment (autocommit `conn`)."""
    try:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        created: datetime = row[0].astimezone(UTC)
        name = restore_point_name(created)
        made = conn.execute(
            "SELECT lsn::text, pg_walfile_name(lsn) FROM pg_create_restore_point(%s) lsn", (name,)
        ).fetchone()
        conn.execute("SELECT pg_switch_wal()")
    except psycopg.Error as exc:
        diag = exc.diag.message_primary or str(exc)
        raise RestorePointError(
            f"could not create a restore point: {diag} (the role needs EXECUTE on "
            "pg_create_restore_point(text) and pg_switch_wal(), and wal_level replica or "
            "logical: docs/migrations.md; MIGRATE_RESTORE_POINT=false runs without one)"
        ) from None
    assert made is not None
    return RestorePoint(name, str(made[0]), str(made[1]), created)


def wait_archived(conn: Connection, point: RestorePoint, timeout: float) -> RestorePoint:
    """`point` once `pg_stat_archiver` shows its segment archived; `RestorePointError` (naming
    the last failed segment, if any) when it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(
            "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '')"
            " FROM pg_stat_archiver"
        ).fetchone()
        archived, failed = (str(row[0]), str(row[1])) if row else ("", "")
        # names order by timeline, then position: a later segment archived means ours was
        if archived[:24] >= point.wal_file:
            return RestorePoint(point.name, point.lsn, point.wal_file, point.created_at, True)
        if time.monotonic() >= deadline:
            because = f"; the archiver last failed on {failed}" if failed else ""
            raise RestorePointError(
                f"restore point {point.name}: WAL segment {point.wal_file} was not archived "
                f"within {timeout:g} s (MIGRATE_ARCHIVE_WAIT){because}; the migration was not "
                "run: fix archiving (`python -m runtime pitr check`) and retry"
            )
        time.sleep(0.1)
