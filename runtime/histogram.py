"""Duration histograms the pool and the backup scheduler keep for the service-level objectives.

The pool and the scheduler know nothing of metrics code: they count durations here, and the
monitoring collectors expose the snapshots as Prometheus histograms. The SLOs read one bucket
by its exact `le` label (the stack's `sloQueryLatencyMs` and `sloBackupSeconds` must be one of
these bounds: docs/slo.md), so the bounds below are a contract with
components/monitoring/slo.py, checked by tests/test_slo_runtime.py against the exposition.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

# Seconds. 0.1 is the specification's 100 ms query target; 5 its backup target.
QUERY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BACKUP_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (as Prometheus's `le` buckets), total count and sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum: float


class DurationHistogram:
    """Thread-safe counts of observed durations per bucket (about a microsecond per call)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"bounds: got {bounds!r}; allowed: increasing, non-empty")
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)  # a value equal to a bound is in it
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for count in counts[:-1]:
            running += count
            cumulative.append(running)
        return HistogramSnapshot(self.bounds, tuple(cumulative), running + counts[-1], total)
