"""`MonitoringService`: the specification's `collect_metrics()` and service status, its
Prometheus registry, and one monitoring round that feeds the alerting.

A failing collection never escapes a round: it is counted
(`runtime_monitoring_errors_total{source}`), logged, and raises the
`RuntimeMetricsCollectionFailing` alert (ET-INFRA-04.1).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.contracts import MetricsData, ServiceStatus
from runtime.errors import PlatformError
from runtime.monitoring.alerting import AlertEngine, Sample
from runtime.monitoring.exposition import (
    BackupCollector,
    BackupStatsSource,
    CacheCollector,
    CacheStatsSource,
    PoolCollector,
    PoolStatsSource,
)
from runtime.monitoring.metrics import (
    CgroupMemoryReader,
    CpuSampler,
    DiskReading,
    MemoryReading,
    read_disks,
)
from runtime.monitoring.status import Probe, ServiceProber

log = logging.getLogger(__name__)


class MonitoringError(PlatformError):
    """Metrics could not be collected; `source` says which part failed."""

    def __init__(self, source: str, cause: BaseException) -> None:
        super().__init__(f"collecting {source} metrics failed: {type(cause).__name__}: {cause}")
        self.source = source


class MonitoringService:
    """Collects `MetricsData`, probes services and exposes both (and more) to Prometheus."""

    def __init__(
        self,
        probes: Iterable[Probe] = (),
        *,
        health_check_timeout: float = 30.0,
        memory_reader: CgroupMemoryReader | None = None,
        cpu_sampler: CpuSampler | None = None,
        pools: Mapping[str, PoolStatsSource] | None = None,
        cache: CacheStatsSource | None = None,
        backups: BackupStatsSource | None = None,
        alert_manager: AlertEngine | None = None,
        disk_paths: Sequence[str] = ("/",),
    ) -> None:
        self.prober = ServiceProber(probes, health_check_timeout)
        self.memory_reader = memory_reader or CgroupMemoryReader()
        self.cpu_sampler = cpu_sampler or CpuSampler()
        self.alert_manager = alert_manager
        self.disk_paths = list(disk_paths)
        self.last_disks: list[DiskReading] = []
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.last_metrics: MetricsData | None = None
        self.last_memory: MemoryReading | None = None
        self.last_statuses: list[ServiceStatus] = []
        self.last_collection_failed = False
        self.registry = CollectorRegistry(auto_describe=False)
        if pools:
            self.registry.register(PoolCollector(pools, self._count_error))
        if cache is not None:
            self.registry.register(CacheCollector(cache, self._count_error))
        if backups is not None:
            self.registry.register(BackupCollector(backups, self._count_error))
        if alert_manager is not None:
            self.registry.register(alert_manager.collector())
        # last, so a source that failed in this scrape is already counted in its errors
        self.registry.register(_SystemCollector(self))

    def _count_error(self, source: str) -> None:
        with self._lock:
            self.errors[source] += 1

    # -- the specification's API -----------------------------------------------------------
    def collect_metrics(self) -> MetricsData:
        """CPU and memory use in percent (container-aware) and the slowest probe's latency.

        The first call samples CPU over a short window (never psutil's first 0.0); raises
        `MonitoringError` if CPU or memory cannot be read.
        """
        try:
            cpu = self.cpu_sampler.percent()
        except Exception as exc:
            self._count_error("cpu")
            raise MonitoringError("cpu", exc) from exc
        try:
            memory = self.memory_reader.read()
        except Exception as exc:
            self._count_error("memory")
            raise MonitoringError("memory", exc) from exc
        self.collect_disks()
        statuses = self.check_services()
        elapsed = [r.elapsed_ms for r in self.prober.last_results.values()]
        data = MetricsData(
            timestamp=datetime.now(UTC),
            cpu_usage=round(cpu, 2),
            memory_usage=round(memory.percent, 2),
            response_time_ms=round(max(elapsed, default=0.0)),
        )
        with self._lock:
            self.last_metrics, self.last_memory, self.last_statuses = data, memory, statuses
        return data

    def collect_disks(self) -> list[DiskReading]:
        """Disk use of `disk_paths` (not part of `MetricsData`; a failure is only counted)."""
        try:
            disks = read_disks(self.disk_paths)
        except OSError as exc:
            self._count_error("disk")
            log.error("reading disk usage failed: %s", exc)
            return []
        with self._lock:
            self.last_disks = disks
        return disks

    def check_services(self) -> list[ServiceStatus]:
        """A `ServiceStatus` per probed service, from live probes."""
        statuses = self.prober.check()
        with self._lock:
            self.last_statuses = statuses
        return statuses

    def service_status(self, name: str) -> ServiceStatus:
        """The live status of one probed service."""
        for probe in self.prober.probes:
            if probe.name == name:
                return ServiceProber([probe], self.prober.timeout).check()[0]
        known = ", ".join(p.name for p in self.prober.probes) or "none"
        raise KeyError(f"service: got {name!r}; allowed: {known}")

    # -- one monitoring round ------------------------------------------------------------
    def run_once(self) -> MetricsData | None:
        """Collect, then evaluate alerts; a collection failure is reported, not raised."""
        data: MetricsData | None = None
        try:
            data = self.collect_metrics()
            self.last_collection_failed = False
        except MonitoringError as exc:
            log.error("%s", exc)
            self.last_collection_failed = True
            self.check_services()
        if self.alert_manager is not None:
            self.alert_manager.evaluate(self.samples(data))
        return data

    def samples(self, data: MetricsData | None) -> list[Sample]:
        """What the alert rules see: metric names `cpu_usage`, `memory_usage`,
        `response_time_ms`, `disk_usage{path}`, `service_up{service}` and `collection_failed`."""
        samples = [Sample("collection_failed", 1.0 if self.last_collection_failed else 0.0)]
        if data is not None:
            samples += [
                Sample("cpu_usage", data.cpu_usage),
                Sample("memory_usage", data.memory_usage),
                Sample("response_time_ms", float(data.response_time_ms)),
            ]
        for disk in self.last_disks:
            samples.append(Sample("disk_usage", disk.percent, {"path": disk.path}))
        for status in self.last_statuses:
            samples.append(
                Sample(
                    "service_up",
                    1.0 if status.status == "running" else 0.0,
                    {"service": status.service_name},
                )
            )
        return samples


class _SystemCollector:
    """`runtime_up` and the last round's system metrics and service statuses."""

    def __init__(self, service: MonitoringService) -> None:
        self.service = service

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        s = self.service
        with s._lock:
            data, memory, statuses = s.last_metrics, s.last_memory, list(s.last_statuses)
            disks = list(s.last_disks)
            errors = dict(s.errors)
        yield GaugeMetricFamily("runtime_up", "1 while the runtime's monitoring answers", 1.0)
        if data is not None and memory is not None:
            yield GaugeMetricFamily(
                "runtime_cpu_usage_percent", "System-wide CPU use (0-100)", data.cpu_usage
            )
            yield GaugeMetricFamily(
                "runtime_memory_usage_percent",
                "Memory use against the cgroup limit (or host memory) (0-100)",
                data.memory_usage,
            )
            yield GaugeMetricFamily(
                "runtime_memory_used_bytes",
                "Memory in use (cgroup usage minus inactive file cache)",
                memory.used_bytes,
            )
            yield GaugeMetricFamily(
                "runtime_memory_limit_bytes",
                "The memory limit usage counts against",
                memory.limit_bytes,
            )
            yield GaugeMetricFamily(
                "runtime_response_time_ms",
                "The slowest service probe's latency",
                data.response_time_ms,
            )
            yield GaugeMetricFamily(
                "runtime_metrics_last_collection_timestamp_seconds",
                "Unix time of the last successful metrics collection",
                data.timestamp.timestamp(),
            )
        disk_percent = GaugeMetricFamily(
            "runtime_disk_usage_percent",
            "Disk use like df's Use% (used over used + available)",
            labels=["path"],
        )
        disk_used = GaugeMetricFamily(
            "runtime_disk_used_bytes", "Bytes used on the filesystem", labels=["path"]
        )
        disk_total = GaugeMetricFamily(
            "runtime_disk_total_bytes", "The filesystem's size", labels=["path"]
        )
        for disk in disks:
            disk_percent.add_metric([disk.path], disk.percent)
            disk_used.add_metric([disk.path], disk.used_bytes)
            disk_total.add_metric([disk.path], disk.total_bytes)
        yield from (disk_percent, disk_used, disk_total)
        up = GaugeMetricFamily(
            "runtime_service_up", "1 if the service's probe found it running", labels=["service"]
        )
        state = GaugeMetricFamily(
            "runtime_service_status",
            "1 for the service's current status (running, stopped, error)",
            labels=["service", "status"],
        )
        uptime = GaugeMetricFamily(
            "runtime_service_uptime_seconds", "The service's uptime", labels=["service"]
        )
        for status in statuses:
            up.add_metric([status.service_name], 1.0 if status.status == "running" else 0.0)
            for candidate in ("running", "stopped", "error"):
                state.add_metric(
                    [status.service_name, candidate], 1.0 if status.status == candidate else 0.0
                )
            uptime.add_metric([status.service_name], status.uptime_seconds)
        yield from (up, state, uptime)
        failures = CounterMetricFamily(
            "runtime_monitoring_errors",
            "Failed metric collections by source (cpu, memory, disk, pool, cache, backup)",
            labels=["source"],
        )
        for source in ("cpu", "memory", "disk", "pool", "cache", "backup"):
            failures.add_metric([source], errors.get(source, 0))
        yield failures
