"""Continuous WAL archiving and point-in-time recovery: a thin layer over pgBackRest.

See docs/runtime-pitr.md. Never imports redis or monitoring; the sidecar wires `run_backup`
into its scheduler and registers `PitrCollector`.
"""

from runtime.pitr.commands import run_backup, run_check, run_info, run_restore
from runtime.pitr.metrics import BackupRun, PitrCollector, PitrState
from runtime.pitr.schedule import next_backup
from runtime.pitr.settings import PitrSettings, load_pitr_settings

__all__ = [
    "BackupRun",
    "PitrCollector",
    "PitrSettings",
    "PitrState",
    "load_pitr_settings",
    "next_backup",
    "run_backup",
    "run_check",
    "run_info",
    "run_restore",
]
