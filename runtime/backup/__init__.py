"""Backups you can restore: verified, encrypted, shipped to S3, retained, with fallback.

See docs/runtime-backups.md for the operator's view (CLI, exit codes, keys, S3, guarantees).
Settings are the `backup` section of `runtime.settings.Settings`. The names below load on
first use (PEP 562), so `runtime.backup.dump` can start `pg_dump` before psycopg, boto and
cryptography are imported (`backup create`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "BackupSettings": "runtime.settings",
    "BackupManager": "runtime.backup.manager",
    "Manifest": "runtime.backup.manifest",
    "LocalStorage": "runtime.backup.storage",
    "S3Storage": "runtime.backup.storage",
    "Storage": "runtime.backup.storage",
    "BackupScheduler": "runtime.backup.schedule",
    "ScheduleStats": "runtime.backup.schedule",
    "RetentionItem": "runtime.backup.retention",
    "RetentionPlan": "runtime.backup.retention",
    "plan_retention": "runtime.backup.retention",
    "BackupInfo": "runtime.backup.results",
    "BackupOutcome": "runtime.backup.results",
    "RestoreReport": "runtime.backup.results",
    "VerifyReport": "runtime.backup.results",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if name in __all__:
        return getattr(importlib.import_module("runtime.backup.errors"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
