"""Backup metrics for Prometheus, read at scrape time from the last runs' outcomes.

A custom collector (not module-level gauges) so several managers, and tests, never collide
in the global registry; register it where the sidecar serves /metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class BackupMetrics(Collector):
    """Last success time, duration, size, and failure counters of backup runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_success_timestamp: float = 0.0
        self.last_duration_seconds: float = 0.0
        self.last_size_bytes: int = 0
        self.successes_total: int = 0
        self.failures_total: int = 0
        self.verify_failures_total: int = 0
        self.last_verify_ok: bool = True

    def record_success(self, finished_at: float, duration: float, size: int) -> None:
        with self._lock:
            self.last_success_timestamp = finished_at
            self.last_duration_seconds = duration
            self.last_size_bytes = size
            self.successes_total += 1

    def record_failure(self, duration: float) -> None:
        with self._lock:
            self.last_duration_seconds = duration
            self.failures_total += 1

    def record_verify(self, ok: bool) -> None:
        with self._lock:
            self.last_verify_ok = ok
            if not ok:
                self.verify_failures_total += 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = (
                self.last_success_timestamp,
                self.last_duration_seconds,
                self.last_size_bytes,
                self.successes_total,
                self.failures_total,
                self.verify_failures_total,
                self.last_verify_ok,
            )
        stamp, duration, size, ok_total, failed_total, verify_failed, verify_ok = values
        yield GaugeMetricFamily(
            "backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup (0 if none since start).",
            value=stamp,
        )
        yield GaugeMetricFamily(
            "backup_last_duration_seconds", "Duration of the last backup run.", value=duration
        )
        yield GaugeMetricFamily(
            "backup_last_size_bytes", "Stored size of the last successful backup.", value=size
        )
        yield CounterMetricFamily(
            "backup_runs_succeeded", "Backup runs that produced a complete backup.", ok_total
        )
        yield CounterMetricFamily("backup_runs_failed", "Backup runs that failed.", failed_total)
        yield CounterMetricFamily(
            "backup_verify_failed", "Verifications that found a bad backup.", verify_failed
        )
        yield GaugeMetricFamily(
            "backup_last_verify_ok", "1 if the last verification passed.", value=int(verify_ok)
        )
