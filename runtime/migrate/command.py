"""The `migrate` verbs as plain functions returning exit codes (runtime/exits.py).

`run_migrate`: the command's own exit code when it ran (0 done; anything else is the
command's failure, passed through); 1 when it did not run because another migration held
the lock for the whole wait, or there is no restore point, or the primary is unreachable;
2 for a bad setting or a missing command. The runtime's own lines go to stderr, prefixed
`migrate:` or `error:`; stdout is the command's alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from runtime.exits import EXIT_OK, error
from runtime.migrate.runner import migration_status, run_migration
from runtime.settings import Settings

_HINTS = {
    "lock timeout": (
        "a statement waited longer than lock_timeout ({lock:g} s, MIGRATE_LOCK_TIMEOUT) for a "
        "table another transaction holds, and gave up so that queries do not queue behind it; "
        "what its transaction did is rolled back; retry when that transaction has ended"
    ),
    "statement timeout": (
        "a statement ran longer than statement_timeout ({statement:g} s, "
        "MIGRATE_STATEMENT_TIMEOUT); what its transaction did is rolled back"
    ),
}


def run_migrate(settings: Settings, command: Sequence[str]) -> int:
    """`python -m runtime migrate -- COMMAND...`."""
    run = run_migration(settings, command)
    if run.returncode == EXIT_OK:
        return EXIT_OK
    options = settings.migrate
    parts = [f"the migration command exited with {run.returncode}"]
    if run.timed_out is not None:
        parts.append(
            _HINTS[run.timed_out].format(
                lock=options.lock_timeout_seconds, statement=options.statement_timeout_seconds
            )
        )
    if run.restore_point is not None:
        parts.append(
            "if it changed something it must not have, return to the state before it: "
            f"python -m runtime pitr restore --target-name {run.restore_point.name} "
            "(docs/migrations.md)"
        )
    error("; ".join(parts))
    return run.returncode


def run_status(settings: Settings, as_json: bool = False) -> int:
    """`python -m runtime migrate status`: the schema revision and whether a migration runs."""
    found = migration_status(settings)
    holder = found.holder
    if as_json:
        payload = {
            "revisions": list(found.revisions) if found.revisions is not None else None,
            "version_table": found.version_table,
            "migration_running": holder is not None,
            "lock_holder_pid": holder.pid if holder else None,
            "lock_held_since": holder.since.isoformat() if holder and holder.since else None,
        }
        print(json.dumps(payload))
        return EXIT_OK
    if found.revisions is None:
        print(f"revision: unknown (no {found.version_table} table: not Alembic, or never migrated)")
    else:
        print(f"revision: {', '.join(found.revisions) or 'none (empty version table)'}")
    if holder is None:
        print("migration running: no")
    else:
        since = f" since {holder.since:%Y-%m-%d %H:%M:%S%z}" if holder.since else ""
        print(f"migration running: yes (server pid {holder.pid}{since})")
    return EXIT_OK
