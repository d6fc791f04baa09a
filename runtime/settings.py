"""Settings for the whole runtime, from the stack's `app_config` JSON and environment variables.

One model for applications, the sidecar and every command line. `load_settings()` accepts
exactly what `pulumi stack output app_config --json --show-secrets` prints (see
docs/app_config.md); environment variables override single fields. Each field declares, once,
its app_config path, its environment variable and its rule (`metadata=tag(...)`, the way
CloudNativePG tags a struct's fields), and one generic reader (`read_section`) reads them all;
the few fields that need more (a DSN, a secret file, a choice that depends on another field)
are read by their section's reader and passed in. The environment-variable tables in `docs/`
are generated from the same declarations (`python -m runtime.settings_docs`).

Every value is validated once, here: a bad one raises `ConfigError` naming the field (the JSON
path, or the environment variable it came from), the value and what is allowed. Passwords,
DSNs, URLs and keys are held in `Secret`, whose repr and str are masked, so a settings object
can be logged. No client library is imported here (tests/test_settings_contract.py checks).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from runtime.errors import ConfigError
from runtime.settings_rules import (
    EVICTION_POLICIES,
    LOG_LEVELS,
    MAXMEMORY,
    MAXMEMORY_RULE,
    PERCENT,
    PITR_COMPRESS_TYPES,
    RATIO,
    SECONDS,
    AbsPath,
    Choice,
    ConfWord,
    Cron,
    Custom,
    EncryptionKey,
    Flag,
    Int,
    Mapped,
    Number,
    Paths,
    Port,
    Probes,
    Rule,
    Secret,
    Text,
    ToolDir,
    Url,
    mask_secret_url,
    mask_url,
    split_dsn,
)

__all__ = [  # the names applications and the runtime's modules import from here
    "EVICTION_POLICIES",
    "LOG_LEVELS",
    "PITR_COMPRESS_TYPES",
    "AlertingSettings",
    "BackupSettings",
    "CacheSettings",
    "ConfigError",
    "DatabaseSettings",
    "MigrateSettings",
    "MonitoringSettings",
    "PitrSettings",
    "PoolSettings",
    "RedisSettings",
    "S3Repo",
    "Secret",
    "Settings",
    "TelemetrySettings",
    "load_settings",
    "mask_secret_url",
    "mask_url",
    "secrets_of",
]

Address = Literal["network", "local"]


@dataclass(frozen=True)
class Key:
    """Where one field comes from: its app_config `path`, its environment variable (`env`),
    the `rule` its value follows; `also`: older or shared paths read when `path` is unset.
    `reads`: further app_config paths the section's reader consults for this field."""

    path: str | None
    env: str | None
    rule: Rule
    also: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    doc: str = ""


def tag(
    path: str | None,
    env: str | None,
    rule: Rule,
    *,
    also: tuple[str, ...] = (),
    reads: tuple[str, ...] = (),
    doc: str = "",
) -> dict[str, Key]:
    """A dataclass field's metadata: `field(default=..., metadata=tag(path, env, rule))`."""
    return {"key": Key(path, env, rule, also, reads, doc)}


def keys(section: type) -> Iterator[tuple[dataclasses.Field[Any], Key]]:
    for f in dataclasses.fields(section):
        if "key" in f.metadata:
            yield f, f.metadata["key"]


SCHEMA_REVISION = r"[A-Za-z0-9_.+-]{1,64}"
SCHEMA_REVISION_RULE = "1-64 characters of A-Z a-z 0-9 _ . + - (e.g. Alembic's head revision)"
_KEY_ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ : -"
_STANZA_RULE = "letters, digits, '_', '.', '-' (1-64)"


# -- sections ------------------------------------------------------------------------------
# One frozen dataclass per concern; a new area is one more section whose fields carry their
# `tag(...)`, and one more field of `Settings`.


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is and how to log in; `dsn` is the one psycopg connects with."""

    dsn: Secret = field(
        metadata=tag(
            "database.dsn",
            "DATABASE_URL",
            Custom("a PostgreSQL URL or conninfo string (secret)"),
            reads=("database.local.dsn",),
            doc=(
                "the primary (`database.local.dsn` with APP_CONFIG_ADDRESS=local); deep backup "
                "verification's scratch database too (the role needs CREATEDB)"
            ),
        )
    )
    host: str  # host and port come from the DSN
    port: int
    name: str = field(
        metadata=tag(
            "database.name",
            None,
            Custom("the DSN's dbname, else this key"),
            doc="used when the DSN names no database",
        )
    )
    user: str = field(
        metadata=tag(
            "database.user",
            None,
            Custom("the DSN's user, else this key"),
            doc="used when the DSN names no user",
        )
    )
    password: Secret | None = field(
        default=None,
        metadata=tag(
            "database.password",
            None,
            Custom("the DSN's password, else this key"),
            doc="used when the DSN holds no password",
        ),
    )
    # Streaming replicas that reads may go to (docs/runtime-read-routing.md).
    replicas: tuple[DatabaseSettings, ...] = field(
        default=(),
        metadata=tag(
            "database.replicas",
            "DATABASE_REPLICA_URLS",
            Custom("comma-separated DSNs; in JSON a list of {host, port, dsn, local: {dsn}}"),
            reads=("database.replicas[].dsn", "database.replicas[].local.dsn"),
            doc="streaming replicas reads may go to ([read routing](runtime-read-routing.md))",
        ),
    )

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

    size: int = field(
        default=10, metadata=tag("pool.size", "DB_POOL_SIZE", Int(1), doc="connections kept open")
    )
    max_overflow: int = field(
        default=20,
        metadata=tag(
            "pool.max_overflow", "DB_MAX_OVERFLOW", Int(0), doc="extra connections under load"
        ),
    )
    timeout_seconds: float = field(
        default=30.0,
        metadata=tag(
            "pool.timeout_seconds", "DB_POOL_TIMEOUT", SECONDS, doc="wait for a free connection"
        ),
    )
    statement_timeout_ms: int = field(
        default=5000,
        metadata=tag("pool.statement_timeout_ms", "DB_STATEMENT_TIMEOUT_MS", Int(0), doc="0 = off"),
    )
    # Read routing (docs/runtime-read-routing.md): a replica further behind the primary's WAL
    # than this is skipped; each replica is checked this often.
    max_replica_lag_bytes: int = field(
        default=16 * 1024 * 1024,
        metadata=tag(
            "pool.max_replica_lag_bytes",
            "DB_MAX_REPLICA_LAG_BYTES",
            Int(0),
            doc="a replica further behind the primary is skipped",
        ),
    )
    replica_check_interval_seconds: float = field(
        default=1.0,
        metadata=tag(
            "pool.replica_check_interval_seconds",
            "DB_REPLICA_CHECK_INTERVAL",
            SECONDS,
            doc="how often each replica's lag is checked",
        ),
    )

    @property
    def max_connections(self) -> int:
        return self.size + self.max_overflow


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is; `url` is what redis-py connects with."""

    url: Secret = field(
        metadata=tag(
            "redis.url",
            "REDIS_URL",
            Custom("a redis://, rediss:// or unix:// URL (secret)"),
            reads=("redis.local.url",),
            doc="Redis (`redis.local.url` with APP_CONFIG_ADDRESS=local)",
        )
    )
    host: str
    port: int
    password: Secret | None = field(
        default=None,
        metadata=tag(
            "redis.password",
            None,
            Custom("the URL's password, else this key"),
            doc="used when the URL holds no password",
        ),
    )
    maxmemory: str | None = field(
        default=None,
        metadata=tag(
            "redis.maxmemory",
            None,
            Text(optional=True, pattern=MAXMEMORY.pattern, wording=MAXMEMORY_RULE),
            doc="Redis' limit, as the stack set it (reported, not applied)",
        ),
    )
    eviction_policy: str | None = field(
        default=None,
        metadata=tag(
            "redis.eviction_policy",
            None,
            Choice(EVICTION_POLICIES),
            doc="Redis' maxmemory-policy, as the stack set it (reported, not applied)",
        ),
    )


@dataclass(frozen=True)
class CacheSettings:
    default_ttl_seconds: int = field(
        default=300,
        metadata=tag(
            "cache.default_ttl_seconds",
            "CACHE_DEFAULT_TTL",
            Int(1),
            doc="seconds a cached value lives",
        ),
    )
    # The revision the process's *code* expects, never the database's current one: after a
    # migration, processes still running the old code must keep writing under the old
    # namespace (docs/cache-generations.md).
    schema_revision: str | None = field(
        default=None,
        metadata=tag(
            "cache.schema_revision",
            "CACHE_SCHEMA_REVISION",
            Text(optional=True, pattern=SCHEMA_REVISION, wording=SCHEMA_REVISION_RULE),
            doc="the schema revision this release's code expects; part of every cache key",
        ),
    )
    alembic_script_dir: Path | None = field(
        default=None,
        metadata=tag(
            "cache.alembic_script_dir",
            "CACHE_ALEMBIC_SCRIPT_DIR",
            Text(optional=True, then=Path),
            doc="an Alembic script directory whose head is the schema revision (when "
            "`CACHE_SCHEMA_REVISION` is unset)",
        ),
    )


def _with_slash(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


@dataclass(frozen=True)
class BackupSettings:
    """Backups: when, how long they are kept, where they go and how they are sealed."""

    schedule: str = field(
        default="0 2 * * *",
        metadata=tag(
            "backup.schedule",
            "BACKUP_SCHEDULE",
            Cron("0 2 * * *"),
            doc="when `backup schedule` and the sidecar run (UTC)",
        ),
    )
    retention_days: int = field(
        default=30,
        metadata=tag(
            "backup.retention_days",
            "BACKUP_RETENTION_DAYS",
            Int(0, 36500),
            doc="backups younger than this are always kept",
        ),
    )
    min_keep: int = field(
        default=3,
        metadata=tag(
            "backup.min_keep",
            "BACKUP_MIN_KEEP",
            Int(1, 10000),
            doc="the newest N usable backups are always kept",
        ),
    )
    dir: Path = field(
        default=Path("/backups"),
        metadata=tag(
            "backup.dir",
            "BACKUP_DIR",
            Text(then=Path),
            doc="local storage directory (used unless `BACKUP_S3_BUCKET` is set)",
        ),
    )
    s3_bucket: str | None = field(
        default=None,
        metadata=tag(
            "backup.s3_bucket",
            "BACKUP_S3_BUCKET",
            Text(optional=True),
            doc="store in this S3 bucket instead",
        ),
    )
    s3_endpoint: str | None = field(
        default=None,
        metadata=tag(
            "backup.s3_endpoint",
            "BACKUP_S3_ENDPOINT",
            Url(("http", "https")),
            doc="an S3-compatible service (MinIO, Ceph, R2...)",
        ),
    )
    s3_prefix: str = field(
        default="postgres/",
        metadata=tag(
            "backup.s3_prefix",
            "BACKUP_S3_PREFIX",
            Text(then=_with_slash),
            doc="key prefix inside the bucket ('/' added)",
        ),
    )
    s3_region: str = field(
        default="us-east-1",
        metadata=tag("backup.s3_region", "BACKUP_S3_REGION", Text(), doc="region name"),
    )
    s3_part_size_mb: int = field(
        default=16,
        metadata=tag(
            "backup.s3_part_size_mb",
            "BACKUP_S3_PART_SIZE_MB",
            Int(5, 5000),
            doc="multipart part size; the upload buffers one part in memory",
        ),
    )
    encryption_key: Secret | None = field(
        default=None,
        metadata=tag(
            "backup.encryption_key",
            "BACKUP_ENCRYPTION_KEY",
            EncryptionKey(),
            doc="**secret**: enables AES-256-GCM at rest",
        ),
    )
    encryption_key_id: str | None = field(
        default=None,
        metadata=tag(
            "backup.encryption_key_id",
            "BACKUP_ENCRYPTION_KEY_ID",
            Text(optional=True, pattern=r"[A-Za-z0-9._:-]{1,64}", wording=_KEY_ID_RULE),
            doc="required with a key: its name, stored in manifests",
        ),
    )
    pg_bindir: Path | None = field(
        default=None,
        metadata=tag(
            "backup.pg_bindir",
            "BACKUP_PG_BINDIR",
            ToolDir(),
            doc=(
                "where pg_dump/pg_restore are (default `PATH`, then `/usr/lib/postgresql/*/bin`; "
                "must be >= the server's major version)"
            ),
        ),
    )
    compress_level: int | None = field(
        default=None,
        metadata=tag(
            "backup.compress_level",
            "BACKUP_COMPRESS_LEVEL",
            Int(0, 9, optional=True),
            doc=(
                "`pg_dump --compress` (default: pg_dump's; 1 is much faster and, for typical "
                "data, barely larger)"
            ),
        ),
    )
    count_rows: bool = field(
        default=False,
        metadata=tag(
            "backup.count_rows",
            "BACKUP_COUNT_ROWS",
            Flag(),
            doc=(
                "also record exact per-table row counts in the dump's snapshot, compared by deep "
                "verification (+15 % backup time, docs/benchmarks.md)"
            ),
        ),
    )
    jobs: int = field(
        default=1,
        metadata=tag(
            "backup.jobs",
            "BACKUP_JOBS",
            Int(1, 64),
            doc=(
                "> 1: parallel `pg_dump --format=directory --jobs=N`, packed into one tar stream;"
                " needs temporary space of about the dump's size (`TMPDIR`)"
            ),
        ),
    )

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

    interval_seconds: float = field(
        default=60.0,
        metadata=tag(
            "monitoring.interval_seconds", "MONITORING_INTERVAL", SECONDS, doc="the monitoring loop"
        ),
    )
    health_check_timeout_seconds: float = field(
        default=60.0,
        metadata=tag(
            "monitoring.health_check_timeout_seconds",
            "HEALTH_CHECK_TIMEOUT",
            SECONDS,
            doc="keep it below the container health check's timeout",
        ),
    )
    sidecar_host: str = field(
        default="0.0.0.0",  # noqa: S104 - the sidecar is scraped over the backend network
        metadata=tag(
            "monitoring.sidecar_host", "SIDECAR_HOST", Text(), doc="where the sidecar listens"
        ),
    )
    sidecar_port: int = field(
        default=9180,
        metadata=tag(
            "monitoring.sidecar_port", "SIDECAR_PORT", Port(), doc="where the sidecar listens"
        ),
    )
    health_probes: Mapping[str, str] = field(
        default_factory=dict,
        metadata=tag(
            "monitoring.health_probes",
            "HEALTH_PROBES",
            Probes(),
            doc="extra services whose status is reported",
        ),
    )
    disk_paths: tuple[str, ...] = field(
        default=("/",),
        metadata=tag(
            "monitoring.disk_paths",
            "DISK_PATHS",
            Paths(),
            doc="disks whose usage is measured (e.g. `/,/backups`)",
        ),
    )


@dataclass(frozen=True)
class AlertingSettings:
    """The in-process alert rules' thresholds and where notifications go."""

    cooldown_seconds: float = field(
        default=300.0,
        metadata=tag(
            "alerting.cooldown_seconds",
            "ALERT_COOLDOWN",
            Number(0.0),
            also=("monitoring.alert_cooldown_seconds",),
            doc="a firing alert is re-notified at most this often",
        ),
    )
    evaluation_interval_seconds: float = field(
        default=15.0,
        metadata=tag(
            "alerting.evaluation_interval_seconds",
            "ALERT_EVALUATION_INTERVAL",
            SECONDS,
            doc="the alert evaluation loop",
        ),
    )
    for_seconds: float = field(
        default=300.0,
        metadata=tag("alerting.for_seconds", "ALERT_FOR", Number(0.0), doc="pending before firing"),
    )
    cpu_threshold: float = field(
        default=90.0,
        metadata=tag("alerting.cpu_threshold", "ALERT_CPU_THRESHOLD", PERCENT, doc="percent"),
    )
    memory_threshold: float = field(
        default=90.0,
        metadata=tag("alerting.memory_threshold", "ALERT_MEMORY_THRESHOLD", PERCENT, doc="percent"),
    )
    disk_threshold: float = field(
        default=90.0,
        metadata=tag("alerting.disk_threshold", "ALERT_DISK_THRESHOLD", PERCENT, doc="percent"),
    )
    rate_limit_per_minute: float = field(
        default=30.0,
        metadata=tag(
            "alerting.rate_limit_per_minute",
            "ALERT_RATE_LIMIT",
            Number(1.0),
            doc="notifications a minute",
        ),
    )
    webhook_url: Secret | None = field(
        default=None,
        metadata=tag(
            "alerting.webhook_url",
            "ALERT_WEBHOOK_URL",
            Url(("http", "https"), token=True, secret=True),
            doc="**secret** (its path is the token)",
        ),
    )
    alertmanager_url: Secret | None = field(
        default=None,
        metadata=tag(
            "alerting.alertmanager_url",
            "ALERTMANAGER_URL",
            Url(("http", "https"), secret=True),
            also=("endpoints.alertmanager_url",),
            doc="Alertmanager's base URL, e.g. `http://alertmanager:9093`",
        ),
    )


@dataclass(frozen=True)
class TelemetrySettings:
    """JSON logs and OTLP traces (docs/logs-traces.md); no endpoint means tracing is off."""

    otlp_endpoint: str | None = field(
        default=None,
        metadata=tag(
            "telemetry.otlp_endpoint",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            Url(("http", "https")),
            doc="OTLP/HTTP base URL (unset: tracing off)",
        ),
    )
    sampling_ratio: float = field(
        default=0.1,  # the stack's default: traceSamplingPercent 10
        metadata=tag(
            "telemetry.sampling_ratio",
            "TRACE_SAMPLING_RATIO",
            RATIO,
            doc="root traces recorded (a sampled parent is always followed)",
        ),
    )
    log_level: str = field(
        default="INFO",
        metadata=tag(
            "telemetry.log_level",
            "LOG_LEVEL",
            Choice(LOG_LEVELS, upper=True),
            doc="the runtime's JSON logs",
        ),
    )
    service_name: str = field(
        default="runtime",
        metadata=tag(
            "telemetry.service_name",
            "OTEL_SERVICE_NAME",
            Text(),
            doc="service.name of spans and logs",
        ),
    )


_TABLE_RULE = "a table name, optionally schema-qualified (letters, digits, '_'; 1-63 each)"


@dataclass(frozen=True)
class MigrateSettings:
    """`python -m runtime migrate` (docs/migrations.md): how long a second runner waits for the
    advisory lock, and the bounds put on the migration command's own sessions."""

    lock_wait_seconds: float = field(
        default=600.0,
        metadata=tag(
            "migrate.lock_wait_seconds",
            "MIGRATE_LOCK_WAIT",
            SECONDS,
            doc="how long a runner waits for another one's migration lock, then changes nothing",
        ),
    )
    lock_timeout_seconds: float = field(
        default=5.0,
        metadata=tag(
            "migrate.lock_timeout_seconds",
            "MIGRATE_LOCK_TIMEOUT",
            SECONDS,
            doc="the command's `lock_timeout`: a statement waiting longer for a table lock fails",
        ),
    )
    statement_timeout_seconds: float = field(
        default=300.0,
        metadata=tag(
            "migrate.statement_timeout_seconds",
            "MIGRATE_STATEMENT_TIMEOUT",
            Number(0.0, message="a number of seconds >= 0 (0: off)"),
            doc="the command's `statement_timeout` (0: off)",
        ),
    )
    restore_point: bool = field(
        default=True,
        metadata=tag(
            "migrate.restore_point",
            "MIGRATE_RESTORE_POINT",
            Flag(),
            doc="create a named restore point before the command (refuse to run without one)",
        ),
    )
    archive_wait_seconds: float = field(
        default=60.0,
        metadata=tag(
            "migrate.archive_wait_seconds",
            "MIGRATE_ARCHIVE_WAIT",
            SECONDS,
            doc="with a pitr section: how long to wait for the restore point's WAL to be archived",
        ),
    )
    version_table: str = field(
        default="alembic_version",
        metadata=tag(
            "migrate.version_table",
            "MIGRATE_VERSION_TABLE",
            Text(
                pattern=r"([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}",
                wording=_TABLE_RULE,
            ),
            doc="the table `migrate status` reads the revision from (Alembic's by default)",
        ),
    )


@dataclass(frozen=True)
class S3Repo:
    """An S3 (or S3-compatible) bucket for pgBackRest's repository. pgBackRest 2.45 talks
    HTTPS only."""

    bucket: str = field(
        metadata=tag(
            "pitr.repository.s3_bucket",
            "PITR_S3_BUCKET",
            ConfWord(),
            doc="`repo1-s3-bucket` (required for s3)",
        )
    )
    region: str = field(
        metadata=tag(
            "pitr.repository.s3_region",
            "PITR_S3_REGION",
            ConfWord(),
            doc="`repo1-s3-region` (required for s3)",
        )
    )
    endpoint: str = field(
        metadata=tag(
            "pitr.repository.s3_endpoint",
            "PITR_S3_ENDPOINT",
            ConfWord(),
            doc="`repo1-s3-endpoint` (required for s3)",
        )
    )
    key: Secret = field(
        metadata=tag(
            "pitr.repository.s3_access_key",
            "PITR_S3_KEY",
            Custom("an access key id (secret; also PITR_S3_KEY_FILE)"),
            doc="`repo1-s3-key` (required for s3)",
        )
    )
    key_secret: Secret = field(
        metadata=tag(
            "pitr.repository.s3_secret_key",
            "PITR_S3_KEY_SECRET",
            Custom("a secret access key (secret; also PITR_S3_KEY_SECRET_FILE)"),
            doc="`repo1-s3-key-secret` (required for s3)",
        )
    )
    port: int = field(
        default=443,
        metadata=tag(
            "pitr.repository.s3_port", "PITR_S3_PORT", Int(1, 65535), doc="`repo1-storage-port`"
        ),
    )
    uri_style: Literal["host", "path"] = field(
        default="host",
        metadata=tag(
            "pitr.repository.s3_uri_style",
            "PITR_S3_URI_STYLE",
            Choice(("host", "path")),
            doc="`repo1-s3-uri-style` (`path` for MinIO-like endpoints)",
        ),
    )
    # turn off only for a test endpoint with a self-signed certificate
    verify_tls: bool = field(
        default=True,
        metadata=tag(
            "pitr.repository.s3_verify_tls",
            "PITR_S3_VERIFY_TLS",
            Flag(),
            doc="`repo1-storage-verify-tls` (turn off only for a test endpoint)",
        ),
    )


PitrRepoType = Literal["posix", "s3"]


@dataclass(frozen=True)
class PitrSettings:
    """Continuous archiving and point-in-time recovery with pgBackRest (docs/runtime-pitr.md).

    `config_provided`: pgbackrest.conf at `config_file` is someone else's (the stack renders it
    and mounts it read-only into the sidecar); the runtime uses it as it is and never writes it.
    Otherwise the runtime renders its own from these fields before each command.
    """

    config_file: Path = field(
        default=Path("/etc/pgbackrest/pgbackrest.conf"),
        metadata=tag(
            "pitr.config_file", "PITR_CONFIG", AbsPath(), doc="the pgbackrest.conf used (see below)"
        ),
    )
    config_provided: bool = field(
        default=False,
        metadata=tag(
            "pitr.config_provided",
            "PITR_CONFIG_PROVIDED",
            Flag(),
            doc=(
                "that file is someone else's (below); default: true when `config_file` came from "
                "app_config and is readable"
            ),
        ),
    )
    stanza: str = field(
        default="main",
        metadata=tag(
            "pitr.stanza",
            "PITR_STANZA",
            Text(pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", wording=_STANZA_RULE),
            doc="the stanza section `[main]`",
        ),
    )
    repo_type: PitrRepoType = field(
        default="posix",
        metadata=tag(
            "pitr.repository.type", "PITR_REPO_TYPE", Choice(("posix", "s3")), doc="`repo1-type`"
        ),
    )
    repo_path: str = field(
        default="/var/lib/pgbackrest",
        metadata=tag(
            "pitr.repository.path",
            "PITR_REPO_PATH",
            AbsPath(as_text=True),
            doc="`repo1-path` (a prefix inside the bucket for s3)",
        ),
    )
    s3: S3Repo | None = None  # the `S3Repo` keys, when repo_type is s3
    cipher_pass: Secret | None = field(
        default=None,
        metadata=tag(
            "pitr.cipher_pass",
            "PITR_CIPHER_PASS",
            Custom("a passphrase (secret; also PITR_CIPHER_PASS_FILE); cipher_type decides"),
            reads=("pitr.cipher_type",),
            doc=(
                "`repo1-cipher-pass`; with `pitr.cipher_type` `aes-256-cbc` required, `none` "
                "refused; unset: no encryption"
            ),
        ),
    )
    retention_full: int = field(
        default=2,
        metadata=tag(
            "pitr.retention_full",
            "PITR_RETENTION_FULL",
            Int(1, 9999999),
            doc=(
                "`repo1-retention-full` (WAL older than the oldest kept full backup is expired "
                "with it)"
            ),
        ),
    )
    archive_timeout_seconds: int = field(
        default=60,
        metadata=tag(
            "pitr.pgbackrest_archive_timeout_seconds",
            "PITR_ARCHIVE_TIMEOUT",
            Int(1, 86400),
            doc="`archive-timeout`: how long `check`/`backup` wait for a WAL segment",
        ),
    )
    process_max: int = field(
        default=2,
        metadata=tag("pitr.process_max", "PITR_PROCESS_MAX", Int(1, 999), doc="`process-max`"),
    )
    compress_type: str = field(
        default="lz4",
        metadata=tag(
            "pitr.compress_type",
            "PITR_COMPRESS_TYPE",
            Choice(PITR_COMPRESS_TYPES),
            doc="`compress-type`",
        ),
    )
    log_path: Path = field(
        default=Path("/var/log/pgbackrest"),
        metadata=tag("pitr.log_path", "PITR_LOG_PATH", AbsPath(), doc="`log-path`"),
    )
    lock_path: Path = field(
        default=Path("/run/pgbackrest"),
        metadata=tag("pitr.lock_path", "PITR_LOCK_PATH", AbsPath(), doc="`lock-path`"),
    )
    spool_path: Path = field(
        default=Path("/var/spool/pgbackrest"),
        metadata=tag("pitr.spool_path", "PITR_SPOOL_PATH", AbsPath(), doc="`spool-path`"),
    )
    pg_data: Path = field(
        default=Path("/var/lib/postgresql/data/pgdata"),
        metadata=tag(
            "pitr.pg_data",
            "PITR_PG_DATA",
            AbsPath(),
            doc="`pg1-path` (the stack's PGDATA); `restore`'s default target",
        ),
    )
    pg_port: int = field(
        default=5432, metadata=tag("pitr.pg_port", "PITR_PG_PORT", Int(1, 65535), doc="`pg1-port`")
    )
    pg_socket: Path = field(
        default=Path("/var/run/postgresql"),
        metadata=tag("pitr.pg_socket", "PITR_PG_SOCKET", AbsPath(), doc="`pg1-socket-path`"),
    )
    pg_bin: Path | None = field(
        default=None,
        metadata=tag(
            "pitr.pg_bin",
            "PITR_PG_BIN",
            AbsPath(optional=True),
            doc=(
                "where `pg_ctl` is, for `restore --start` (default "
                "`/usr/lib/postgresql/<newest>/bin`, else `PATH`)"
            ),
        ),
    )
    os_user: str = field(
        default="postgres",
        metadata=tag(
            "pitr.os_user",
            "PITR_OS_USER",
            Text(pattern=r"[a-z_][a-z0-9_-]{0,31}", wording="an operating-system user name"),
            doc="the user pgBackRest runs as when the runtime is root",
        ),
    )
    # the database role for socket connections (the stack's dbUser); default: os_user
    pg_user: str = field(
        default="postgres",
        metadata=tag(
            "pitr.pg_user",
            "PITR_PG_USER",
            Text(),
            doc=(
                "`pg1-user`: the database role of the socket connections; default: `os_user` (the"
                " stack exports its dbUser)"
            ),
        ),
    )
    full_schedule: str = field(
        default="0 1 * * 0",
        metadata=tag(
            "pitr.full_schedule",
            "PITR_FULL_SCHEDULE",
            Cron("0 1 * * 0"),
            doc="weekly full backup (the sidecar's scheduler)",
        ),
    )
    diff_schedule: str = field(
        default="0 1 * * 1-6",
        metadata=tag(
            "pitr.diff_schedule",
            "PITR_DIFF_SCHEDULE",
            Cron("0 1 * * 1-6"),
            doc="daily differential backup",
        ),
    )
    # -- restore drills (runtime/pitr/drill.py, docs/runtime-pitr-drill.md) --------------
    drill_schedule: str = field(
        default="0 4 * * 3",
        metadata=tag(
            "pitr.drill.schedule",
            "PITR_DRILL_SCHEDULE",
            Cron("0 4 * * 3"),
            doc="weekly restore drill (the sidecar's scheduler), away from the backup hour",
        ),
    )
    drill_scratch: Path = field(
        default=Path("/var/lib/pgbackrest-drill"),
        metadata=tag(
            "pitr.drill.scratch_path",
            "PITR_DRILL_SCRATCH",
            AbsPath(),
            doc="where a drill restores its throwaway copy (never `pg_data`); emptied after each",
        ),
    )
    drill_margin_seconds: int = field(
        default=120,
        metadata=tag(
            "pitr.drill.margin_seconds",
            "PITR_DRILL_MARGIN",
            Int(1, 86400),
            doc=(
                "the longest a drill waits for the archive to hold its target (the moment it "
                "starts); longer than PostgreSQL's `archive_timeout`"
            ),
        ),
    )
    drill_port: int = field(
        default=54329,
        metadata=tag(
            "pitr.drill.port",
            "PITR_DRILL_PORT",
            Int(1, 65535),
            doc="the private port of the restored copy (socket only, no TCP listener)",
        ),
    )
    drill_timeout_seconds: int = field(
        default=3600,
        metadata=tag(
            "pitr.drill.timeout_seconds",
            "PITR_DRILL_TIMEOUT",
            Int(1, 86400),
            doc="a drill that has not finished by then is stopped, cleaned up and failed",
        ),
    )
    drill_memory_mb: int = field(
        default=64,
        metadata=tag(
            "pitr.drill.memory_mb",
            "PITR_DRILL_MEMORY_MB",
            Int(16, 65536),
            doc=(
                "memory of the drill's copy: `shared_buffers` is half, `maintenance_work_mem` a "
                "quarter, `work_mem` a sixteenth"
            ),
        ),
    )
    drill_tables: str | None = field(
        default=None,
        metadata=tag(
            "pitr.drill.tables",
            "PITR_DRILL_TABLES",
            Text(
                optional=True,
                pattern=r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?"
                r"(,[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)*",
                wording="comma-separated table names (schema.table or table)",
            ),
            doc="tables whose row counts the drill compares with the primary's at the target",
        ),
    )
    drill_database: str = field(
        default="postgres",
        metadata=tag(
            "pitr.drill.database",
            "PITR_DRILL_DATABASE",
            Text(pattern=r"[A-Za-z_][A-Za-z0-9_$-]{0,62}", wording="a database name"),
            doc="the database `pitr.drill.tables` are in",
        ),
    )
    heartbeat_interval_seconds: int = field(
        default=5,
        metadata=tag(
            "pitr.drill.heartbeat_interval_seconds",
            "PITR_HEARTBEAT_INTERVAL",
            Int(1, 3600),
            doc="how often the sidecar writes the heartbeat row a drill measures its RPO by",
        ),
    )

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
    migrate: MigrateSettings = field(default_factory=MigrateSettings)
    endpoints: Mapping[str, str] = field(
        default_factory=dict, metadata=tag("endpoints", None, Mapped())
    )
    stack: str | None = field(default=None, metadata=tag("stack", None, Custom("the stack's name")))

    def need_database(self) -> DatabaseSettings:
        """The database section, or the ConfigError a missing DATABASE_URL deserves."""
        if self.database is None:
            raise ConfigError("DATABASE_URL (database.dsn)", None, "a value (it is required)")
        return self.database

    def need_redis(self) -> RedisSettings:
        if self.redis is None:
            raise ConfigError("REDIS_URL (redis.url)", None, "a value (it is required)")
        return self.redis


SECTIONS: tuple[type, ...] = (
    DatabaseSettings,
    RedisSettings,
    PoolSettings,
    CacheSettings,
    BackupSettings,
    MonitoringSettings,
    AlertingSettings,
    TelemetrySettings,
    MigrateSettings,
    PitrSettings,
    S3Repo,
    Settings,
)


# -- the generic reader --------------------------------------------------------------------


class _Source:
    """Looks values up in the JSON first, then lets an environment variable override them."""

    def __init__(self, data: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.data = data
        self.env = env

    def get(self, path: str | None, env_var: str | None = None) -> tuple[str, Any]:
        """(field name to report, raw value or None)."""
        if env_var and self.env.get(env_var, "") != "":
            return env_var, self.env[env_var]
        if path is None:
            return env_var or "", None
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return path, None
            node = node[part]
        return path, node

    def raw(self, key: Key) -> tuple[str, Any]:
        """A field's raw value: its variable, its path, then the `also` paths. Unset, it is
        reported as `ENV (path)`."""
        name, raw = self.get(key.path, key.env)
        for alt in key.also:
            if raw is None:
                name, raw = self.get(alt)
        if raw is None and key.env and key.path:
            name = f"{key.env} ({key.path})"
        return name, raw


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def read_field(section: type, name: str, src: _Source, default: Any = MISSING) -> Any:
    """One declared field, by its rule (for a reader that needs it before the others)."""
    f = next(f for f in dataclasses.fields(section) if f.name == name)
    key: Key = f.metadata["key"]
    return key.rule(*src.raw(key), _default(f) if default is MISSING else default)


S = TypeVar("S")


def read_section(section: type[S], src: _Source, **given: Any) -> S:
    """Every declared field of `section` by its rule; `given` are the ones read by hand."""
    values = {
        f.name: key.rule(*src.raw(key), _default(f))
        for f, key in keys(section)
        if f.name not in given
    }
    return section(**values, **given)


# -- the fields read by hand ---------------------------------------------------------------


def _database(src: _Source, address: Address) -> DatabaseSettings:
    path = "database.local.dsn" if address == "local" else "database.dsn"
    name, raw = src.get(path, "DATABASE_URL")
    if raw is None:
        raise ConfigError(f"DATABASE_URL ({path})", None, "a value (it is required)")
    primary = _dsn_settings(src, name, _dsn_text(name, raw))
    return dataclasses.replace(primary, replicas=_replicas(src, address))


def _dsn_text(name: str, raw: Any) -> str:
    if raw is None:
        raise ConfigError(name, raw, "a value (it is required)")
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(name, raw, "a non-empty string", secret=True)
    return raw


def _replicas(src: _Source, address: Address) -> tuple[DatabaseSettings, ...]:
    """`DATABASE_REPLICA_URLS` (comma-separated DSNs), else `database.replicas`: a list of
    {"host", "port", "dsn", "local": {"dsn"}} objects as the stack exports them."""
    env = src.env.get("DATABASE_REPLICA_URLS", "")
    if env.strip():
        names = [f"DATABASE_REPLICA_URLS[{i}]" for i in range(env.count(",") + 1)]
        return tuple(
            _dsn_settings(src, name, _dsn_text(name, part.strip()))
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
        found.append(_dsn_settings(src, name, _dsn_text(name, dsn)))
    return tuple(found)


def _dsn_settings(src: _Source, name: str, dsn: str) -> DatabaseSettings:
    """Host, port, database and user of one DSN; `name` is the field reported on errors."""
    try:
        parts = split_dsn(dsn)
    except ValueError:  # never chain: the message could quote the string, password included
        raise ConfigError(name, dsn, "a PostgreSQL URL or conninfo string", secret=True) from None
    host = str(parts.get("host") or "")
    if not host:
        raise ConfigError(name, dsn, "a DSN that names a host", secret=True)
    port = Int(1)(f"{name} (port)", parts.get("port"), 5432)
    if port > 65535:
        raise ConfigError(f"{name} (port)", port, "a TCP port in 1..65535")
    password = parts.get("password") or src.get("database.password")[1]
    return DatabaseSettings(
        dsn=Secret(dsn),
        host=host,
        port=port,
        name=str(parts.get("dbname") or src.get("database.name")[1] or ""),
        user=str(parts.get("user") or src.get("database.user")[1] or ""),
        password=Secret(str(password)) if password else None,
    )


def _redis(src: _Source, address: Address) -> RedisSettings:
    path = "redis.local.url" if address == "local" else "redis.url"
    name, raw = src.get(path, "REDIS_URL")
    if raw is None:
        raise ConfigError(f"REDIS_URL ({path})", None, "a value (it is required)")
    url = _dsn_text(name, raw)
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(name, url, "a redis:// or rediss:// URL", secret=True) from None
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ConfigError(name, url, "a redis://, rediss:// or unix:// URL", secret=True)
    # redis-py sends the URL's password %-decoded: keep it that way, so redaction finds it
    password = unquote(parts.password) if parts.password else src.get("redis.password")[1]
    return read_section(
        RedisSettings,
        src,
        url=Secret(url),
        host=parts.hostname or "",
        port=port,
        password=Secret(str(password)) if password else None,
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
    key_name, key = _secret_of(src, "pitr.repository.s3_access_key", "PITR_S3_KEY")
    secret_name, key_secret = _secret_of(src, "pitr.repository.s3_secret_key", "PITR_S3_KEY_SECRET")
    values = {  # the required words first, as pgbackrest.conf lists them
        name: read_field(S3Repo, name, src) for name in ("bucket", "region", "endpoint")
    }
    if key is None:
        name = f"{key_name} (pitr.repository.s3_access_key)"
        raise ConfigError(name, None, "an access key id (required for s3)")
    if key_secret is None:
        name = f"{secret_name} (pitr.repository.s3_secret_key)"
        raise ConfigError(name, None, "a secret access key (required for s3)")
    return read_section(S3Repo, src, **values, key=key, key_secret=key_secret)


_CIPHER_TYPES = ("aes-256-cbc", "none")


def _has_pitr(src: _Source) -> bool:
    return "pitr" in src.data or any(
        k.startswith("PITR_") and v.strip() for k, v in src.env.items()
    )


def _pitr(src: _Source) -> PitrSettings:
    """The `pitr` section as the stack exports it (components/stack.py `pitr_section`), PITR_*
    variables overriding single fields."""
    if not isinstance(src.data.get("pitr", {}), Mapping):
        raise ConfigError("pitr", type(src.data["pitr"]).__name__, "an object")
    conf_name = src.get("pitr.config_file", "PITR_CONFIG")[0]
    config_file: Path = read_field(PitrSettings, "config_file", src)
    readable = os.access(config_file, os.R_OK)
    if src.get("pitr.config_provided", "PITR_CONFIG_PROVIDED")[1] in (None, ""):
        # The stack names the file it mounts: present and readable means it is the stack's.
        provided = conf_name == "pitr.config_file" and readable
    else:
        provided = read_field(PitrSettings, "config_provided", src)
        if provided and not readable:
            raise ConfigError(
                conf_name, str(config_file), "a readable pgbackrest.conf (config_provided is on)"
            )
    os_user = read_field(PitrSettings, "os_user", src)
    repo_type = read_field(PitrSettings, "repo_type", src)
    pass_name, cipher_pass = _secret_of(src, "pitr.cipher_pass", "PITR_CIPHER_PASS")
    cipher_name, cipher = src.get("pitr.cipher_type")
    if cipher is not None:
        cipher = Choice(_CIPHER_TYPES)(cipher_name, cipher, "none")
        if cipher == "aes-256-cbc" and cipher_pass is None:
            raise ConfigError(
                f"{pass_name} (pitr.cipher_pass)", None, "a passphrase (required with aes-256-cbc)"
            )
        if cipher == "none" and cipher_pass is not None:
            raise ConfigError(cipher_name, cipher, "aes-256-cbc (a cipher_pass is set)")
    return read_section(
        PitrSettings,
        src,
        config_file=config_file,
        config_provided=provided,
        repo_type=repo_type,
        s3=_pitr_s3(src) if repo_type == "s3" else None,
        cipher_pass=cipher_pass,
        os_user=os_user,
        pg_user=read_field(PitrSettings, "pg_user", src, default=os_user),
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
    has_database = src.get(_path("database", chosen), "DATABASE_URL")[1] is not None
    has_redis = src.get(_path("redis", chosen), "REDIS_URL")[1] is not None
    return read_section(
        Settings,
        src,
        database=_database(src, chosen) if has_database or "database" in require else None,
        redis=_redis(src, chosen) if has_redis or "redis" in require else None,
        pool=read_section(PoolSettings, src),
        cache=read_section(CacheSettings, src),
        backup=read_section(BackupSettings, src),
        monitoring=read_section(MonitoringSettings, src),
        alerting=read_section(AlertingSettings, src),
        pitr=_pitr(src) if _has_pitr(src) else None,
        telemetry=read_section(TelemetrySettings, src),
        migrate=read_section(MigrateSettings, src),
        stack=str(stack) if stack is not None else None,
    )


def _path(server: Section, address: Address) -> str:
    key = "dsn" if server == "database" else "url"
    return f"{server}.local.{key}" if address == "local" else f"{server}.{key}"


# -- the contract, as data and as docs -------------------------------------------------------


def declared() -> Iterator[tuple[type, str, Key, Any]]:
    """(section, field, key, default) for every declared field."""
    for section in SECTIONS:
        for f, key in keys(section):
            yield section, f.name, key, _default(f)


def read_paths() -> set[str]:
    """Every app_config path the runtime reads (lists as `[]`)."""
    found: set[str] = set()
    for _, _, key, _ in declared():
        found.update(p for p in (key.path, *key.also, *key.reads) if p)
    return found
