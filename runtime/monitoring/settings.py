"""Monitoring settings read from the environment (the names of docs/app_config.md).

A dataclass of its own for now, so the monitoring code does not wait for the shared
settings loader; it will be folded into `runtime.settings` later. Every bad value raises
`MonitoringSettingsError` naming the variable, the value (masked when secret) and what is
allowed. Secrets (URLs with credentials, webhook URLs) never appear in reprs or errors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from croniter import croniter

from runtime.settings import mask_url as mask_password


class MonitoringSettingsError(ValueError):
    """An environment variable holds a value the monitoring settings do not allow."""

    def __init__(self, variable: str, shown_value: str, allowed: str) -> None:
        super().__init__(f"{variable}: got {shown_value}; allowed: {allowed}")
        self.variable = variable
        self.allowed = allowed


def mask_url(url: str | None) -> str | None:
    """The URL with its password replaced by `***` (user, host, port and path are kept)."""
    return None if url is None else mask_password(url)


def mask_secret_url(url: str | None) -> str | None:
    """Only scheme and host of a URL whose path or query may itself be a token (webhooks)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "***"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "") + "/***"


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum:
        raise MonitoringSettingsError(name, repr(raw), f"a number >= {minimum:g}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    value = _float(env, name, default, 0.0)
    if value <= 0:
        raise MonitoringSettingsError(name, repr(raw), "a number > 0")
    return value


def _percent(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    value = _float(env, name, default, 0.0)
    if value > 100:
        raise MonitoringSettingsError(name, repr(raw), "a number in [0, 100]")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise MonitoringSettingsError(name, repr(raw), "an integer port in [0, 65535]")
    return int(raw)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    """A URL with one of `schemes` and a host; errors show it masked (a password, or for a
    webhook whose path is the token, everything after the host)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    shown = mask_secret_url(raw) if name == "ALERT_WEBHOOK_URL" else mask_url(raw)
    allowed = f"a URL with scheme {' or '.join(schemes)} and a host"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise MonitoringSettingsError(name, repr(shown), allowed) from None
    if parts.scheme not in schemes or not parts.hostname:
        raise MonitoringSettingsError(name, repr(shown), allowed)
    return raw


def _probes(env: Mapping[str, str], name: str) -> dict[str, str]:
    """`name=url,name=url`: extra HTTP or TCP services whose status the sidecar reports."""
    raw = env.get(name, "")
    allowed = "comma-separated name=http(s)://... or name=tcp://host:port"
    probes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        service, sep, url = (part.strip() for part in item.partition("="))
        shown = repr(f"{service}{sep}{mask_url(url)}")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise MonitoringSettingsError(name, shown, allowed) from None
        if not sep or not service or parts.scheme not in ("http", "https", "tcp"):
            raise MonitoringSettingsError(name, shown, allowed)
        if not parts.hostname or (parts.scheme == "tcp" and parts.port is None):
            raise MonitoringSettingsError(name, shown, allowed)
        probes[service] = url
    return probes


def _paths(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    paths = tuple(p.strip() for p in raw.split(",") if p.strip())
    for path in paths:
        if not path.startswith("/"):
            raise MonitoringSettingsError(name, repr(raw), "comma-separated absolute paths")
    return paths


@dataclass(frozen=True)
class MonitoringSettings:
    """What the monitoring service, the alerting and the sidecar need, with defaults."""

    interval_seconds: float = 60.0
    alert_cooldown_seconds: float = 300.0
    health_check_timeout_seconds: float = 30.0
    alert_evaluation_interval_seconds: float = 15.0
    alert_for_seconds: float = 300.0
    cpu_alert_threshold: float = 90.0
    memory_alert_threshold: float = 90.0
    disk_alert_threshold: float = 90.0
    alert_rate_limit_per_minute: float = 30.0
    alert_webhook_url: str | None = field(default=None, repr=False)
    alertmanager_url: str | None = field(default=None, repr=False)
    sidecar_host: str = "0.0.0.0"  # noqa: S104 - the sidecar is scraped over the backend network
    sidecar_port: int = 9180
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    backup_schedule: str = "0 2 * * *"
    health_probes: Mapping[str, str] = field(default_factory=dict)
    disk_paths: tuple[str, ...] = ("/",)

    def __repr__(self) -> str:
        return (
            f"MonitoringSettings(interval_seconds={self.interval_seconds}, "
            f"alert_cooldown_seconds={self.alert_cooldown_seconds}, "
            f"health_check_timeout_seconds={self.health_check_timeout_seconds}, "
            f"alert_webhook_url={mask_secret_url(self.alert_webhook_url)!r}, "
            f"alertmanager_url={mask_url(self.alertmanager_url)!r}, "
            f"sidecar_port={self.sidecar_port}, database_url={mask_url(self.database_url)!r}, "
            f"redis_url={mask_url(self.redis_url)!r}, backup_schedule={self.backup_schedule!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitoringSettings:
        """Read the settings from `env` (default: `os.environ`); unset means the default."""
        env = os.environ if env is None else env
        schedule = env.get("BACKUP_SCHEDULE") or cls.backup_schedule
        if not croniter.is_valid(schedule):
            raise MonitoringSettingsError(
                "BACKUP_SCHEDULE", repr(schedule), "a five-field cron expression like '0 2 * * *'"
            )
        return cls(
            interval_seconds=_positive(env, "MONITORING_INTERVAL", cls.interval_seconds),
            alert_cooldown_seconds=_float(env, "ALERT_COOLDOWN", cls.alert_cooldown_seconds, 0),
            health_check_timeout_seconds=_positive(
                env, "HEALTH_CHECK_TIMEOUT", cls.health_check_timeout_seconds
            ),
            alert_evaluation_interval_seconds=_positive(
                env, "ALERT_EVALUATION_INTERVAL", cls.alert_evaluation_interval_seconds
            ),
            alert_for_seconds=_float(env, "ALERT_FOR", cls.alert_for_seconds, 0),
            cpu_alert_threshold=_percent(env, "ALERT_CPU_THRESHOLD", cls.cpu_alert_threshold),
            memory_alert_threshold=_percent(
                env, "ALERT_MEMORY_THRESHOLD", cls.memory_alert_threshold
            ),
            disk_alert_threshold=_percent(env, "ALERT_DISK_THRESHOLD", cls.disk_alert_threshold),
            alert_rate_limit_per_minute=_float(
                env, "ALERT_RATE_LIMIT", cls.alert_rate_limit_per_minute, 1.0
            ),
            alert_webhook_url=_url(env, "ALERT_WEBHOOK_URL", ("http", "https")),
            alertmanager_url=_url(env, "ALERTMANAGER_URL", ("http", "https")),
            sidecar_host=env.get("SIDECAR_HOST") or cls.sidecar_host,
            sidecar_port=_port(env, "SIDECAR_PORT", cls.sidecar_port),
            database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
            redis_url=_url(env, "REDIS_URL", ("redis", "rediss")),
            backup_schedule=schedule,
            health_probes=_probes(env, "HEALTH_PROBES"),
            disk_paths=_paths(env, "DISK_PATHS", cls.disk_paths),
        )
