"""What a repository holds and the window one can restore into (`pgbackrest info` JSON).

The earliest restorable time is the stop time of the oldest backup (recovery must at least reach
a backup's consistent point); the latest is the end of the newest archived WAL segment, whose
time pgBackRest does not record: `pg_stat_archiver.last_archived_time` on the running server
gives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.pitr.pgbackrest import PitrError


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    started_at: datetime
    stopped_at: datetime
    size_bytes: int
    repo_size_bytes: int
    wal_start: str
    wal_stop: str
    error: bool


@dataclass(frozen=True)
class RepoInfo:
    """One stanza's backups (oldest first) and its WAL archive's first and last segment."""

    stanza: str
    status: str
    cipher: str
    backups: tuple[BackupSet, ...]
    wal_min: str | None
    wal_max: str | None

    @property
    def stanza_missing(self) -> bool:
        """pgBackRest's status codes 1 (missing stanza path) and 3 (missing stanza data):
        `stanza-create` is needed (src/command/info/info.c)."""
        return self.status.split(" ", 1)[0] in ("1", "3")

    @property
    def earliest_restorable(self) -> datetime | None:
        good = [b for b in self.backups if not b.error]
        return good[0].stopped_at if good else None

    def last_backup(self, type_: str | None = None) -> BackupSet | None:
        chosen = [b for b in self.backups if type_ is None or b.type == type_]
        return chosen[-1] if chosen else None


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def parse_info(text: str, stanza: str) -> RepoInfo:
    """The named stanza from pgBackRest's JSON; `PitrError` if it is absent or malformed."""
    try:
        stanzas = json.loads(text)
        entry = next(s for s in stanzas if s.get("name") == stanza)
        backups = tuple(
            BackupSet(
                label=b["label"],
                type=b["type"],
                started_at=_time(b["timestamp"]["start"]),
                stopped_at=_time(b["timestamp"]["stop"]),
                size_bytes=int(b["info"]["size"]),
                repo_size_bytes=int(b["info"]["repository"]["delta"]),
                wal_start=str((b.get("archive") or {}).get("start") or ""),
                wal_stop=str((b.get("archive") or {}).get("stop") or ""),
                error=bool(b.get("error", False)),
            )
            for b in entry.get("backup", [])
        )
        archives = [a for a in entry.get("archive", []) if a.get("max")]
        status = entry.get("status", {})
    except StopIteration:
        raise PitrError(f"stanza {stanza!r} is not in the repository (run `pitr check`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PitrError(f"unexpected `pgbackrest info` output: {exc!r}") from None
    return RepoInfo(
        stanza=stanza,
        status=f"{status.get('code', '?')} {status.get('message', '')}".strip(),
        cipher=str(entry.get("cipher", "")),
        backups=tuple(sorted(backups, key=lambda b: b.stopped_at)),
        wal_min=min((a["min"] for a in archives), default=None),
        wal_max=max((a["max"] for a in archives), default=None),
    )
