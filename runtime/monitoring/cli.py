"""`python -m runtime serve`: the sidecar, configured like every other part of the runtime.

Settings come from the stack's app_config file (APP_CONFIG_FILE) with environment variables
overriding single fields; when a database is configured, the scheduled backup job is
`BackupManager.run_backup` (create, then verify) on BACKUP_SCHEDULE.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from runtime.backup import BackupManager, BackupSettings
from runtime.backup.errors import BackupConfigError
from runtime.errors import ConfigError
from runtime.settings import environment
from runtime.sidecar import add_serve_subcommand, serve


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_serve_subcommand(subparsers)
    parser.set_defaults(run=run)


def backup_job(env: dict[str, str]) -> Callable[[], object] | None:
    """The sidecar's scheduled job, or None when no database is configured."""
    if not env.get("DATABASE_URL"):
        return None
    return BackupManager(BackupSettings.from_env(env)).run_backup


def run(args: argparse.Namespace) -> int:
    try:
        env = environment()
        job = backup_job(env)
    except (ConfigError, BackupConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(args, job, env)
