"""The stack's typed configuration: one table of settings, parsed and validated once.

`SETTINGS` is the single source of truth for every key: its type, default, description and
rule. `Pulumi.yaml`'s `config:` schema and the README's configuration reference are checked
against it by the tests. A bad value stops the program with one message that names each bad
key, its value and what is allowed (a `pulumi.RunError`, so no stack trace).
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import pulumi
from croniter import croniter

from components.monitoring.alerts import RUNBOOK_URL, THRESHOLDS
from components.monitoring.slo import BACKUP_BUCKETS_SECONDS, QUERY_BUCKETS_MS

PROJECT = "data-platform"

Kind = Literal["string", "integer", "boolean", "array"]

REDIS_EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
RESTART_POLICIES = ("unless-stopped", "always", "on-failure")
TLS_MODES = ("self-signed", "provided")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PLATFORMS = ("docker", "kubernetes")
PITR_REPO_TYPES = ("posix", "s3")

_SIZE = re.compile(r"^([1-9][0-9]*)(b|kb|mb|gb)$")
_SIZE_FACTORS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
_HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h|d|w|y)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
_REGISTRY = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; the message lists every bad key, value and rule."""


# -- rules: each returns None when the value is fine, else what is allowed -------------------


def _at_least(minimum: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= minimum else f"an integer >= {minimum}"


def _between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"an integer from {low} to {high}"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else "one of " + ", ".join(choices)


def _size(v: str) -> str | None:
    return None if _SIZE.match(v) else "a size like 512mb (a positive number then b, kb, mb or gb)"


def _cron(v: str) -> str | None:
    ok = len(v.split()) == 5 and croniter.is_valid(v)
    return None if ok else "a 5-field cron expression such as '0 2 * * *'"


def _pinned_image(v: str) -> str | None:
    if not _IMAGE.match(v) or (":" not in v.rsplit("/", 1)[-1] and "@sha256:" not in v):
        return "an image pinned to a tag or digest, like 'postgres:15.13-alpine'"
    if v.rsplit("/", 1)[-1].split("@")[0].endswith(":latest"):
        return "a pinned tag, not ':latest'"
    return None


def _host_port(v: str) -> str | None:
    match = _HOST_PORT.match(v)
    ok = match is not None and 1 <= int(match.group(2)) <= 65535
    return None if ok else "host:port, like 'backend:8000'"


def _host_ports(v: list[str]) -> str | None:
    bad = [item for item in v if _host_port(item) is not None]
    return f"a list of host:port like ['orders:9100'] ({bad[0]!r} is not)" if bad else None


def _domain(v: str) -> str | None:
    return None if _DOMAIN.match(v) else "a DNS name like 'platform.example.com'"


def _duration(v: str) -> str | None:
    return None if _DURATION.match(v) else "a Prometheus duration like 15d"


def _workers(v: str) -> str | None:
    ok = v == "auto" or (v.isdigit() and 1 <= int(v) <= 256)
    return None if ok else "'auto' or an integer from 1 to 256"


def _cidrs(v: list[str]) -> str | None:
    try:
        for item in v:
            ipaddress.ip_network(item)
    except ValueError:
        return "a list of CIDR blocks like ['10.0.0.0/8']"
    return None if v else "a non-empty list of CIDR blocks"


def _optional_cidrs(v: list[str]) -> str | None:
    return None if not v or _cidrs(v) is None else "a list of CIDR blocks like ['10.244.0.0/16']"


def _webhook(v: str) -> str | None:
    ok = v == "" or v.startswith(("https://", "http://"))
    return None if ok else "an http(s):// URL, or empty for no webhook"


def _heartbeat(v: str) -> str | None:
    ok = v == "" or (v.startswith("https://") and len(v) > len("https://"))
    return None if ok else "an https:// URL, or empty for no heartbeat"


def _url(v: str) -> str | None:
    return None if v.startswith(("https://", "http://")) else "an http(s):// URL"


def _pem(marker: str) -> Callable[[str], str | None]:
    return lambda v: None if v == "" or marker in v else f"a PEM block containing '{marker}'"


def _percent(low: int) -> Callable[[str], str | None]:
    """An objective as a percentage string ("99.9"): exact, since thresholds derive from it."""

    def rule(v: str) -> str | None:
        try:
            ok = re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) is not None and low <= Decimal(v) < 100
        except InvalidOperation:
            ok = False
        return None if ok else f"a percentage like '99.9', from {low} up to (not including) 100"

    return rule


def _dns_label(optional: bool) -> Callable[[str], str | None]:
    def rule(v: str) -> str | None:
        ok = (optional and v == "") or bool(_DNS_LABEL.match(v))
        blank = ", or empty" if optional else ""
        return None if ok else f"a lowercase DNS label like 'data-platform'{blank}"

    return rule


def _histogram_bound(bounds: tuple[int, ...]) -> Callable[[int], str | None]:
    return lambda v: (
        None
        if v in bounds
        else "one of the histogram's bucket bounds: " + ", ".join(map(str, bounds))
    )


def _quantity(v: str) -> str | None:
    return None if _QUANTITY.match(v) else "a storage size like 20Gi (Mi, Gi or Ti)"


def _retention(v: str) -> str | None:
    return None if _RETENTION.match(v) else "a retention like 30d (days d, weeks w, months m)"


def _s3_destination(v: str) -> str | None:
    ok = v == "" or (v.startswith("s3://") and len(v) > len("s3://"))
    return None if ok else "an s3://bucket/path URL, or empty"


def _optional_url(v: str) -> str | None:
    return None if v == "" or _url(v) is None else "an http(s):// URL, or empty"


# The images we build (images/postgres, runtime/) start from Debian bookworm's slim image and
# install Debian's own PostgreSQL 15, pgBackRest 2.45 and Python: a dated tag (or a digest).
DEFAULT_BASE_IMAGE = "debian:bookworm-20250520-slim"
_DEBIAN_BASE = re.compile(
    r"^([a-z0-9][a-z0-9._-]*(:[0-9]+)?/)*debian:bookworm-[0-9]{8}-slim(@sha256:[a-f0-9]{64})?$"
)


def _postgres_base(v: str) -> str | None:
    ok = _DEBIAN_BASE.match(v) is not None
    return (
        None
        if ok
        else (
            f"a dated Debian bookworm slim image like '{DEFAULT_BASE_IMAGE}' (optionally "
            "with @sha256:...; the image installs Debian bookworm's postgresql-15 and "
            "pgBackRest 2.45 on it)"
        )
    )


def _optional_host(v: str) -> str | None:
    return None if v == "" or _DOMAIN.match(v) else "a host name like 's3.eu-west-1.amazonaws.com'"


def _bucket(v: str) -> str | None:
    ok = v == "" or re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v) is not None
    return None if ok else "an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"


def _region(v: str) -> str | None:
    ok = v == "" or re.fullmatch(r"[a-z0-9][a-z0-9-]*", v) is not None
    return None if ok else "an S3 region like 'eu-west-1'"


def _registry(v: str) -> str | None:
    ok = v == "" or _REGISTRY.match(v) is not None
    return None if ok else "a registry host and optional path like 'registry.example.com/platform'"


def _always(_: Any) -> str | None:
    return None


@dataclass(frozen=True)
class Setting:
    """One configuration key: how to read it, its default and its rule."""

    key: str
    kind: Kind
    default: Any
    description: str
    rule: Callable[[Any], str | None] = _always
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Endpoints and TLS
    Setting("domain", "string", "localhost", "Public DNS name nginx serves.", _domain),
    Setting(
        "nginxHttpPort",
        "integer",
        80,
        "Host port for HTTP (redirects to HTTPS).",
        _between(1, 65535),
    ),
    Setting("nginxHttpsPort", "integer", 443, "Host port for HTTPS.", _between(1, 65535)),
    Setting(
        "nginxWorkerProcesses",
        "string",
        "auto",
        "nginx worker_processes: 'auto' or a count.",
        _workers,
    ),
    Setting(
        "rateLimitRps",
        "integer",
        20,
        "Requests per second per client IP before nginx answers 429.",
        _at_least(1),
    ),
    Setting(
        "rateLimitBurst", "integer", 40, "Requests a client may burst above the rate.", _at_least(0)
    ),
    Setting(
        "backendUpstream",
        "string",
        "backend:8000",
        "Application API upstream (host:port), proxied at /api/.",
        _host_port,
    ),
    Setting(
        "frontendUpstream",
        "string",
        "frontend:3000",
        "Application web upstream (host:port), proxied at /.",
        _host_port,
    ),
    Setting(
        "adminAllowCidrs",
        "array",
        ["127.0.0.1/32", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        "Client networks allowed to reach /prometheus/ and /alertmanager/ (they have no login).",
        _cidrs,
    ),
    Setting(
        "tlsMode",
        "string",
        "self-signed",
        "'self-signed' (generated by pulumi-tls) or 'provided' (tlsCertificate + tlsPrivateKey).",
        _one_of(TLS_MODES),
    ),
    Setting(
        "tlsCertificate",
        "string",
        "",
        "PEM certificate chain when tlsMode is 'provided'.",
        _pem("BEGIN CERTIFICATE"),
    ),
    Setting(
        "tlsPrivateKey",
        "string",
        "",
        "PEM private key when tlsMode is 'provided' (set with --secret).",
        _pem("PRIVATE KEY"),
        secret=True,
    ),
    Setting(
        "exposeDataPorts",
        "boolean",
        False,
        "Publish PostgreSQL and Redis on 127.0.0.1 of the host (dev convenience).",
    ),
    # Database and pool
    Setting("dbName", "string", "app", "Application database name.", _domain),
    Setting("dbUser", "string", "app", "Application database role.", _domain),
    Setting(
        "dbPoolSize",
        "integer",
        10,
        "Connections each application pool keeps open (DB_POOL_SIZE).",
        _at_least(1),
    ),
    Setting(
        "dbMaxOverflow",
        "integer",
        20,
        "Extra connections a pool may open under load (DB_MAX_OVERFLOW).",
        _at_least(0),
    ),
    Setting(
        "dbPoolTimeout",
        "integer",
        30,
        "Seconds a request waits for a pooled connection (DB_POOL_TIMEOUT).",
        _at_least(1),
    ),
    Setting(
        "dbStatementTimeoutMs",
        "integer",
        5000,
        "statement_timeout for pooled connections, in ms (0 = none).",
        _at_least(0),
    ),
    Setting(
        "postgresMaxConnections",
        "integer",
        100,
        "PostgreSQL max_connections; must exceed dbPoolSize + dbMaxOverflow.",
        _between(10, 10000),
    ),
    # Cache
    Setting("redisMaxMemory", "string", "512mb", "Redis maxmemory (REDIS_MAX_MEMORY).", _size),
    Setting(
        "redisEvictionPolicy",
        "string",
        "allkeys-lru",
        "Redis maxmemory-policy (REDIS_EVICTION_POLICY).",
        _one_of(REDIS_EVICTION_POLICIES),
    ),
    Setting(
        "cacheDefaultTtl",
        "integer",
        300,
        "Default cache entry TTL in seconds; bounds cross-process staleness.",
        _at_least(1),
    ),
    # Backups
    Setting(
        "backupSchedule",
        "string",
        "0 2 * * *",
        "Cron schedule of backups (BACKUP_SCHEDULE).",
        _cron,
    ),
    Setting(
        "backupRetentionDays",
        "integer",
        30,
        "Days backups are kept (BACKUP_RETENTION_DAYS).",
        _at_least(1),
    ),
    Setting("backupMinKeep", "integer", 3, "Backups always kept whatever their age.", _at_least(1)),
    # Point-in-time recovery (pgBackRest) and streaming replicas: docs/data-tier.md
    Setting(
        "walArchiveTimeout",
        "integer",
        60,
        "PostgreSQL archive_timeout in seconds: the longest a commit waits before its WAL is "
        "archived, i.e. the RPO when the database volume is lost.",
        _between(1, 86400),
    ),
    Setting(
        "pitrRepoType",
        "string",
        "posix",
        "pgBackRest repository: 'posix' (a protected named volume) or 's3'.",
        _one_of(PITR_REPO_TYPES),
    ),
    Setting(
        "pitrS3Bucket",
        "string",
        "",
        "S3 bucket of the pgBackRest repository (pitrRepoType 's3').",
        _bucket,
    ),
    Setting(
        "pitrS3Region",
        "string",
        "",
        "S3 region of the pgBackRest repository (pitrRepoType 's3').",
        _region,
    ),
    Setting(
        "pitrS3Endpoint",
        "string",
        "",
        "S3 endpoint (HTTPS); empty means s3.<pitrS3Region>.amazonaws.com.",
        _optional_host,
    ),
    Setting(
        "pitrS3AccessKey",
        "string",
        "",
        "S3 access key id of the pgBackRest repository (set with --secret).",
        secret=True,
    ),
    Setting(
        "pitrS3SecretKey",
        "string",
        "",
        "S3 secret access key of the pgBackRest repository (set with --secret).",
        secret=True,
    ),
    Setting(
        "pitrRetentionFull",
        "integer",
        2,
        "Full physical backups pgBackRest keeps (repo1-retention-full); older ones expire "
        "with the WAL they need.",
        _at_least(1),
    ),
    Setting(
        "pitrFullSchedule",
        "string",
        "0 1 * * 0",
        "Cron schedule of full physical backups (the runtime sidecar runs them).",
        _cron,
    ),
    Setting(
        "pitrDiffSchedule",
        "string",
        "0 1 * * 1-6",
        "Cron schedule of differential physical backups.",
        _cron,
    ),
    Setting(
        "postgresReplicas",
        "integer",
        0,
        "Hot standby replicas streaming from the primary (read-only endpoints in app_config; "
        "on kubernetes, CloudNativePG standbys that are also failover targets).",
        _between(0, 5),
    ),
    Setting(
        "replicationLagAlertBytes",
        "integer",
        THRESHOLDS.replication_lag_bytes,
        "Replay lag of a replica, in bytes of WAL, above which ReplicationLagHigh fires.",
        _at_least(1),
    ),
    Setting(
        "replicationSlotMaxRetainedBytes",
        "integer",
        THRESHOLDS.slot_retained_bytes,
        "WAL a replication slot may hold back on the primary before ReplicationSlotRetainingWal "
        "fires.",
        _at_least(1),
    ),
    # Monitoring and operations
    Setting(
        "monitoringInterval",
        "integer",
        60,
        "Seconds between runtime metric collections (MONITORING_INTERVAL).",
        _at_least(1),
    ),
    Setting(
        "alertCooldown",
        "integer",
        300,
        "Seconds before an identical alert is sent again (ALERT_COOLDOWN).",
        _at_least(0),
    ),
    Setting(
        "alertWebhookUrl",
        "string",
        "",
        "Alertmanager webhook receiver URL (set with --secret; empty = none).",
        _webhook,
        secret=True,
    ),
    Setting(
        "watchdogWebhookUrl",
        "string",
        "",
        "Heartbeat URL the always-firing Watchdog alert is sent to (a dead man's switch such as "
        "healthchecks.io; set with --secret; empty = Watchdog sent nowhere).",
        _heartbeat,
        secret=True,
    ),
    Setting(
        "runbookUrl",
        "string",
        RUNBOOK_URL,
        "Where alerts' runbook_url annotations point (your copy of docs/runbooks.md).",
        _url,
    ),
    Setting(
        "sloAvailability",
        "string",
        "99.9",
        "Availability objective of the public endpoint over 30 days, in percent (docs/slo.md).",
        _percent(95),
    ),
    Setting(
        "sloQueryLatencyMs",
        "integer",
        100,
        "Query latency threshold of the latency SLO, in ms (a bucket of the runtime's histogram).",
        _histogram_bound(QUERY_BUCKETS_MS),
    ),
    Setting(
        "sloQueryLatencyTarget",
        "string",
        "99",
        "Percent of queries that must finish within sloQueryLatencyMs over 30 days.",
        _percent(95),
    ),
    Setting(
        "sloBackupSeconds",
        "integer",
        5,
        "Duration a backup run must finish within to count as good, in seconds.",
        _histogram_bound(BACKUP_BUCKETS_SECONDS),
    ),
    Setting(
        "sloBackupTarget",
        "string",
        "90",
        "Percent of backup runs that must succeed within sloBackupSeconds over 30 days.",
        _percent(50),
    ),
    Setting(
        "scrapeIntervalSeconds",
        "integer",
        15,
        "Prometheus scrape and rule evaluation interval.",
        _between(1, 300),
    ),
    Setting(
        "appMetricsTargets",
        "array",
        [],
        "Applications' metrics endpoints (host:port) Prometheus scrapes as job `app`, so the "
        "query latency SLO counts their pools (docs/runtime-monitoring.md); Docker only.",
        _host_ports,
    ),
    Setting(
        "prometheusRetention", "string", "15d", "How long Prometheus keeps samples.", _duration
    ),
    Setting(
        "healthCheckTimeout",
        "integer",
        60,
        "Seconds `pulumi up` waits for each container to turn healthy (HEALTH_CHECK_TIMEOUT).",
        _between(5, 3600),
    ),
    Setting(
        "healthCheckInterval",
        "integer",
        10,
        "Seconds between container health probes.",
        _between(1, 300),
    ),
    Setting(
        "restartPolicy",
        "string",
        "unless-stopped",
        "Docker restart policy for every container.",
        _one_of(RESTART_POLICIES),
    ),
    Setting(
        "restartAttempts",
        "integer",
        3,
        "Restarts before giving up when restartPolicy is on-failure (SERVICE_RESTART_ATTEMPTS).",
        _at_least(1),
    ),
    Setting(
        "protectDataVolumes",
        "boolean",
        True,
        "Protect data volumes so `pulumi destroy` cannot delete them without an unprotect.",
    ),
    Setting(
        "grafanaAdminUser",
        "string",
        "admin",
        "Grafana administrator login (password is generated).",
        _domain,
    ),
    # Logs and traces (docs/logs-traces.md)
    Setting(
        "logsTraces",
        "boolean",
        True,
        "Run Loki, Tempo and Grafana Alloy: every container's logs and the runtime's traces.",
    ),
    Setting(
        "logRetentionDays",
        "integer",
        31,
        "Days Loki keeps log lines (whole days: Loki's index period is 24h).",
        _at_least(1),
    ),
    Setting("traceRetentionDays", "integer", 7, "Days Tempo keeps traces.", _at_least(1)),
    Setting(
        "traceSamplingPercent",
        "integer",
        10,
        "Percent of root traces the runtime records (parents' decisions are followed).",
        _between(0, 100),
    ),
    Setting(
        "runtimeLogLevel",
        "string",
        "INFO",
        "Level of the runtime's JSON logs (its libraries' too).",
        _one_of(LOG_LEVELS),
    ),
    Setting(
        "errorLogLinesPerMinute",
        "integer",
        10,
        "Error-level log lines per minute from one service before ErrorLogRateHigh fires.",
        _at_least(1),
    ),
    # Images (pinned) and memory limits (MB)
    Setting(
        "postgresImage",
        "string",
        DEFAULT_BASE_IMAGE,
        "Base of the PostgreSQL image: a Debian bookworm slim image; the stack builds "
        "images/postgres/Dockerfile on it (Debian's postgresql-15, pgBackRest 2.45, our entry "
        "point).",
        _postgres_base,
    ),
    Setting("redisImage", "string", "redis:7.4.2-alpine", "Redis image.", _pinned_image),
    Setting("nginxImage", "string", "nginx:1.27.4-alpine", "nginx image.", _pinned_image),
    Setting(
        "prometheusImage", "string", "prom/prometheus:v2.55.1", "Prometheus image.", _pinned_image
    ),
    Setting(
        "alertmanagerImage",
        "string",
        "prom/alertmanager:v0.27.0",
        "Alertmanager image.",
        _pinned_image,
    ),
    Setting("grafanaImage", "string", "grafana/grafana:11.3.1", "Grafana image.", _pinned_image),
    Setting(
        "postgresExporterImage",
        "string",
        "quay.io/prometheuscommunity/postgres-exporter:v0.16.0",
        "PostgreSQL exporter image.",
        _pinned_image,
    ),
    Setting(
        "redisExporterImage",
        "string",
        "oliver006/redis_exporter:v1.67.0-alpine",
        "Redis exporter image (the -alpine variant has wget for its health check).",
        _pinned_image,
    ),
    Setting(
        "nginxExporterImage",
        "string",
        "nginx/nginx-prometheus-exporter:1.4.1",
        "nginx exporter image.",
        _pinned_image,
    ),
    Setting(
        "nodeExporterImage",
        "string",
        "prom/node-exporter:v1.8.2",
        "Host metrics exporter image.",
        _pinned_image,
    ),
    Setting(
        "cadvisorImage",
        "string",
        "gcr.io/cadvisor/cadvisor:v0.49.1",
        "Container metrics (cAdvisor) image.",
        _pinned_image,
    ),
    Setting(
        "blackboxImage",
        "string",
        "prom/blackbox-exporter:v0.25.0",
        "Blackbox exporter image (probes the public endpoint).",
        _pinned_image,
    ),
    Setting("lokiImage", "string", "grafana/loki:3.7.6", "Loki image (logs store).", _pinned_image),
    Setting(
        "tempoImage", "string", "grafana/tempo:2.10.8", "Tempo image (traces store).", _pinned_image
    ),
    Setting(
        "alloyImage",
        "string",
        "grafana/alloy:v1.18.1",
        "Grafana Alloy image (collects container logs and OTLP traces).",
        _pinned_image,
    ),
    Setting(
        "hostMetrics",
        "boolean",
        True,
        "Run node-exporter and cAdvisor (they read the host's /, /sys and /var/lib/docker).",
    ),
    Setting(
        "runtimeMemoryMb",
        "integer",
        256,
        "Runtime sidecar container memory limit (MB).",
        _at_least(64),
    ),
    Setting(
        "postgresMemoryMb",
        "integer",
        1024,
        "PostgreSQL container memory limit (MB).",
        _at_least(64),
    ),
    Setting(
        "redisMemoryMb",
        "integer",
        768,
        "Redis container memory limit (MB); must exceed redisMaxMemory.",
        _at_least(32),
    ),
    Setting("nginxMemoryMb", "integer", 128, "nginx container memory limit (MB).", _at_least(16)),
    Setting(
        "prometheusMemoryMb",
        "integer",
        1024,
        "Prometheus container memory limit (MB).",
        _at_least(128),
    ),
    Setting(
        "alertmanagerMemoryMb",
        "integer",
        128,
        "Alertmanager container memory limit (MB).",
        _at_least(32),
    ),
    Setting(
        "grafanaMemoryMb", "integer", 512, "Grafana container memory limit (MB).", _at_least(128)
    ),
    Setting("lokiMemoryMb", "integer", 512, "Loki container memory limit (MB).", _at_least(128)),
    Setting("tempoMemoryMb", "integer", 512, "Tempo container memory limit (MB).", _at_least(128)),
    Setting(
        "alloyMemoryMb", "integer", 256, "Grafana Alloy container memory limit (MB).", _at_least(64)
    ),
    # Where it runs: one Docker host, or a Kubernetes cluster (docs/kubernetes.md)
    Setting(
        "platform",
        "string",
        "docker",
        "Where the services run: 'docker' (one host) or 'kubernetes' (a cluster).",
        _one_of(PLATFORMS),
    ),
    Setting(
        "k8sContext",
        "string",
        "",
        "kubeconfig context to deploy to (empty = the kubeconfig's current context).",
    ),
    Setting(
        "k8sNamespace",
        "string",
        "data-platform",
        "Namespace every service, the chart and the custom resources go into.",
        _dns_label(optional=False),
    ),
    Setting(
        "k8sStorageClass",
        "string",
        "",
        "StorageClass of every volume (empty = the cluster's default class).",
        _dns_label(optional=True),
    ),
    Setting(
        "k8sGatewayName",
        "string",
        "",
        "Gateway (Gateway API) the HTTPRoute attaches to; required on kubernetes.",
        _dns_label(optional=True),
    ),
    Setting(
        "k8sGatewayNamespace",
        "string",
        "",
        "Namespace of that Gateway (empty = k8sNamespace).",
        _dns_label(optional=True),
    ),
    Setting(
        "k8sClusterIssuer",
        "string",
        "",
        "cert-manager ClusterIssuer that signs the public certificate; required on kubernetes.",
        _dns_label(optional=True),
    ),
    Setting(
        "k8sEdgeReplicas",
        "integer",
        2,
        "nginx replicas behind the Gateway (a rolling update never goes below this).",
        _between(1, 20),
    ),
    Setting(
        "k8sPostgresStorage",
        "string",
        "20Gi",
        "Volume size of each PostgreSQL instance.",
        _quantity,
    ),
    Setting(
        "k8sVolumeStorage",
        "string",
        "2Gi",
        "Volume size of every other service with data (Redis, the runtime's backups).",
        _quantity,
    ),
    Setting(
        "k8sBackupDestination",
        "string",
        "",
        "s3://bucket/path CloudNativePG archives WAL and base backups to; required on kubernetes.",
        _s3_destination,
    ),
    Setting(
        "k8sBackupEndpointUrl",
        "string",
        "",
        "S3-compatible endpoint URL (empty = AWS S3).",
        _optional_url,
    ),
    Setting(
        "k8sBackupAccessKeyId",
        "string",
        "",
        "Access key id for k8sBackupDestination (set with --secret); required on kubernetes.",
        secret=True,
    ),
    Setting(
        "k8sBackupSecretAccessKey",
        "string",
        "",
        "Secret access key for k8sBackupDestination (set with --secret); required on kubernetes.",
        secret=True,
    ),
    Setting(
        "k8sBackupRetention",
        "string",
        "30d",
        "How long CloudNativePG keeps base backups and WAL (its retentionPolicy).",
        _retention,
    ),
    Setting(
        "k8sImageRegistry",
        "string",
        "",
        "Registry (host[/path]) the stack pushes the images it builds (the runtime's) to and "
        "the cluster pulls them from; required on kubernetes.",
        _registry,
    ),
    Setting(
        "k8sImageRegistryUsername",
        "string",
        "",
        "User for k8sImageRegistry (empty = this machine's docker login and the nodes' own "
        "pull credentials).",
    ),
    Setting(
        "k8sImageRegistryPassword",
        "string",
        "",
        "Password or token for k8sImageRegistryUsername (set with --secret).",
        secret=True,
    ),
    Setting(
        "k8sTrustedProxyCidrs",
        "array",
        [],
        "Networks of the Gateway's pods (the cluster's pod CIDR): only on connections from "
        "them does nginx take the client's address from X-Forwarded-For; required on kubernetes.",
        _optional_cidrs,
    ),
)

SETTINGS_BY_KEY: Mapping[str, Setting] = {s.key: s for s in SETTINGS}


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


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def schedule_max_gap_seconds(*schedules: str) -> int:
    """The longest time between two consecutive runs of the cron `schedules` together, over
    a year of runs (what an alert on a missing scheduled job must allow for)."""
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=366)
    runs: set[datetime.datetime] = set()
    for schedule in schedules:
        times = croniter(schedule, start)
        run = times.get_next(datetime.datetime)
        while run <= end and len(runs) < 100_000:
            runs.add(run)
            run = times.get_next(datetime.datetime)
    ordered = sorted(runs)
    if len(ordered) < 2:
        return int((end - start).total_seconds())
    return int(max((b - a).total_seconds() for a, b in itertools.pairwise(ordered)))


def size_in_bytes(size: str) -> int:
    """`512mb` -> 536870912 (Redis units: k/m/g are powers of 1024)."""
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"not a size: {size!r}")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


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
        problems.extend(_cross_field_problems(values))
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


def _cross_field_problems(v: Mapping[str, Any]) -> list[str]:
    problems = []
    pooled = v["db_pool_size"] + v["db_max_overflow"]
    if v["postgres_max_connections"] <= pooled:
        problems.append(
            f"{PROJECT}:postgresMaxConnections: got {v['postgres_max_connections']}; allowed: "
            f"more than dbPoolSize + dbMaxOverflow ({pooled}) so admin and exporter "
            "connections still fit"
        )
    limit = v["redis_memory_mb"] * 1024**2
    if size_in_bytes(v["redis_max_memory"]) >= limit:
        problems.append(
            f"{PROJECT}:redisMaxMemory: got {v['redis_max_memory']!r}; allowed: less than the "
            f"container limit redisMemoryMb ({v['redis_memory_mb']} MB), leaving room for "
            "Redis's own overhead (about 75% of it is a good value)"
        )
    if v["tls_mode"] == "provided" and not (v["tls_certificate"] and v["tls_private_key"]):
        problems.append(
            f"{PROJECT}:tlsCertificate/tlsPrivateKey: not set; allowed: with tlsMode "
            "'provided' both are required (pulumi config set tlsCertificate < cert.pem; "
            "pulumi config set --secret tlsPrivateKey < key.pem)"
        )
    if v["pitr_repo_type"] == "s3":
        missing = [
            key
            for key in ("pitrS3Bucket", "pitrS3Region", "pitrS3AccessKey", "pitrS3SecretKey")
            if not v[snake(key)]
        ]
        if missing:
            problems.append(
                f"{PROJECT}:{'/'.join(missing)}: not set; allowed: with pitrRepoType 's3' "
                "the bucket, region and credentials are required (pulumi config set "
                "pitrS3Bucket NAME; pulumi config set pitrS3Region REGION; pulumi config set "
                "--secret pitrS3AccessKey ...; pulumi config set --secret pitrS3SecretKey ...)"
            )
    if v["nginx_http_port"] == v["nginx_https_port"]:
        problems.append(
            f"{PROJECT}:nginxHttpsPort: got {v['nginx_https_port']}; allowed: a port "
            "different from nginxHttpPort"
        )
    if v["platform"] == "kubernetes":
        problems.extend(_kubernetes_problems(v))
    return problems


def _kubernetes_problems(v: Mapping[str, Any]) -> list[str]:
    """What a cluster needs that a Docker host does not, and Docker-only choices it refuses."""
    problems = [
        f"{PROJECT}:{key}: not set; allowed: {what} (required when platform is 'kubernetes')"
        for key, what in (
            ("k8sGatewayName", "the name of an existing Gateway"),
            ("k8sClusterIssuer", "the name of a cert-manager ClusterIssuer"),
            ("k8sBackupDestination", "an s3://bucket/path URL"),
            ("k8sBackupAccessKeyId", "an access key id (pulumi config set --secret ...)"),
            ("k8sBackupSecretAccessKey", "a secret access key (pulumi config set --secret ...)"),
            ("k8sImageRegistry", "a registry the cluster pulls from, like 'ghcr.io/example'"),
            ("k8sTrustedProxyCidrs", "the Gateway pods' CIDR blocks, like ['10.244.0.0/16']"),
        )
        if not v[snake(key)]
    ]
    everyone = [c for c in v["k8s_trusted_proxy_cidrs"] if ipaddress.ip_network(c).prefixlen == 0]
    if everyone:
        problems.append(
            f"{PROJECT}:k8sTrustedProxyCidrs: got {everyone[0]!r}; allowed: the Gateway pods' "
            "networks, not every address (any client could then set its own address)"
        )
    if bool(v["k8s_image_registry_username"]) != bool(v["k8s_image_registry_password"]):
        problems.append(
            f"{PROJECT}:k8sImageRegistryUsername/k8sImageRegistryPassword: only one is set; "
            "allowed: both (pulumi config set k8sImageRegistryUsername USER; pulumi config set "
            "--secret k8sImageRegistryPassword ...) or neither (docker login and the nodes' "
            "credentials)"
        )
    if v["expose_data_ports"]:
        problems.append(
            f"{PROJECT}:exposeDataPorts: got True; allowed: false on kubernetes (reach the "
            "data services with kubectl port-forward)"
        )
    if v["app_metrics_targets"]:
        problems.append(
            f"{PROJECT}:appMetricsTargets: got {list(v['app_metrics_targets'])!r}; allowed: [] "
            "on kubernetes (add a ServiceMonitor labelled platform.monitoring: <stack> with job "
            "'app', docs/kubernetes.md)"
        )
    if v["tls_mode"] != "self-signed":
        problems.append(
            f"{PROJECT}:tlsMode: got {v['tls_mode']!r}; allowed: 'self-signed' on kubernetes "
            "(the public certificate comes from cert-manager: k8sClusterIssuer)"
        )
    return problems


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


# -- documentation generated from SETTINGS (tests keep Pulumi.yaml and the README in sync) ----


def pulumi_yaml_config() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml: every key typed, described and defaulted."""
    block: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        entry: dict[str, Any] = {"type": s.kind, "description": s.description, "default": s.default}
        if s.kind == "array":
            entry["items"] = {"type": "string"}
        block[s.key] = entry
    return block


def markdown_reference() -> str:
    """The README's configuration reference table."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = json.dumps(s.default) if s.kind == "array" else f"`{s.default}`"
        if s.default == "":
            default = "(unset)"
        secret = " **Secret.**" if s.secret else ""
        rows.append(f"| `{s.key}` | {s.kind} | {default} | {s.description}{secret} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    import yaml

    if sys.argv[1:] == ["--markdown"]:
        print(markdown_reference())
    else:
        print(yaml.safe_dump({"config": pulumi_yaml_config()}, sort_keys=False, width=100))
