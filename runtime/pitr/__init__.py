"""Continuous WAL archiving and point-in-time recovery: a thin layer over pgBackRest.

See docs/runtime-pitr.md. Settings are `runtime.settings.PitrSettings` (`Settings.pitr`).
Never imports redis or monitoring; the sidecar runs `PhysicalBackups` (two `BackupScheduler`s)
and registers `PitrCollector`.
"""

from runtime.pitr.backups import take_backup
from runtime.pitr.commands import run_backup, run_check, run_info, run_restore
from runtime.pitr.metrics import BackupRun, PitrCollector, PitrState

__all__ = [
    "BackupRun",
    "PitrCollector",
    "PitrState",
    "run_backup",
    "run_check",
    "run_info",
    "run_restore",
    "take_backup",
]
