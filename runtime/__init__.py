"""The platform's runtime: what applications and the sidecar import.

Never imports `pulumi`: it runs inside containers and applications, not in `pulumi up`.
"""

from runtime.backup import BackupManager, BackupSettings
from runtime.cache import CacheClient, CacheStats, JsonSerializer, RedisManager, Serializer
from runtime.contracts import (
    BackupResult,
    ConnectionPool,
    ContractError,
    MetricsData,
    ServiceStatus,
)
from runtime.database import DatabaseManager, DatabasePool
from runtime.errors import (
    CacheError,
    ConfigError,
    DatabaseUnavailable,
    PlatformError,
    PoolTimeout,
    StatementTimeout,
)
from runtime.monitoring import AlertManager, MonitoringService, MonitoringSettings
from runtime.settings import Secret, Settings, load_settings

__all__ = [
    "AlertManager",
    "BackupManager",
    "BackupResult",
    "BackupSettings",
    "CacheClient",
    "CacheError",
    "CacheStats",
    "ConfigError",
    "ConnectionPool",
    "ContractError",
    "DatabaseManager",
    "DatabasePool",
    "DatabaseUnavailable",
    "JsonSerializer",
    "MetricsData",
    "MonitoringService",
    "MonitoringSettings",
    "PlatformError",
    "PoolTimeout",
    "RedisManager",
    "Secret",
    "Serializer",
    "ServiceStatus",
    "Settings",
    "StatementTimeout",
    "load_settings",
]
