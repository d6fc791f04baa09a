"""Metrics of the physical backups, for alerts: a collector reading a `PitrState`.

Nothing is registered at import: the caller (the sidecar) does
`registry.register(PitrCollector(state))`. The archiver itself is watched through
postgres_exporter's `pg_stat_archiver_*` series, not here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class BackupRun:
    """The outcome of one `run_backup`."""

    type: str
    success: bool
    started_at: float  # Unix time
    duration_seconds: float
    label: str | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """ "success" or "failed", as `BackupScheduler` reads a job's result."""
        return "success" if self.success else "failed"

    @property
    def reason(self) -> str | None:
        return self.error


class PitrState:
    """The last physical backup runs, shared by the scheduler (writer) and the collector."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: BackupRun | None = None
        self._last_success: dict[str, BackupRun] = {}
        self._failures = 0

    def record(self, run: BackupRun) -> None:
        with self._lock:
            self._last = run
            if run.success:
                self._last_success[run.type] = run
            else:
                self._failures += 1

    def seed(self, runs: list[BackupRun]) -> None:
        """The newest successful backups found in the repository at start-up, so the
        timestamps survive a restart; `last_backup_success` still waits for a run of ours."""
        with self._lock:
            for run in runs:
                known = self._last_success.get(run.type)
                if run.success and (known is None or known.started_at < run.started_at):
                    self._last_success[run.type] = run

    def snapshot(self) -> tuple[BackupRun | None, dict[str, BackupRun], int]:
        with self._lock:
            return self._last, dict(self._last_success), self._failures


class PitrCollector(Collector):
    """`runtime_pitr_*` series at scrape time (absent until the first run, except the counter)."""

    def __init__(self, state: PitrState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        last, successes, failures = self.state.snapshot()
        stamp = GaugeMetricFamily(
            "runtime_pitr_last_backup_timestamp_seconds",
            "Unix time the last successful physical backup of this type finished",
            labels=["type"],
        )
        duration = GaugeMetricFamily(
            "runtime_pitr_backup_duration_seconds",
            "Duration of the last successful physical backup of this type",
            labels=["type"],
        )
        for kind, run in sorted(successes.items()):
            stamp.add_metric([kind], run.started_at + run.duration_seconds)
            duration.add_metric([kind], run.duration_seconds)
        yield stamp
        yield duration
        if last is not None:
            yield GaugeMetricFamily(
                "runtime_pitr_last_backup_success",
                "1 if the last physical backup run succeeded, 0 if it failed",
                value=1 if last.success else 0,
            )
        yield CounterMetricFamily(
            "runtime_pitr_backup_failures",
            "Failed physical backup runs since the runtime started",
            value=failures,
        )
