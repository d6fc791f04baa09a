"""`StackConfig`: one stack's settings, typed, parsed from the raw values and validated once.

A bad value stops the program with one message that names each bad key, its value and what
is allowed (a `pulumi.RunError`, so no stack trace).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.checks import cross_field_problems
from components.config.settings import PROJECT, SETTINGS, SETTINGS_BY_KEY, Setting, snake


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; the message lists every bad key, value and rule."""


@dataclass(frozen=True)
class StackConfig:
    """Every setting of one stack, typed. Attribute names are the keys in snake_case."""

    stack: str
    domain: str
    nginx_http_port: int
    nginx_https_port: int
    nginx_worker_processes: str
    rate_limit_rps: int
    rate_limit_burst: int
    backend_upstream: str
    frontend_upstream: str
    admin_allow_cidrs: tuple[str, ...]
    tls_mode: str
    tls_certificate: str
    tls_private_key: pulumi.Output[str] | None
    acme_email: str
    acme_directory_url: str
    acme_renew_days: int
    acme_ca_bundle: str
    acme_image: str
    expose_data_ports: bool
    db_name: str
    db_user: str
    db_pool_size: int
    db_max_overflow: int
    db_pool_timeout: int
    db_statement_timeout_ms: int
    postgres_max_connections: int
    redis_max_memory: str
    redis_eviction_policy: str
    cache_default_ttl: int
    backup_schedule: str
    backup_retention_days: int
    backup_min_keep: int
    wal_archive_timeout: int
    pitr_repo_type: str
    pitr_s3_bucket: str
    pitr_s3_region: str
    pitr_s3_endpoint: str
    pitr_s3_access_key: pulumi.Output[str] | None
    pitr_s3_secret_key: pulumi.Output[str] | None
    pitr_retention_full: int
    pitr_full_schedule: str
    pitr_diff_schedule: str
    pitr_drill_schedule: str
    pitr_drill_timeout_seconds: int
    pitr_drill_memory_mb: int
    pitr_drill_tables: tuple[str, ...]
    postgres_replicas: int
    replication_lag_alert_bytes: int
    replication_slot_max_retained_bytes: int
    monitoring_interval: int
    alert_cooldown: int
    alert_webhook_url: pulumi.Output[str] | None
    watchdog_webhook_url: pulumi.Output[str] | None
    runbook_url: str
    slo_availability: str
    slo_query_latency_ms: int
    slo_query_latency_target: str
    slo_backup_seconds: int
    slo_backup_target: str
    scrape_interval_seconds: int
    app_metrics_targets: tuple[str, ...]
    prometheus_retention: str
    health_check_timeout: int
    health_check_interval: int
    restart_policy: str
    restart_attempts: int
    protect_data_volumes: bool
    grafana_admin_user: str
    logs_traces: bool
    log_retention_days: int
    trace_retention_days: int
    trace_sampling_percent: int
    runtime_log_level: str
    error_log_lines_per_minute: int
    postgres_image: str
    redis_image: str
    nginx_image: str
    prometheus_image: str
    alertmanager_image: str
    grafana_image: str
    postgres_exporter_image: str
    redis_exporter_image: str
    nginx_exporter_image: str
    node_exporter_image: str
    cadvisor_image: str
    blackbox_image: str
    loki_image: str
    tempo_image: str
    alloy_image: str
    host_metrics: bool
    postgres_memory_mb: int
    redis_memory_mb: int
    nginx_memory_mb: int
    prometheus_memory_mb: int
    alertmanager_memory_mb: int
    grafana_memory_mb: int
    runtime_memory_mb: int
    migration_image: str
    migration_command: tuple[str, ...]
    migration_timeout_seconds: int
    migration_memory_mb: int
    loki_memory_mb: int
    tempo_memory_mb: int
    alloy_memory_mb: int
    platform: str
    k8s_context: str
    k8s_namespace: str
    k8s_storage_class: str
    k8s_gateway_name: str
    k8s_gateway_namespace: str
    k8s_cluster_issuer: str
    k8s_edge_replicas: int
    k8s_postgres_storage: str
    k8s_volume_storage: str
    k8s_backup_destination: str
    k8s_backup_endpoint_url: str
    k8s_backup_access_key_id: pulumi.Output[str] | None
    k8s_backup_secret_access_key: pulumi.Output[str] | None
    k8s_backup_retention: str
    k8s_image_registry: str
    k8s_image_registry_username: str
    k8s_image_registry_password: pulumi.Output[str] | None
    k8s_trusted_proxy_cidrs: tuple[str, ...]


def _parse(setting: Setting, raw: Any) -> Any:
    """Turn the CLI's string (or a YAML-typed value) into the setting's kind; ValueError if not."""
    if setting.kind == "string":
        if not isinstance(raw, str):
            raise ValueError
        return raw
    if setting.kind == "integer":
        if isinstance(raw, bool):
            raise ValueError
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?[0-9]+", raw.strip()):
            return int(raw)
        raise ValueError
    if setting.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError
    return value


_KIND_TEXT = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "array": "a JSON list of strings",
}


def _shown(setting: Setting, raw: Any) -> str:
    return "[secret]" if setting.secret else repr(raw)


def parse_config(
    raw: Mapping[str, Any], stack: str, secrets: Mapping[str, pulumi.Output[str]] | None = None
) -> StackConfig:
    """Build a `StackConfig` from raw values keyed without the project prefix.

    `secrets` carries secret settings as `Output`s so they stay secret; their plain values in
    `raw` are only used to validate them. Raises `ConfigError` listing every problem.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in sorted(set(raw) - set(SETTINGS_BY_KEY)):
        problems.append(
            f"{PROJECT}:{key}: unknown key (value {raw[key]!r}); allowed keys are listed in "
            "Pulumi.yaml and the README's configuration reference"
        )
    for setting in SETTINGS:
        value = setting.default
        if setting.key in raw:
            given = raw[setting.key]
            try:
                value = _parse(setting, given)
            except (ValueError, json.JSONDecodeError):
                problems.append(
                    f"{PROJECT}:{setting.key}: got {_shown(setting, given)}; "
                    f"allowed: {_KIND_TEXT[setting.kind]}"
                )
                continue
        allowed = setting.rule(value)
        if allowed is not None:
            problems.append(
                f"{PROJECT}:{setting.key}: got {_shown(setting, value)}; allowed: {allowed}"
            )
        values[snake(setting.key)] = tuple(value) if setting.kind == "array" else value
    if not problems:
        problems.extend(cross_field_problems(values))
    if problems:
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems))

    secrets = secrets or {}
    for setting in SETTINGS:
        if setting.secret:
            name = snake(setting.key)
            plain = values[name]
            values[name] = secrets.get(setting.key) or (
                pulumi.Output.secret(plain) if plain else None
            )
    return StackConfig(stack=stack, **values)


def load_stack_config() -> StackConfig:
    """Read this stack's configuration from the Pulumi engine (CLI or test mocks)."""
    # pulumi.Config cannot list keys; the runtime's config map can, and unknown keys must fail.
    from pulumi.runtime import config as runtime_config

    prefix = f"{PROJECT}:"
    known: dict[str, Any] = dict(runtime_config.get_config_env())
    known.update(runtime_config.CONFIG.get())
    raw = {k[len(prefix) :]: v for k, v in known.items() if k.startswith(prefix)}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys.update(k for k in known if runtime_config.is_config_secret(k))
    stored_plain = [
        s.key for s in SETTINGS if s.secret and raw.get(s.key) and prefix + s.key not in secret_keys
    ]
    if stored_plain:
        raise ConfigError(
            "invalid stack configuration:\n  "
            + "\n  ".join(
                f"{prefix}{key}: stored in plain text; allowed: a secret value "
                f"(pulumi config set --secret {key} ...)"
                for key in stored_plain
            )
        )
    config = pulumi.Config(PROJECT)
    secrets = {s.key: config.require_secret(s.key) for s in SETTINGS if s.secret and raw.get(s.key)}
    return parse_config(raw, stack=pulumi.get_stack(), secrets=secrets)
