"""Grafana dashboards, built in Python with grafana-foundation-sdk's typed builders.

Fixed uids (links and bookmarks survive redeploys), the Prometheus datasource referenced by
its fixed uid, and queries that only use metrics the exporters or the runtime export (a test
runs the real exporters to prove it). Provisioned from files: nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from components.monitoring.slo import PERIOD, SLOS, windows
from components.render.grafana_provisioning import PROMETHEUS_DATASOURCE_UID

DATASOURCE = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_DATASOURCE_UID)
_VIRTUAL_FS = 'fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|devtmpfs"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Chart:
    """A panel: a stat (current value) or a time series, of one or more queries."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    stat: bool = False
    width: int = 12


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    rows: tuple[tuple[str, tuple[Chart, ...]], ...]

    def exprs(self) -> Iterator[str]:
        for _, charts in self.rows:
            for chart in charts:
                yield from (q.expr for q in chart.queries)


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


BOARDS: tuple[Board, ...] = (
    Board("platform-overview", "Platform overview", (
        ("Health", (
            Chart("Targets up", _q("sum(up)"), stat=True, width=6),
            Chart("Targets down", _q("count(up == 0) or vector(0)"), stat=True, width=6),
            Chart("Public endpoint", _q("min(probe_success)"), stat=True, width=6),
            Chart("TLS certificate days left",
                  _q("min(probe_ssl_earliest_cert_expiry - time()) / 86400"), "d", True, 6),
        )),
        ("Alerts", (
            Chart("Firing alerts", _q('count by (severity) (ALERTS{alertstate="firing"})',
                                      "{{severity}}"), width=24),
        )),
        ("Services", (
            Chart("Up by job", _q("up", "{{job}}"), width=24),
        )),
    )),
    Board("platform-postgres", "PostgreSQL", (
        ("Server", (
            Chart("Up", _q("pg_up"), stat=True, width=6),
            Chart("Max connections", _q("max(pg_settings_max_connections)"), stat=True, width=6),
            Chart("Database size", _q("sum(pg_database_size_bytes)"), "bytes", True, 6),
            Chart("Deadlocks (5m)", _q("sum(increase(pg_stat_database_deadlocks[5m]))"),
                  stat=True, width=6),
        )),
        ("Load", (
            Chart("Connections by state", _q("sum by (state) (pg_stat_activity_count)",
                                             "{{state}}")),
            Chart("Transactions per second", (
                Query("sum(rate(pg_stat_database_xact_commit[5m]))", "commit"),
                Query("sum(rate(pg_stat_database_xact_rollback[5m]))", "rollback"),
            ), "ops"),
            Chart("Buffer cache hit ratio", _q(
                "sum(rate(pg_stat_database_blks_hit[5m])) / (sum(rate(pg_stat_database_blks_hit"
                "[5m])) + sum(rate(pg_stat_database_blks_read[5m])))"), "percentunit", width=24),
        )),
        # alerts WalArchivingFailing, ReplicaNotStreaming, ReplicationLagHigh,
        # ReplicationSlotRetainingWal (docs/data-tier.md)
        ("WAL archiving (pgBackRest)", (
            Chart("Seconds since the last archived segment",
                  _q("max(pg_stat_archiver_last_archive_age)"), "s", True, 8),
            Chart("Archive timeout (RPO)", _q("max(pg_settings_archive_timeout_seconds)"), "s",
                  True, 8),
            Chart("Failed archive attempts (10m)",
                  _q("sum(increase(pg_stat_archiver_failed_count[10m]))"), stat=True, width=8),
            Chart("Segments archived per minute", (
                Query("sum(rate(pg_stat_archiver_archived_count[5m])) * 60", "archived"),
                Query("sum(rate(pg_stat_archiver_failed_count[5m])) * 60", "failed"),
            ), width=24),
        )),
        ("Replication", (
            Chart("Replay lag by replica", _q("max by (application_name) "
                                              "(pg_stat_replication_pg_wal_lsn_diff)",
                                              "{{application_name}}"), "bytes"),
            Chart("WAL held back by slot", _q("max by (slot_name) "
                                              "(pg_replication_slots_pg_wal_lsn_diff)",
                                              "{{slot_name}}"), "bytes"),
            Chart("Slots in use", _q("sum(pg_replication_slots_active)"), stat=True, width=12),
            Chart("Slots without a replica", _q("count(pg_replication_slots_active == 0) "
                                                "or vector(0)"), stat=True, width=12),
        )),
    )),
    Board("platform-redis", "Redis", (
        ("Server", (
            Chart("Up", _q("redis_up"), stat=True, width=6),
            Chart("Clients", _q("redis_connected_clients"), stat=True, width=6),
            Chart("Memory used", _q("redis_memory_used_bytes"), "bytes", True, 6),
            Chart("maxmemory", _q("redis_memory_max_bytes"), "bytes", True, 6),
        )),
        ("Traffic", (
            Chart("Commands per second", _q("sum(rate(redis_commands_processed_total[5m]))"),
                  "ops"),
            Chart("Hit ratio", _q(
                "sum(rate(redis_keyspace_hits_total[5m])) / (sum(rate(redis_keyspace_hits_total"
                "[5m])) + sum(rate(redis_keyspace_misses_total[5m])))"), "percentunit"),
            Chart("Evicted and expired keys per second", (
                Query("sum(rate(redis_evicted_keys_total[5m]))", "evicted"),
                Query("sum(rate(redis_expired_keys_total[5m]))", "expired"),
            ), "ops"),
            Chart("Rejected connections",
                  _q("sum(increase(redis_rejected_connections_total[5m]))")),
        )),
    )),
    Board("platform-nginx", "nginx", (
        ("Edge", (
            Chart("Up", _q("nginx_up"), stat=True, width=8),
            Chart("Active connections", _q("nginx_connections_active"), stat=True, width=8),
            Chart("Requests per second", _q("sum(rate(nginx_http_requests_total[5m]))"),
                  "reqps", True, 8),
        )),
        ("Connections", (
            Chart("Connections by state", (
                Query("nginx_connections_reading", "reading"),
                Query("nginx_connections_writing", "writing"),
                Query("nginx_connections_waiting", "waiting"),
            )),
            Chart("Probe duration", _q("probe_duration_seconds", "{{instance}}"), "s"),
        )),
    )),
    Board("platform-host", "Host and containers", (
        ("Host", (
            Chart("CPU busy", _q(
                '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))'),
                "percent", width=8),
            Chart("Memory used", _q(
                "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"),
                "percent", width=8),
            Chart("Disk used", _q(
                f"100 * (1 - node_filesystem_avail_bytes{{{_VIRTUAL_FS}}} / "
                "node_filesystem_size_bytes)", "{{mountpoint}}"), "percent", width=8),
        )),
        ("Containers", (
            Chart("CPU by container", _q(
                'sum by (name) (rate(container_cpu_usage_seconds_total{name!=""}[5m]))',
                "{{name}}"), "percentunit"),
            Chart("Memory by container", _q(
                'sum by (name) (container_memory_working_set_bytes{name!=""})', "{{name}}"),
                "bytes"),
        )),
    )),
    Board("platform-runtime", "Runtime: pool, cache, backups", (
        ("Connection pool", (
            Chart("Pool connections", (
                Query("sum by (state) (runtime_db_pool_connections)", "{{state}}"),
                Query("sum(runtime_db_pool_max_connections)", "max"),
            )),
            Chart("Cache requests per second", _q(
                "sum by (result) (rate(runtime_cache_requests_total[5m]))", "{{result}}"), "ops"),
        )),
        ("Cache and backups", (
            Chart("Cache breaker open", _q("max(runtime_cache_breaker_open)"), stat=True, width=8),
            Chart("Hours since last backup", _q(
                "(time() - max(runtime_backup_last_success_timestamp_seconds)) / 3600"), "h",
                True, 8),
            Chart("Last backup size", _q("max(runtime_backup_last_size_bytes)"), "bytes", True, 8),
        )),
        # alerts PhysicalBackupMissing, PhysicalFullBackupMissing, PhysicalBackupFailed
        ("Physical backups (pgBackRest)", (
            Chart("Hours since the last physical backup", _q(
                "(time() - max by (type) (runtime_pitr_last_backup_timestamp_seconds)) / 3600",
                "{{type}}"), "h", True, 12),
            Chart("Last physical backup succeeded",
                  _q("min(runtime_pitr_last_backup_success)"), stat=True, width=12),
        )),
        # alerts RestoreDrillMissing, RestoreDrillFailed, RestoreDrillRpoHigh
        # (docs/runtime-pitr-drill.md)
        ("Restore drills", (
            Chart("Days since the last good drill", _q(
                "(time() - max(runtime_pitr_drill_last_success_timestamp_seconds)) / 86400"),
                  "d", True, 6),
            Chart("Last drill passed", _q("min(runtime_pitr_drill_last_success)"), stat=True,
                  width=6),
            Chart("Measured RTO", _q("max(runtime_pitr_drill_rto_seconds)"), "s", True, 6),
            Chart("Measured RPO", _q("max(runtime_pitr_drill_rpo_seconds)"), "s", True, 6),
            Chart("Drill restore throughput",
                  _q("max(runtime_pitr_drill_restore_throughput_bytes_per_second)"), "Bps",
                  width=12),
            Chart("Drill copy size", _q("max(runtime_pitr_drill_restored_bytes)"), "bytes",
                  width=12),
        )),
    )),
)  # fmt: skip


def _slo_board() -> Board:
    """Objectives, SLIs, error budgets and burn rates from the recording rules of slo.py.

    Burn rate = error ratio / error budget: 1 spends the budget exactly over the period, the
    alerts' thresholds are 14.4 (1h), 6 (6h) and 1 (3d).
    """
    burn = 'slo:sli_error:ratio_rate{w}{{slo="{slo}"}} / on (slo) (1 - slo:objective:ratio)'
    return Board("platform-slo", "Service-level objectives", (
        ("Objectives", (
            Chart("Objective", _q("slo:objective:ratio", "{{slo}}"), "percentunit", True, 6),
            Chart("SLI over the last hour", _q("1 - slo:sli_error:ratio_rate1h", "{{slo}}"),
                  "percentunit", True, 6),
            Chart(f"SLI over {PERIOD}", _q(f"1 - slo:sli_error:ratio_rate{PERIOD}", "{{slo}}"),
                  "percentunit", True, 6),
            Chart(f"Error budget remaining ({PERIOD})",
                  _q("slo:error_budget_remaining:ratio", "{{slo}}"), "percentunit", True, 6),
        )),
        ("Error budget and alerts", (
            Chart(f"Error budget remaining ({PERIOD})",
                  _q("slo:error_budget_remaining:ratio", "{{slo}}"), "percentunit"),
            Chart("SLO alerts", _q('sum by (alertname, alertstate) (ALERTS{slo!=""})',
                                   "{{alertname}} {{alertstate}}")),
        )),
        ("Burn rate by window", tuple(
            Chart(f"Burn rate: {s.name}",
                  tuple(Query(burn.format(w=w, slo=s.name), w) for w in windows()), width=8)
            for s in SLOS
        )),
    ))  # fmt: skip


BOARDS = (*BOARDS, _slo_board())


def _panel(chart: Chart, panel_id: int) -> Stat | Timeseries:
    panel = Stat() if chart.stat else Timeseries()
    panel.id(panel_id).title(chart.title).datasource(DATASOURCE).unit(chart.unit)
    panel.height(4 if chart.stat else 8).span(chart.width)
    for ref, query in zip("ABCDEFGH", chart.queries, strict=False):
        target = Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
        if query.legend:
            target.legend_format(query.legend)
        panel.with_target(target)
    return panel


def build(board: Board) -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    builder = (
        Dashboard(board.title)
        .uid(board.uid)
        .tags(["data-platform"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()  # provisioned from files: edits in the UI would be lost on redeploy
    )
    ids = iter(range(1, 1000))
    for title, charts in board.rows:
        builder.with_row(Row(title).id(next(ids)))
        for chart in charts:
            builder.with_panel(_panel(chart, next(ids)))
    encoded: dict[str, object] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def dashboard_files() -> dict[str, str]:
    """File name -> JSON, for Grafana's file provisioning."""
    return {f"{b.uid}.json": json.dumps(build(b), indent=2, sort_keys=True) for b in BOARDS}
