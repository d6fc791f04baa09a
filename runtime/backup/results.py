"""What the manager's operations return: plain frozen values, safe to log and serialise."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from runtime.backup.manifest import Manifest
from runtime.backup.retention import BackupState
from runtime.contracts import BackupResult


@dataclass(frozen=True)
class BackupOutcome(BackupResult):
    """The specification's `BackupResult`, plus why a failed run failed."""

    reason: str = ""
    manifest: Manifest | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BackupInfo:
    """One stored backup as `list` shows it."""

    backup_id: str
    created_at: datetime
    size_bytes: int
    state: BackupState
    reason: str
    location: str
    encrypted: bool
    key_id: str | None


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify()`: `ok`, or the reason the backup cannot be trusted."""

    backup_id: str
    ok: bool
    deep: bool
    reason: str
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    """Which backup was restored, where, and which newer ones were skipped and why."""

    requested: str
    restored: str
    target: str
    skipped: tuple[tuple[str, str], ...]
    seconds: float

    @property
    def fell_back(self) -> bool:
        return bool(self.skipped)
