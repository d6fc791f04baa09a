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

__all__ = [
    "BackupResult",
    "ConnectionPool",
    "ContractError",
    "MetricsData",
    "ServiceStatus",
]
