"""`app_config`: the one output applications read (docs/app_config.md), for either platform.

Both stacks build it here from what their data tier exposes, so its shape has one source.
What only one platform has is passed in: the `pitr` section exists where the runtime sidecar
takes the physical backups (Docker's pgBackRest); on Kubernetes CloudNativePG owns them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pulumi

from components.config import StackConfig
from components.postgres import PORT as POSTGRES_PORT
from components.redis import PORT as REDIS_PORT


class DatabaseEndpoint(Protocol):
    """A PostgreSQL server applications connect to (a container, or a cluster's Service)."""

    @property
    def host(self) -> pulumi.Output[str]: ...
    @property
    def port(self) -> pulumi.Output[int]: ...
    @property
    def dsn(self) -> pulumi.Output[str]: ...


class PrimaryDatabase(DatabaseEndpoint, Protocol):
    """The read-write server, whose application password app_config also carries."""

    @property
    def password(self) -> pulumi.Output[str]: ...


class Cache(Protocol):
    """The Redis server."""

    @property
    def host(self) -> pulumi.Output[str]: ...
    @property
    def port(self) -> pulumi.Output[int]: ...
    @property
    def password(self) -> pulumi.Output[str]: ...
    @property
    def url(self) -> pulumi.Output[str]: ...


def backup_key_id(stack: str, key: str) -> str:
    """The id written into each backup's manifest: the stack and a fingerprint of the key, so
    a replaced key gets a new id and a restore names the key it needs. A one-way hash of 32
    random bytes reveals nothing about them."""
    return f"{stack}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def app_config(
    c: StackConfig,
    postgres: PrimaryDatabase,
    replicas: Sequence[DatabaseEndpoint],
    redis: Cache,
    endpoints: Mapping[str, pulumi.Output[str]],
    pitr: Mapping[str, Any] | None = None,
    otlp_endpoint: pulumi.Input[str] = "",
    *,
    backup_key: pulumi.Output[str],
) -> pulumi.Output[dict[str, Any]]:
    """The whole document, secret as a whole; `pitr` only where the sidecar backs up WAL;
    `otlp_endpoint` where the stack runs a trace collector ("" = tracing off);
    `backup_key` (base64 AES-256) encrypts every logical backup (docs/runtime-backups.md)."""
    database: dict[str, Any] = {
        "host": postgres.host,
        "port": postgres.port,
        "name": c.db_name,
        "user": c.db_user,
        "password": postgres.password,
        "dsn": postgres.dsn,
        # read-only endpoints; empty without replicas
        "replicas": [{"host": r.host, "port": r.port, "dsn": r.dsn} for r in replicas],
    }
    cache: dict[str, Any] = {
        "host": redis.host,
        "port": redis.port,
        "password": redis.password,
        "url": redis.url,
        "maxmemory": c.redis_max_memory,
        "eviction_policy": c.redis_eviction_policy,
    }
    if c.expose_data_ports:
        database["local"] = {
            "host": "127.0.0.1",
            "port": POSTGRES_PORT,
            "dsn": pulumi.Output.format(
                "postgresql://{0}:{1}@127.0.0.1:{2}/{3}",
                c.db_user,
                postgres.password,
                POSTGRES_PORT,
                c.db_name,
            ),
        }
        cache["local"] = {
            "host": "127.0.0.1",
            "port": REDIS_PORT,
            "url": pulumi.Output.format("redis://:{0}@127.0.0.1:{1}/0", redis.password, REDIS_PORT),
        }
    config: dict[str, Any] = {
        "stack": c.stack,
        "database": database,
        "pool": {
            "size": c.db_pool_size,
            "max_overflow": c.db_max_overflow,
            "timeout_seconds": c.db_pool_timeout,
            "statement_timeout_ms": c.db_statement_timeout_ms,
        },
        "redis": cache,
        "cache": {"default_ttl_seconds": c.cache_default_ttl},
        "backup": {
            "schedule": c.backup_schedule,
            "retention_days": c.backup_retention_days,
            "min_keep": c.backup_min_keep,
            "encryption_key": backup_key,
            "encryption_key_id": backup_key.apply(lambda k: backup_key_id(c.stack, k)),
        },
    }
    if pitr is not None:
        config["pitr"] = dict(pitr)
    config |= {
        "monitoring": {
            "interval_seconds": c.monitoring_interval,
            "alert_cooldown_seconds": c.alert_cooldown,
            "health_check_timeout_seconds": c.health_check_timeout,
            "restart_attempts": c.restart_attempts,
        },
        # OTLP/HTTP base URL; the runtime posts to <otlp_endpoint>/v1/traces (logs-traces.md)
        "telemetry": {
            "otlp_endpoint": otlp_endpoint,
            "sampling_ratio": c.trace_sampling_percent / 100,
            "log_level": c.runtime_log_level,
        },
        "endpoints": dict(endpoints),
    }
    return pulumi.Output.secret(pulumi.Output.from_input(config))
