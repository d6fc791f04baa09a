"""Prometheus exposition: scrape-time collectors for pool, cache and backup statistics.

The pool, cache and backup objects belong to other modules; the collectors only read them
through small protocols, at scrape time, so a scrape always shows the current numbers. A
source that raises does not break the scrape: its series are left out and
`runtime_collector_up{collector=...}` turns 0 (and the failure is counted and logged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.contracts import ConnectionPool

log = logging.getLogger(__name__)


class PoolStatsSource(Protocol):
    """A connection pool that reports an occupancy snapshot."""

    def stats(self) -> ConnectionPool: ...


class CacheStatsSource(Protocol):
    """A cache client that reports cumulative counts and its circuit breaker's state.

    Keys read: `hits`, `misses`, `errors`, `fallbacks` (numbers, cumulative) and
    `breaker_state` (`closed`, `open` or `half_open`); missing keys are left out.
    """

    def stats(self) -> Mapping[str, float | str]: ...


class BackupStatsSource(Protocol):
    """Backups that report their last outcome.

    Keys read: `last_success_timestamp_seconds`, `last_duration_seconds`,
    `last_size_bytes`, `next_run_timestamp_seconds`, `failures_total`, `successes_total`;
    missing keys are left out.
    """

    def metrics(self) -> Mapping[str, float]: ...


CACHE_RESULTS = {"hits": "hit", "misses": "miss", "errors": "error", "fallbacks": "fallback"}
BREAKER_STATES = ("closed", "open", "half_open")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class _GuardedCollector:
    """Runs one source's `_collect`, turning its failure into `runtime_collector_up` = 0."""

    name = ""

    def __init__(self, on_error: Callable[[str], None] | None = None) -> None:
        self._on_error = on_error

    def _collect(self) -> Iterable[Metric]:
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "runtime_collector_up",
            "1 if the collector's source answered at the last scrape, else 0",
            labels=["collector"],
        )
        try:
            families = list(self._collect())
        except Exception as exc:
            log.warning("%s collector failed: %s", self.name, type(exc).__name__)
            if self._on_error is not None:
                self._on_error(self.name)
            up.add_metric([self.name], 0.0)
            yield up
            return
        up.add_metric([self.name], 1.0)
        yield up
        yield from families

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no describe: registering never calls the sources


class PoolCollector(_GuardedCollector):
    """`runtime_db_pool_*` from each pool's `stats()` snapshot, labelled by pool name."""

    name = "pool"

    def __init__(
        self,
        pools: Mapping[str, PoolStatsSource],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(on_error)
        self.pools = dict(pools)

    def _collect(self) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "runtime_db_pool_connections",
            "Connections in the pool by state (active: checked out; available: idle in pool)",
            labels=["pool", "state"],
        )
        maximum = GaugeMetricFamily(
            "runtime_db_pool_max_connections", "The pool's maximum size", labels=["pool"]
        )
        timeout = GaugeMetricFamily(
            "runtime_db_pool_connection_timeout_seconds",
            "How long a request waits for a connection before failing",
            labels=["pool"],
        )
        for name, source in self.pools.items():
            snapshot = source.stats()
            connections.add_metric([name, "active"], snapshot.active_connections)
            connections.add_metric([name, "available"], snapshot.available_connections)
            maximum.add_metric([name], snapshot.max_connections)
            timeout.add_metric([name], snapshot.connection_timeout)
        return [connections, maximum, timeout]


class CacheCollector(_GuardedCollector):
    """`runtime_cache_*` from the cache client's counters and circuit breaker."""

    name = "cache"

    def __init__(
        self, source: CacheStatsSource, on_error: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(on_error)
        self.source = source

    def _collect(self) -> Iterable[Metric]:
        stats = self.source.stats()
        requests = CounterMetricFamily(
            "runtime_cache_requests",
            "Cache requests by result (hit, miss, error, fallback to the database)",
            labels=["result"],
        )
        for key, result in CACHE_RESULTS.items():
            value = _number(stats.get(key))
            if value is not None:
                requests.add_metric([result], value)
        families: list[Metric] = [requests]
        state = stats.get("breaker_state")
        if isinstance(state, str):
            is_open = GaugeMetricFamily(
                "runtime_cache_breaker_open",
                "1 while the cache's circuit breaker is open (requests go to the database)",
            )
            is_open.add_metric([], 1.0 if state == "open" else 0.0)
            by_state = GaugeMetricFamily(
                "runtime_cache_breaker_state",
                "1 for the circuit breaker's current state, 0 for the others",
                labels=["state"],
            )
            for candidate in BREAKER_STATES:
                by_state.add_metric([candidate], 1.0 if candidate == state else 0.0)
            families += [is_open, by_state]
        return families


BACKUP_GAUGES = {
    "last_success_timestamp_seconds": (
        "runtime_backup_last_success_timestamp_seconds",
        "Unix time of the last successful backup",
    ),
    "last_duration_seconds": (
        "runtime_backup_last_duration_seconds",
        "How long the last backup run took",
    ),
    "last_size_bytes": ("runtime_backup_last_size_bytes", "Size of the last successful backup"),
    "next_run_timestamp_seconds": (
        "runtime_backup_next_run_timestamp_seconds",
        "Unix time of the next scheduled backup",
    ),
}
BACKUP_COUNTERS = {
    "failures_total": ("runtime_backup_failures", "Backup runs that failed"),
    "successes_total": ("runtime_backup_successes", "Backup runs that succeeded"),
}


class BackupCollector(_GuardedCollector):
    """`runtime_backup_*` from the backup manager's (or scheduler's) metrics."""

    name = "backup"

    def __init__(
        self, source: BackupStatsSource, on_error: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(on_error)
        self.source = source

    def _collect(self) -> Iterable[Metric]:
        stats = self.source.metrics()
        families: list[Metric] = []
        for key, (name, doc) in BACKUP_GAUGES.items():
            value = _number(stats.get(key))
            if value is not None:
                gauge = GaugeMetricFamily(name, doc)
                gauge.add_metric([], value)
                families.append(gauge)
        for key, (name, doc) in BACKUP_COUNTERS.items():
            value = _number(stats.get(key))
            if value is not None:
                families.append(CounterMetricFamily(name, doc, value=value))
        return families


__all__ = [
    "BackupCollector",
    "BackupStatsSource",
    "CacheCollector",
    "CacheStatsSource",
    "PoolCollector",
    "PoolStatsSource",
]
