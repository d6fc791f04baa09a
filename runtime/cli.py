"""`python -m runtime`: every verb, its arguments and its exit code, in this one module.

Each command reads the runtime's one settings model (`runtime.settings.load_settings`: the
`app_config` file named by APP_CONFIG_FILE, environment variables overriding single fields)
and calls plain functions of its area. An area's modules are imported inside its runner, so
`backup` and `pitr` never load redis-py or the monitoring package. A new area is one
`_add_<area>(commands)` and one `_<area>(args)` here.

Exit codes every command keeps to, so scripts can rely on them, are in `runtime/exits.py`
(one floor down, so the areas' verb modules never import this one): 0 done as asked; 1 the
operation failed; 2 bad usage or configuration (every `ConfigError`); 3 done, but not exactly
as asked (e.g. restore fell back to an older backup); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runtime.errors import ConfigError, PlatformError
from runtime.exits import (
    EXIT_DEGRADED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    error,
)

if TYPE_CHECKING:
    from runtime.backup.dump import ToolProcess
    from runtime.settings import Settings

__all__ = [  # the exit codes stay importable from here, where scripts have found them
    "EXIT_DEGRADED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

SETTINGS_HELP = "Settings: the app_config file (APP_CONFIG_FILE) and environment variables"

Commands = Any  # argparse's _SubParsersAction, which typeshed keeps private


# -- backup --------------------------------------------------------------------------------
_NEEDS_DATABASE = ("create", "schedule")


def _add_backup(commands: Commands) -> None:
    group = commands.add_parser(
        "backup",
        help="create, list, verify, restore and prune PostgreSQL backups",
        description=f"{SETTINGS_HELP}: see docs/runtime-backups.md.",
    )
    actions = group.add_subparsers(
        title="backup commands", metavar="ACTION", dest="action", required=True
    )

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument(
            "-v", "--verbose", action="store_true", help="log at LOG_LEVEL (telemetry.log_level)"
        )
        parser.set_defaults(run=_backup)
        return parser

    add("create", "dump the database into a new backup")
    add("list", "list stored backups, newest first")
    verify = add("verify", "checksum + pg_restore read-through (--deep: scratch restore)")
    verify.add_argument("backup_id", nargs="?", default="latest")
    verify.add_argument("--deep", action="store_true", help="restore into a scratch database")
    restore = add("restore", "restore the newest good backup into --target")
    restore.add_argument("backup_id", nargs="?", default="latest")
    restore.add_argument("--target", required=True, help="DSN of an existing, empty database")
    restore.add_argument(
        "--no-fallback", action="store_true", help="fail instead of using an older backup"
    )
    prune = add("prune", "delete backups outside the retention policy")
    prune.add_argument("--dry-run", action="store_true", help="only show what would go")
    add("schedule", "run backups on the backup schedule until SIGTERM")


def _backup(args: argparse.Namespace) -> int:
    from runtime.settings import load_settings

    deep = getattr(args, "deep", False)
    needs_database = args.action in _NEEDS_DATABASE or deep
    settings = load_settings(require=("database",) if needs_database else ())
    backup = settings.backup
    dump = None
    if args.action == "create" and settings.database and not backup.count_rows and backup.jobs == 1:
        # pg_dump starts first; the imports below happen while it runs
        from runtime.backup.dump import PgTools, start_dump

        tools = PgTools.find(backup.pg_bindir)
        dump = start_dump(tools, settings.database.dsn.reveal(), backup.compress_level)
    try:
        return _backup_run(args, settings, dump)
    finally:
        if dump is not None:
            dump.kill()  # already finished unless something failed before it was read


def _client_errors() -> tuple[type[BaseException], ...]:
    """OSError, and psycopg's errors once psycopg is loaded (`backup create` never loads it,
    and what was never imported cannot have raised)."""
    psycopg = sys.modules.get("psycopg")
    return (OSError, psycopg.Error) if psycopg is not None else (OSError,)


def _backup_run(args: argparse.Namespace, settings: Settings, dump: ToolProcess | None) -> int:
    from runtime.backup import commands
    from runtime.backup.manager import BackupManager
    from runtime.backup.redaction import redact
    from runtime.settings import secrets_of
    from runtime.telemetry import logs

    deep = getattr(args, "deep", False)
    if args.verbose:  # the runtime's log lines (JSON, or readable on a terminal) on stderr
        logs.configure_logging(settings.telemetry.log_level, secrets_of(settings))
    else:
        logging.getLogger("runtime").addHandler(logging.NullHandler())
    tracer_provider = None
    if settings.telemetry.otlp_endpoint:  # the SDK and its exporter load only when needed
        from runtime.telemetry.tracing import configure_tracing

        tracer_provider = configure_tracing(settings.telemetry, secrets_of(settings))
    manager = BackupManager.from_settings(settings)
    try:
        if args.action == "create":
            return commands.create(manager, as_json=args.json, dump=dump)
        if args.action == "list":
            return commands.list_backups(manager, as_json=args.json)
        if args.action == "verify":
            return commands.verify(manager, args.backup_id, deep=deep, as_json=args.json)
        if args.action == "restore":
            fallback = not args.no_fallback
            return commands.restore(
                manager, args.backup_id, args.target, fallback=fallback, as_json=args.json
            )
        if args.action == "prune":
            return commands.prune(manager, dry_run=args.dry_run, as_json=args.json)
        return commands.schedule(manager)
    except _client_errors() as exc:  # unexpected, but still one redacted line
        error(redact(f"{type(exc).__name__}: {exc}", manager.database_url))
        return EXIT_FAILED
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()  # sends the spans still batched


# -- pitr (pgBackRest) ---------------------------------------------------------------------
_BACKUP_TYPES = ("full", "diff", "incr")  # runtime.pitr.pgbackrest.BACKUP_TYPES, unimported


def _add_pitr(commands: Commands) -> None:
    group = commands.add_parser(
        "pitr",
        help="continuous WAL archiving and point-in-time recovery (pgBackRest)",
        description=f"{SETTINGS_HELP} (the pitr section, PITR_*): see docs/runtime-pitr.md.",
    )
    actions = group.add_subparsers(
        title="pitr commands", metavar="ACTION", dest="action", required=True
    )

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.set_defaults(run=_pitr)
        return parser

    add("check", "create the stanza if new; prove that WAL reaches the repository")
    backup = add("backup", "take a physical backup")
    backup.add_argument("--type", choices=_BACKUP_TYPES, default="full")
    info = add("info", "the backups and the window one can restore into")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    restore = add("restore", "restore to a point in time or the end of the archive")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-time", help="ISO 8601 with offset, e.g. 2026-11-27T10:15:00Z")
    target.add_argument("--latest", action="store_true", help="replay all archived WAL")
    target.add_argument("--target-name", help="a restore point's name, e.g. one `migrate` printed")
    restore.add_argument(
        "--set", dest="backup_set", help="the backup to start from (default: pgBackRest's choice)"
    )
    restore.add_argument("--pg-data", help="data directory to restore into (default PITR_PG_DATA)")
    overwrite = restore.add_mutually_exclusive_group()
    overwrite.add_argument("--delta", action="store_true", help="reuse matching files in place")
    overwrite.add_argument("--force", action="store_true", help="overwrite a non-empty directory")
    restore.add_argument(
        "--start", action="store_true", help="start the server, wait for recovery, verify"
    )
    restore.add_argument("--port", type=_port, help="port to start the restored server on")
    restore.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    drill = add("drill", "restore into a scratch copy now, check it, measure RTO and RPO")
    drill.add_argument("--json", action="store_true", help="machine-readable output")


def _pitr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.pitr import commands
    from runtime.pitr.restore import parse_target_name, parse_target_time
    from runtime.settings import load_settings

    settings = load_settings(require=()).pitr
    if settings is None:
        raise ConfigError(
            "pitr (app_config) or PITR_* variables", None, "a pitr section (docs/runtime-pitr.md)"
        )
    if args.action == "check":
        return commands.run_check(settings)
    if args.action == "backup":
        return commands.run_backup(settings, args.type)
    if args.action == "info":
        return commands.run_info(settings, args.json)
    if args.action == "drill":
        from runtime.pitr.drill_command import run_drill

        return run_drill(settings, args.json)
    target = parse_target_time(args.target_time) if args.target_time else None
    return commands.run_restore(
        settings,
        Path(args.pg_data) if args.pg_data else settings.pg_data,
        target,
        target_name=parse_target_name(args.target_name) if args.target_name else None,
        backup_set=args.backup_set,
        delta=args.delta,
        force=args.force,
        start=args.start,
        port=args.port,
        timeout=args.timeout,
    )


# -- migrate -------------------------------------------------------------------------------
def _add_migrate(commands: Commands) -> None:
    parser = commands.add_parser(
        "migrate",
        help="run a schema migration command under a lock, after a restore point; or `status`",
        description=(
            f"{SETTINGS_HELP} (database, migrate): see docs/migrations.md. "
            "`migrate -- COMMAND...` runs COMMAND; `migrate status [--json]` reports the schema "
            "revision and whether a migration runs."
        ),
        usage="python -m runtime migrate (-- COMMAND... | status [--json])",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from runtime.settings import load_settings

    words: list[str] = list(args.command)
    if words[:1] == ["--"]:
        run_words = words[1:]
    elif words[:1] == ["status"] and words[1:] in ([], ["--json"]):
        from runtime.migrate.command import run_status

        return run_status(load_settings(require=("database",)), as_json=words[1:] == ["--json"])
    else:
        raise ConfigError(
            "migrate",
            " ".join(words),
            "`-- COMMAND...` (e.g. -- alembic upgrade head) or `status [--json]`",
        )
    from runtime.migrate.command import run_migrate
    from runtime.migrate.runner import check_command

    check_command(run_words)  # before the settings: a typo is named first
    return run_migrate(load_settings(require=("database",)), run_words)


# -- serve (the sidecar) -------------------------------------------------------------------
def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer in [0, 65535]")
    return int(text)


def _add_serve(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the runtime sidecar: /metrics, /healthz, alerts, scheduled backups",
        description=f"{SETTINGS_HELP}: see docs/runtime-monitoring.md.",
    )
    parser.add_argument("--host", default=None, help="listen address (default: SIDECAR_HOST)")
    parser.add_argument(
        "--port", type=_port, default=None, help="listen port (default: SIDECAR_PORT, 9180)"
    )
    parser.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from runtime import sidecar
    from runtime.settings import load_settings
    from runtime.telemetry import tracing

    settings = load_settings(require=())
    tracer_provider = tracing.configure(settings)  # JSON logs; traces when an endpoint is set
    try:
        return sidecar.serve(settings, host=args.host, port=args.port)
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()


# -- the program ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime", description="The platform runtime's command line."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_backup(commands)
    _add_pitr(commands)
    _add_migrate(commands)
    _add_serve(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except ConfigError as exc:
        error(str(exc))
        return EXIT_USAGE
    except PlatformError as exc:
        error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
