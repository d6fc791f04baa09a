"""`python -m runtime pitr check|backup|info|restore`: argument parsing only.

Settings come from PITR_* environment variables (docs/runtime-pitr.md); the work is done by the
plain functions in runtime/pitr/commands.py, which return the exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError
from runtime.pitr import commands
from runtime.pitr.settings import BACKUP_TYPES, PitrSettings, load_pitr_settings

Handler = Callable[[PitrSettings, argparse.Namespace], int]


def parse_target_time(raw: str) -> datetime:
    """An ISO 8601 time with a UTC offset; a naive time is ambiguous and refused."""
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


def _restore(settings: PitrSettings, args: argparse.Namespace) -> int:
    target = None if args.latest else parse_target_time(args.target_time)
    return commands.run_restore(
        settings,
        Path(args.pg_data) if args.pg_data else settings.pg_data,
        target,
        delta=args.delta,
        force=args.force,
        start=args.start,
        port=args.port,
        timeout=args.timeout,
    )


def _runner(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(load_pitr_settings(), args)
        except ConfigError as exc:
            commands._error(str(exc))
            return commands.EXIT_USAGE

    return run


def register(subparsers: Any) -> None:
    """Add the `pitr` command group (called by runtime/cli.py)."""
    group = subparsers.add_parser(
        "pitr",
        help="continuous WAL archiving and point-in-time recovery (pgBackRest)",
        description="Configured by PITR_* environment variables: see docs/runtime-pitr.md.",
    )
    verbs = group.add_subparsers(title="pitr commands", metavar="ACTION", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        parser.set_defaults(run=_runner(handler))
        return parser

    add("check", lambda s, a: commands.run_check(s), "create the stanza if new; prove archiving")
    backup = add("backup", lambda s, a: commands.run_backup(s, a.type), "take a physical backup")
    backup.add_argument("--type", choices=BACKUP_TYPES, default="full")
    info = add("info", lambda s, a: commands.run_info(s, a.json), "backups and restore window")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    restore = add("restore", _restore, "restore to a point in time or the end of the archive")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-time", help="ISO 8601 with offset, e.g. 2026-11-27T10:15:00Z")
    target.add_argument("--latest", action="store_true", help="replay all archived WAL")
    restore.add_argument("--pg-data", help="data directory to restore into (default PITR_PG_DATA)")
    overwrite = restore.add_mutually_exclusive_group()
    overwrite.add_argument("--delta", action="store_true", help="reuse matching files in place")
    overwrite.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    restore.add_argument(
        "--start", action="store_true", help="start the server, wait for recovery, verify"
    )
    restore.add_argument("--port", type=int, help="port to start the restored server on")
    restore.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
