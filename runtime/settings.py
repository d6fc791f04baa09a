"""Settings for the whole runtime, from the stack's `app_config` JSON and environment variables.

One model for applications, the sidecar and every command line. `load_settings()` accepts
exactly what `pulumi stack output app_config --json --show-secrets` prints (see
docs/app_config.md); environment variables override single fields. Every value is validated
once, here: a bad one raises `ConfigError` naming the field (the JSON path, or the environment
variable it came from), the value and what is allowed. Passwords, DSNs, URLs and keys are held
in `Secret`, whose repr and str are masked, so a settings object can be logged. No client
library is imported here (psycopg's conninfo parser is pure Python).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from croniter import croniter
from psycopg.conninfo import conninfo_to_dict

from runtime.errors import MASK, ConfigError

Address = Literal["network", "local"]


class Secret:
    """A string that never shows itself in repr, str, f-strings or logs; `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would be a way to print it
        raise TypeError("Secret values are not picklable")


def mask_url(url: str) -> str:
    """`url` with its password replaced by the mask (for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))


# -- sections ------------------------------------------------------------------------------
# One frozen dataclass per concern; a new area (e.g. `pitr`, `replicas`) is one more section,
# one more `_<area>(src)` reader and one more field of `Settings`.


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is and how to log in; `dsn` is the one psycopg connects with."""

    dsn: Secret
    host: str
    port: int
    name: str
    user: str
    password: Secret | None = None
    # Streaming replicas that reads may go to (docs/runtime-read-routing.md).
    replicas: tuple[DatabaseSettings, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [self.dsn.reveal()]
        if self.password is not None:
            found.append(self.password.reveal())
        for replica in self.replicas:
            found.extend(replica.secrets)
        return tuple(found)


@dataclass(frozen=True)
class PoolSettings:
    """Pool bounds (the specification's DB_POOL_SIZE + DB_MAX_OVERFLOW) and timeouts."""

    size: int = 10
    max_overflow: int = 20
    timeout_seconds: float = 30.0
    statement_timeout_ms: int = 5000
    # Read routing (docs/runtime-read-routing.md): a replica further behind the primary's WAL
    # than this is skipped; each replica is checked this often.
    max_replica_lag_bytes: int = 16 * 1024 * 1024
    replica_check_interval_seconds: float = 1.0

    @property
    def max_connections(self) -> int:
        return self.size + self.max_overflow


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is; `url` is what redis-py connects with."""

    url: Secret
    host: str
    port: int
    password: Secret | None = None
    maxmemory: str | None = None
    eviction_policy: str | None = None


@dataclass(frozen=True)
class CacheSettings:
    default_ttl_seconds: int = 300


@dataclass(frozen=True)
class BackupSettings:
    """Backups: when, how long they are kept, where they go and how they are sealed."""

    schedule: str = "0 2 * * *"
    retention_days: int = 30
    min_keep: int = 3
    dir: Path = Path("/backups")
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_prefix: str = "postgres/"
    s3_region: str = "us-east-1"
    s3_part_size_mb: int = 16
    encryption_key: Secret | None = None
    encryption_key_id: str | None = None
    pg_bindir: Path | None = None
    compress_level: int | None = None
    count_rows: bool = False
    jobs: int = 1

    def __post_init__(self) -> None:
        if self.encryption_key is not None and not self.encryption_key_id:
            raise ConfigError(
                "BACKUP_ENCRYPTION_KEY_ID", "", f"{_KEY_ID_RULE} (required with a key)"
            )

    @property
    def encrypted(self) -> bool:
        return self.encryption_key is not None

    @property
    def key_bytes(self) -> bytes | None:
        """The AES-256 key, decoded (validated when the settings were read)."""
        if self.encryption_key is None:
            return None
        return base64.b64decode(self.encryption_key.reveal())


@dataclass(frozen=True)
class MonitoringSettings:
    """The monitoring loop, its probes and where the sidecar listens."""

    interval_seconds: float = 60.0
    health_check_timeout_seconds: float = 60.0
    sidecar_host: str = "0.0.0.0"  # noqa: S104 - the sidecar is scraped over the backend network
    sidecar_port: int = 9180
    health_probes: Mapping[str, str] = field(default_factory=dict)
    disk_paths: tuple[str, ...] = ("/",)


@dataclass(frozen=True)
class AlertingSettings:
    """The in-process alert rules' thresholds and where notifications go."""

    cooldown_seconds: float = 300.0
    evaluation_interval_seconds: float = 15.0
    for_seconds: float = 300.0
    cpu_threshold: float = 90.0
    memory_threshold: float = 90.0
    disk_threshold: float = 90.0
    rate_limit_per_minute: float = 30.0
    webhook_url: Secret | None = None
    alertmanager_url: Secret | None = None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class TelemetrySettings:
    """JSON logs and OTLP traces (docs/logs-traces.md); no endpoint means tracing is off."""

    otlp_endpoint: str | None = None
    sampling_ratio: float = 1.0
    log_level: str = "INFO"
    service_name: str = "runtime"


@dataclass(frozen=True)
class S3Repo:
    """An S3 (or S3-compatible) bucket for pgBackRest's repository. pgBackRest 2.45 talks
    HTTPS only."""

    bucket: str
    region: str
    endpoint: str
    key: Secret
    key_secret: Secret
    port: int = 443
    uri_style: Literal["host", "path"] = "host"
    verify_tls: bool = True  # turn off only for a test endpoint with a self-signed certificate


PitrRepoType = Literal["posix", "s3"]
PITR_COMPRESS_TYPES = ("lz4", "zst", "gz", "bz2", "none")


@dataclass(frozen=True)
class PitrSettings:
    """Continuous archiving and point-in-time recovery with pgBackRest (docs/runtime-pitr.md).

    `config_provided`: pgbackrest.conf at `config_file` is someone else's (the stack renders it
    and mounts it read-only into the sidecar); the runtime uses it as it is and never writes it.
    Otherwise the runtime renders its own from these fields before each command.
    """

    config_file: Path = Path("/etc/pgbackrest/pgbackrest.conf")
    config_provided: bool = False
    stanza: str = "main"
    repo_type: PitrRepoType = "posix"
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
    pg_data: Path = Path("/var/lib/postgresql/data/pgdata")  # the stack's PGDATA
    pg_port: int = 5432
    pg_socket: Path = Path("/var/run/postgresql")
    pg_bin: Path | None = None
    os_user: str = "postgres"
    pg_user: str = "postgres"  # the database role for socket connections (the stack's dbUser)
    full_schedule: str = "0 1 * * 0"
    diff_schedule: str = "0 1 * * 1-6"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for scrubbing subprocess output before it is shown."""
        found = [self.cipher_pass.reveal()] if self.cipher_pass else []
        if self.s3 is not None:
            found += [self.s3.key.reveal(), self.s3.key_secret.reveal()]
        return tuple(s for s in found if s)


@dataclass(frozen=True)
class Settings:
    """Everything the runtime needs, validated. `database`/`redis` are None only when the
    caller did not require them (e.g. `backup list` needs no server)."""

    database: DatabaseSettings | None = None
    redis: RedisSettings | None = None
    pool: PoolSettings = field(default_factory=PoolSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    alerting: AlertingSettings = field(default_factory=AlertingSettings)
    pitr: PitrSettings | None = None  # None: no `pitr` section and no PITR_* variable
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    stack: str | None = None

    def need_database(self) -> DatabaseSettings:
        """The database section, or the ConfigError a missing DATABASE_URL deserves."""
        if self.database is None:
            raise ConfigError("DATABASE_URL (database.dsn)", None, "a value (it is required)")
        return self.database

    def need_redis(self) -> RedisSettings:
        if self.redis is None:
            raise ConfigError("REDIS_URL (redis.url)", None, "a value (it is required)")
        return self.redis


# -- parsing helpers -----------------------------------------------------------------------


class _Source:
    """Looks values up in the JSON first, then lets an environment variable override them."""

    def __init__(self, data: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.data = data
        self.env = env

    def get(self, path: str, env_var: str | None = None) -> tuple[str, Any]:
        """(field name to report, raw value or None)."""
        if env_var and self.env.get(env_var, "") != "":
            return env_var, self.env[env_var]
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return path, None
            node = node[part]
        return path, node


def _int(
    name: str, raw: Any, minimum: int, default: int | None = None, maximum: int | None = None
) -> int:
    allowed = (
        f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
    )
    if raw is None:
        if default is None:
            raise ConfigError(name, raw, "a value (it is required)")
        return default
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, allowed) from None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(name, raw, allowed)
    if maximum is not None and value > maximum:
        raise ConfigError(name, raw, allowed)
    return value


def _number(
    name: str, raw: Any, default: float, minimum: float = 0.0, *, above: bool = False
) -> float:
    """A finite number >= minimum (> minimum with `above`)."""
    allowed = f"a number {'>' if above else '>='} {minimum:g}"
    if raw is None:
        return default
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, allowed) from None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
        or (above and value == minimum)
    ):
        raise ConfigError(name, raw, allowed)
    return float(value)


def _seconds(name: str, raw: Any, default: float) -> float:
    try:
        return _number(name, raw, default, 0.0, above=True)
    except ConfigError:
        raise ConfigError(name, raw, "a number of seconds > 0") from None


def _percent(name: str, raw: Any, default: float) -> float:
    value = _number(name, raw, default)
    if value > 100:
        raise ConfigError(name, raw, "a number in [0, 100]")
    return value


def _str(name: str, raw: Any, default: str | None = None, *, secret: bool = False) -> str:
    if raw is None:
        if default is None:
            raise ConfigError(name, raw, "a value (it is required)")
        return default
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(name, raw, "a non-empty string", secret=secret)
    return raw


def _optional_str(name: str, raw: Any) -> str | None:
    return None if raw is None or raw == "" else _str(name, raw)


def _bool(name: str, raw: Any, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, raw, "true/false, yes/no, on/off or 1/0")


def _url(name: str, raw: Any, schemes: tuple[str, ...], *, token: bool = False) -> str | None:
    """A URL with one of `schemes` and a host; errors show it masked (its password, or for a
    webhook whose path is the token (`token=True`), everything after the host)."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    shown = mask_secret_url(text) if token else mask_url(text)
    allowed = f"a URL with scheme {' or '.join(schemes)} and a host"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(name, shown, allowed) from None
    if not isinstance(raw, str) or parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(name, shown, allowed)
    return text


def mask_secret_url(url: str) -> str:
    """Only scheme and host of a URL whose path or query may itself be a token (webhooks)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "") + f"/{MASK}"


def _database(src: _Source, address: Address) -> DatabaseSettings:
    path = "database.local.dsn" if address == "local" else "database.dsn"
    name, raw = src.get(path, "DATABASE_URL")
    if raw is None:
        raise ConfigError(f"DATABASE_URL ({path})", None, "a value (it is required)")
    primary = _dsn_settings(src, name, _str(name, raw, secret=True))
    return DatabaseSettings(
        dsn=primary.dsn,
        host=primary.host,
        port=primary.port,
        name=primary.name,
        user=primary.user,
        password=primary.password,
        replicas=_replicas(src, address),
    )


def _replicas(src: _Source, address: Address) -> tuple[DatabaseSettings, ...]:
    """`DATABASE_REPLICA_URLS` (comma-separated DSNs), else `database.replicas`: a list of
    {"host", "port", "dsn", "local": {"dsn"}} objects as the stack exports them."""
    env = src.env.get("DATABASE_REPLICA_URLS", "")
    if env.strip():
        names = [f"DATABASE_REPLICA_URLS[{i}]" for i in range(env.count(",") + 1)]
        return tuple(
            _dsn_settings(src, name, _str(name, part.strip(), secret=True))
            for name, part in zip(names, env.split(","), strict=True)
        )
    raw = src.get("database.replicas", None)[1]
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("database.replicas", type(raw).__name__, "a list of {host, port, dsn}")
    found = []
    for i, entry in enumerate(raw):
        name = f"database.replicas[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(name, type(entry).__name__, "an object {host, port, dsn}")
        local = entry.get("local")
        if address == "local" and isinstance(local, Mapping) and "dsn" in local:
            name, dsn = f"{name}.local.dsn", local["dsn"]
        else:
            name, dsn = f"{name}.dsn", entry.get("dsn")
        found.append(_dsn_settings(src, name, _str(name, dsn, secret=True)))
    return tuple(found)


def _dsn_settings(src: _Source, name: str, dsn: str) -> DatabaseSettings:
    """Host, port, database and user of one DSN; `name` is the field reported on errors."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # psycopg echoes the string, password included: never chain it
        raise ConfigError(name, dsn, "a PostgreSQL URL or conninfo string", secret=True) from None
    host = str(parts.get("host") or "")
    if not host:
        raise ConfigError(name, dsn, "a DSN that names a host", secret=True)
    port = _int(f"{name} (port)", parts.get("port"), 1, default=5432)
    if port > 65535:
        raise ConfigError(f"{name} (port)", port, "a TCP port in 1..65535")
    password = parts.get("password")
    if password is None:
        password = src.get("database.password", None)[1]
    return DatabaseSettings(
        dsn=Secret(dsn),
        host=host,
        port=port,
        name=str(parts.get("dbname") or src.get("database.name", None)[1] or ""),
        user=str(parts.get("user") or src.get("database.user", None)[1] or ""),
        password=Secret(str(password)) if password else None,
    )


EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
_MAXMEMORY = re.compile(r"^\d+(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)


def _redis(src: _Source, address: Address) -> RedisSettings:
    path = "redis.local.url" if address == "local" else "redis.url"
    name, raw = src.get(path, "REDIS_URL")
    if raw is None:
        raise ConfigError(f"REDIS_URL ({path})", None, "a value (it is required)")
    url = _str(name, raw, secret=True)
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(name, url, "a redis:// or rediss:// URL", secret=True) from None
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ConfigError(name, url, "a redis://, rediss:// or unix:// URL", secret=True)
    password = parts.password or src.get("redis.password", None)[1]
    maxmemory = src.get("redis.maxmemory", None)
    if maxmemory[1] is not None and not _MAXMEMORY.match(str(maxmemory[1])):
        raise ConfigError(*maxmemory, "a size such as '512mb', '1gb' or bytes")
    policy = src.get("redis.eviction_policy", None)
    if policy[1] is not None and policy[1] not in EVICTION_POLICIES:
        raise ConfigError(*policy, "one of " + ", ".join(EVICTION_POLICIES))
    return RedisSettings(
        url=Secret(url),
        host=parts.hostname or "",
        port=port,
        password=Secret(str(password)) if password else None,
        maxmemory=_str(*maxmemory) if maxmemory[1] is not None else None,
        eviction_policy=_str(*policy) if policy[1] is not None else None,
    )


def _pool(src: _Source) -> PoolSettings:
    d = PoolSettings()
    return PoolSettings(
        size=_int(*src.get("pool.size", "DB_POOL_SIZE"), 1, d.size),
        max_overflow=_int(*src.get("pool.max_overflow", "DB_MAX_OVERFLOW"), 0, d.max_overflow),
        timeout_seconds=_seconds(*src.get("pool.timeout_seconds", "DB_POOL_TIMEOUT"), 30.0),
        statement_timeout_ms=_int(
            *src.get("pool.statement_timeout_ms", "DB_STATEMENT_TIMEOUT_MS"),
            0,
            d.statement_timeout_ms,
        ),
        max_replica_lag_bytes=_int(
            *src.get("pool.max_replica_lag_bytes", "DB_MAX_REPLICA_LAG_BYTES"),
            0,
            d.max_replica_lag_bytes,
        ),
        replica_check_interval_seconds=_seconds(
            *src.get("pool.replica_check_interval_seconds", "DB_REPLICA_CHECK_INTERVAL"),
            d.replica_check_interval_seconds,
        ),
    )


def _cache(src: _Source) -> CacheSettings:
    ttl = src.get("cache.default_ttl_seconds", "CACHE_DEFAULT_TTL")
    return CacheSettings(default_ttl_seconds=_int(*ttl, 1, CacheSettings().default_ttl_seconds))


_KEY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KEY_ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ : -"


def _encryption_key(name: str, raw: Any) -> Secret | None:
    """A base64 AES-256 key; the error never shows the value (it is a secret)."""
    if raw is None or raw == "":
        return None
    try:
        key = base64.b64decode(str(raw).strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not isinstance(raw, str) or len(key) != 32:
        raise ConfigError(name, raw, "base64 of exactly 32 random bytes", secret=True)
    return Secret(raw.strip())


def _backup(src: _Source) -> BackupSettings:
    d = BackupSettings()
    name, raw = src.get("backup.schedule", "BACKUP_SCHEDULE")
    schedule = _str(name, raw.strip() if isinstance(raw, str) else raw, d.schedule)
    if not croniter.is_valid(schedule):
        raise ConfigError(name, schedule, "a five-field cron expression such as '0 2 * * *'")
    endpoint = _url(*src.get("backup.s3_endpoint", "BACKUP_S3_ENDPOINT"), ("http", "https"))
    bindir = _optional_str(*src.get("backup.pg_bindir", "BACKUP_PG_BINDIR"))
    if bindir is not None and not (Path(bindir) / "pg_dump").exists():
        raise ConfigError(
            src.get("backup.pg_bindir", "BACKUP_PG_BINDIR")[0],
            bindir,
            "a directory containing pg_dump and pg_restore",
        )
    prefix = _str(*src.get("backup.s3_prefix", "BACKUP_S3_PREFIX"), d.s3_prefix)
    key = _encryption_key(*src.get("backup.encryption_key", "BACKUP_ENCRYPTION_KEY"))
    key_id = _optional_str(*src.get("backup.encryption_key_id", "BACKUP_ENCRYPTION_KEY_ID"))
    if key_id is not None and not _KEY_ID.match(key_id):
        raise ConfigError(
            src.get("backup.encryption_key_id", "BACKUP_ENCRYPTION_KEY_ID")[0], key_id, _KEY_ID_RULE
        )
    level = src.get("backup.compress_level", "BACKUP_COMPRESS_LEVEL")
    return BackupSettings(
        schedule=schedule,
        retention_days=_int(
            *src.get("backup.retention_days", "BACKUP_RETENTION_DAYS"), 0, d.retention_days, 36500
        ),
        min_keep=_int(*src.get("backup.min_keep", "BACKUP_MIN_KEEP"), 1, d.min_keep, 10000),
        dir=Path(_str(*src.get("backup.dir", "BACKUP_DIR"), str(d.dir))),
        s3_bucket=_optional_str(*src.get("backup.s3_bucket", "BACKUP_S3_BUCKET")),
        s3_endpoint=endpoint,
        s3_prefix=prefix if prefix.endswith("/") else prefix + "/",
        s3_region=_str(*src.get("backup.s3_region", "BACKUP_S3_REGION"), d.s3_region),
        s3_part_size_mb=_int(
            *src.get("backup.s3_part_size_mb", "BACKUP_S3_PART_SIZE_MB"), 5, d.s3_part_size_mb, 5000
        ),
        encryption_key=key,
        encryption_key_id=key_id,
        pg_bindir=Path(bindir) if bindir else None,
        compress_level=None if level[1] in (None, "") else _int(*level, 0, None, 9),
        count_rows=_bool(*src.get("backup.count_rows", "BACKUP_COUNT_ROWS"), d.count_rows),
        jobs=_int(*src.get("backup.jobs", "BACKUP_JOBS"), 1, d.jobs, 64),
    )


def _port(name: str, raw: Any, default: int) -> int:
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) > 65535:
        raise ConfigError(name, raw, "an integer port in [0, 65535]")
    return int(text)


_PROBES_RULE = "name=http(s)://... or name=tcp://host:port, comma-separated (an object in JSON)"


def _probes(name: str, raw: Any) -> dict[str, str]:
    """Extra HTTP or TCP services whose status the sidecar reports: `name=url,name=url` in
    the environment, `{"name": "url"}` in JSON."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        items = [(str(k), str(v)) for k, v in raw.items()]
    elif isinstance(raw, str):
        items = []
        for item in filter(None, (part.strip() for part in raw.split(","))):
            service, sep, url = (part.strip() for part in item.partition("="))
            if not sep:
                raise ConfigError(name, mask_url(item), _PROBES_RULE)
            items.append((service, url))
    else:
        raise ConfigError(name, raw, _PROBES_RULE)
    probes: dict[str, str] = {}
    for service, url in items:
        shown = f"{service}={mask_url(url)}"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(name, shown, _PROBES_RULE) from None
        if not service or parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
            raise ConfigError(name, shown, _PROBES_RULE)
        if parts.scheme == "tcp" and parts.port is None:
            raise ConfigError(name, shown, _PROBES_RULE)
        probes[service] = url
    return probes


def _paths(name: str, raw: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None or raw == "":
        return default
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(p, str) for p in items):
        raise ConfigError(name, raw, "absolute paths (comma-separated, or a JSON list)")
    paths = tuple(p.strip() for p in items if p.strip())
    if not paths or not all(p.startswith("/") for p in paths):
        raise ConfigError(name, raw, "absolute paths (comma-separated, or a JSON list)")
    return paths


def _monitoring(src: _Source) -> MonitoringSettings:
    d = MonitoringSettings()
    return MonitoringSettings(
        interval_seconds=_seconds(
            *src.get("monitoring.interval_seconds", "MONITORING_INTERVAL"), d.interval_seconds
        ),
        health_check_timeout_seconds=_seconds(
            *src.get("monitoring.health_check_timeout_seconds", "HEALTH_CHECK_TIMEOUT"),
            d.health_check_timeout_seconds,
        ),
        sidecar_host=_str(*src.get("monitoring.sidecar_host", "SIDECAR_HOST"), d.sidecar_host),
        sidecar_port=_port(*src.get("monitoring.sidecar_port", "SIDECAR_PORT"), d.sidecar_port),
        health_probes=_probes(*src.get("monitoring.health_probes", "HEALTH_PROBES")),
        disk_paths=_paths(*src.get("monitoring.disk_paths", "DISK_PATHS"), d.disk_paths),
    )


def _alerting(src: _Source) -> AlertingSettings:
    d = AlertingSettings()
    webhook = _url(
        *src.get("alerting.webhook_url", "ALERT_WEBHOOK_URL"), ("http", "https"), token=True
    )
    alertmanager = src.get("alerting.alertmanager_url", "ALERTMANAGER_URL")
    if alertmanager[1] is None:  # the stack publishes it among the endpoints
        alertmanager = src.get("endpoints.alertmanager_url")
    am_url = _url(*alertmanager, ("http", "https"))
    cooldown = src.get("alerting.cooldown_seconds", "ALERT_COOLDOWN")
    if cooldown[1] is None:  # where app_config has always had it
        cooldown = src.get("monitoring.alert_cooldown_seconds")
    return AlertingSettings(
        cooldown_seconds=_number(*cooldown, d.cooldown_seconds),
        evaluation_interval_seconds=_seconds(
            *src.get("alerting.evaluation_interval_seconds", "ALERT_EVALUATION_INTERVAL"),
            d.evaluation_interval_seconds,
        ),
        for_seconds=_number(*src.get("alerting.for_seconds", "ALERT_FOR"), d.for_seconds),
        cpu_threshold=_percent(
            *src.get("alerting.cpu_threshold", "ALERT_CPU_THRESHOLD"), d.cpu_threshold
        ),
        memory_threshold=_percent(
            *src.get("alerting.memory_threshold", "ALERT_MEMORY_THRESHOLD"), d.memory_threshold
        ),
        disk_threshold=_percent(
            *src.get("alerting.disk_threshold", "ALERT_DISK_THRESHOLD"), d.disk_threshold
        ),
        rate_limit_per_minute=_number(
            *src.get("alerting.rate_limit_per_minute", "ALERT_RATE_LIMIT"),
            d.rate_limit_per_minute,
            1.0,
        ),
        webhook_url=Secret(webhook) if webhook else None,
        alertmanager_url=Secret(am_url) if am_url else None,
    )


def _telemetry(src: _Source) -> TelemetrySettings:
    d = TelemetrySettings()
    endpoint = _url(
        *src.get("telemetry.otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"), ("http", "https")
    )
    name, raw = src.get("telemetry.sampling_ratio", "TRACE_SAMPLING_RATIO")
    try:  # one rule in the message, whichever bound failed
        ratio = _number(name, raw, d.sampling_ratio)
    except ConfigError:
        ratio = math.nan
    if not 0 <= ratio <= 1:
        raise ConfigError(name, raw, "a number in [0, 1]")
    name, raw = src.get("telemetry.log_level", "LOG_LEVEL")
    level = _str(name, raw, d.log_level).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(name, raw, "one of " + ", ".join(LOG_LEVELS))
    service = _str(*src.get("telemetry.service_name", "OTEL_SERVICE_NAME"), d.service_name)
    return TelemetrySettings(
        otlp_endpoint=endpoint, sampling_ratio=ratio, log_level=level, service_name=service
    )


def secrets_of(settings: object) -> tuple[str, ...]:
    """Every secret value in `settings` (any section, nested), longest first, for redaction."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, Secret):
            found.add(value.reveal())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
            if isinstance(value, DatabaseSettings):
                found.update(value.secrets)
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)

    walk(settings)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


# -- pitr ------------------------------------------------------------------------------------
_STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_OS_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CIPHER_TYPES = ("aes-256-cbc", "none")


def _abs_path(name: str, raw: Any, default: Path) -> Path:
    """An absolute path that can go into pgbackrest.conf (no newline, no '=')."""
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str) or not raw.startswith("/") or any(c in raw for c in "\n\r="):
        raise ConfigError(name, raw, "an absolute path without newlines or '='")
    return Path(raw.strip())


def _choice(name: str, raw: Any, default: str, allowed: tuple[str, ...]) -> str:
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ConfigError(name, raw, "one of " + ", ".join(allowed))
    return str(raw)


def _cron(name: str, raw: Any, default: str) -> str:
    value = default if raw is None or raw == "" else raw
    if not isinstance(value, str) or not croniter.is_valid(value.strip()):
        raise ConfigError(name, raw, "a five-field cron expression such as '0 1 * * 0'")
    return value.strip()


def _conf_value(src: _Source, path: str, env_var: str) -> str:
    """A required pgbackrest.conf value: one word without '/', '=' or spaces."""
    name, raw = src.get(path, env_var)
    if raw is None or raw == "":
        raise ConfigError(f"{env_var} ({path})", None, "a value (required for s3)")
    if not isinstance(raw, str) or any(c in raw.strip() for c in "\n\r= /"):
        raise ConfigError(name, raw, "a value without spaces, '/' or '='")
    return raw.strip()


def _secret_of(src: _Source, path: str, env_var: str) -> tuple[str, Secret | None]:
    """`ENV_VAR_FILE` (a file holding the secret: preferred), `ENV_VAR`, then app_config's
    `path`; (the name to report, the secret or None)."""
    file = src.env.get(f"{env_var}_FILE", "").strip()
    if file:
        name = f"{env_var}_FILE"
        try:
            value = Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(name, file, f"a readable file ({exc.strerror})") from None
        if not value:
            raise ConfigError(name, file, "a file holding a non-empty secret")
    else:
        name, raw = src.get(path, env_var)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return env_var, None
        if not isinstance(raw, str):
            raise ConfigError(name, raw, "a string", secret=True)
        value = raw.strip()
    if "\n" in value or "\r" in value:
        raise ConfigError(name, value, "a single line", secret=True)
    return name, Secret(value)


def _pitr_s3(src: _Source) -> S3Repo:
    values = {
        field: _conf_value(src, f"pitr.repository.{field}", env)
        for field, env in (
            ("s3_bucket", "PITR_S3_BUCKET"),
            ("s3_region", "PITR_S3_REGION"),
            ("s3_endpoint", "PITR_S3_ENDPOINT"),
        )
    }
    key_name, key = _secret_of(src, "pitr.repository.s3_access_key", "PITR_S3_KEY")
    secret_name, key_secret = _secret_of(src, "pitr.repository.s3_secret_key", "PITR_S3_KEY_SECRET")
    if key is None:
        name = f"{key_name} (pitr.repository.s3_access_key)"
        raise ConfigError(name, None, "an access key id (required for s3)")
    if key_secret is None:
        name = f"{secret_name} (pitr.repository.s3_secret_key)"
        raise ConfigError(name, None, "a secret access key (required for s3)")
    style = _choice(
        *src.get("pitr.repository.s3_uri_style", "PITR_S3_URI_STYLE"), "host", ("host", "path")
    )
    return S3Repo(
        bucket=values["s3_bucket"],
        region=values["s3_region"],
        endpoint=values["s3_endpoint"],
        key=key,
        key_secret=key_secret,
        port=_int(*src.get("pitr.repository.s3_port", "PITR_S3_PORT"), 1, 443, 65535),
        uri_style="path" if style == "path" else "host",
        verify_tls=_bool(*src.get("pitr.repository.s3_verify_tls", "PITR_S3_VERIFY_TLS"), True),
    )


def _has_pitr(src: _Source) -> bool:
    return "pitr" in src.data or any(
        k.startswith("PITR_") and v.strip() for k, v in src.env.items()
    )


def _pitr(src: _Source) -> PitrSettings:
    """The `pitr` section as the stack exports it (components/stack.py `_pitr`), PITR_*
    variables overriding single fields."""
    if not isinstance(src.data.get("pitr", {}), Mapping):
        raise ConfigError("pitr", type(src.data["pitr"]).__name__, "an object")
    d = PitrSettings()
    conf_name, conf_raw = src.get("pitr.config_file", "PITR_CONFIG")
    config_file = _abs_path(conf_name, conf_raw, d.config_file)
    readable = os.access(config_file, os.R_OK)
    provided_raw = src.get("pitr.config_provided", "PITR_CONFIG_PROVIDED")
    if provided_raw[1] is None or provided_raw[1] == "":
        # The stack names the file it mounts: present and readable means it is the stack's.
        provided = conf_name == "pitr.config_file" and readable
    else:
        provided = _bool(*provided_raw, False)
        if provided and not readable:
            raise ConfigError(
                conf_name, str(config_file), "a readable pgbackrest.conf (config_provided is on)"
            )
    stanza_name, stanza = src.get("pitr.stanza", "PITR_STANZA")
    stanza = _str(stanza_name, stanza, d.stanza)
    if not _STANZA.match(stanza):
        raise ConfigError(stanza_name, stanza, "letters, digits, '_', '.', '-' (1-64)")
    user_name, os_user = src.get("pitr.os_user", "PITR_OS_USER")
    os_user = _str(user_name, os_user, d.os_user)
    if not _OS_USER.match(os_user):
        raise ConfigError(user_name, os_user, "an operating-system user name")
    role_name, pg_user = src.get("pitr.pg_user", "PITR_PG_USER")
    pg_user = _str(role_name, pg_user, os_user)
    repo_type = _choice(
        *src.get("pitr.repository.type", "PITR_REPO_TYPE"), d.repo_type, ("posix", "s3")
    )
    pass_name, cipher_pass = _secret_of(src, "pitr.cipher_pass", "PITR_CIPHER_PASS")
    cipher_name, cipher = src.get("pitr.cipher_type")
    if cipher is not None:
        cipher = _choice(cipher_name, cipher, "none", _CIPHER_TYPES)
        if cipher == "aes-256-cbc" and cipher_pass is None:
            raise ConfigError(
                f"{pass_name} (pitr.cipher_pass)", None, "a passphrase (required with aes-256-cbc)"
            )
        if cipher == "none" and cipher_pass is not None:
            raise ConfigError(cipher_name, cipher, "aes-256-cbc (a cipher_pass is set)")
    pg_bin = src.get("pitr.pg_bin", "PITR_PG_BIN")
    return PitrSettings(
        config_file=config_file,
        config_provided=provided,
        stanza=stanza,
        repo_type="s3" if repo_type == "s3" else "posix",
        repo_path=str(
            _abs_path(*src.get("pitr.repository.path", "PITR_REPO_PATH"), Path(d.repo_path))
        ),
        s3=_pitr_s3(src) if repo_type == "s3" else None,
        cipher_pass=cipher_pass,
        retention_full=_int(
            *src.get("pitr.retention_full", "PITR_RETENTION_FULL"), 1, d.retention_full, 9999999
        ),
        archive_timeout_seconds=_int(
            *src.get("pitr.pgbackrest_archive_timeout_seconds", "PITR_ARCHIVE_TIMEOUT"),
            1,
            d.archive_timeout_seconds,
            86400,
        ),
        process_max=_int(*src.get("pitr.process_max", "PITR_PROCESS_MAX"), 1, d.process_max, 999),
        compress_type=_choice(
            *src.get("pitr.compress_type", "PITR_COMPRESS_TYPE"),
            d.compress_type,
            PITR_COMPRESS_TYPES,
        ),
        log_path=_abs_path(*src.get("pitr.log_path", "PITR_LOG_PATH"), d.log_path),
        lock_path=_abs_path(*src.get("pitr.lock_path", "PITR_LOCK_PATH"), d.lock_path),
        spool_path=_abs_path(*src.get("pitr.spool_path", "PITR_SPOOL_PATH"), d.spool_path),
        pg_data=_abs_path(*src.get("pitr.pg_data", "PITR_PG_DATA"), d.pg_data),
        pg_port=_int(*src.get("pitr.pg_port", "PITR_PG_PORT"), 1, d.pg_port, 65535),
        pg_socket=_abs_path(*src.get("pitr.pg_socket", "PITR_PG_SOCKET"), d.pg_socket),
        pg_bin=_abs_path(*pg_bin, Path("/")) if pg_bin[1] not in (None, "") else None,
        os_user=os_user,
        pg_user=pg_user,
        full_schedule=_cron(*src.get("pitr.full_schedule", "PITR_FULL_SCHEDULE"), d.full_schedule),
        diff_schedule=_cron(*src.get("pitr.diff_schedule", "PITR_DIFF_SCHEDULE"), d.diff_schedule),
    )


def _read_json(source: str | Path | Mapping[str, Any] | None, env: Mapping[str, str]) -> Any:
    if isinstance(source, Mapping):
        return source
    if source is None:
        file = env.get("APP_CONFIG_FILE", "")
        if not file:
            return {}
        source = Path(file)
    origin = "APP_CONFIG_FILE" if isinstance(source, Path) else "app_config"
    try:
        text = source.read_text() if isinstance(source, Path) else source
        return json.loads(text)
    except OSError as exc:
        raise ConfigError(origin, str(source), f"a readable file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        # The text holds secrets: report the position, never the text.
        raise ConfigError(
            origin, "<JSON text>", f"valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None


Section = Literal["database", "redis"]


def load_settings(
    app_config: str | Path | Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    address: Address | None = None,
    require: tuple[Section, ...] = ("database", "redis"),
) -> Settings:
    """Validated settings from `app_config` (JSON text, a file, or the parsed object; default:
    the file named by APP_CONFIG_FILE) with environment variables overriding single fields.

    `address="local"` uses the host-loopback addresses the dev stack publishes
    (`database.local`, `redis.local`); the default is the in-network ones, or
    APP_CONFIG_ADDRESS if set. `require` names the servers the caller cannot do without;
    the others are None when not configured (a configured one is validated all the same).
    """
    env = os.environ if env is None else env
    data = _read_json(app_config, env)
    if not isinstance(data, Mapping):
        raise ConfigError("app_config", type(data).__name__, "a JSON object")
    wanted = address or env.get("APP_CONFIG_ADDRESS") or "network"
    if wanted not in ("network", "local"):
        raise ConfigError("APP_CONFIG_ADDRESS", wanted, "'network' or 'local'")
    chosen: Address = "local" if wanted == "local" else "network"
    src = _Source(data, env)
    stack = data.get("stack")
    endpoints = data.get("endpoints") or {}
    if not isinstance(endpoints, Mapping):
        raise ConfigError("endpoints", endpoints, "an object of name -> URL")
    has_database = src.get(_path("database", chosen), "DATABASE_URL")[1] is not None
    has_redis = src.get(_path("redis", chosen), "REDIS_URL")[1] is not None
    return Settings(
        database=_database(src, chosen) if has_database or "database" in require else None,
        redis=_redis(src, chosen) if has_redis or "redis" in require else None,
        pool=_pool(src),
        cache=_cache(src),
        backup=_backup(src),
        monitoring=_monitoring(src),
        alerting=_alerting(src),
        pitr=_pitr(src) if _has_pitr(src) else None,
        telemetry=_telemetry(src),
        endpoints={str(k): str(v) for k, v in endpoints.items()},
        stack=str(stack) if stack is not None else None,
    )


def _path(server: Section, address: Address) -> str:
    key = "dsn" if server == "database" else "url"
    return f"{server}.local.{key}" if address == "local" else f"{server}.{key}"
