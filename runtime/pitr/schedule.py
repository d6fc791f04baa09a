"""Which physical backup is due next, from the full and differential cron schedules.

The sidecar's scheduler sleeps until `next_backup(settings, now)` and then calls
`run_backup(settings, type_)`. When both schedules fire at the same minute the full backup
wins (it contains what the differential would). A differential with no full backup in the
repository is turned into a full one by pgBackRest itself.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from runtime.pitr.settings import BackupType, PitrSettings


def next_backup(settings: PitrSettings, after: datetime) -> tuple[datetime, BackupType]:
    """The next scheduled backup strictly after `after` (timezone-aware), and its type."""
    full = croniter(settings.full_schedule, after).get_next(datetime)
    diff = croniter(settings.diff_schedule, after).get_next(datetime)
    return (full, "full") if full <= diff else (diff, "diff")
