"""The `backup` verbs as plain functions; `runtime/cli.py` parses arguments and calls them.

Errors are one line on stderr (`error: ...`), results go to stdout (`as_json` for scripts),
progress bars to stderr only when it is a terminal. Each returns an exit code (runtime/exits.py).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from tqdm import tqdm

from runtime.backup.dump import ToolProcess
from runtime.backup.errors import BackupError, NoRestorableBackupError
from runtime.backup.manager import BackupManager
from runtime.backup.schedule import BackupScheduler
from runtime.exits import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, error


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        print(json.dumps(payload, default=_json_default, sort_keys=True))
    else:
        print(text)


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[Callable[[int], object]]:
    """A byte progress bar on stderr; silent when stderr is not a terminal."""
    bar = tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None,
        leave=False,
    )
    try:
        yield bar.update
    finally:
        bar.close()


def _stored_size(manager: BackupManager, backup_id: str) -> int | None:
    try:
        return manager.load_manifest(backup_id).size_bytes
    except BackupError:
        return None


def _resolve(manager: BackupManager, backup_id: str) -> str:
    if backup_id != "latest":
        return backup_id
    infos = manager.list_backups()
    if not infos:
        raise BackupError("backup_id: got 'latest'; no backups are stored")
    return infos[0].backup_id


def create(
    manager: BackupManager, *, as_json: bool = False, dump: ToolProcess | None = None
) -> int:
    """Dump the database into a new backup (`dump`: its pg_dump, if already started)."""
    with _progress("backup") as progress:
        outcome = manager.create_backup(progress=progress, dump=dump)
    if outcome.status != "success":
        error(f"backup {outcome.backup_id} failed: {outcome.reason}")
        return EXIT_FAILED
    payload = {k: v for k, v in asdict(outcome).items() if k not in ("manifest", "reason")}
    _emit(as_json, payload, f"{outcome.backup_id} {outcome.size_bytes} bytes {outcome.location}")
    return EXIT_OK


def list_backups(manager: BackupManager, *, as_json: bool = False) -> int:
    """Stored backups, newest first."""
    infos = manager.list_backups()
    if as_json:
        print(json.dumps([asdict(i) for i in infos], default=_json_default, sort_keys=True))
        return EXIT_OK
    for i in infos:
        enc = f"enc:{i.key_id}" if i.encrypted else "plain"
        tail = f"  {i.reason}" if i.reason else ""
        print(
            f"{i.backup_id}  {i.created_at:%Y-%m-%d %H:%M:%S}Z  {i.size_bytes:>12}  "
            f"{i.state:<10}  {enc}{tail}"
        )
    return EXIT_OK


def verify(
    manager: BackupManager, backup_id: str = "latest", *, deep: bool = False, as_json: bool = False
) -> int:
    """Checksum + pg_restore read-through; `deep` restores into a scratch database."""
    backup_id = _resolve(manager, backup_id)
    with _progress("verify", _stored_size(manager, backup_id)) as progress:
        report = manager.verify(backup_id, deep=deep, progress=progress)
    if not report.ok:
        error(f"backup {backup_id} failed verification: {report.reason}")
        return EXIT_FAILED
    kind = "deep" if deep else "checksum+read-through"
    _emit(as_json, asdict(report), f"{backup_id} ok ({kind}, {report.seconds:.1f}s)")
    return EXIT_OK


def restore(
    manager: BackupManager,
    backup_id: str,
    target: str,
    *,
    fallback: bool = True,
    as_json: bool = False,
) -> int:
    """Restore `backup_id` (or, with `fallback`, the newest older one that verifies)."""
    with _progress("restore") as progress:
        try:
            report = manager.restore(backup_id, target, fallback=fallback, progress=progress)
        except NoRestorableBackupError as exc:
            for backup_id, reason in exc.skipped:
                print(f"warning: skipped {backup_id}: {reason}", file=sys.stderr)
            error("no restorable backup")
            return EXIT_FAILED
    for backup_id, reason in report.skipped:
        print(f"warning: skipped {backup_id}: {reason}", file=sys.stderr)
    _emit(as_json, asdict(report), f"restored {report.restored} into {report.target}")
    return EXIT_DEGRADED if report.fell_back else EXIT_OK


def prune(manager: BackupManager, *, dry_run: bool = False, as_json: bool = False) -> int:
    """Delete backups outside the retention policy."""
    plan = manager.prune(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{verb} {bid}" for bid in plan.delete]
    lines += [f"keep {bid} ({plan.why_kept[bid]})" for bid in plan.keep]
    _emit(as_json, {"dry_run": dry_run, **asdict(plan)}, "\n".join(lines) or "nothing stored")
    return EXIT_OK


def schedule(manager: BackupManager) -> int:
    """Run backups on the schedule until SIGTERM or SIGINT."""

    scheduler = BackupScheduler(
        manager.settings.schedule, manager.run_scheduled, last_run=manager.newest_backup_time()
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run_forever(stop)
    return EXIT_OK
