"""Backups you can restore: verified, encrypted, shipped to S3, retained, with fallback.

See docs/runtime-backups.md for the operator's view (CLI, exit codes, keys, S3, guarantees).
"""

from runtime.backup.config import BackupSettings
from runtime.backup.errors import (
    BackupBusyError,
    BackupConfigError,
    BackupError,
    CorruptBackupError,
    NoRestorableBackupError,
    RestoreError,
    StorageError,
)
from runtime.backup.manager import BackupManager
from runtime.backup.manifest import Manifest
from runtime.backup.metrics import BackupMetrics
from runtime.backup.results import BackupInfo, BackupOutcome, RestoreReport, VerifyReport
from runtime.backup.retention import RetentionItem, RetentionPlan, plan_retention
from runtime.backup.schedule import BackupScheduler
from runtime.backup.storage import LocalStorage, S3Storage, Storage

__all__ = [
    "BackupBusyError",
    "BackupConfigError",
    "BackupError",
    "BackupInfo",
    "BackupManager",
    "BackupMetrics",
    "BackupOutcome",
    "BackupScheduler",
    "BackupSettings",
    "CorruptBackupError",
    "LocalStorage",
    "Manifest",
    "NoRestorableBackupError",
    "RestoreError",
    "RestoreReport",
    "RetentionItem",
    "RetentionPlan",
    "S3Storage",
    "Storage",
    "StorageError",
    "VerifyReport",
    "plan_retention",
]
