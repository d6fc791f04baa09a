"""Backups you can restore: verified, encrypted, shipped to S3, retained, with fallback.

See docs/runtime-backups.md for the operator's view (CLI, exit codes, keys, S3, guarantees).
Settings are the `backup` section of `runtime.settings.Settings`.
"""

from runtime.backup.errors import (
    BackupBusyError,
    BackupError,
    CorruptBackupError,
    NoRestorableBackupError,
    ObjectNotFoundError,
    RestoreError,
    StorageError,
)
from runtime.backup.manager import BackupManager
from runtime.backup.manifest import Manifest
from runtime.backup.results import BackupInfo, BackupOutcome, RestoreReport, VerifyReport
from runtime.backup.retention import RetentionItem, RetentionPlan, plan_retention
from runtime.backup.schedule import BackupScheduler, ScheduleStats
from runtime.backup.storage import LocalStorage, S3Storage, Storage
from runtime.settings import BackupSettings

__all__ = [
    "BackupBusyError",
    "BackupError",
    "BackupInfo",
    "BackupManager",
    "BackupOutcome",
    "BackupScheduler",
    "BackupSettings",
    "CorruptBackupError",
    "LocalStorage",
    "Manifest",
    "NoRestorableBackupError",
    "ObjectNotFoundError",
    "RestoreError",
    "RestoreReport",
    "RetentionItem",
    "RetentionPlan",
    "S3Storage",
    "ScheduleStats",
    "Storage",
    "StorageError",
    "VerifyReport",
    "plan_retention",
]
