"""The neutral stack: what every platform builds from the configuration.

The platform wings (`components/docker/`, `components/kubernetes/`) each own one top-level
component and call these builders with their `Platform`; a wing adds only what its platform
does differently (Kubernetes runs PostgreSQL and the monitoring trio by operators, Docker
publishes ports and lets the sidecar take pgBackRest backups). A wing imports no service
module: the services are built here, so each setting is turned into arguments once.

Edges (a dependent is created only once its dependencies are healthy, destroyed before them):

    postgres -> postgres-replica-N (hot standbys), runtime (physical backups)
    postgres, redis, alertmanager -> prometheus -> grafana -> nginx
                     alertmanager, prometheus ---------------> nginx
    loki, tempo -> alloy -> runtime;  loki, tempo -> grafana   (logsTraces on)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi

from components.acme import AcmeArgs, AcmeClient, AcmeSeed
from components.alertmanager import Alertmanager, AlertmanagerArgs
from components.app_config import app_config as app_config
from components.config import StackConfig, schedule_max_gap_seconds
from components.exporters import (
    Exporter,
    blackbox_spec,
    cadvisor_spec,
    nginx_exporter_spec,
    node_exporter_spec,
    postgres_exporter_spec,
    redis_exporter_spec,
    scrape_targets,
)
from components.grafana import PORT as GRAFANA_PORT
from components.grafana import Grafana, GrafanaArgs
from components.logs_traces import LogsTraces
from components.logs_traces import logs_traces_tier as logs_traces_tier
from components.migration import Migration, MigrationArgs
from components.monitoring.alerts import (
    BACKUP_MARGIN_SECONDS,
    RULES_FILE,
    Thresholds,
    alerts_for,
    rules_yaml,
)
from components.monitoring.alerts import Platform as PlatformName
from components.monitoring.dashboards import dashboard_files
from components.monitoring.log_dashboards import log_dashboard_files
from components.monitoring.slo import RULES_FILE as SLO_RULES_FILE
from components.monitoring.slo import Slo, slos
from components.monitoring.slo import rules_yaml as slo_rules_yaml
from components.nginx import Nginx, NginxArgs
from components.postgres import PORT as POSTGRES_PORT
from components.postgres import PitrRepositoryArgs, Postgres, PostgresArgs
from components.prometheus import Prometheus, PrometheusArgs
from components.redis import PORT as REDIS_PORT
from components.redis import Redis, RedisArgs
from components.render.nginx_conf import DOCKER_RESOLVER, NginxSettings
from components.render.pgbackrest_conf import CONF_FILE as PGBACKREST_CONF
from components.render.pgbackrest_conf import POSIX_REPO_PATH
from components.render.postgresql_conf import STANZA
from components.replica import PostgresReplica, PostgresReplicaArgs, replica_name
from components.runtime_sidecar import (
    DRILL_MIN_MARGIN_SECONDS,
    DRILL_SCRATCH_PATH,
    RuntimeSidecar,
    RuntimeSidecarArgs,
)
from components.runtime_sidecar import PORT as RUNTIME_PORT
from components.runtime_sidecar import PhysicalBackupAccess as PhysicalBackupAccess
from components.spec import Platform, ScrapeTarget
from components.tls import TlsCertificate

__all__ = [
    "POSTGRES_PORT",
    "DataTier",
    "Edge",
    "Observability",
    "PhysicalBackupAccess",
    "PlatformStack",
    "Upstreams",
    "alert_rules",
    "alert_thresholds",
    "app_config",
    "data_tier",
    "edge_tier",
    "endpoints",
    "exporters",
    "logs_traces_tier",
    "migration",
    "nginx",
    "objectives",
    "observability_tier",
    "pitr_repository",
    "pitr_section",
    "platform_scrape_targets",
    "redis",
    "rule_files",
    "runtime_sidecar",
    "slo_rules",
]

# What the blackbox exporter probes: nginx by its service name, on every platform.
PROBE_URL = "https://nginx/"


class PlatformStack(Protocol):
    """What each platform's top-level component exposes; `__main__.py` exports these."""

    app_config: pulumi.Output[dict[str, Any]]
    endpoints: dict[str, pulumi.Output[str]]
    postgres_host: pulumi.Output[str]
    redis_host: pulumi.Output[str]


@dataclass(frozen=True)
class DataTier:
    """What applications store their data in."""

    postgres: Postgres
    replicas: list[PostgresReplica]  # hot standbys: the read-only endpoints
    redis: Redis


@dataclass(frozen=True)
class Observability:
    """Alert routing, metrics and dashboards (the exporters come after the edge they watch)."""

    alertmanager: Alertmanager
    prometheus: Prometheus
    grafana: Grafana


@dataclass(frozen=True)
class Edge:
    """The one published service and its certificate."""

    tls: TlsCertificate
    nginx: Nginx


@dataclass(frozen=True)
class Upstreams:
    """Where nginx finds the admin UIs (`host:port`) and how it resolves them."""

    grafana: str
    prometheus: str
    alertmanager: str
    resolver: str = DOCKER_RESOLVER
    real_ip_from: Sequence[str] = ()


def data_tier(
    name: str, c: StackConfig, platform: Platform, opts: pulumi.ResourceOptions
) -> DataTier:
    """PostgreSQL (archiving its WAL) and its replicas, and Redis; PostgreSQL and Redis
    published on 127.0.0.1 only when exposeDataPorts is set."""
    postgres_args = PostgresArgs(
        base_image=c.postgres_image,
        database=c.db_name,
        user=c.db_user,
        max_connections=c.postgres_max_connections,
        memory_mb=c.postgres_memory_mb,
        repository=pitr_repository(c),
        archive_timeout_seconds=c.wal_archive_timeout,
        replicas=c.postgres_replicas,
        loopback_port=POSTGRES_PORT if c.expose_data_ports else None,
    )
    postgres = Postgres(f"{name}-postgres", postgres_args, platform, opts=opts)
    # each replica is created once the primary is healthy, and destroyed before it
    replicas = [
        PostgresReplica(
            f"{name}-{replica_name(index)}",
            PostgresReplicaArgs(index, postgres_args, depends_on=[postgres]),
            postgres.replication_password,
            postgres.password,
            platform,
            opts=opts,
        )
        for index in range(1, c.postgres_replicas + 1)
    ]
    return DataTier(
        postgres=postgres,
        replicas=replicas,
        redis=redis(name, c, platform, opts, expose=c.expose_data_ports),
    )


def redis(
    name: str, c: StackConfig, platform: Platform, opts: pulumi.ResourceOptions, expose: bool
) -> Redis:
    """Redis with its memory policy; on 127.0.0.1 too when `expose` (exposeDataPorts)."""
    return Redis(
        f"{name}-redis",
        RedisArgs(
            image=c.redis_image,
            maxmemory=c.redis_max_memory,
            eviction_policy=c.redis_eviction_policy,
            memory_mb=c.redis_memory_mb,
            loopback_port=REDIS_PORT if expose else None,
        ),
        platform,
        opts=opts,
    )


def observability_tier(
    name: str,
    c: StackConfig,
    public: str,
    logs: LogsTraces | None,
    platform: Platform,
    opts: pulumi.ResourceOptions,
) -> Observability:
    """Alertmanager, Prometheus and Grafana, none waiting for another: each reaches the
    others per request, and nothing they do at start needs the others up."""
    alertmanager = Alertmanager(
        f"{name}-alertmanager",
        AlertmanagerArgs(
            image=c.alertmanager_image,
            memory_mb=c.alertmanager_memory_mb,
            external_url=f"{public}/alertmanager/",
            webhook_url=c.alert_webhook_url,
            watchdog_url=c.watchdog_webhook_url,
        ),
        platform,
        opts=opts,
    )
    prometheus = Prometheus(
        f"{name}-prometheus",
        PrometheusArgs(
            image=c.prometheus_image,
            memory_mb=c.prometheus_memory_mb,
            stack=c.stack,
            external_url=f"{public}/prometheus/",
            retention=c.prometheus_retention,
            scrape_interval_seconds=c.scrape_interval_seconds,
            alertmanager_address=alertmanager.address,
            scrape_targets=[
                *alertmanager.scrape_targets,
                # Services started after Prometheus are found by their fixed aliases.
                ScrapeTarget("grafana", f"grafana:{GRAFANA_PORT}"),
                *platform_scrape_targets(c.host_metrics),
                # Applications' own pools (docs/runtime-monitoring.md), for the latency SLO.
                *(ScrapeTarget("app", address) for address in c.app_metrics_targets),
                *(logs.scrape_targets() if logs else []),
            ],
            rule_files=rule_files(c, "docker"),
            # No start dependency: a target or Alertmanager still starting is an `up 0`
            # series or a retried notification, and every alert on those waits out its
            # `for:` (docs/start-order.md).
        ),
        platform,
        opts=opts,
    )
    grafana = Grafana(
        f"{name}-grafana",
        GrafanaArgs(
            image=c.grafana_image,
            memory_mb=c.grafana_memory_mb,
            admin_user=c.grafana_admin_user,
            root_url=f"{public}/grafana/",
            prometheus_url=f"http://{prometheus.address}",
            scrape_interval_seconds=c.scrape_interval_seconds,
            dashboards={**dashboard_files(), **(log_dashboard_files() if logs else {})},
            loki_url=logs.loki.url if logs else None,
            tempo_url=logs.tempo.url if logs else None,
            # No start dependency: its data sources connect on the first query.
        ),
        platform,
        opts=opts,
    )
    return Observability(alertmanager=alertmanager, prometheus=prometheus, grafana=grafana)


def edge_tier(
    name: str,
    c: StackConfig,
    observability: Observability,
    platform: Platform,
    opts: pulumi.ResourceOptions,
) -> Edge:
    """The certificate (provided or self-signed), and nginx in front of the applications and
    the admin UIs, on the configured ports."""
    tls = TlsCertificate(
        f"{name}-tls",
        domain=c.domain,
        provided_certificate=c.tls_certificate if c.tls_mode == "provided" else "",
        provided_private_key=c.tls_private_key if c.tls_mode == "provided" else None,
        opts=opts,
    )
    upstreams = Upstreams(
        grafana=observability.grafana.address,
        prometheus=observability.prometheus.address,
        alertmanager=observability.alertmanager.address,
    )
    # nginx resolves each upstream per request (a 502 while one is down), so it waits for
    # none of the admin UIs; only for the ACME seed's volumes (docs/start-order.md).
    before_nginx: list[pulumi.Resource] = []
    acme = None
    if c.tls_mode == "acme":
        # tls above is then only the placeholder nginx starts with (components/acme.py)
        acme = AcmeArgs(
            image=c.acme_image,
            domain=c.domain,
            email=c.acme_email,
            directory_url=c.acme_directory_url,
            renew_days=c.acme_renew_days,
            ca_bundle=c.acme_ca_bundle,
            placeholder_cert=tls.certificate_pem,
            placeholder_key=tls.private_key_pem,
        )
        before_nginx.append(AcmeSeed(f"{name}-acme-seed", acme, platform, opts=opts))
    server = nginx(
        name,
        c,
        upstreams,
        tls,
        (c.nginx_http_port, c.nginx_https_port),
        before_nginx,
        platform,
        opts,
    )
    if acme is not None:
        AcmeClient(f"{name}-acme", acme, "nginx", server, platform, opts=opts)
    return Edge(tls=tls, nginx=server)


def nginx(
    name: str,
    c: StackConfig,
    upstreams: Upstreams,
    tls: TlsCertificate,
    ports: tuple[int, int],
    depends_on: Sequence[pulumi.Resource],
    platform: Platform,
    opts: pulumi.ResourceOptions,
) -> Nginx:
    """nginx with this stack's settings, serving HTTP and HTTPS on `ports`."""
    http_port, https_port = ports
    settings = NginxSettings(
        server_name=c.domain,
        https_port=https_port,
        worker_processes=c.nginx_worker_processes,
        rate_limit_rps=c.rate_limit_rps,
        rate_limit_burst=c.rate_limit_burst,
        backend_upstream=c.backend_upstream,
        frontend_upstream=c.frontend_upstream,
        grafana_upstream=upstreams.grafana,
        prometheus_upstream=upstreams.prometheus,
        alertmanager_upstream=upstreams.alertmanager,
        admin_allow_cidrs=c.admin_allow_cidrs,
        resolver=upstreams.resolver,
        real_ip_from=upstreams.real_ip_from,
        acme=c.tls_mode == "acme",
    )
    return Nginx(
        f"{name}-nginx",
        NginxArgs(
            image=c.nginx_image,
            memory_mb=c.nginx_memory_mb,
            settings=settings,
            http_port=http_port,
            https_port=https_port,
            certificate_pem=tls.certificate_pem,
            private_key_pem=tls.private_key_pem,
            depends_on=depends_on,
        ),
        platform,
        opts=opts,
    )


def exporters(
    name: str,
    c: StackConfig,
    postgres: pulumi.Resource,
    postgres_password: pulumi.Output[str],
    redis: Redis,
    nginx: Nginx,
    platform: Platform,
    opts: pulumi.ResourceOptions,
    *,
    verify_tls: bool,
    host_metrics: bool,
) -> list[Exporter]:
    """One exporter per target, each created after (and destroyed before) its target."""
    specs = [
        postgres_exporter_spec(
            c.postgres_exporter_image, c.db_name, c.db_user, postgres_password, postgres
        ),
        redis_exporter_spec(c.redis_exporter_image, redis.password, redis),
        nginx_exporter_spec(c.nginx_exporter_image, nginx.stub_status_address, nginx),
        blackbox_spec(c.blackbox_image, c.domain, verify_tls, nginx),
    ]
    if host_metrics:
        specs += [node_exporter_spec(c.node_exporter_image), cadvisor_spec(c.cadvisor_image)]
    return [Exporter(f"{name}-{s.name}", s, platform, opts=opts) for s in specs]


def platform_scrape_targets(host_metrics: bool) -> list[ScrapeTarget]:
    """The exporters' scrape jobs (with the blackbox probe of nginx) and the runtime sidecar's:
    the jobs every platform scrapes, by the services' fixed names."""
    return [
        *scrape_targets(PROBE_URL, host_metrics),
        ScrapeTarget("runtime", f"runtime:{RUNTIME_PORT}"),
    ]


def endpoints(
    public_url: pulumi.Output[str],
    grafana_url: pulumi.Input[str],
    prometheus_url: pulumi.Input[str],
    alertmanager_url: pulumi.Input[str],
) -> dict[str, pulumi.Output[str]]:
    """The URLs a stack exports (and app_config's `endpoints`)."""
    return {
        "public_url": public_url,
        "grafana_url": pulumi.Output.from_input(grafana_url),
        "prometheus_url": pulumi.Output.from_input(prometheus_url),
        "alertmanager_url": pulumi.Output.from_input(alertmanager_url),
    }


def migration(
    name: str,
    c: StackConfig,
    app_config: pulumi.Output[dict[str, Any]],
    postgres: pulumi.Resource,
    secrets: Sequence[pulumi.Input[str]],
    platform: Platform,
    opts: pulumi.ResourceOptions,
) -> Migration | None:
    """The application's migration step, after PostgreSQL is healthy (None when not set)."""
    if not c.migration_image:
        return None
    return Migration(
        f"{name}-migrate",
        MigrationArgs(
            image=c.migration_image,
            command=c.migration_command,
            app_config=app_config,
            memory_mb=c.migration_memory_mb,
            timeout_seconds=c.migration_timeout_seconds,
            depends_on=[postgres],
            secrets=secrets,
        ),
        platform,
        opts=opts,
    )


def runtime_sidecar(
    name: str,
    c: StackConfig,
    app_config: pulumi.Output[dict[str, Any]],
    depends_on: Sequence[pulumi.Resource],
    platform: Platform,
    opts: pulumi.ResourceOptions,
    physical_backups: PhysicalBackupAccess | None = None,
    after: Migration | None = None,
) -> RuntimeSidecar:
    """The runtime sidecar (backups, health, metrics) reading the stack's app_config; with a
    migration step, only after it succeeded (it uses the schema)."""
    return RuntimeSidecar(
        f"{name}-runtime",
        RuntimeSidecarArgs(
            memory_mb=c.runtime_memory_mb,
            app_config=app_config,
            health_check_timeout_seconds=c.health_check_timeout,
            depends_on=[*depends_on, *([after.workload] if after else [])],
            physical_backups=physical_backups,
            migration_done=after.done if after else None,
        ),
        platform,
        opts=opts,
    )


def alert_rules(c: StackConfig, platform: PlatformName) -> str:
    """The alert rules for `platform` ("docker" or "kubernetes": `Alert.platforms`) with the
    thresholds these settings decide."""
    return rules_yaml(
        alerts_for(platform), runbook_url=c.runbook_url, thresholds=alert_thresholds(c)
    )


def slo_rules(c: StackConfig) -> str:
    """The SLOs' recording and burn-rate alert rules."""
    return slo_rules_yaml(objectives(c), runbook_url=c.runbook_url)


def rule_files(c: StackConfig, platform: PlatformName) -> dict[str, str]:
    """Prometheus's rule files by name."""
    return {RULES_FILE: alert_rules(c, platform), SLO_RULES_FILE: slo_rules(c)}


def alert_thresholds(c: StackConfig) -> Thresholds:
    """The alert thresholds these settings decide."""
    return Thresholds(
        replication_lag_bytes=c.replication_lag_alert_bytes,
        slot_retained_bytes=c.replication_slot_max_retained_bytes,
        full_backup_max_age_seconds=schedule_max_gap_seconds(c.pitr_full_schedule)
        + BACKUP_MARGIN_SECONDS,
        physical_backup_max_age_seconds=schedule_max_gap_seconds(
            c.pitr_full_schedule, c.pitr_diff_schedule
        )
        + BACKUP_MARGIN_SECONDS,
        base_backup_max_age_seconds=schedule_max_gap_seconds(c.backup_schedule)
        + BACKUP_MARGIN_SECONDS,
        drill_max_age_seconds=schedule_max_gap_seconds(c.pitr_drill_schedule)
        + BACKUP_MARGIN_SECONDS,
        error_log_lines_per_minute=c.error_log_lines_per_minute,
        acme_renewal_overdue_seconds=(
            (c.acme_renew_days - 2) * 86400 if c.tls_mode == "acme" else 0
        ),
    )


def objectives(c: StackConfig) -> tuple[Slo, ...]:
    """The SLOs with this stack's objectives (docs/slo.md)."""
    return slos(
        availability=c.slo_availability,
        query_latency_ms=c.slo_query_latency_ms,
        query_latency_target=c.slo_query_latency_target,
        backup_seconds=c.slo_backup_seconds,
        backup_target=c.slo_backup_target,
    )


def pitr_repository(c: StackConfig) -> PitrRepositoryArgs:
    """The pgBackRest repository the settings describe (S3 keeps one prefix per stack)."""
    if c.pitr_repo_type == "posix":
        return PitrRepositoryArgs(retention_full=c.pitr_retention_full)
    return PitrRepositoryArgs(
        retention_full=c.pitr_retention_full,
        s3_bucket=c.pitr_s3_bucket,
        s3_region=c.pitr_s3_region,
        s3_endpoint=c.pitr_s3_endpoint,
        s3_access_key=c.pitr_s3_access_key,
        s3_secret_key=c.pitr_s3_secret_key,
        s3_path=f"/pgbackrest/{c.stack}",
    )


def pitr_section(c: StackConfig, cipher_pass: pulumi.Output[str]) -> dict[str, Any]:
    """app_config's `pitr`: what the runtime sidecar needs to run and check the physical
    backups of a pgBackRest primary (the Docker stack's; docs/data-tier.md)."""
    repo = pitr_repository(c)
    repository: dict[str, Any] = {"type": c.pitr_repo_type}
    if repo.is_s3:
        repository |= {
            "path": repo.s3_path,
            "s3_bucket": repo.s3_bucket,
            "s3_region": repo.s3_region,
            "s3_endpoint": repo.s3_endpoint or f"s3.{repo.s3_region}.amazonaws.com",
            "s3_access_key": repo.s3_access_key,
            "s3_secret_key": repo.s3_secret_key,
        }
    else:
        repository["path"] = POSIX_REPO_PATH
    return {
        "stanza": STANZA,
        "config_file": PGBACKREST_CONF,
        "pg_user": c.db_user,
        "repository": repository,
        "cipher_type": "aes-256-cbc",
        "cipher_pass": cipher_pass,
        "retention_full": c.pitr_retention_full,
        "full_schedule": c.pitr_full_schedule,
        "diff_schedule": c.pitr_diff_schedule,
        "archive_timeout_seconds": c.wal_archive_timeout,
        "drill": drill_section(c),
    }


def drill_section(c: StackConfig) -> dict[str, Any]:
    """app_config's `pitr.drill`: the sidecar's restore drills (docs/runtime-pitr-drill.md).
    The scratch path is where the stack mounts the drill's volume; the wait for the archive is
    twice `archive_timeout` (at least the runtime's 120 s), so a healthy archive never fails a
    drill; the counted tables are the application's, in its database."""
    return {
        "schedule": c.pitr_drill_schedule,
        "timeout_seconds": c.pitr_drill_timeout_seconds,
        "memory_mb": c.pitr_drill_memory_mb,
        "scratch_path": DRILL_SCRATCH_PATH,
        "margin_seconds": max(DRILL_MIN_MARGIN_SECONDS, 2 * c.wal_archive_timeout),
        "tables": ",".join(c.pitr_drill_tables),
        "database": c.db_name,
    }
