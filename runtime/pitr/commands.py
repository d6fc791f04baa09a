"""The `pitr` verbs as plain functions returning exit codes, so any command line can call them.

Exit codes (runtime/exits.py): 0 done; 1 the operation failed; 2 bad usage or configuration
(including a refused restore target); 3 done, but not as asked (recovery stopped before the
requested point). Errors are one line on stderr (`runtime.exits.error`); results go to stdout
(`as_json` for scripts).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from runtime.exits import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, error
from runtime.pitr.backups import repo_info, take_backup
from runtime.pitr.login import LoginRefused, connect
from runtime.pitr.metrics import PitrState
from runtime.pitr.pgbackrest import BackupType, Pgbackrest, PitrError, prepare_config
from runtime.pitr.restore import (
    RestoreRefused,
    backup_before_name,
    prepare_target,
    recovery_outcome,
    restore_options,
    segment_size,
    start_and_wait,
)
from runtime.settings import PitrSettings


def _json(payload: Any) -> str:
    return json.dumps(
        payload, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)
    )


def run_check(settings: PitrSettings) -> int:
    """Write the configuration, create the stanza if the repository has none, and prove that a
    WAL segment goes from the server into the repository (`pgbackrest check`)."""
    try:
        prepare_config(settings)
        tool = Pgbackrest(settings)
        if repo_info(settings, tool).stanza_missing:
            # stanza-create takes every pgBackRest lock ([050] while archive-push runs): only
            # when there is no stanza yet. `info` and `check` take none.
            tool.check("stanza-create")
        tool.check("check")
    except PitrError as exc:
        error(str(exc))
        return EXIT_FAILED
    print(f"stanza {settings.stanza}: archiving works ({settings.repo_type} repository)")
    return EXIT_OK


def run_backup(settings: PitrSettings, type_: BackupType, state: PitrState | None = None) -> int:
    """`pitr backup`: `take_backup`, reported on stdout/stderr as an exit code."""
    run = take_backup(settings, type_, state)
    if run.error is not None:
        error(run.error)
        return EXIT_FAILED
    print(f"{type_} backup {run.label} done in {run.duration_seconds:.1f} s")
    return EXIT_OK


_FINDING = re.compile(r"INFO: ((?:invalid|missing|unable|error)\b.*)$", re.IGNORECASE)


def verify_findings(tool: Pgbackrest) -> list[str]:
    """What `pgbackrest verify` finds wrong in the repository (e.g. "invalid checksum
    '<backup>/pg_data/base/16385/2838.lz4'"), to name the damage after a failed restore."""
    try:
        done = tool.run("verify", "--log-level-console=info", timeout=1800)
    except (OSError, subprocess.SubprocessError):
        return []
    found = [m.group(1) for line in done.stdout.splitlines() if (m := _FINDING.search(line))]
    return found[:10]


@dataclass(frozen=True)
class LastArchived:
    """The running server's last archived segment and its time, or why they are unknown."""

    wal: str | None
    time: datetime | None
    unknown_because: str | None = None


def _last_archived(settings: PitrSettings) -> LastArchived:
    try:
        with connect(settings, settings.pg_port, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT last_archived_wal, last_archived_time FROM pg_stat_archiver"
            ).fetchone()
    except LoginRefused as exc:
        return LastArchived(None, None, str(exc))
    except psycopg.Error:
        return LastArchived(None, None, "server down")
    return LastArchived(row[0], row[1]) if row else LastArchived(None, None, "nothing archived")


def run_info(settings: PitrSettings, as_json: bool = False) -> int:
    """The backups and the window one can restore into."""
    try:
        prepare_config(settings)
        info = repo_info(settings)
    except PitrError as exc:
        error(str(exc))
        return EXIT_FAILED
    last = _last_archived(settings)
    if as_json:
        payload = {
            **asdict(info),
            "earliest_restorable": info.earliest_restorable,
            "last_archived_wal": last.wal,
            "last_archived_time": last.time,
            "last_archived_unknown_because": last.unknown_because,
        }
        print(_json(payload))
        return EXIT_OK
    print(f"stanza {info.stanza} ({info.status}; cipher {info.cipher})")
    for b in info.backups:
        flag = "  ERROR" if b.error else ""
        print(
            f"  {b.label:<32} {b.type:<4} {b.stopped_at:%Y-%m-%d %H:%M:%S}Z "
            f"{b.size_bytes:>14} bytes ({b.repo_size_bytes} stored){flag}"
        )
    if info.earliest_restorable is None:
        print("restore window: none (no backup yet: run `pitr backup --type full`)")
        return EXIT_OK
    latest = (
        f"{last.time:%Y-%m-%d %H:%M:%S%z}"
        if last.time
        else f"time unknown: {last.unknown_because or 'nothing archived'}"
    )
    print(
        f"restore window: {info.earliest_restorable:%Y-%m-%d %H:%M:%S}Z .. end of WAL "
        f"{info.wal_max} ({latest})"
    )
    return EXIT_OK


def run_restore(
    settings: PitrSettings,
    data_dir: Path,
    target_time: datetime | None,
    *,
    target_name: str | None = None,
    backup_set: str | None = None,
    delta: bool = False,
    force: bool = False,
    start: bool = False,
    port: int | None = None,
    timeout: float = 600.0,
) -> int:
    """Restore into `data_dir` to `target_time`, or to the restore point `target_name` (neither:
    the end of the archive), from `backup_set` if given; with `start`, start the server, wait
    until it has left recovery and check where recovery stopped."""
    try:
        prepare_target(settings, data_dir, delta=delta, force=force)
        prepare_config(settings)
        tool = Pgbackrest(settings)
        info = repo_info(settings, tool)
        if target_name is not None and backup_set is None:
            backup_set = backup_before_name(info, target_name)
    except RestoreRefused as exc:
        error(str(exc))
        return EXIT_USAGE
    except PitrError as exc:
        error(str(exc))
        return EXIT_FAILED
    try:
        options = restore_options(
            settings, data_dir, target_time, delta=delta, force=force, target_name=target_name
        )
        tool.check("restore", *options, *([f"--set={backup_set}"] if backup_set else []))
    except PitrError as exc:
        found = verify_findings(tool)
        error(
            f"{exc}; {data_dir} holds a partial restore: do not start it"
            + (f"; pgbackrest verify found: {'; '.join(found)}" if found else "")
        )
        return EXIT_FAILED
    where = (
        f"restore point {target_name!r}"
        if target_name
        else target_time.isoformat()
        if target_time
        else "the end of the archive"
    )
    if not start:
        print(
            f"restored into {data_dir} (recovery to {where} happens on start: start the server "
            "and wait until pg_is_in_recovery() is false, or rerun with --start)"
        )
        return EXIT_OK
    log_file = settings.log_path / f"restore-{data_dir.name}.log"
    offset = log_file.stat().st_size if log_file.exists() else 0
    try:
        used_port = start_and_wait(settings, data_dir, log_file, port=port, timeout=timeout)
        seg = segment_size(settings, used_port)
    except PitrError as exc:
        error(f"{exc} (server log: {log_file})")
        return EXIT_FAILED
    with log_file.open(errors="replace") as handle:
        handle.seek(offset)
        outcome = recovery_outcome(handle.read(), target_time, info, seg, target_name=target_name)
    if not outcome.exact:
        error(f"restored into {data_dir}, but not to {where}: {outcome.detail}")
        return EXIT_DEGRADED
    print(f"restored into {data_dir} and started on port {used_port}: {outcome.detail}")
    return EXIT_OK
