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

# Pool, cache, settings and typed errors (issue 3).
from runtime.cache import CacheClient, CacheStats, JsonSerializer, RedisManager, Serializer
from runtime.database import DatabaseManager, DatabasePool
from runtime.errors import (
    CacheError,
    ConfigError,
    DatabaseUnavailable,
    PlatformError,
    PoolTimeout,
    StatementTimeout,
)
from runtime.settings import Secret, Settings, load_settings

__all__ += [
    "CacheClient",
    "CacheError",
    "CacheStats",
    "ConfigError",
    "DatabaseManager",
    "DatabasePool",
    "DatabaseUnavailable",
    "JsonSerializer",
    "PlatformError",
    "PoolTimeout",
    "RedisManager",
    "Secret",
    "Serializer",
    "Settings",
    "StatementTimeout",
    "load_settings",
]
