"""The manifest: what a backup is, written after its data, so its presence means "complete".

It records everything needed to trust the artefact without the database: a SHA-256 and the
size of the stored object (ciphertext when encrypted, so corruption is found without the
key), versions, compression, the key id (never the key) and row counts taken in the dump's
own snapshot, which deep verification compares after a scratch restore.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.backup.errors import CorruptBackupError

FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
VERIFY_SUFFIX = ".verify.json"
DATA_SUFFIXES = (".dump.enc", ".dump")
_ID = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-[0-9a-f]{6}$")


def new_backup_id(now: datetime) -> str:
    """Sortable by time, unique by a random suffix, so no backup ever overwrites another."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


def id_timestamp(backup_id: str) -> datetime | None:
    """The creation time encoded in a backup id (for objects whose manifest is missing)."""
    match = _ID.match(backup_id)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def split_name(name: str) -> tuple[str, str] | None:
    """(backup_id, kind) for a stored object name; kind is data, manifest or verify."""
    for suffix, kind in (
        (MANIFEST_SUFFIX, "manifest"),
        (VERIFY_SUFFIX, "verify"),
        (".dump.enc", "data"),
        (".dump", "data"),
    ):
        if name.endswith(suffix):
            backup_id = name[: -len(suffix)]
            return (backup_id, kind) if _ID.match(backup_id) else None
    return None


@dataclass(frozen=True)
class Manifest:
    """Facts about one complete backup."""

    backup_id: str
    data_object: str
    database: str
    server_version: str
    tool_version: str
    created_at: datetime
    duration_seconds: float
    size_bytes: int
    sha256: str
    dump_format: str
    compression: str
    encryption: str | None
    key_id: str | None
    key_check: str | None
    table_rows: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        body: dict[str, Any] = asdict(self)
        body["created_at"] = self.created_at.astimezone(UTC).isoformat()
        return json.dumps(body, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, backup_id: str, raw: bytes) -> Manifest:
        """Parse and check a manifest; anything odd is a `CorruptBackupError`."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            if body.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"unknown format_version {body.get('format_version')!r}")
            body["created_at"] = datetime.fromisoformat(body["created_at"])
            manifest = cls(**body)
            if (
                manifest.backup_id != backup_id
                or not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256)
                or not isinstance(manifest.size_bytes, int)
                or manifest.size_bytes < 0
                or manifest.created_at.tzinfo is None
            ):
                raise ValueError("fields do not match this backup")
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptBackupError(backup_id, f"manifest unreadable: {exc}") from None
        return manifest


@dataclass(frozen=True)
class VerifyRecord:
    """The outcome of the last verification of a backup (stored beside it)."""

    ok: bool
    deep: bool
    reason: str
    verified_at: datetime

    def to_json(self) -> bytes:
        body = asdict(self)
        body["verified_at"] = self.verified_at.astimezone(UTC).isoformat()
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> VerifyRecord | None:
        try:
            body = json.loads(raw)
            body["verified_at"] = datetime.fromisoformat(body["verified_at"])
            return cls(**body)
        except (ValueError, TypeError, KeyError):
            return None
