"""Run backups on BACKUP_SCHEDULE (cron) with an injectable clock.

The scheduler remembers the cron slot it last ran for. When it wakes up late, however many
slots were missed, it runs once for the most recent one (catch-up, not a burst). A run that is
still going makes the next tick report `busy` instead of starting a second, overlapping run.
Across restarts its memory is the newest backup's time (`BackupManager.newest_backup_time`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from croniter import croniter

from runtime.backup.errors import BackupConfigError

log = logging.getLogger("runtime.backup.schedule")

TickResult = Literal["ran", "not_due", "busy", "failed"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BackupScheduler:
    """Decides when the backup job runs; `tick()` is called by a loop or by a test."""

    def __init__(
        self,
        schedule: str,
        job: Callable[[], object],
        *,
        clock: Callable[[], datetime] = _utcnow,
        last_run: datetime | None = None,
    ) -> None:
        if not croniter.is_valid(schedule):
            raise BackupConfigError(
                "BACKUP_SCHEDULE", schedule, "a 5-field cron expression like '0 2 * * *'"
            )
        self.schedule = schedule
        self._job = job
        self._clock = clock
        self.last_slot = last_run
        self._running = threading.Lock()

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent scheduled time at or before `now`."""
        prev: datetime = croniter(self.schedule, now + timedelta(microseconds=1)).get_prev(datetime)
        return prev

    def next_slot(self, now: datetime) -> datetime:
        nxt: datetime = croniter(self.schedule, now).get_next(datetime)
        return nxt

    def due(self, now: datetime) -> datetime | None:
        """The slot to run for now, or None when the latest slot has already run."""
        slot = self.latest_slot(now)
        if self.last_slot is None or self.last_slot < slot:
            return slot
        return None

    def tick(self) -> TickResult:
        """Run the job once if a slot is due and no run is in progress."""
        slot = self.due(self._clock())
        if slot is None:
            return "not_due"
        if not self._running.acquire(blocking=False):
            return "busy"
        try:
            # Marked before running: a failing job is retried at the next slot, not in a loop.
            self.last_slot = slot
            try:
                self._job()
            except Exception as exc:
                log.error("scheduled backup for %s failed: %s", slot.isoformat(), exc)
                return "failed"
            return "ran"
        finally:
            self._running.release()

    def seconds_until_next(self) -> float:
        now = self._clock()
        return max(0.0, (self.next_slot(now) - now).total_seconds())

    def run_forever(self, stop: threading.Event, max_sleep: float = 60.0) -> None:
        """Tick, then sleep until the next slot (at most `max_sleep`) until `stop` is set."""
        while not stop.is_set():
            self.tick()
            stop.wait(min(max_sleep, self.seconds_until_next()) or 0.01)
