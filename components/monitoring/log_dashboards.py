"""The "Logs and traces" dashboard: error rates (Prometheus) and the log lines (Loki).

An operator arrives here from an alert (ErrorLogRateHigh, or any other at its time): the
error-rate chart shows which service, the logs panel shows its lines, and a line's
`trace_id` opens the trace in Tempo (Loki datasource's derived field). Provisioned only when
the stack runs Loki and Tempo (logsTraces on), since its queries need their datasources.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row
from grafana_foundation_sdk.builders.logs import Panel as Logs
from grafana_foundation_sdk.builders.loki import Dataquery as LokiQuery
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from components.monitoring.alerts import ERROR_LINES
from components.render.grafana_provisioning import (
    LOKI_DATASOURCE_UID,
    PROMETHEUS_DATASOURCE_UID,
)

UID = "platform-logs"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_DATASOURCE_UID)
LOKI = DataSourceRef(type_val="loki", uid=LOKI_DATASOURCE_UID)
# Every Loki query selects by the `service` label Alloy sets from the container's title.
SERVICE = 'service=~"$service"'
LOG_QUERIES = {
    "Error lines": f'{{{SERVICE}, level=~"error|critical"}}',
    "All lines": f"{{{SERVICE}}}",
}
PROM_QUERIES = {
    "Error lines per minute": (
        f"sum by (service) (rate({ERROR_LINES}{{{SERVICE}}}[5m])) * 60",
        "{{service}}",
    ),
    "Lines received by Loki per second": (
        "sum(rate(loki_distributor_lines_received_total[5m]))",
        "lines/s",
    ),
}


def build() -> dict[str, object]:
    builder = (
        Dashboard("Logs and traces")
        .uid(UID)
        .tags(["data-platform"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(
            QueryVariable("service")
            .label("Service")
            .datasource(LOKI)
            .query("label_values(service)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    ids = iter(range(1, 100))
    builder.with_row(Row("Rates").id(next(ids)))
    for title, (expr, legend) in PROM_QUERIES.items():
        target = PromQuery().expr(expr).legend_format(legend).ref_id("A").datasource(PROMETHEUS)
        builder.with_panel(
            Timeseries()
            .id(next(ids))
            .title(title)
            .datasource(PROMETHEUS)
            .unit("short")
            .height(8)
            .span(12)
            .with_target(target)
        )
    builder.with_row(Row("Log lines (a trace_id opens its trace)").id(next(ids)))
    for title, expr in LOG_QUERIES.items():
        builder.with_panel(
            Logs()
            .id(next(ids))
            .title(title)
            .datasource(LOKI)
            .height(12)
            .span(24)
            .show_time(True)
            .wrap_log_message(True)
            .enable_log_details(True)
            .with_target(LokiQuery().expr(expr).ref_id("A").datasource(LOKI).max_lines(500))
        )
    encoded: dict[str, object] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def log_dashboard_files() -> dict[str, str]:
    return {f"{UID}.json": json.dumps(build(), indent=2, sort_keys=True)}
