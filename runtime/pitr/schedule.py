"""The sidecar's scheduled physical backups: the full and the differential cron schedule, each
a `BackupScheduler` (the runtime's one scheduler) whose job is `take_backup`.

- One backup at a time: the two jobs share a lock.
- The full backup wins: a differential is skipped when the full schedule is due as well, or
  when a backup already finished after the differential's slot (the full one of the same
  minute, or the first one after start-up). A differential with no full backup in the
  repository is made full by pgBackRest itself.
- Across restarts the schedulers start from the repository (`pgbackrest info`): the newest
  full backup, and the newest backup of any type, count as the last runs, and the metrics'
  timestamps start from them, so a restart neither takes an extra backup nor hides an old one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from runtime.backup.schedule import BackupScheduler
from runtime.pitr.backups import repo_info, take_backup
from runtime.pitr.info import BackupSet
from runtime.pitr.metrics import BackupRun, PitrState
from runtime.pitr.pgbackrest import BackupType, PitrError, prepare_config
from runtime.settings import PitrSettings

log = logging.getLogger("runtime.pitr.schedule")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_run(backup: BackupSet) -> BackupRun:
    duration = (backup.stopped_at - backup.started_at).total_seconds()
    return BackupRun(backup.type, True, backup.started_at.timestamp(), duration, backup.label)


class PhysicalBackups:
    """The full and differential schedulers for one `PitrSettings`, recording into `state`."""

    def __init__(
        self,
        settings: PitrSettings,
        state: PitrState,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.state = state
        self._clock = clock
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._starter: threading.Thread | None = None
        self.full = BackupScheduler(
            settings.full_schedule, lambda: self._run("full"), clock=clock, name="pitr-full"
        )
        self.diff = BackupScheduler(
            settings.diff_schedule, lambda: self._run("diff"), clock=clock, name="pitr-diff"
        )

    def _run(self, type_: BackupType) -> BackupRun | None:
        with self._lock:
            if type_ == "diff" and self._diff_covered():
                log.info("differential backup skipped: the full backup covers its slot")
                return None
            run = take_backup(self.settings, type_, self.state)
            if run.success:
                log.info("%s backup %s done in %.1f s", type_, run.label, run.duration_seconds)
            return run

    def _diff_covered(self) -> bool:
        if self.full.due(self._clock()) is not None:
            return True
        slot = self.diff.last_slot  # the slot being run (marked before the job starts)
        _, successes, _ = self.state.snapshot()
        ends = [r.started_at + r.duration_seconds for r in successes.values()]
        return slot is not None and bool(ends) and max(ends) >= slot.timestamp()

    def resume(self) -> None:
        """Start from the repository's newest backups (best effort: without them, the next
        tick runs the latest slot of each schedule, full first)."""
        try:
            prepare_config(self.settings)
            info = repo_info(self.settings)
        except PitrError as exc:
            log.warning("physical backups: cannot read the repository yet: %s", exc)
            return
        good = [b for b in info.backups if not b.error]
        full = [b for b in good if b.type == "full"]
        if full:
            self.full.last_slot = full[-1].stopped_at
        if good:
            self.diff.last_slot = good[-1].stopped_at
        newest = {b.type: b for b in good}  # oldest first: the last of each type wins
        self.state.seed([_as_run(b) for b in newest.values()])

    def start(self) -> None:
        """`resume` and then both schedulers, on a thread (pgbackrest info may take seconds)."""

        def run() -> None:
            self.resume()
            if not self._stopped.is_set():
                self.full.start()
                self.diff.start()

        self._starter = threading.Thread(target=run, name="pitr-start", daemon=True)
        self._starter.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling; a backup in progress is waited for up to `timeout` seconds."""
        self._stopped.set()
        if self._starter is not None:
            self._starter.join(timeout)
        self.full.stop(timeout)
        self.diff.stop(timeout)
