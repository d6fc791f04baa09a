"""Backup errors: one class per thing an operator or a script must tell apart.

Messages are single lines and never carry secrets (passwords, encryption keys): callers pass
already-redacted text, and `redact()` in `runtime.backup.redaction` is the safety net.
"""

from __future__ import annotations

from runtime.errors import PlatformError


class BackupError(PlatformError):
    """Base class: anything the backup subsystem reports as a failure (bad settings raise
    `runtime.errors.ConfigError` instead)."""


class StorageError(BackupError):
    """The storage backend failed (I/O, permissions, S3 errors)."""


class ObjectNotFoundError(StorageError):
    """The named object does not exist in the storage backend."""

    def __init__(self, location: str) -> None:
        super().__init__(f"not found: {location}")
        self.location = location


class CorruptBackupError(BackupError):
    """A stored backup cannot be trusted; `reason` says why (checksum, truncation, key...)."""

    def __init__(self, backup_id: str, reason: str) -> None:
        super().__init__(f"backup {backup_id} is not restorable: {reason}")
        self.backup_id = backup_id
        self.reason = reason


class RestoreError(BackupError):
    """pg_restore into the target failed although the backup itself verified."""


class NoRestorableBackupError(BackupError):
    """No backup verified; `skipped` lists every candidate with the reason it was rejected."""

    def __init__(self, skipped: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"{bid}: {why}" for bid, why in skipped) or "no backups found"
        super().__init__(f"no restorable backup ({detail})")
        self.skipped = skipped


class BackupBusyError(BackupError):
    """Another backup run holds the lock: runs never overlap."""
