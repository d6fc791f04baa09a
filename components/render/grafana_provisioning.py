"""Grafana provisioning: the Prometheus datasource (fixed uid) and the dashboard provider."""

from __future__ import annotations

import yaml

PROMETHEUS_DATASOURCE_UID = "prometheus"
DASHBOARDS_DIR = "/etc/grafana/dashboards"


def render_datasources(prometheus_url: str, scrape_interval_seconds: int) -> str:
    config = {
        "apiVersion": 1,
        "datasources": [
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
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


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
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)
