"""Prometheus exposition: scrape-time collectors for pool, cache and backup statistics.

The pool, cache and backup objects belong to other modules; the collectors only read them
through small protocols, at scrape time, so a scrape always shows the current numbers. A
source that raises does not break the scrape: its series are left out and
`runtime_collector_up{collector=...}` turns 0 (and the failure is counted and logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from runtime.contracts import ConnectionPool
from runtime.histogram import HistogramSnapshot

if TYPE_CHECKING:  # the sources' own types; importing them here would pull in redis-py
    from runtime.backup.schedule import ScheduleStats
    from runtime.cache import CacheStats

log = logging.getLogger(__name__)


class PoolStatsSource(Protocol):
    """A connection pool that reports an occupancy snapshot."""

    def stats(self) -> ConnectionPool: ...


class QueryDurationSource(Protocol):
    """A pool that also times its statements (`runtime.database.DatabasePool` does)."""

    def query_durations(self) -> HistogramSnapshot: ...


def _buckets(snapshot: HistogramSnapshot) -> list[tuple[str, float]]:
    """Prometheus's cumulative `le` buckets, written as prometheus_client writes them."""
    pairs = zip(snapshot.bounds, snapshot.cumulative, strict=True)
    buckets = [(str(floatToGoString(b)), float(c)) for b, c in pairs]  # type: ignore[no-untyped-call]
    return [*buckets, ("+Inf", float(snapshot.count))]


class CacheStatsSource(Protocol):
    """A cache that reports `CacheStats` (`runtime.cache.CacheClient` does)."""

    def stats(self) -> CacheStats: ...


class BackupStatsSource(Protocol):
    """Scheduled backups that report `ScheduleStats` (`runtime.backup.BackupScheduler` does)."""

    def stats(self) -> ScheduleStats: ...


CACHE_RESULTS = {"hits": "hit", "misses": "miss", "errors": "error", "fallbacks": "fallback"}
BREAKER_STATES = ("closed", "open", "half_open")


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
        durations = HistogramMetricFamily(
            "runtime_db_query_duration_seconds",
            "Duration of each statement the pool ran (cursor execute, failures included)",
            labels=["pool"],
        )
        for name, source in self.pools.items():
            snapshot = source.stats()
            connections.add_metric([name, "active"], snapshot.active_connections)
            connections.add_metric([name, "available"], snapshot.available_connections)
            maximum.add_metric([name], snapshot.max_connections)
            timeout.add_metric([name], snapshot.connection_timeout)
            timed = getattr(source, "query_durations", None)
            if callable(timed):
                histogram: HistogramSnapshot = timed()
                durations.add_metric([name], _buckets(histogram), histogram.sum)
        return [connections, maximum, timeout, durations]


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
            requests.add_metric([result], float(getattr(stats, key)))
        families: list[Metric] = [requests]
        state = stats.breaker_state
        if state in BREAKER_STATES:
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


class BackupCollector(_GuardedCollector):
    """`runtime_backup_*` from the backup scheduler's `ScheduleStats`."""

    name = "backup"

    def __init__(
        self, source: BackupStatsSource, on_error: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(on_error)
        self.source = source

    def _collect(self) -> Iterable[Metric]:
        stats = self.source.stats()
        gauges = {
            "runtime_backup_last_success_timestamp_seconds": (
                "Unix time of the last successful backup",
                stats.last_success,
            ),
            "runtime_backup_last_duration_seconds": (
                "How long the last backup run took",
                stats.last_duration,
            ),
            "runtime_backup_last_size_bytes": (
                "Size of the last successful backup",
                stats.last_size,
            ),
            "runtime_backup_next_run_timestamp_seconds": (
                "Unix time of the next scheduled backup",
                stats.next_run,
            ),
        }
        families: list[Metric] = [
            GaugeMetricFamily(name, doc, value=float(value))
            for name, (doc, value) in gauges.items()
            if value is not None
        ]
        families.append(
            CounterMetricFamily(
                "runtime_backup_failures", "Backup runs that failed", value=stats.failures
            )
        )
        families.append(
            CounterMetricFamily(
                "runtime_backup_successes", "Backup runs that succeeded", value=stats.successes
            )
        )
        durations = HistogramMetricFamily(
            "runtime_backup_duration_seconds",
            "Duration of each scheduled backup run, by outcome (success, failure)",
            labels=["outcome"],
        )
        for outcome, histogram in sorted(stats.durations.items()):
            durations.add_metric([outcome], _buckets(histogram), histogram.sum)
        families.append(durations)
        return families


__all__ = [
    "BackupCollector",
    "BackupStatsSource",
    "CacheCollector",
    "CacheStatsSource",
    "PoolCollector",
    "PoolStatsSource",
    "QueryDurationSource",
]
