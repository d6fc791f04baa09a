"""Run backups on the backup schedule (cron), for the sidecar and `backup schedule` alike.

The scheduler remembers the cron slot it last ran for. When it wakes up late, however many
slots were missed, it runs once for the most recent one (catch-up, not a burst). A run that is
still going makes the next tick report `busy` instead of starting a second, overlapping run.
Across restarts its memory is the newest backup's time (`BackupManager.newest_backup_time`).
A job that raises, or returns a result whose `status` is `"failed"`, counts as a failure;
`stats()` is what the monitoring's backup collector exposes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from croniter import croniter

from runtime.errors import ConfigError
from runtime.histogram import BACKUP_BUCKETS, DurationHistogram, HistogramSnapshot

log = logging.getLogger("runtime.backup.schedule")

TickResult = Literal["ran", "not_due", "busy", "failed"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScheduleStats:
    """What the scheduled runs came to since the scheduler started (Unix times, seconds)."""

    successes: int
    failures: int
    next_run: float
    last_success: float | None = None
    last_duration: float | None = None
    last_size: int | None = None
    # every run's duration by outcome ("success", "failure"): the backup SLO's SLI
    durations: Mapping[str, HistogramSnapshot] = field(default_factory=dict)


class BackupScheduler:
    """Decides when the backup job runs; `tick()` is called by its thread or by a test."""

    def __init__(
        self,
        schedule: str,
        job: Callable[[], object],
        *,
        clock: Callable[[], datetime] = _utcnow,
        last_run: datetime | None = None,
        name: str = "backup",
    ) -> None:
        if not croniter.is_valid(schedule):
            raise ConfigError("BACKUP_SCHEDULE", schedule, "a cron expression like '0 2 * * *'")
        self.schedule = schedule
        self.name = name  # in its thread's name and its log lines (e.g. "pitr-full")
        self._job = job
        self._clock = clock
        self.last_slot = last_run
        self._running = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._successes = 0
        self._failures = 0
        self._last_success: float | None = None
        self._last_duration: float | None = None
        self._last_size: int | None = None
        self._durations = {o: DurationHistogram(BACKUP_BUCKETS) for o in ("success", "failure")}

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
            return "ran" if self._run(slot) else "failed"
        finally:
            self._running.release()

    def _run(self, slot: datetime) -> bool:
        began = time.monotonic()
        result: object = None
        try:
            result = self._job()
            ok = getattr(result, "status", "success") != "failed"
            if not ok:
                reason = getattr(result, "reason", None) or "failed"
                log.error("scheduled %s for %s failed: %s", self.name, slot.isoformat(), reason)
        except Exception as exc:
            log.error("scheduled %s for %s failed: %s", self.name, slot.isoformat(), exc)
            ok = False
        with self._lock:
            self._last_duration = time.monotonic() - began
            self._durations["success" if ok else "failure"].observe(self._last_duration)
            if ok:
                self._successes += 1
                self._last_success = self._clock().timestamp()
                size = getattr(result, "size_bytes", None)
                if isinstance(size, int) and not isinstance(size, bool):
                    self._last_size = size
            else:
                self._failures += 1
        return ok

    def seconds_until_next(self) -> float:
        now = self._clock()
        return max(0.0, (self.next_slot(now) - now).total_seconds())

    def stats(self) -> ScheduleStats:
        with self._lock:
            return ScheduleStats(
                successes=self._successes,
                failures=self._failures,
                next_run=self.next_slot(self._clock()).timestamp(),
                last_success=self._last_success,
                last_duration=self._last_duration,
                last_size=self._last_size,
                durations={o: h.snapshot() for o, h in self._durations.items()},
            )

    def run_forever(self, stop: threading.Event, max_sleep: float = 60.0) -> None:
        """Tick, then sleep until the next slot (at most `max_sleep`) until `stop` is set."""
        while not stop.is_set():
            self.tick()
            stop.wait(min(max_sleep, self.seconds_until_next()) or 0.01)

    def start(self) -> None:
        """`run_forever` on a thread (waking at least every second: the clock may jump)."""
        self._thread = threading.Thread(
            target=self.run_forever,
            args=(self._stop, 1.0),
            name=f"{self.name}-scheduler",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling; a run in progress is waited for up to `timeout` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
