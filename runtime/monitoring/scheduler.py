"""Scheduled backups for the sidecar: a cron schedule, one run at a time, outcome metrics.

The job is injected (the backup module's `BackupManager.create_backup` plugs in), so the
scheduler only knows when to run it and what came of it. A job that raises, or returns a
result whose `status` is `"failed"`, counts as a failure; the next run is still scheduled.
`metrics()` is a `BackupStatsSource` for the Prometheus collector.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from croniter import croniter

log = logging.getLogger(__name__)


class BackupScheduler:
    """Runs `job` on a cron `schedule` (5 fields, or 6 with seconds last) in a thread."""

    def __init__(
        self,
        job: Callable[[], object],
        schedule: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(schedule, str) or not croniter.is_valid(schedule):
            raise ValueError(
                f"schedule: got {schedule!r}; allowed: a cron expression like '0 2 * * *'"
            )
        self.job = job
        self.schedule = schedule
        self._clock = clock
        self._lock = threading.Lock()
        self._running = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.next_run = self._after(clock())
        self.successes = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_duration: float | None = None
        self.last_size: float | None = None

    def _after(self, ts: float) -> float:
        start = datetime.fromtimestamp(ts, UTC)
        return float(croniter(self.schedule, start).get_next(float))

    def run_now(self) -> bool:
        """Run the job once (skipped if a run is in progress); True if it succeeded."""
        if not self._running.acquire(blocking=False):
            log.warning("backup still running: skipped a scheduled run")
            return False
        try:
            started = time.monotonic()
            try:
                result = self.job()
                ok = getattr(result, "status", "success") != "failed"
            except Exception:
                log.exception("scheduled backup failed")
                result, ok = None, False
            duration = time.monotonic() - started
            with self._lock:
                self.last_duration = duration
                if ok:
                    self.successes += 1
                    self.last_success = self._clock()
                    size = getattr(result, "size_bytes", None)
                    if isinstance(size, int | float) and not isinstance(size, bool):
                        self.last_size = float(size)
                else:
                    self.failures += 1
            return ok
        finally:
            self._running.release()

    def run_pending(self) -> bool:
        """Run the job if its time has come; True if it ran."""
        now = self._clock()
        if now < self.next_run:
            return False
        self.next_run = self._after(now)
        self.run_now()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="backup-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_pending()
            # wake at the next run, or within a second (the wall clock may jump)
            self._stop.wait(min(1.0, max(0.01, self.next_run - self._clock())))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling; a run in progress is waited for up to `timeout` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def metrics(self) -> dict[str, float]:
        with self._lock:
            values: dict[str, float] = {
                "failures_total": float(self.failures),
                "successes_total": float(self.successes),
                "next_run_timestamp_seconds": self.next_run,
            }
            if self.last_success is not None:
                values["last_success_timestamp_seconds"] = self.last_success
            if self.last_duration is not None:
                values["last_duration_seconds"] = self.last_duration
            if self.last_size is not None:
                values["last_size_bytes"] = self.last_size
            return values
