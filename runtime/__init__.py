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

# Backups (runtime/backup/): appended so the lines above stay as they are.
from runtime.backup import BackupManager, BackupSettings

__all__ += ["BackupManager", "BackupSettings"]
