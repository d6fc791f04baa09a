"""Retention as a pure function, so its guarantees can be checked with hypothesis.

Kept, whatever else: every backup younger than the retention period; the newest `min_keep`
usable (not corrupt) backups; the newest verified backup. Everything else is deleted. The
minimum counts usable backups because keeping a corrupt one would give false comfort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

BackupState = Literal["verified", "unverified", "corrupt"]


@dataclass(frozen=True)
class RetentionItem:
    """What retention needs to know about one backup."""

    backup_id: str
    created_at: datetime
    state: BackupState


@dataclass(frozen=True)
class RetentionPlan:
    """Which backups to keep and delete, and why each is kept."""

    keep: tuple[str, ...]
    delete: tuple[str, ...]
    why_kept: dict[str, str]


def plan_retention(
    items: Sequence[RetentionItem], now: datetime, retention_days: int, min_keep: int
) -> RetentionPlan:
    if retention_days < 0:
        raise ValueError(f"retention_days: got {retention_days}; allowed: >= 0")
    if min_keep < 1:
        raise ValueError(f"min_keep: got {min_keep}; allowed: >= 1")
    cutoff = now - timedelta(days=retention_days)
    ordered = sorted(items, key=lambda it: (it.created_at, it.backup_id), reverse=True)
    why: dict[str, str] = {}
    for item in ordered:
        if item.created_at > cutoff:
            why.setdefault(item.backup_id, f"younger than {retention_days} days")
    for item in [it for it in ordered if it.state != "corrupt"][:min_keep]:
        why.setdefault(item.backup_id, f"among the newest {min_keep} usable backups")
    for item in ordered:
        if item.state == "verified":
            why.setdefault(item.backup_id, "newest verified backup")
            break
    keep = tuple(it.backup_id for it in ordered if it.backup_id in why)
    delete = tuple(it.backup_id for it in ordered if it.backup_id not in why)
    return RetentionPlan(keep, delete, why)
