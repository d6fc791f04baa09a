"""Settings for the runtime, from the stack's `app_config` JSON and environment variables.

`load_settings()` accepts exactly what `pulumi stack output app_config --json --show-secrets`
prints (see docs/app_config.md); environment variables override single fields. Every value is
validated once, here: a bad one raises `ConfigError` naming the field (the JSON path, or the
environment variable it came from), the value and what is allowed. Passwords, DSNs and URLs
are held in `Secret`, whose repr and str are masked, so a settings object can be logged.
"""

from __future__ import annotations

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
    schedule: str = "0 2 * * *"
    retention_days: int = 30
    min_keep: int = 3


@dataclass(frozen=True)
class MonitoringSettings:
    interval_seconds: int = 60
    alert_cooldown_seconds: int = 300
    health_check_timeout_seconds: int = 60
    restart_attempts: int = 3


@dataclass(frozen=True)
class Settings:
    """Everything the runtime needs, validated."""

    database: DatabaseSettings
    redis: RedisSettings
    pool: PoolSettings = field(default_factory=PoolSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    stack: str | None = None


# -- parsing helpers -----------------------------------------------------------------------


class _Source:
    """Looks values up in the JSON first, then lets an environment variable override them."""

    def __init__(self, data: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.data = data
        self.env = env

    def get(self, path: str, env_var: str | None) -> tuple[str, Any]:
        """(field name to report, raw value or None)."""
        if env_var and self.env.get(env_var, "") != "":
            return env_var, self.env[env_var]
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return path, None
            node = node[part]
        return path, node


def _int(name: str, raw: Any, minimum: int, default: int | None = None) -> int:
    if raw is None:
        if default is None:
            raise ConfigError(name, raw, "a value (it is required)")
        return default
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, f"an integer >= {minimum}") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(name, raw, f"an integer >= {minimum}")
    return value


def _seconds(name: str, raw: Any, default: float) -> float:
    if raw is None:
        return default
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, "a number of seconds > 0") from None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(name, raw, "a number of seconds > 0")
    return float(value)


def _str(name: str, raw: Any, default: str | None = None, *, secret: bool = False) -> str:
    if raw is None:
        if default is None:
            raise ConfigError(name, raw, "a value (it is required)")
        return default
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(name, raw, "a non-empty string", secret=secret)
    return raw


def _database(src: _Source, address: Address) -> DatabaseSettings:
    path = "database.local.dsn" if address == "local" else "database.dsn"
    name, raw = src.get(path, "DATABASE_URL")
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


def _backup(src: _Source) -> BackupSettings:
    d = BackupSettings()
    name, raw = src.get("backup.schedule", "BACKUP_SCHEDULE")
    schedule = _str(name, raw, d.schedule)
    if not croniter.is_valid(schedule):
        raise ConfigError(name, schedule, "a five-field cron expression such as '0 2 * * *'")
    return BackupSettings(
        schedule=schedule,
        retention_days=_int(
            *src.get("backup.retention_days", "BACKUP_RETENTION_DAYS"), 1, d.retention_days
        ),
        min_keep=_int(*src.get("backup.min_keep", "BACKUP_MIN_KEEP"), 1, d.min_keep),
    )


def _monitoring(src: _Source) -> MonitoringSettings:
    d = MonitoringSettings()
    return MonitoringSettings(
        interval_seconds=_int(
            *src.get("monitoring.interval_seconds", "MONITORING_INTERVAL"), 1, d.interval_seconds
        ),
        alert_cooldown_seconds=_int(
            *src.get("monitoring.alert_cooldown_seconds", "ALERT_COOLDOWN"),
            0,
            d.alert_cooldown_seconds,
        ),
        health_check_timeout_seconds=_int(
            *src.get("monitoring.health_check_timeout_seconds", "HEALTH_CHECK_TIMEOUT"),
            1,
            d.health_check_timeout_seconds,
        ),
        restart_attempts=_int(*src.get("monitoring.restart_attempts", None), 0, d.restart_attempts),
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


def load_settings(
    app_config: str | Path | Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    address: Address | None = None,
) -> Settings:
    """Validated settings from `app_config` (JSON text, a file, or the parsed object; default:
    the file named by APP_CONFIG_FILE) with environment variables overriding single fields.

    `address="local"` uses the host-loopback addresses the dev stack publishes
    (`database.local`, `redis.local`); the default is the in-network ones, or
    APP_CONFIG_ADDRESS if set.
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
    return Settings(
        database=_database(src, chosen),
        redis=_redis(src, chosen),
        pool=_pool(src),
        cache=CacheSettings(
            default_ttl_seconds=_int(
                *src.get("cache.default_ttl_seconds", "CACHE_DEFAULT_TTL"),
                1,
                CacheSettings().default_ttl_seconds,
            )
        ),
        backup=_backup(src),
        monitoring=_monitoring(src),
        endpoints={str(k): str(v) for k, v in endpoints.items()},
        stack=str(stack) if stack is not None else None,
    )


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with APP_CONFIG_FILE's values filled in for variables that are unset.

    Parts of the runtime read single variables (the backup and monitoring settings: DATABASE_URL,
    BACKUP_SCHEDULE, MONITORING_INTERVAL, ...). In the sidecar their values come from the
    stack's app_config file; a variable that is set still wins, as everywhere else.
    """
    env = dict(os.environ if env is None else env)
    if not env.get("APP_CONFIG_FILE"):
        return env
    s = load_settings(env=env)
    derived = {
        "DATABASE_URL": s.database.dsn.reveal(),
        "REDIS_URL": s.redis.url.reveal(),
        "BACKUP_SCHEDULE": s.backup.schedule,
        "BACKUP_RETENTION_DAYS": str(s.backup.retention_days),
        "BACKUP_MIN_KEEP": str(s.backup.min_keep),
        "MONITORING_INTERVAL": str(s.monitoring.interval_seconds),
        "ALERT_COOLDOWN": str(s.monitoring.alert_cooldown_seconds),
    }
    if "alertmanager_url" in s.endpoints:
        derived["ALERTMANAGER_URL"] = s.endpoints["alertmanager_url"]
    for name, value in derived.items():
        env.setdefault(name, value)
    return env
