"""`BackupSettings`: what the backup subsystem needs, read once from the environment.

`runtime.settings` (another module) owns the application-wide loader; this small dataclass
keeps the backup half self-contained so the sidecar and the CLI can run from env vars alone.
Every bad value fails with a message naming the variable, the value (masked when secret) and
what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from croniter import croniter

from runtime.backup.errors import BackupConfigError
from runtime.backup.redaction import mask_dsn, split_dsn

DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MIN_KEEP = 3
DEFAULT_DIR = "/backups"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BackupConfigError(name, raw, f"an integer from {low} to {high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BackupConfigError(name, raw, "true/false, yes/no, on/off or 1/0")


def parse_key(raw: str, variable: str = "BACKUP_ENCRYPTION_KEY") -> bytes:
    """Decode a base64 AES-256 key; the error never shows the value (it is a secret)."""
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise BackupConfigError(variable, "***", "base64 of exactly 32 random bytes")
    return key


@dataclass(frozen=True)
class BackupSettings:
    """Backup configuration; secrets are kept out of `repr()`."""

    database_url: str = field(default="", repr=False)
    schedule: str = DEFAULT_SCHEDULE
    retention_days: int = DEFAULT_RETENTION_DAYS
    min_keep: int = DEFAULT_MIN_KEEP
    backup_dir: Path = Path(DEFAULT_DIR)
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_prefix: str = "postgres/"
    s3_region: str = "us-east-1"
    s3_part_size_mb: int = 16
    encryption_key: bytes | None = field(default=None, repr=False)
    encryption_key_id: str | None = None
    pg_bindir: Path | None = None
    compress_level: int | None = None
    count_rows: bool = False
    jobs: int = 1

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.schedule):
            raise BackupConfigError(
                "BACKUP_SCHEDULE", self.schedule, "a 5-field cron expression like '0 2 * * *'"
            )
        if self.encryption_key is not None:
            if len(self.encryption_key) != 32:
                raise BackupConfigError("BACKUP_ENCRYPTION_KEY", "***", "exactly 32 bytes")
            if not self.encryption_key_id or not KEY_ID_PATTERN.match(self.encryption_key_id):
                raise BackupConfigError(
                    "BACKUP_ENCRYPTION_KEY_ID",
                    self.encryption_key_id or "",
                    "1-64 characters of A-Z a-z 0-9 . _ : - (required with a key)",
                )
        if self.database_url:
            try:
                split_dsn(self.database_url)
            except psycopg.Error:
                raise BackupConfigError(
                    "DATABASE_URL",
                    mask_dsn(self.database_url),
                    "a PostgreSQL URL (postgresql://user:pass@host:port/db) or key=value DSN",
                ) from None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("schedule", "retention_days", "min_keep", "backup_dir", "s3_bucket")
        )
        return (
            f"BackupSettings(database_url={mask_dsn(self.database_url)!r}, {shown}, "
            f"encryption_key={'***' if self.encryption_key else None}, "
            f"encryption_key_id={self.encryption_key_id!r})"
        )

    @property
    def encrypted(self) -> bool:
        return self.encryption_key is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackupSettings:
        """Build settings from environment variables (see docs/runtime-backups.md)."""
        env = os.environ if environ is None else environ
        key_raw = env.get("BACKUP_ENCRYPTION_KEY", "")
        endpoint = env.get("BACKUP_S3_ENDPOINT") or None
        if endpoint is not None and not re.match(r"^https?://[^\s/]+", endpoint):
            raise BackupConfigError(
                "BACKUP_S3_ENDPOINT", endpoint, "an http:// or https:// URL (e.g. MinIO's)"
            )
        bindir = env.get("BACKUP_PG_BINDIR") or None
        if bindir is not None and not (Path(bindir) / "pg_dump").exists():
            raise BackupConfigError(
                "BACKUP_PG_BINDIR", bindir, "a directory containing pg_dump and pg_restore"
            )
        level_raw = env.get("BACKUP_COMPRESS_LEVEL", "").strip()
        prefix = env.get("BACKUP_S3_PREFIX", "postgres/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            schedule=env.get("BACKUP_SCHEDULE", "").strip() or DEFAULT_SCHEDULE,
            retention_days=_int(env, "BACKUP_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, 0, 36500),
            min_keep=_int(env, "BACKUP_MIN_KEEP", DEFAULT_MIN_KEEP, 1, 10000),
            backup_dir=Path(env.get("BACKUP_DIR") or DEFAULT_DIR),
            s3_bucket=env.get("BACKUP_S3_BUCKET") or None,
            s3_endpoint=endpoint,
            s3_prefix=prefix,
            s3_region=env.get("BACKUP_S3_REGION") or "us-east-1",
            s3_part_size_mb=_int(env, "BACKUP_S3_PART_SIZE_MB", 16, 5, 5000),
            encryption_key=parse_key(key_raw) if key_raw.strip() else None,
            encryption_key_id=env.get("BACKUP_ENCRYPTION_KEY_ID") or None,
            pg_bindir=Path(bindir) if bindir else None,
            compress_level=_int(env, "BACKUP_COMPRESS_LEVEL", 0, 0, 9) if level_raw else None,
            count_rows=_bool(env, "BACKUP_COUNT_ROWS", False),
            jobs=_int(env, "BACKUP_JOBS", 1, 1, 64),
        )
