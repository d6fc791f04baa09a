"""Physical backups as outcomes: take one, read the repository. No exit codes, no output.

The sidecar's schedulers (`runtime/pitr/schedule.py`) and the `pitr` verbs
(`runtime/pitr/commands.py`) both call these, so the scheduler never imports a command module.
"""

from __future__ import annotations

import time

from runtime.pitr.info import RepoInfo, parse_info
from runtime.pitr.metrics import BackupRun, PitrState
from runtime.pitr.pgbackrest import BackupType, Pgbackrest, PitrError, prepare_config
from runtime.settings import PitrSettings


def take_backup(
    settings: PitrSettings, type_: BackupType, state: PitrState | None = None
) -> BackupRun:
    """One physical backup (`full`, `diff` or `incr`), recorded in `state` for the metrics.

    The sidecar's schedulers call this; its `status` is what they count."""
    started = time.time()
    clock = time.monotonic()
    label: str | None = None
    error: str | None = None
    try:
        prepare_config(settings)
        tool = Pgbackrest(settings)
        tool.check("backup", f"--type={type_}")
        newest = repo_info(settings, tool).last_backup()
        label = newest.label if newest else None
    except PitrError as exc:
        error = str(exc)
    run = BackupRun(type_, error is None, started, time.monotonic() - clock, label, error)
    if state is not None:
        state.record(run)
    return run


def repo_info(settings: PitrSettings, tool: Pgbackrest | None = None) -> RepoInfo:
    tool = tool or Pgbackrest(settings)
    return parse_info(tool.check("info", "--output=json"), settings.stanza)
