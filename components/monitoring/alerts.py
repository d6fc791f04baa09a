"""Every Prometheus alert of the platform, in one place, with the tests that prove it.

Each `Alert` carries its rule (expression, `for:`, severity, annotations), a runbook entry,
and two promtool cases: series that must make it fire and series that must keep it quiet.
`rules_yaml()`, `promtool_tests_yaml()` and `runbooks_markdown()` are all generated from
`ALERTS`, so a rule cannot exist without its tests and its runbook.

A threshold a setting decides is written `$name` in the expression and filled from
`Thresholds` when the rules are rendered; the promtool cases are written for the defaults,
which are the settings' defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from string import Template
from typing import Literal

import yaml

from components.monitoring.promtool import RUNBOOK_URL, promtool_test_files, runbook_link
from components.render.alloy_config import ERROR_LINES_METRIC

Severity = Literal["critical", "warning", "none"]
Platform = Literal["docker", "kubernetes"]
EVERYWHERE: frozenset[Platform] = frozenset({"docker", "kubernetes"})
RULES_FILE = "platform-alerts.yml"
# Filesystems that are not real disks.
_VIRTUAL_FS = 'fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|devtmpfs"'


# A physical backup may run this much longer than its schedule's longest gap before an
# alert says it is missing (a full backup of a large database takes hours).
BACKUP_MARGIN_SECONDS = 4 * 3600


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Numbers the stack's settings decide (components/stack.py fills them in)."""

    replication_lag_bytes: int = 16 * 1024**2  # replicationLagAlertBytes
    slot_retained_bytes: int = 1024**3  # replicationSlotMaxRetainedBytes
    # the longest gap of pitrFullSchedule (weekly by default), plus the margin
    full_backup_max_age_seconds: int = 7 * 86400 + BACKUP_MARGIN_SECONDS
    # the longest gap of pitrFullSchedule and pitrDiffSchedule together (daily), plus the margin
    physical_backup_max_age_seconds: int = 86400 + BACKUP_MARGIN_SECONDS
    # Kubernetes: the longest gap of backupSchedule (CloudNativePG's base backups), plus the margin
    base_backup_max_age_seconds: int = 86400 + BACKUP_MARGIN_SECONDS
    error_log_lines_per_minute: int = 10  # errorLogLinesPerMinute
    # the longest gap of the restore drill schedule (weekly by default), plus the margin
    drill_max_age_seconds: int = 7 * 86400 + BACKUP_MARGIN_SECONDS
    # a drill's measured RPO may exceed PostgreSQL's archive_timeout by this much (the heartbeat
    # interval, 5 s by default, and the time a segment takes to be pushed)
    drill_rpo_margin_seconds: int = 30
    # tlsMode acme: the client renews below acmeRenewDays (30 by default), twice a day; still
    # below it 2 days later (4 failed attempts) the renewal is failing. 0 outside acme: the
    # alert cannot fire (TlsCertificateExpiringSoon still covers every mode).
    acme_renewal_overdue_seconds: int = (30 - 2) * 86400


THRESHOLDS = Thresholds()
# Which setting decides each threshold (shown in the runbooks).
THRESHOLD_SETTINGS = {
    "error_log_lines_per_minute": "errorLogLinesPerMinute",
    "replication_lag_bytes": "replicationLagAlertBytes",
    "slot_retained_bytes": "replicationSlotMaxRetainedBytes",
    "full_backup_max_age_seconds": "pitrFullSchedule's longest gap + 4 h",
    "physical_backup_max_age_seconds": "pitrFullSchedule and pitrDiffSchedule's longest gap + 4 h",
    "base_backup_max_age_seconds": "backupSchedule's longest gap + 4 h (Kubernetes)",
    "drill_max_age_seconds": "pitrDrillSchedule's longest gap + 4 h",
    "drill_rpo_margin_seconds": "fixed: the heartbeat interval + the push of one segment",
    "acme_renewal_overdue_seconds": "acmeRenewDays - 2 days (tlsMode acme; else never)",
}


@dataclass(frozen=True, kw_only=True)
class Case:
    """Input series (promtool notation) and the time to evaluate at."""

    series: Mapping[str, str]
    eval_time: str
    labels: Mapping[str, str] = field(default_factory=dict)  # expected alert labels (firing)
    interval: str = "1m"


@dataclass(frozen=True, kw_only=True)
class Alert:
    name: str
    group: str
    expr: str
    severity: Severity
    summary: str
    action: str  # what the operator does first (runbook)
    fires: Case
    quiet: Case | None  # None only for the Watchdog, which must always fire
    for_: str = "0m"
    # Where the series it reads exist: the sidecar's pgBackRest backups run on Docker only,
    # CloudNativePG's on Kubernetes only. `alerts_for()` picks a platform's rules.
    platforms: frozenset[Platform] = EVERYWHERE

    def rendered_expr(self, thresholds: Thresholds = THRESHOLDS) -> str:
        """The expression with its `$threshold` names replaced by their values."""
        return Template(self.expr).substitute(asdict(thresholds))

    def annotations(self, runbook_url: str = RUNBOOK_URL) -> dict[str, str]:
        return {
            "summary": self.summary,
            "runbook_url": runbook_link(runbook_url, self.name.lower()),
        }


PG = {"job": "postgres", "instance": "postgres-exporter:9187"}
RD = {"job": "redis", "instance": "redis-exporter:9121"}
NODE = {"job": "node", "instance": "node-exporter:9100"}
DISK = {**NODE, "device": "/dev/vda1", "mountpoint": "/", "fstype": "ext4"}
CTR = {"job": "cadvisor", "instance": "cadvisor:8080", "name": "platform-postgres"}
PROBE = {"job": "blackbox", "instance": "https://nginx"}
RT = {"job": "runtime", "instance": "runtime:9180"}
SLOT = {**PG, "slot_name": "postgres_replica_1"}
SENDER = {**PG, "application_name": "postgres_replica_1", "state": "streaming"}
PROM = {"job": "prometheus", "instance": "localhost:9090"}
# The job of CloudNativePG's instance pods (the k8s stack's PodMonitor); instance: the pod
CNPG_JOB = "cnpg"
CNPG = {"job": CNPG_JOB, "instance": "postgres-db-1"}
LOKI = {"job": "loki", "instance": "loki:3100"}
ALLOY_ERRORS = {"job": "alloy", "instance": "alloy:12345", "service": "runtime", "level": "error"}
# Counted by Alloy's loki.process (components/render/alloy_config.py).
ERROR_LINES = ERROR_LINES_METRIC


def _s(metric: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="Watchdog",
        group="platform",
        expr="vector(1)",
        severity="none",
        summary="Always firing: proves the alerting pipeline works end to end.",
        action=(
            "It goes to the heartbeat service of watchdogWebhookUrl, which pages you when it "
            "stops arriving: then Prometheus, Alertmanager or the network between them and "
            "the heartbeat service is broken. Check those containers first."
        ),
        fires=Case(series={}, eval_time="1m"),
        quiet=None,
    ),
    Alert(
        name="TargetDown",
        group="platform",
        expr="up == 0",
        severity="warning",
        summary="A scrape target has been down for 2 minutes.",
        action="Check the container (`docker ps`, `docker logs`) of the job in the alert's labels.",
        fires=Case(series={_s("up", PG): "0x10"}, eval_time="5m", labels=PG),
        quiet=Case(series={_s("up", PG): "1x10"}, eval_time="5m"),
        for_="2m",
    ),
    Alert(
        name="EndpointDown",
        group="platform",
        expr="probe_success == 0",
        severity="critical",
        summary="The public HTTPS endpoint fails its probe.",
        action="Check nginx (`docker logs`), its certificate and the upstreams it proxies.",
        fires=Case(series={_s("probe_success", PROBE): "0x10"}, eval_time="5m", labels=PROBE),
        quiet=Case(series={_s("probe_success", PROBE): "1x10"}, eval_time="5m"),
        for_="2m",
    ),
    Alert(
        name="TlsCertificateExpiringSoon",
        group="platform",
        expr="probe_ssl_earliest_cert_expiry - time() < 14 * 86400",
        severity="warning",
        summary="The public TLS certificate expires in less than 14 days.",
        action=(
            "Renew it: prod `pulumi config set tlsCertificate`/`--secret tlsPrivateKey`, then "
            "`pulumi up`; dev certificates renew on `pulumi up` in their last 30 days."
        ),
        fires=Case(
            series={_s("probe_ssl_earliest_cert_expiry", PROBE): "604800x10"},
            eval_time="5m",
            labels=PROBE,
        ),
        quiet=Case(
            series={_s("probe_ssl_earliest_cert_expiry", PROBE): "8640000x10"}, eval_time="5m"
        ),
    ),
    Alert(
        name="AcmeRenewalFailing",
        group="platform",
        expr="probe_ssl_earliest_cert_expiry - time() < $acme_renewal_overdue_seconds",
        severity="warning",
        summary=(
            "The ACME certificate should have been renewed 2 days ago: renewals are failing "
            "(the old certificate still serves)."
        ),
        action=(
            "Read the acme container's log (`docker logs` of the acme container): the ACME "
            "directory unreachable, port 80 not reaching nginx for HTTP-01, or a rate limit. "
            "Run one pass by hand: `docker exec ACME_CONTAINER /bin/sh /etc/acme/acme.sh once`."
        ),
        fires=Case(
            # 20 days left: renewal (below 30) has failed for 8 days
            series={_s("probe_ssl_earliest_cert_expiry", PROBE): "1728000+0x70"},
            eval_time="70m",
            labels=PROBE,
        ),
        quiet=Case(
            # 29 days left: inside the renewal window, the client's first attempts still due
            series={_s("probe_ssl_earliest_cert_expiry", PROBE): "2505600+0x70"},
            eval_time="70m",
        ),
        for_="1h",
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="PostgresDown",
        group="postgres",
        expr="pg_up == 0",
        severity="critical",
        summary="The PostgreSQL exporter cannot reach PostgreSQL.",
        action=(
            "Check the postgres container and its logs; applications are failing over to errors."
        ),
        fires=Case(series={_s("pg_up", PG): "0x10"}, eval_time="5m", labels=PG),
        quiet=Case(series={_s("pg_up", PG): "1x10"}, eval_time="5m"),
        for_="1m",
    ),
    Alert(
        name="PostgresRestarted",
        group="postgres",
        expr="changes(pg_postmaster_start_time_seconds[15m]) > 0",
        severity="warning",
        summary="PostgreSQL restarted in the last 15 minutes.",
        action="Read the container's logs for the cause (OOM kill, crash, manual restart).",
        fires=Case(
            series={_s("pg_postmaster_start_time_seconds", PG): "100x5 700x5"},
            eval_time="10m",
            labels=PG,
        ),
        quiet=Case(series={_s("pg_postmaster_start_time_seconds", PG): "100x10"}, eval_time="10m"),
    ),
    Alert(
        name="PostgresTooManyConnections",
        group="postgres",
        expr=(
            "sum by (instance, job) (pg_stat_activity_count) / on (instance, job) "
            "max by (instance, job) (pg_settings_max_connections) > 0.8"
        ),
        severity="warning",
        summary="More than 80% of PostgreSQL's max_connections are in use.",
        action=(
            "Look for leaking pools or too many application instances; raise "
            "postgresMaxConnections only with memory to match."
        ),
        fires=Case(
            series={
                _s("pg_stat_activity_count", {**PG, "datname": "app", "state": "active"}): "85x10",
                _s("pg_settings_max_connections", PG): "100x10",
            },
            eval_time="10m",
            labels=PG,
        ),
        quiet=Case(
            series={
                _s("pg_stat_activity_count", {**PG, "datname": "app", "state": "active"}): "20x10",
                _s("pg_settings_max_connections", PG): "100x10",
            },
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="PostgresDeadlocks",
        group="postgres",
        expr="sum by (instance, job, datname) (increase(pg_stat_database_deadlocks[5m])) > 0",
        severity="warning",
        summary="PostgreSQL detected deadlocks in the last 5 minutes.",
        action=(
            "Find the conflicting statements in the postgres logs; fix the lock order in the app."
        ),
        fires=Case(
            series={_s("pg_stat_database_deadlocks", {**PG, "datname": "app"}): "0 0 0 1 2 3 3 3"},
            eval_time="5m",
            labels={**PG, "datname": "app"},
        ),
        quiet=Case(
            series={_s("pg_stat_database_deadlocks", {**PG, "datname": "app"}): "3x10"},
            eval_time="5m",
        ),
    ),
    Alert(
        name="RedisDown",
        group="redis",
        expr="redis_up == 0",
        severity="critical",
        summary="The Redis exporter cannot reach Redis.",
        action="Check the redis container; the runtime serves from PostgreSQL meanwhile (slower).",
        fires=Case(series={_s("redis_up", RD): "0x10"}, eval_time="5m", labels=RD),
        quiet=Case(series={_s("redis_up", RD): "1x10"}, eval_time="5m"),
        for_="1m",
    ),
    Alert(
        name="RedisMemoryNearLimit",
        group="redis",
        expr=(
            "(redis_memory_used_bytes / redis_memory_max_bytes > 0.9) "
            "and on (instance, job) (redis_memory_max_bytes > 0)"
        ),
        severity="warning",
        summary="Redis uses more than 90% of its maxmemory.",
        action=(
            "Expected with an LRU/LFU policy under load; with noeviction writes will fail: "
            "raise redisMaxMemory (and redisMemoryMb) or shorten TTLs."
        ),
        fires=Case(
            series={
                _s("redis_memory_used_bytes", RD): "95x10",
                _s("redis_memory_max_bytes", RD): "100x10",
            },
            eval_time="10m",
            labels=RD,
        ),
        # maxmemory 0 means "no limit": never divide by it
        quiet=Case(
            series={
                _s("redis_memory_used_bytes", RD): "95x10",
                _s("redis_memory_max_bytes", RD): "0x10",
            },
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="RedisRejectedConnections",
        group="redis",
        expr="increase(redis_rejected_connections_total[5m]) > 0",
        severity="warning",
        summary="Redis rejected client connections (maxclients reached).",
        action="Look for connection leaks in clients; check `redis-cli info clients`.",
        fires=Case(
            series={_s("redis_rejected_connections_total", RD): "0 0 0 5 10 10 10"},
            eval_time="5m",
            labels=RD,
        ),
        quiet=Case(series={_s("redis_rejected_connections_total", RD): "10x10"}, eval_time="5m"),
    ),
    Alert(
        name="NginxDown",
        group="nginx",
        expr="nginx_up == 0",
        severity="critical",
        summary="The nginx exporter cannot read nginx's stub_status.",
        action="Check the nginx container and `docker logs`; the public endpoint is likely down.",
        fires=Case(
            series={_s("nginx_up", {"job": "nginx", "instance": "nginx-exporter:9113"}): "0x10"},
            eval_time="5m",
            labels={"job": "nginx", "instance": "nginx-exporter:9113"},
        ),
        quiet=Case(
            series={_s("nginx_up", {"job": "nginx", "instance": "nginx-exporter:9113"}): "1x10"},
            eval_time="5m",
        ),
        for_="1m",
    ),
    Alert(
        name="HostHighCpu",
        group="host",
        expr=(
            "100 * (1 - avg by (instance, job) "
            '(rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 90'
        ),
        severity="warning",
        summary="Host CPU above 90% for 10 minutes.",
        action="Find the busy container (Grafana: Host and containers); scale or limit it.",
        fires=Case(
            series={_s("node_cpu_seconds_total", {**NODE, "cpu": "0", "mode": "idle"}): "0+3x30"},
            eval_time="20m",
            labels=NODE,
        ),
        quiet=Case(
            series={_s("node_cpu_seconds_total", {**NODE, "cpu": "0", "mode": "idle"}): "0+57x30"},
            eval_time="20m",
        ),
        for_="10m",
    ),
    Alert(
        name="HostLowMemory",
        group="host",
        expr="node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.10",
        severity="warning",
        summary="Less than 10% of host memory is available.",
        action="Check container memory (Grafana); lower limits or move services.",
        fires=Case(
            series={
                _s("node_memory_MemAvailable_bytes", NODE): "5x10",
                _s("node_memory_MemTotal_bytes", NODE): "100x10",
            },
            eval_time="10m",
            labels=NODE,
        ),
        quiet=Case(
            series={
                _s("node_memory_MemAvailable_bytes", NODE): "50x10",
                _s("node_memory_MemTotal_bytes", NODE): "100x10",
            },
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="HostDiskAlmostFull",
        group="host",
        expr=f"node_filesystem_avail_bytes{{{_VIRTUAL_FS}}} / node_filesystem_size_bytes < 0.10",
        severity="warning",
        summary="A host filesystem has less than 10% free space.",
        action="Prune old backups and images (`docker image prune`), or grow the disk.",
        fires=Case(
            series={
                _s("node_filesystem_avail_bytes", DISK): "5x10",
                _s("node_filesystem_size_bytes", DISK): "100x10",
            },
            eval_time="10m",
            labels=DISK,
        ),
        quiet=Case(
            series={
                _s("node_filesystem_avail_bytes", DISK): "50x10",
                _s("node_filesystem_size_bytes", DISK): "100x10",
            },
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="HostDiskWillFillIn24h",
        group="host",
        expr=f"predict_linear(node_filesystem_avail_bytes{{{_VIRTUAL_FS}}}[6h], 24 * 3600) < 0 "
        f"and node_filesystem_avail_bytes{{{_VIRTUAL_FS}}} / node_filesystem_size_bytes < 0.4",
        severity="warning",
        summary="At the current rate a host filesystem fills up within 24 hours.",
        action="Find what is writing (backups, logs, Prometheus) before the disk is full.",
        fires=Case(
            series={
                _s("node_filesystem_avail_bytes", DISK): "390-1x180",
                _s("node_filesystem_size_bytes", DISK): "1000x180",
            },
            eval_time="2h",
            labels=DISK,
        ),
        quiet=Case(
            series={
                _s("node_filesystem_avail_bytes", DISK): "390x180",
                _s("node_filesystem_size_bytes", DISK): "1000x180",
            },
            eval_time="2h",
        ),
        for_="1h",
    ),
    Alert(
        name="ContainerOomKilled",
        group="containers",
        expr='increase(container_oom_events_total{name!=""}[5m]) > 0',
        severity="warning",
        summary="A container was killed for exceeding its memory limit.",
        action="Raise the service's memory limit (…MemoryMb) or find the leak.",
        fires=Case(
            series={_s("container_oom_events_total", CTR): "0 0 0 1 1 1 1"},
            eval_time="5m",
            labels=CTR,
        ),
        quiet=Case(series={_s("container_oom_events_total", CTR): "1x10"}, eval_time="5m"),
    ),
    Alert(
        name="ContainerRestarting",
        group="containers",
        expr='changes(container_start_time_seconds{name!=""}[15m]) > 2',
        severity="warning",
        summary="A container restarted more than twice in 15 minutes.",
        action="It is crash-looping: read `docker logs` of the container named in the alert.",
        fires=Case(
            series={_s("container_start_time_seconds", CTR): "1 60 120 180 240 240 240"},
            eval_time="6m",
            labels=CTR,
        ),
        quiet=Case(series={_s("container_start_time_seconds", CTR): "1x10"}, eval_time="6m"),
    ),
    Alert(
        name="BackupMissing",
        group="backups",
        expr="time() - runtime_backup_last_success_timestamp_seconds > 26 * 3600",
        severity="critical",
        summary="No successful backup in the last 26 hours.",
        action=(
            "Run `python -m runtime backup create` in the sidecar and read why the last ones "
            "failed."
        ),
        fires=Case(
            series={_s("runtime_backup_last_success_timestamp_seconds", RT): "0x30"},
            eval_time="27h",
            labels=RT,
            interval="1h",
        ),
        quiet=Case(
            series={_s("runtime_backup_last_success_timestamp_seconds", RT): "0x30"},
            eval_time="25h",
            interval="1h",
        ),
    ),
    Alert(
        name="BackupFailed",
        group="backups",
        expr="increase(runtime_backup_failures_total[1h]) > 0",
        severity="warning",
        summary="A backup failed in the last hour.",
        action="`python -m runtime backup list` shows the failure reason; fix it and run one now.",
        fires=Case(
            series={_s("runtime_backup_failures_total", RT): "0 0 1 1 1"}, eval_time="4m", labels=RT
        ),
        quiet=Case(series={_s("runtime_backup_failures_total", RT): "1x10"}, eval_time="4m"),
    ),
    Alert(
        name="WalArchivingFailing",
        group="pitr",
        expr=(
            "increase(pg_stat_archiver_failed_count[10m]) > 0 and on (instance, job) "
            "(pg_stat_archiver_last_archive_age > on (instance, job) "
            "2 * pg_settings_archive_timeout_seconds or pg_stat_archiver_archived_count == 0)"
        ),
        severity="critical",
        summary=(
            "WAL archiving keeps failing and nothing was archived for twice the archive "
            "timeout: point-in-time recovery stops at the last archived segment."
        ),
        action=(
            "Read the postgres container's log for `archive-push` errors (repository full, S3 "
            "credentials, missing stanza: `docker exec -u postgres <container> pgbackrest "
            "--stanza=main stanza-create`). WAL piles up in pg_wal until it works again."
        ),
        fires=Case(
            series={
                _s("pg_stat_archiver_failed_count", PG): "0+1x20",
                _s("pg_stat_archiver_last_archive_age", PG): "0+60x20",
                _s("pg_settings_archive_timeout_seconds", PG): "60x20",
                _s("pg_stat_archiver_archived_count", PG): "5x20",
            },
            eval_time="15m",
            labels=PG,
        ),
        # failures, but segments still get through: a transient error
        quiet=Case(
            series={
                _s("pg_stat_archiver_failed_count", PG): "0+1x20",
                _s("pg_stat_archiver_last_archive_age", PG): "30x20",
                _s("pg_settings_archive_timeout_seconds", PG): "60x20",
                _s("pg_stat_archiver_archived_count", PG): "5+1x20",
            },
            eval_time="15m",
        ),
        for_="5m",
    ),
    Alert(
        name="PhysicalFullBackupMissing",
        group="pitr",
        expr=(
            "time() - max by (instance, job) "
            '(runtime_pitr_last_backup_timestamp_seconds{type="full"}) '
            "> $full_backup_max_age_seconds"
        ),
        severity="critical",
        summary="No full physical (pgBackRest) backup within its schedule and a margin.",
        action=(
            "`python -m runtime pitr info` in the sidecar shows the backups; run "
            "`python -m runtime pitr backup --type full` and read why the scheduled ones failed."
        ),
        fires=Case(
            series={
                _s("runtime_pitr_last_backup_timestamp_seconds", {**RT, "type": "full"}): "0x200"
            },
            eval_time="180h",
            labels=RT,
            interval="1h",
        ),
        quiet=Case(
            series={
                _s("runtime_pitr_last_backup_timestamp_seconds", {**RT, "type": "full"}): "0x200"
            },
            eval_time="160h",
            interval="1h",
        ),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="PhysicalBackupMissing",
        group="pitr",
        expr=(
            "time() - max by (instance, job) (runtime_pitr_last_backup_timestamp_seconds) "
            "> $physical_backup_max_age_seconds"
        ),
        severity="warning",
        summary="No physical (pgBackRest) backup of any type within its schedule and a margin.",
        action=(
            "`python -m runtime pitr info` in the sidecar; check the sidecar's log for the "
            "scheduled backups and run one by hand."
        ),
        fires=Case(
            series={
                _s("runtime_pitr_last_backup_timestamp_seconds", {**RT, "type": "diff"}): "0x40"
            },
            eval_time="30h",
            labels=RT,
            interval="1h",
        ),
        quiet=Case(
            series={
                _s("runtime_pitr_last_backup_timestamp_seconds", {**RT, "type": "diff"}): "0x40"
            },
            eval_time="26h",
            interval="1h",
        ),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="PhysicalBackupFailed",
        group="pitr",
        expr="runtime_pitr_last_backup_success == 0",
        severity="warning",
        summary="The last physical (pgBackRest) backup failed.",
        action="The sidecar's log has pgBackRest's error; fix it and run the backup again.",
        # the runtime's series has no `type` label (docs/runtime-monitoring.md)
        fires=Case(
            series={_s("runtime_pitr_last_backup_success", RT): "0x10"},
            eval_time="5m",
            labels=RT,
        ),
        quiet=Case(
            series={_s("runtime_pitr_last_backup_success", RT): "1x10"},
            eval_time="5m",
        ),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="RestoreDrillMissing",
        group="pitr",
        # The second half: drills are on (since a time the sidecar keeps across restarts) and
        # none has ever passed; an absent success series must not keep the alert quiet.
        expr=(
            "time() - max by (instance, job) (runtime_pitr_drill_last_success_timestamp_seconds) "
            "> $drill_max_age_seconds or (time() - max by (instance, job) "
            "(runtime_pitr_drill_enabled_since_timestamp_seconds) > $drill_max_age_seconds "
            "unless on (instance, job) runtime_pitr_drill_last_success_timestamp_seconds)"
        ),
        severity="warning",
        summary="No successful restore drill within its schedule and a margin.",
        action=(
            "Run `python -m runtime pitr drill` in the sidecar and read its error; the sidecar's "
            "log has why the scheduled drills failed or did not run (docs/runtime-pitr-drill.md)."
        ),
        fires=Case(
            series={_s("runtime_pitr_drill_last_success_timestamp_seconds", RT): "0x200"},
            eval_time="180h",
            labels=RT,
            interval="1h",
        ),
        quiet=Case(
            series={_s("runtime_pitr_drill_last_success_timestamp_seconds", RT): "0x200"},
            eval_time="160h",
            interval="1h",
        ),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="RestoreDrillFailed",
        group="pitr",
        expr="runtime_pitr_drill_last_success == 0",
        severity="critical",
        summary=(
            "The last restore drill failed: the physical backups or the WAL archive may not "
            "restore."
        ),
        action=(
            "The sidecar's log has the drill's reason (a missing WAL segment, a corrupt backup "
            "file, not enough disk); `python -m runtime pitr drill` repeats it. Take a new full "
            "backup if the repository is damaged."
        ),
        fires=Case(
            series={_s("runtime_pitr_drill_last_success", RT): "0x10"},
            eval_time="5m",
            labels=RT,
        ),
        quiet=Case(series={_s("runtime_pitr_drill_last_success", RT): "1x10"}, eval_time="5m"),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="RestoreDrillRpoHigh",
        group="pitr",
        expr=(
            "runtime_pitr_drill_rpo_seconds > scalar(max(pg_settings_archive_timeout_seconds)) "
            "+ $drill_rpo_margin_seconds"
        ),
        severity="warning",
        summary=(
            "The last good restore drill lost more time than the archive timeout allows: a "
            "lost volume would lose that much."
        ),
        action=(
            "Check that the sidecar's heartbeat is written (its log) and that WAL archiving "
            "keeps up (`pg_stat_archiver`); see docs/runtime-pitr-drill.md."
        ),
        fires=Case(
            series={
                _s("runtime_pitr_drill_rpo_seconds", RT): "120x10",
                _s("pg_settings_archive_timeout_seconds", PG): "60x10",
            },
            eval_time="5m",
            labels=RT,
        ),
        quiet=Case(
            series={
                _s("runtime_pitr_drill_rpo_seconds", RT): "62x10",
                _s("pg_settings_archive_timeout_seconds", PG): "60x10",
            },
            eval_time="5m",
        ),
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="BaseBackupMissing",
        group="cnpg",
        expr=(
            "time() - max by (job) "
            "(barman_cloud_cloudnative_pg_io_last_available_backup_timestamp) "
            "> $base_backup_max_age_seconds"
        ),
        severity="critical",
        summary=(
            "No CloudNativePG base backup available within backupSchedule and a margin "
            "(or none at all: the plugin reports 0)."
        ),
        action=(
            "`kubectl get backups -n <k8sNamespace>` shows the last ones and their errors; "
            "`kubectl cnpg backup postgres-db --method plugin --plugin-name "
            "barman-cloud.cloudnative-pg.io` takes one now. Check the ObjectStore's S3 "
            "credentials and the plugin's logs."
        ),
        fires=Case(
            series={
                _s("barman_cloud_cloudnative_pg_io_last_available_backup_timestamp", CNPG): "0x40"
            },
            eval_time="30h",
            labels={"job": CNPG_JOB},
            interval="1h",
        ),
        quiet=Case(
            series={
                # a backup every hour
                _s(
                    "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp", CNPG
                ): "0+3600x40"
            },
            eval_time="30h",
            interval="1h",
        ),
        platforms=frozenset({"kubernetes"}),
    ),
    Alert(
        name="BaseBackupFailed",
        group="cnpg",
        expr=(
            "max by (job) (barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp) "
            "> max by (job) (barman_cloud_cloudnative_pg_io_last_available_backup_timestamp)"
        ),
        severity="warning",
        summary="CloudNativePG's last base backup failed (no successful one since).",
        action=(
            "`kubectl describe backup <name> -n <k8sNamespace>` of the newest failed Backup has "
            "the error; fix it (S3 credentials, bucket, space) and take a backup by hand."
        ),
        fires=Case(
            series={
                _s("barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp", CNPG): "2000x10",
                _s("barman_cloud_cloudnative_pg_io_last_available_backup_timestamp", CNPG): (
                    "1000x10"
                ),
            },
            eval_time="5m",
            labels={"job": CNPG_JOB},
        ),
        quiet=Case(
            series={
                # an old failure, a success since
                _s("barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp", CNPG): "1000x10",
                _s("barman_cloud_cloudnative_pg_io_last_available_backup_timestamp", CNPG): (
                    "2000x10"
                ),
            },
            eval_time="5m",
        ),
        platforms=frozenset({"kubernetes"}),
    ),
    Alert(
        name="ReplicaNotStreaming",
        group="replication",
        expr="pg_replication_slots_active == 0",
        severity="critical",
        summary="A replica's replication slot has no replica streaming from it.",
        action=(
            "Check the postgres-replica container named like the slot (`docker logs`); if the "
            "replica was removed on purpose, drop its slot: `SELECT "
            "pg_drop_replication_slot('<slot_name>')`."
        ),
        fires=Case(
            series={_s("pg_replication_slots_active", SLOT): "0x20"}, eval_time="10m", labels=SLOT
        ),
        quiet=Case(series={_s("pg_replication_slots_active", SLOT): "1x20"}, eval_time="10m"),
        for_="5m",
    ),
    Alert(
        name="ReplicationLagHigh",
        group="replication",
        expr="pg_stat_replication_pg_wal_lsn_diff > $replication_lag_bytes",
        severity="warning",
        summary="A replica's replay is further behind the primary than replicationLagAlertBytes.",
        action=(
            "Reads from that replica are stale. Look for long queries on the replica "
            "(they hold replay back), its CPU and disk, and the network."
        ),
        fires=Case(
            series={_s("pg_stat_replication_pg_wal_lsn_diff", SENDER): "50000000x20"},
            eval_time="10m",
            labels=SENDER,
        ),
        quiet=Case(
            series={_s("pg_stat_replication_pg_wal_lsn_diff", SENDER): "1000x20"},
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="ReplicationSlotRetainingWal",
        group="replication",
        expr="pg_replication_slots_pg_wal_lsn_diff > $slot_retained_bytes",
        severity="warning",
        summary=(
            "A replication slot holds back more WAL than replicationSlotMaxRetainedBytes: the "
            "primary's disk fills until its replica catches up."
        ),
        action=(
            "Bring the replica back (ReplicaNotStreaming), or drop a slot nobody uses: "
            "`SELECT pg_drop_replication_slot('<slot_name>')`."
        ),
        fires=Case(
            series={_s("pg_replication_slots_pg_wal_lsn_diff", SLOT): "2000000000x30"},
            eval_time="15m",
            labels=SLOT,
        ),
        quiet=Case(
            series={_s("pg_replication_slots_pg_wal_lsn_diff", SLOT): "100000x30"},
            eval_time="15m",
        ),
        for_="10m",
    ),
    Alert(
        name="PrometheusConfigReloadFailed",
        group="prometheus",
        expr="prometheus_config_last_reload_successful == 0",
        severity="warning",
        summary="Prometheus could not load its configuration.",
        action="Run `promtool check config` on the generated prometheus.yml; `pulumi up` again.",
        fires=Case(
            series={_s("prometheus_config_last_reload_successful", PROM): "0x10"},
            eval_time="10m",
            labels=PROM,
        ),
        quiet=Case(
            series={_s("prometheus_config_last_reload_successful", PROM): "1x10"}, eval_time="10m"
        ),
        for_="5m",
    ),
    Alert(
        name="PrometheusRuleEvaluationFailures",
        group="prometheus",
        expr="increase(prometheus_rule_evaluation_failures_total[5m]) > 0",
        severity="warning",
        summary="Prometheus failed to evaluate alert or recording rules.",
        action="Read Prometheus's logs; a rule may query a metric with conflicting labels.",
        fires=Case(
            series={_s("prometheus_rule_evaluation_failures_total", PROM): "0 0 0 2 4 4 4"},
            eval_time="5m",
            labels=PROM,
        ),
        quiet=Case(
            series={_s("prometheus_rule_evaluation_failures_total", PROM): "4x10"}, eval_time="5m"
        ),
    ),
    Alert(
        name="PrometheusAlertmanagerMissing",
        group="prometheus",
        expr="prometheus_notifications_alertmanagers_discovered < 1",
        severity="critical",
        summary="Prometheus has no Alertmanager to send alerts to.",
        action="Check the alertmanager container and the `alerting:` block of prometheus.yml.",
        fires=Case(
            series={_s("prometheus_notifications_alertmanagers_discovered", PROM): "0x10"},
            eval_time="10m",
            labels=PROM,
        ),
        quiet=Case(
            series={_s("prometheus_notifications_alertmanagers_discovered", PROM): "1x10"},
            eval_time="10m",
        ),
        for_="5m",
    ),
    Alert(
        name="LogsTracesComponentDown",
        group="logs-traces",
        expr='up{job=~"loki|tempo|alloy"} == 0',
        severity="warning",
        summary="Loki, Tempo or Alloy has been unreachable for 2 minutes: logs or traces are not "
        "being kept.",
        action=(
            "Check the container named by the job label (`docker ps -a`, `docker logs`); Tempo "
            "has no Docker health check (distroless) and Loki's only gates start-up, so this "
            "alert is their probe once running. "
            "Alloy keeps its read positions, so it resumes where it stopped."
        ),
        fires=Case(series={_s("up", LOKI): "0x10"}, eval_time="5m", labels=LOKI),
        quiet=Case(series={_s("up", LOKI): "1x10"}, eval_time="5m"),
        for_="2m",
        # Loki, Tempo and Alloy run on Docker only (docs/logs-traces.md)
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="LogIngestionStopped",
        group="logs-traces",
        expr="sum(rate(loki_distributor_lines_received_total[10m])) == 0",
        severity="warning",
        summary="Loki has received no log line for 10 minutes (every container logs something).",
        action=(
            "Check Alloy (`docker logs` of the alloy container): its mount of "
            "/var/lib/docker/containers, and its pushes to loki:3100."
        ),
        fires=Case(
            series={_s("loki_distributor_lines_received_total", LOKI): "500x40"}, eval_time="30m"
        ),
        quiet=Case(
            series={_s("loki_distributor_lines_received_total", LOKI): "0+100x40"},
            eval_time="30m",
        ),
        for_="10m",
        # Loki, Tempo and Alloy run on Docker only (docs/logs-traces.md)
        platforms=frozenset({"docker"}),
    ),
    Alert(
        name="ErrorLogRateHigh",
        group="logs-traces",
        expr=f"sum by (service) (rate({ERROR_LINES}[5m])) * 60 > $error_log_lines_per_minute",
        severity="warning",
        summary="A service writes more error-level log lines per minute than "
        "errorLogLinesPerMinute.",
        action=(
            "Open the Logs dashboard at the alert's time, filter by the service label, and "
            "follow a line's trace_id to its trace in Tempo."
        ),
        fires=Case(
            series={_s(ERROR_LINES, ALLOY_ERRORS): "0+20x20"},
            eval_time="15m",
            labels={"service": "runtime"},
        ),
        quiet=Case(series={_s(ERROR_LINES, ALLOY_ERRORS): "0+2x20"}, eval_time="15m"),
        for_="5m",
        # Loki, Tempo and Alloy run on Docker only (docs/logs-traces.md)
        platforms=frozenset({"docker"}),
    ),
)


def alerts_for(platform: Platform) -> tuple[Alert, ...]:
    """The rules of one platform: those whose series exist there (docs/kubernetes.md)."""
    return tuple(a for a in ALERTS if platform in a.platforms)


def rules_yaml(
    alerts: Sequence[Alert] = ALERTS,
    runbook_url: str = RUNBOOK_URL,
    thresholds: Thresholds = THRESHOLDS,
) -> str:
    groups: dict[str, list[dict[str, object]]] = {}
    for a in alerts:
        rule: dict[str, object] = {"alert": a.name, "expr": a.rendered_expr(thresholds)}
        if a.for_ != "0m":
            rule["for"] = a.for_
        rule["labels"] = {"severity": a.severity}
        rule["annotations"] = a.annotations(runbook_url)
        groups.setdefault(a.group, []).append(rule)
    doc = {"groups": [{"name": name, "rules": rules} for name, rules in groups.items()]}
    header = "# Generated by components/monitoring/alerts.py. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def _test(alert: Alert, case: Case, firing: bool, runbook_url: str) -> dict[str, object]:
    expected = []
    if firing:
        expected = [
            {
                "exp_labels": {**case.labels, "severity": alert.severity},
                "exp_annotations": alert.annotations(runbook_url),
            }
        ]
    return {
        "interval": case.interval,
        "name": f"{alert.name} {'fires' if firing else 'stays quiet'}",
        "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        "alert_rule_test": [
            {"eval_time": case.eval_time, "alertname": alert.name, "exp_alerts": expected}
        ],
    }


def promtool_tests_yaml(
    rules_path: str, alerts: Sequence[Alert] = ALERTS, runbook_url: str = RUNBOOK_URL
) -> dict[str, str]:
    """promtool test files by name, one per sample interval.

    promtool evaluates every rule at each `evaluation_interval` step up to `eval_time`; a
    day-long case (BackupMissing) at 1m steps would take most of the run, so cases sampled
    hourly go to a file evaluated hourly.
    """
    tests: dict[str, list[dict[str, object]]] = {}
    for a in alerts:
        for case, firing in ((a.fires, True), (a.quiet, False)):
            if case is not None:
                tests.setdefault(case.interval, []).append(_test(a, case, firing, runbook_url))
    return promtool_test_files("tests", rules_path, tests)


def runbooks_markdown(alerts: Sequence[Alert] = ALERTS) -> str:
    lines = [
        "# Runbooks",
        "",
        "Generated from `components/monitoring/alerts.py` (`python -m "
        "components.monitoring.runbooks`); every alert's `runbook_url` points here.",
        "",
        "A `$name` in an expression is a threshold the stack's settings decide:",
        "",
        *(f"- `${name}`: {setting}" for name, setting in THRESHOLD_SETTINGS.items()),
    ]
    for a in alerts:
        lines += [
            "",
            f"## {a.name}",
            "",
            f"- **Severity:** {a.severity}" + (f", after {a.for_}" if a.for_ != "0m" else ""),
            *(
                [f"- **Only on:** {', '.join(sorted(a.platforms))}"]
                if a.platforms != EVERYWHERE
                else []
            ),
            f"- **Meaning:** {a.summary}",
            f"- **Expression:** `{a.rendered_expr()}`",
            f"- **First action:** {a.action}",
        ]
    return "\n".join(lines) + "\n"
