"""`python -m runtime backup create|list|verify|restore|prune|schedule`.

Errors are one line on stderr (`error: ...`), results go to stdout (`--json` for scripts),
progress bars to stderr only when it is a terminal. Exit codes: see runtime/cli.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from tqdm import tqdm

from runtime.backup.config import BackupSettings
from runtime.backup.errors import BackupConfigError, BackupError, NoRestorableBackupError
from runtime.backup.manager import BackupManager
from runtime.backup.redaction import redact
from runtime.backup.schedule import BackupScheduler
from runtime.cli import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_USAGE

Handler = Callable[[BackupManager, argparse.Namespace], int]


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(payload, default=_json_default, sort_keys=True))
    else:
        print(text)


def _error(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


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


def _create(manager: BackupManager, args: argparse.Namespace) -> int:
    with _progress("backup") as progress:
        outcome = manager.create_backup(progress=progress)
    if outcome.status != "success":
        _error(f"backup {outcome.backup_id} failed: {outcome.reason}")
        return EXIT_FAILED
    payload = {k: v for k, v in asdict(outcome).items() if k not in ("manifest", "reason")}
    _emit(args, payload, f"{outcome.backup_id} {outcome.size_bytes} bytes {outcome.location}")
    return EXIT_OK


def _list(manager: BackupManager, args: argparse.Namespace) -> int:
    infos = manager.list_backups()
    if args.json:
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


def _verify(manager: BackupManager, args: argparse.Namespace) -> int:
    backup_id = _resolve(manager, args.backup_id)
    with _progress("verify", _stored_size(manager, backup_id)) as progress:
        report = manager.verify(backup_id, deep=args.deep, progress=progress)
    if not report.ok:
        _error(f"backup {backup_id} failed verification: {report.reason}")
        return EXIT_FAILED
    kind = "deep" if args.deep else "checksum+read-through"
    _emit(args, asdict(report), f"{backup_id} ok ({kind}, {report.seconds:.1f}s)")
    return EXIT_OK


def _restore(manager: BackupManager, args: argparse.Namespace) -> int:
    with _progress("restore") as progress:
        try:
            report = manager.restore(
                args.backup_id, args.target, fallback=not args.no_fallback, progress=progress
            )
        except NoRestorableBackupError as exc:
            for backup_id, reason in exc.skipped:
                print(f"warning: skipped {backup_id}: {reason}", file=sys.stderr)
            _error("no restorable backup")
            return EXIT_FAILED
    for backup_id, reason in report.skipped:
        print(f"warning: skipped {backup_id}: {reason}", file=sys.stderr)
    _emit(args, asdict(report), f"restored {report.restored} into {report.target}")
    return EXIT_DEGRADED if report.fell_back else EXIT_OK


def _prune(manager: BackupManager, args: argparse.Namespace) -> int:
    plan = manager.prune(dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    lines = [f"{verb} {bid}" for bid in plan.delete]
    lines += [f"keep {bid} ({plan.why_kept[bid]})" for bid in plan.keep]
    _emit(args, {"dry_run": args.dry_run, **asdict(plan)}, "\n".join(lines) or "nothing stored")
    return EXIT_OK


def _schedule(manager: BackupManager, args: argparse.Namespace) -> int:
    def job() -> None:
        outcome = manager.run_backup()
        if outcome.status == "success":
            manager.prune()
        else:
            _error(f"backup {outcome.backup_id} failed: {outcome.reason}")

    scheduler = BackupScheduler(
        manager.settings.schedule, job, last_run=manager.newest_backup_time()
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run_forever(stop)
    return EXIT_OK


def _runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if not args.verbose:
            logging.getLogger("runtime").addHandler(logging.NullHandler())
        else:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        try:
            manager = BackupManager(BackupSettings.from_env())
            return handler(manager, args)
        except BackupConfigError as exc:
            _error(str(exc))
            return EXIT_USAGE
        except BackupError as exc:
            _error(str(exc))
            return EXIT_FAILED
        except (OSError, psycopg.Error) as exc:  # unexpected, but still one redacted line
            _error(redact(f"{type(exc).__name__}: {exc}"))
            return EXIT_FAILED

    return run


def register(subparsers: Any) -> None:
    """Add the `backup` command group (called by runtime/cli.py)."""
    group = subparsers.add_parser(
        "backup",
        help="create, list, verify, restore and prune PostgreSQL backups",
        description="Configured by environment variables: see docs/runtime-backups.md.",
    )
    commands = group.add_subparsers(title="backup commands", metavar="ACTION", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
        parser.set_defaults(run=_runner(handler))
        return parser

    add("create", _create, "dump the database into a new backup")
    add("list", _list, "list stored backups, newest first")
    verify = add("verify", _verify, "checksum + pg_restore read-through (--deep: scratch restore)")
    verify.add_argument("backup_id", nargs="?", default="latest")
    verify.add_argument("--deep", action="store_true", help="restore into a scratch database")
    restore = add("restore", _restore, "restore the newest good backup into --target")
    restore.add_argument("backup_id", nargs="?", default="latest")
    restore.add_argument("--target", required=True, help="DSN of an existing, empty database")
    restore.add_argument(
        "--no-fallback", action="store_true", help="fail instead of using an older backup"
    )
    prune = add("prune", _prune, "delete backups outside the retention policy")
    prune.add_argument("--dry-run", action="store_true", help="only show what would go")
    add("schedule", _schedule, "run backups on BACKUP_SCHEDULE until SIGTERM (the sidecar)")
