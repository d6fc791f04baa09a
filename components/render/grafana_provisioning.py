"""Grafana provisioning: the datasources (fixed uids) and the dashboard provider.

With logs and traces, Loki and Tempo are linked both ways: a `trace_id` in a log line
becomes a link to the trace in Tempo (Loki's `derivedFields`), and a span links to the logs
of its trace in Loki (Tempo's `tracesToLogsV2`). `$$` is a literal `$`: Grafana expands
environment variables in provisioning files.
"""

from __future__ import annotations

from typing import Any

import yaml

PROMETHEUS_DATASOURCE_UID = "prometheus"
LOKI_DATASOURCE_UID = "loki"
TEMPO_DATASOURCE_UID = "tempo"
# The runtime writes `"trace_id": "<32 hex>"` in its JSON lines (runtime/telemetry/logs.py).
TRACE_ID_IN_LOG = r'"trace_id":\s*"([0-9a-f]{32})"'

DASHBOARDS_DIR = "/etc/grafana/dashboards"
# How often Grafana's file provider re-reads DASHBOARDS_DIR (its default when unset, too):
# a dashboard the stack writes into its volume is live within this time, with no restart.
DASHBOARD_POLL_SECONDS = 10


def render_datasources(
    prometheus_url: str,
    scrape_interval_seconds: int,
    loki_url: str | None = None,
    tempo_url: str | None = None,
) -> str:
    datasources: list[dict[str, Any]] = [
        {
            "name": "Prometheus",
            "type": "prometheus",
            "uid": PROMETHEUS_DATASOURCE_UID,
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": True,
            "editable": False,
            "jsonData": {"timeInterval": f"{scrape_interval_seconds}s"},
        }
    ]
    if loki_url is not None and tempo_url is not None:
        datasources += [_loki(loki_url), _tempo(tempo_url)]
    config = {"apiVersion": 1, "datasources": datasources}
    return yaml.safe_dump(config, sort_keys=False)


def _loki(url: str) -> dict[str, Any]:
    return {
        "name": "Loki",
        "type": "loki",
        "uid": LOKI_DATASOURCE_UID,
        "access": "proxy",
        "url": url,
        "editable": False,
        "jsonData": {
            "maxLines": "1000",  # a string in Grafana's LokiOptions
            "derivedFields": [
                {
                    "name": "TraceID",
                    "matcherType": "regex",
                    "matcherRegex": TRACE_ID_IN_LOG,
                    "datasourceUid": TEMPO_DATASOURCE_UID,
                    "url": "$${__value.raw}",
                    "urlDisplayLabel": "Open trace",
                }
            ],
        },
    }


def _tempo(url: str) -> dict[str, Any]:
    return {
        "name": "Tempo",
        "type": "tempo",
        "uid": TEMPO_DATASOURCE_UID,
        "access": "proxy",
        "url": url,
        "editable": False,
        "jsonData": {
            "tracesToLogsV2": {
                "datasourceUid": LOKI_DATASOURCE_UID,
                # a span's logs were written between its start and end; allow clock skew
                "spanStartTimeShift": "-1m",
                "spanEndTimeShift": "1m",
                "filterByTraceID": True,
                "filterBySpanID": False,
                "customQuery": False,
                "tags": [{"key": "service.name", "value": "service"}],
            },
        },
    }


def render_dashboard_provider() -> str:
    config = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "platform",
                "orgId": 1,
                "folder": "Platform",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": DASHBOARD_POLL_SECONDS,
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)
