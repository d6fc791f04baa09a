"""Schema migrations as a safe deploy step: any migration command (Alembic, Django, yoyo,
SQL files) run one at a time under an advisory lock, with bounded lock waits, after a named
restore point, always on the primary. See docs/migrations.md.

Modules: `lock` (the advisory lock), `session` (the command's environment and session
bounds), `restore_point` (the way back), `runner` (one run, and the status), `command` (the
command line's verbs). Never imports redis, monitoring, pulumi or components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.migrate.runner import (
    LockBusy,
    MigrationRun,
    MigrationStatus,
    migration_status,
    run_migration,
)
from runtime.settings import Settings, load_settings


def migrate(
    command: Sequence[str],
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
) -> MigrationRun:
    """Run `command` under the platform's guarantees (the Python API of
    `python -m runtime migrate -- COMMAND...`); settings default to `load_settings()`."""
    chosen = settings or load_settings(require=("database",))
    return run_migration(chosen, command, env)


__all__ = [
    "LockBusy",
    "MigrationRun",
    "MigrationStatus",
    "migrate",
    "migration_status",
    "run_migration",
]
