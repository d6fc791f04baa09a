"""The sidecar's part of the restore drills: the heartbeat they measure RPO by, and the drill
schedule (`pitr.drill.schedule`, a `BackupScheduler` like the backups).

- The first drill runs at the first slot after start-up, never at start-up itself.
- Drills have their own scheduler thread and no lock shared with the backups: a backup is never
  delayed by a drill (pgBackRest's restore takes no stanza lock), and a drill restores the
  newest backup that has finished.
- `stop()` cancels a drill in progress: its copy is stopped and its directory deleted.
- Without PostgreSQL's server binaries (`pg_ctl`; an old sidecar image had only the client) the
  drills stay off, with a warning in the log: they would fail every week for that reason alone.
  When they are on, the state file remembers since when (`DrillState.enable`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from runtime.backup.schedule import BackupScheduler
from runtime.pitr.drill import Drill, DrillResult
from runtime.pitr.drill_metrics import STATE_FILE, DrillState
from runtime.pitr.heartbeat import Heartbeat
from runtime.pitr.pgbackrest import PitrError
from runtime.pitr.restore import pg_ctl
from runtime.settings import PitrSettings

log = logging.getLogger("runtime.pitr.drill")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RestoreDrills:
    """Heartbeat + scheduled drills for one `PitrSettings`, recording into `state`."""

    def __init__(
        self,
        settings: PitrSettings,
        state: DrillState | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.state = state or DrillState(settings.drill_scratch / STATE_FILE)
        self.drill = Drill(settings)
        self.heartbeat = Heartbeat(settings)
        self._stopping = threading.Event()
        self.scheduler = BackupScheduler(
            settings.drill_schedule, self.run, clock=clock, last_run=clock(), name="pitr-drill"
        )

    def run(self) -> DrillResult | None:
        if self._stopping.is_set():
            return None
        result = self.drill.run()
        self.state.record(result)
        return result

    def start(self) -> bool:
        """Start the heartbeat and the schedule; False (and a warning) when this host has no
        PostgreSQL server binaries to start a copy with (the Docker sidecar image today)."""
        try:
            binary = pg_ctl(self.settings)
            if not os.access(binary, os.X_OK):
                raise PitrError(f"{binary} is not an executable pg_ctl (pitr.pg_bin)")
        except PitrError as exc:
            log.warning("restore drills are off: %s", exc)
            return False
        self.state.enable()  # from now on, no good drill within the schedule is an alert
        self.heartbeat.start()
        self.scheduler.start()
        return True

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        self.drill.cancel()
        self.scheduler.stop(timeout)
        self.heartbeat.stop()
