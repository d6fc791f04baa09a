"""Restore a cluster to a point in time (or the end of the archive) and prove where it ended.

pgBackRest writes the data directory and the recovery settings; PostgreSQL then replays WAL.
`pg_ctl start -w` returns once the server accepts connections, before the recovery target is
reached, so `start_and_wait` polls until `pg_is_in_recovery()` is false, then compares the
point recovery stopped at with what was asked: a missing WAL segment makes recovery end early,
and that is reported, never passed off as a complete restore.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from runtime.errors import ConfigError
from runtime.pitr.info import RepoInfo
from runtime.pitr.login import connect
from runtime.pitr.pgbackrest import PitrError, chown_to, run_as_user
from runtime.settings import PitrSettings


def parse_target_time(raw: str) -> datetime:
    """`--target-time`: ISO 8601 with a UTC offset; a naive time is ambiguous and refused."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ConfigError(
            "--target-time",
            raw,
            "an ISO 8601 time with a UTC offset, e.g. 2026-11-27T10:15:00+00:00",
        )
    return value


# The restore points `python -m runtime migrate` creates carry the server's UTC time to the
# second: recovery to a name needs a backup that ended before it (pgBackRest picks one by
# time only for --type=time/lsn; for a name it takes the newest unless --set is given).
RESTORE_POINT_FORMAT = "migrate-%Y%m%dT%H%M%SZ"
_POINT_NAME = re.compile(r"migrate-\d{8}T\d{6}Z")
_NAME_RULE = "a restore point's name: 1-63 characters, no quote, backslash or control character"


def restore_point_name(created: datetime) -> str:
    return created.astimezone(UTC).strftime(RESTORE_POINT_FORMAT)


def restore_point_time(name: str) -> datetime | None:
    """The time a `migrate-...Z` name carries (UTC, whole seconds), or None for another name."""
    if _POINT_NAME.fullmatch(name) is None:
        return None
    return datetime.strptime(name, RESTORE_POINT_FORMAT).replace(tzinfo=UTC)


def parse_target_name(raw: str) -> str:
    """`--target-name`: what PostgreSQL accepts as a restore point name (63 bytes at most) and
    recovery.conf quoting survives."""
    ok = 0 < len(raw.encode()) <= 63 and not re.search(r"['\"\\\x00-\x1f\x7f]", raw)
    if not ok:
        raise ConfigError("--target-name", raw, _NAME_RULE)
    return raw


def backup_before_name(info: RepoInfo, name: str) -> str | None:
    """The newest good backup that ended before the restore point `name` was created, for
    names that carry their time; None (pgBackRest's choice: the newest) for other names."""
    created = restore_point_time(name)
    if created is None:
        return None
    # both times are whole seconds, truncated: stopped_at < created means it ended before
    good = [b for b in info.backups if not b.error and b.stopped_at < created]
    if not good:
        raise PitrError(
            f"no backup in the repository ended before restore point {name} "
            f"({created:%Y-%m-%d %H:%M:%S}Z): recovery cannot reach it"
        )
    return good[-1].label


class RestoreRefused(PitrError):
    """The target directory holds a running or existing cluster and no --delta/--force was given."""


@dataclass(frozen=True)
class RecoveryOutcome:
    """Where recovery ended. `exact` is False when it stopped before what was asked."""

    exact: bool
    detail: str
    stop_line: str | None
    redo_done_lsn: str | None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def running_postmaster(data_dir: Path) -> int | None:
    """The pid in `data_dir/postmaster.pid` if that process is alive (a zombie is not)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError, PermissionError):
        return None
    return pid if _pid_alive(pid) else None


def prepare_target(settings: PitrSettings, data_dir: Path, *, delta: bool, force: bool) -> None:
    """Refuse a running or non-empty target unless told; create a missing one (mode 0700)."""
    pid = running_postmaster(data_dir)
    if pid is not None:
        raise RestoreRefused(
            f"--pg-data: {data_dir} belongs to a running PostgreSQL (postmaster pid {pid}); "
            "stop it first"
        )
    if data_dir.exists() and any(data_dir.iterdir()) and not (delta or force):
        raise RestoreRefused(
            f"--pg-data: {data_dir} is not empty; allowed: an empty or missing directory, "
            "or --delta (reuse matching files) / --force (overwrite)"
        )
    if not data_dir.exists():
        if not data_dir.parent.is_dir():
            raise RestoreRefused(f"--pg-data: the parent of {data_dir} does not exist")
        data_dir.mkdir(mode=0o700)
        chown_to(settings, data_dir)


def restore_options(
    settings: PitrSettings,
    data_dir: Path,
    target_time: datetime | None,
    *,
    delta: bool,
    force: bool,
    target_name: str | None = None,
) -> list[str]:
    """pgBackRest restore options. Archiving stays off in a copy restored elsewhere, so a test
    restore never pushes its new timeline into the repository the primary archives to.
    A `target_name` becomes `recovery_target_name` (pgBackRest's `--type=name`)."""
    options = [f"--pg1-path={data_dir}"]
    if target_name is not None:
        options += ["--type=name", f"--target={target_name}", "--target-action=promote"]
    elif target_time is not None:
        stamp = target_time.isoformat(sep=" ")
        options += ["--type=time", f"--target={stamp}", "--target-action=promote"]
    if data_dir.resolve() != settings.pg_data.resolve():
        options.append("--archive-mode=off")
    if delta or force:
        options.append("--delta")
    if force:
        options.append("--force")
    return options


# -- starting the restored server ----------------------------------------------------------


def pg_ctl(settings: PitrSettings) -> str:
    if settings.pg_bin is not None:
        return str(settings.pg_bin / "pg_ctl")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    binary = found[-1] if found else shutil.which("pg_ctl")
    if binary is None:
        raise PitrError("pg_ctl not found: set PITR_PG_BIN")
    return binary


def _segment(lsn: str, segment_size: int) -> tuple[int, int]:
    high, low = (int(part, 16) for part in lsn.split("/"))
    return high, low // segment_size


def _wal_position(name: str, segment_size: int) -> tuple[int, int]:
    """(log, segment) of a WAL file name such as 000000010000000000000005."""
    per_log = 0x100000000 // segment_size
    return int(name[8:16], 16), int(name[16:24], 16) % per_log


def _wal_name(timeline: int, position: tuple[int, int]) -> str:
    """The WAL file name of `position` on `timeline` (timeline, log, segment: 8 hex digits each)."""
    return f"{timeline:08X}{position[0]:08X}{position[1]:08X}"


def _next_position(position: tuple[int, int], segment_size: int) -> tuple[int, int]:
    log, seg = position
    return (log + 1, 0) if seg + 1 == 0x100000000 // segment_size else (log, seg + 1)


_STOP = re.compile(r"recovery stopping (before|after|at restore point) .*")
_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')


def _replay_timeline(log_text: str, archived_max: str) -> int:
    """The timeline recovery replayed last: that of the last segment it restored from the
    archive, else (nothing restored yet) that of the archive's newest segment."""
    restored = _RESTORED.findall(log_text)
    return int((restored[-1] if restored else archived_max)[:8], 16)


def recovery_outcome(
    log_text: str,
    target_time: datetime | None,
    info: RepoInfo | None,
    segment_size: int,
    *,
    target_name: str | None = None,
) -> RecoveryOutcome:
    """Compare the server log's end of recovery with the target (or the archive's end)."""
    stop = _STOP.search(log_text)
    redo = _REDO_DONE.findall(log_text)
    redo_lsn = redo[-1] if redo else None
    stop_line = stop.group(0) if stop else None
    if target_name is not None:
        if stop_line is None or f'restore point "{target_name}"' not in stop_line:
            return RecoveryOutcome(
                False,
                f"recovery ended without reaching the restore point {target_name!r}",
                stop_line,
                redo_lsn,
            )
        return RecoveryOutcome(True, stop_line, stop_line, redo_lsn)
    if target_time is not None:
        if stop_line is None:
            return RecoveryOutcome(
                False,
                f"recovery ended without reaching the target time {target_time.isoformat()}",
                None,
                redo_lsn,
            )
        return RecoveryOutcome(True, stop_line, stop_line, redo_lsn)
    if redo_lsn is None or info is None or info.wal_max is None:
        return RecoveryOutcome(True, "recovered to the end of the archive", None, redo_lsn)
    reached = _segment(redo_lsn, segment_size)
    archived = _wal_position(info.wal_max, segment_size)
    if reached < archived:
        timeline = _replay_timeline(log_text, info.wal_max)
        missing = _wal_name(timeline, _next_position(reached, segment_size))
        return RecoveryOutcome(
            False,
            f"recovery stopped at {redo_lsn} (WAL segment {_wal_name(timeline, reached)}) but "
            f"the archive holds WAL up to {info.wal_max}: the next segment ({missing}) is "
            "missing or unreadable; restored to the last consistent point before it",
            None,
            redo_lsn,
        )
    return RecoveryOutcome(
        True, f"recovered to the end of the archive ({redo_lsn})", None, redo_lsn
    )


def _fatal_lines(log_text: str) -> str:
    lines = [ln.strip() for ln in log_text.splitlines() if "FATAL" in ln or "PANIC" in ln]
    return " | ".join(lines[-3:]) or "no FATAL line in the server log"


def start_and_wait(
    settings: PitrSettings,
    data_dir: Path,
    log_file: Path,
    *,
    port: int | None = None,
    timeout: float = 600.0,
    wrapper: Sequence[str] = (),
    server_options: str = "",
) -> int:
    """Start the restored server and wait until it has left recovery; returns its port.
    `wrapper` goes before the command (e.g. `nice`), `server_options` into `pg_ctl -o`.

    Raises `PitrError` with the server's FATAL lines if it stops during recovery (e.g. a
    missing WAL segment before the target: "recovery ended before configured recovery target
    was reached")."""
    user = run_as_user(settings)
    prefix = ["runuser", "-u", user, "--"] if user else []
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if not log_file.exists():
        log_file.touch()
    chown_to(settings, log_file)
    options = ["-o", f"-p {port} {server_options}".strip()] if port else []
    port = port or settings.pg_port
    started = subprocess.run(
        [
            *wrapper,
            *prefix,
            pg_ctl(settings),
            "-D",
            str(data_dir),
            "-l",
            str(log_file),
            "-w",
            "-t",
            str(int(timeout)),
            *options,
            "start",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    deadline = time.monotonic() + timeout
    while True:
        if running_postmaster(data_dir) is None:  # never started, or exited during recovery
            raise PitrError(
                "the restored server stopped during recovery: "
                + _fatal_lines(log_file.read_text(errors="replace"))
                + ("" if started.returncode == 0 else f" ({started.stderr.strip()})")
            )
        try:
            with connect(settings, port) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and row[0] is False:
                    return port
        except psycopg.OperationalError:
            pass  # not accepting connections yet; a refused login (LoginRefused) goes up at once
        if time.monotonic() > deadline:
            raise PitrError(f"the restored server was still in recovery after {timeout:g} s")
        time.sleep(0.1)


def segment_size(settings: PitrSettings, port: int) -> int:
    with connect(settings, port) as conn:
        row = conn.execute(
            "SELECT setting::bigint * 1 FROM pg_settings WHERE name = 'wal_segment_size'"
        ).fetchone()
    return int(row[0]) if row else 16 << 20
