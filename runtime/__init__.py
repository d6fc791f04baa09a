"""The platform's runtime: what applications and the sidecar import.

Never imports `pulumi`: it runs inside containers and applications, not in `pulumi up`.
"""

from runtime.contracts import (
    BackupResult,
    ConnectionPool,
    ContractError,
    MetricsData,
    ServiceStatus,
)
from runtime.monitoring import AlertManager, MonitoringService, MonitoringSettings

__all__ = [
    "AlertManager",
    "BackupResult",
    "ConnectionPool",
    "ContractError",
    "MetricsData",
    "MonitoringService",
    "MonitoringSettings",
    "ServiceStatus",
]
