"""Monitoring: metrics (`MonitoringService.collect_metrics()`), service status, Prometheus
exposition and in-process alerting. See docs/runtime-monitoring.md; settings are the
`monitoring` and `alerting` sections of `runtime.settings.Settings`."""

from typing import Any

from runtime.monitoring.alerting import (
    AlertEngine,
    AlertmanagerNotifier,
    Notification,
    Rule,
    Sample,
    WebhookNotifier,
    default_rules,
)
from runtime.monitoring.exposition import BackupStatsSource, CacheStatsSource, PoolStatsSource
from runtime.monitoring.metrics import CgroupMemoryReader, CpuSampler, MemoryReading
from runtime.monitoring.service import MonitoringError, MonitoringService
from runtime.monitoring.status import (
    HttpProbe,
    PostgresProbe,
    RedisProbe,
    ServiceProber,
    TcpProbe,
    probe_for_url,
)

__all__ = [
    "AlertEngine",
    "AlertmanagerNotifier",
    "BackupStatsSource",
    "CacheStatsSource",
    "CgroupMemoryReader",
    "CpuSampler",
    "HttpProbe",
    "MemoryReading",
    "MonitoringError",
    "MonitoringService",
    "Notification",
    "PoolStatsSource",
    "PostgresProbe",
    "RedisProbe",
    "Rule",
    "Sample",
    "ServiceProber",
    "TcpProbe",
    "WebhookNotifier",
    "default_rules",
    "probe_for_url",
]


def __getattr__(name: str) -> Any:
    if name == "AlertManager":  # deprecated alias of AlertEngine (it warns)
        from runtime.monitoring import alerting

        return alerting.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
