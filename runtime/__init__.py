"""The platform's runtime: what applications and the sidecar import.

Never imports `pulumi`: it runs inside containers and applications, not in `pulumi up`.
Names are imported on first use (module `__getattr__`), so `python -m runtime backup ...`
pays only for the backup modules, not for redis-py or the monitoring package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AlertEngine": "runtime.monitoring",
    "AlertManager": "runtime.monitoring",  # deprecated alias of AlertEngine (it warns)
    "BackupManager": "runtime.backup",
    "BackupResult": "runtime.contracts",
    "CacheClient": "runtime.cache",
    "CacheError": "runtime.errors",
    "CacheStats": "runtime.cache",
    "ConfigError": "runtime.errors",
    "ConnectionPool": "runtime.contracts",
    "ContractError": "runtime.contracts",
    "DatabaseManager": "runtime.database",
    "DatabasePool": "runtime.database",
    "DatabaseUnavailable": "runtime.errors",
    "JsonSerializer": "runtime.cache",
    "MetricsData": "runtime.contracts",
    "MonitoringService": "runtime.monitoring",
    "PlatformError": "runtime.errors",
    "PoolTimeout": "runtime.errors",
    "RedisManager": "runtime.cache",
    "Secret": "runtime.settings",
    "Serializer": "runtime.cache",
    "ServiceStatus": "runtime.contracts",
    "Settings": "runtime.settings",
    "StatementTimeout": "runtime.errors",
    "load_settings": "runtime.settings",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


if TYPE_CHECKING:  # the same names, for type checkers
    from runtime.backup import BackupManager as BackupManager
    from runtime.cache import CacheClient as CacheClient
    from runtime.cache import CacheStats as CacheStats
    from runtime.cache import JsonSerializer as JsonSerializer
    from runtime.cache import RedisManager as RedisManager
    from runtime.cache import Serializer as Serializer
    from runtime.contracts import BackupResult as BackupResult
    from runtime.contracts import ConnectionPool as ConnectionPool
    from runtime.contracts import ContractError as ContractError
    from runtime.contracts import MetricsData as MetricsData
    from runtime.contracts import ServiceStatus as ServiceStatus
    from runtime.database import DatabaseManager as DatabaseManager
    from runtime.database import DatabasePool as DatabasePool
    from runtime.errors import CacheError as CacheError
    from runtime.errors import ConfigError as ConfigError
    from runtime.errors import DatabaseUnavailable as DatabaseUnavailable
    from runtime.errors import PlatformError as PlatformError
    from runtime.errors import PoolTimeout as PoolTimeout
    from runtime.errors import StatementTimeout as StatementTimeout
    from runtime.monitoring import AlertEngine as AlertEngine
    from runtime.monitoring import MonitoringService as MonitoringService
    from runtime.settings import Secret as Secret
    from runtime.settings import Settings as Settings
    from runtime.settings import load_settings as load_settings
