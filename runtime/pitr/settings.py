"""`PitrSettings`: what continuous archiving and point-in-time recovery need, read once.

`load_pitr_settings(env)` is the one parser: every value is checked here and a bad one raises
`ConfigError` ("PITR_X: got ...; allowed: ..."). Secrets (the repository passphrase, the S3
secret key) come from `NAME_FILE` (a file path, preferred) or `NAME`, are held in `Secret`, and
reach pgBackRest only through its configuration file. The dataclass has no client imports so it
can become a section of `runtime.settings.Settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from croniter import croniter

from runtime.errors import ConfigError
from runtime.settings import Secret

RepoType = Literal["posix", "s3"]
BackupType = Literal["full", "diff", "incr"]
BACKUP_TYPES: tuple[BackupType, ...] = ("full", "diff", "incr")
COMPRESS_TYPES = ("lz4", "zst", "gz", "bz2", "none")
_STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class S3Repo:
    """An S3 (or S3-compatible) bucket. pgBackRest 2.45 talks HTTPS only."""

    bucket: str
    region: str
    endpoint: str
    key: Secret
    key_secret: Secret
    port: int = 443
    uri_style: Literal["host", "path"] = "host"
    verify_tls: bool = True  # turn off only for a test endpoint with a self-signed certificate


@dataclass(frozen=True)
class PitrSettings:
    """pgBackRest's repository, the cluster it protects, and the backup schedules."""

    config_path: Path = Path("/etc/pgbackrest/pgbackrest.conf")
    stanza: str = "main"
    repo_type: RepoType = "posix"
    repo_path: str = "/var/lib/pgbackrest"
    s3: S3Repo | None = None
    cipher_pass: Secret | None = None
    retention_full: int = 2
    archive_timeout_seconds: int = 60
    process_max: int = 2
    compress_type: str = "lz4"
    log_path: Path = Path("/var/log/pgbackrest")
    lock_path: Path = Path("/run/pgbackrest")
    spool_path: Path = Path("/var/spool/pgbackrest")
    pg_data: Path = Path("/var/lib/postgresql/data")
    pg_port: int = 5432
    pg_socket: Path = Path("/var/run/postgresql")
    pg_bin: Path | None = None
    os_user: str = "postgres"
    full_schedule: str = "0 1 * * 0"
    diff_schedule: str = "0 1 * * 1-6"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for scrubbing subprocess output before it is shown."""
        found = [self.cipher_pass.reveal()] if self.cipher_pass else []
        if self.s3 is not None:
            found += [self.s3.key.reveal(), self.s3.key_secret.reveal()]
        return tuple(s for s in found if s)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(name, raw, f"an integer from {low} to {high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on", "y"):
        return True
    if raw.lower() in ("0", "false", "no", "off", "n"):
        return False
    raise ConfigError(name, raw, "true/false, yes/no, on/off or 1/0")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw not in allowed:
        raise ConfigError(name, raw, "one of " + ", ".join(allowed))
    return raw


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = _raw(env, name)
    if raw is None:
        return default
    if not raw.startswith("/") or any(c in raw for c in "\n\r="):
        raise ConfigError(name, raw, "an absolute path without newlines or '='")
    return Path(raw)


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    """`NAME_FILE` (a file holding the secret; preferred) or `NAME`; None when neither is set."""
    file = _raw(env, f"{name}_FILE")
    if file is not None:
        try:
            value = Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE", file, f"a readable file ({exc.strerror})") from None
        if not value:
            raise ConfigError(f"{name}_FILE", file, "a file holding a non-empty secret")
    else:
        value = env.get(name, "").strip()
        if not value:
            return None
    if "\n" in value or "\r" in value:
        raise ConfigError(name, value, "a single line", secret=True)
    return Secret(value)


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name) or default
    if not croniter.is_valid(raw):
        raise ConfigError(name, raw, "a five-field cron expression such as '0 1 * * 0'")
    return raw


def _s3(env: Mapping[str, str]) -> S3Repo:
    required = {}
    for name in ("PITR_S3_BUCKET", "PITR_S3_REGION", "PITR_S3_ENDPOINT"):
        value = _raw(env, name)
        if value is None or any(c in value for c in "\n\r= /"):
            raise ConfigError(name, value, "a value without spaces, '/' or '=' (required for s3)")
        required[name] = value
    key = _secret(env, "PITR_S3_KEY")
    key_secret = _secret(env, "PITR_S3_KEY_SECRET")
    if key is None:
        raise ConfigError("PITR_S3_KEY", None, "an access key id (required for s3)")
    if key_secret is None:
        raise ConfigError("PITR_S3_KEY_SECRET", None, "a secret access key (required for s3)")
    return S3Repo(
        bucket=required["PITR_S3_BUCKET"],
        region=required["PITR_S3_REGION"],
        endpoint=required["PITR_S3_ENDPOINT"],
        key=key,
        key_secret=key_secret,
        port=_int(env, "PITR_S3_PORT", 443, 1, 65535),
        uri_style="path"
        if _choice(env, "PITR_S3_URI_STYLE", "host", ("host", "path")) == "path"
        else "host",
        verify_tls=_bool(env, "PITR_S3_VERIFY_TLS", True),
    )


def load_pitr_settings(env: Mapping[str, str] | None = None) -> PitrSettings:
    """Validated settings from PITR_* environment variables (see docs/runtime-pitr.md)."""
    env = os.environ if env is None else env
    d = PitrSettings()
    stanza = _raw(env, "PITR_STANZA") or d.stanza
    if not _STANZA.match(stanza):
        raise ConfigError("PITR_STANZA", stanza, "letters, digits, '_', '.', '-' (1-64)")
    os_user = _raw(env, "PITR_OS_USER") or d.os_user
    if not _USER.match(os_user):
        raise ConfigError("PITR_OS_USER", os_user, "an operating-system user name")
    repo_type = _choice(env, "PITR_REPO_TYPE", d.repo_type, ("posix", "s3"))
    repo_path = str(_path(env, "PITR_REPO_PATH", Path(d.repo_path)))
    pg_bin = _raw(env, "PITR_PG_BIN")
    return PitrSettings(
        config_path=_path(env, "PITR_CONFIG", d.config_path),
        stanza=stanza,
        repo_type="s3" if repo_type == "s3" else "posix",
        repo_path=repo_path,
        s3=_s3(env) if repo_type == "s3" else None,
        cipher_pass=_secret(env, "PITR_CIPHER_PASS"),
        retention_full=_int(env, "PITR_RETENTION_FULL", d.retention_full, 1, 9999999),
        archive_timeout_seconds=_int(
            env, "PITR_ARCHIVE_TIMEOUT", d.archive_timeout_seconds, 1, 86400
        ),
        process_max=_int(env, "PITR_PROCESS_MAX", d.process_max, 1, 999),
        compress_type=_choice(env, "PITR_COMPRESS_TYPE", d.compress_type, COMPRESS_TYPES),
        log_path=_path(env, "PITR_LOG_PATH", d.log_path),
        lock_path=_path(env, "PITR_LOCK_PATH", d.lock_path),
        spool_path=_path(env, "PITR_SPOOL_PATH", d.spool_path),
        pg_data=_path(env, "PITR_PG_DATA", d.pg_data),
        pg_port=_int(env, "PITR_PG_PORT", d.pg_port, 1, 65535),
        pg_socket=_path(env, "PITR_PG_SOCKET", d.pg_socket),
        pg_bin=_path(env, "PITR_PG_BIN", Path("/")) if pg_bin else None,
        os_user=os_user,
        full_schedule=_cron(env, "PITR_FULL_SCHEDULE", d.full_schedule),
        diff_schedule=_cron(env, "PITR_DIFF_SCHEDULE", d.diff_schedule),
    )
