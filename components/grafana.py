"""Grafana: dashboards over Prometheus, provisioned from files, behind nginx at /grafana/.

The dashboards live in a configuration volume (`reload`): Grafana's file provider polls them
(components/render/grafana_provisioning.py), so a dashboard change reaches the running
Grafana with no new container and no signal. The data sources, the provider file and the
admin password are read at start only and stay files of the container (docs/changes.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.passwords import generated_password
from components.render.grafana_provisioning import (
    DASHBOARDS_DIR,
    render_dashboard_provider,
    render_datasources,
)
from components.spec import (
    ConfigFile,
    ConfigReload,
    DataVolume,
    HealthProbe,
    Platform,
    ServiceSpec,
)

PORT = 3000
# grafana/grafana:11.3.1 runs as uid 472, gid 0 (docs/secret-files.md).
GRAFANA_UID, GRAFANA_GID = "472", "0"
CREDENTIAL_FILE = "/run/secrets/grafana-admin-password"
PROVISIONING = "/etc/grafana/provisioning"
# Grafana's file provider reads `*.json` files; one flat directory (no folders from paths).
DASHBOARD_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.json")


@dataclass(frozen=True)
class GrafanaArgs:
    image: str
    memory_mb: int
    admin_user: str
    root_url: str
    prometheus_url: str
    scrape_interval_seconds: int
    # Loki and Tempo datasources (linked to each other) when the stack runs them.
    loki_url: str | None = None
    tempo_url: str | None = None
    # file name -> dashboard JSON; the monitoring issue generates these.
    dashboards: Mapping[str, str] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()


def checked_dashboards(dashboards: Mapping[str, str]) -> list[tuple[str, str]]:
    """(file name, JSON) sorted, each checked here: Grafana's image has no checker for a
    dashboard, and its file provider skips a file it cannot parse (logging an error), so a
    broken one would be applied silently."""
    for name, text in dashboards.items():
        if not DASHBOARD_FILE.fullmatch(name):
            raise ValueError(
                f"grafana: dashboard file name {name!r} is not allowed; allowed: a plain "
                "file name ending in .json (letters, digits, '.', '_', '-')"
            )
        allowed = "allowed: one JSON object, the dashboard model"
        try:
            model = json.loads(text)
        except ValueError as error:
            raise ValueError(
                f"grafana: dashboard {name!r} is not valid JSON ({error}); {allowed}"
            ) from None
        if not isinstance(model, dict):
            raise ValueError(
                f"grafana: dashboard {name!r} is a JSON {type(model).__name__}, not an "
                f"object; {allowed}"
            )
    return sorted(dashboards.items())


def grafana_spec(args: GrafanaArgs, admin_password: pulumi.Input[str]) -> ServiceSpec:
    return ServiceSpec(
        name="grafana",
        image=args.image,
        port=PORT,
        env={
            "GF_SECURITY_ADMIN_USER": args.admin_user,
            "GF_SECURITY_ADMIN_PASSWORD__FILE": CREDENTIAL_FILE,
            "GF_SERVER_ROOT_URL": args.root_url,
            "GF_SERVER_SERVE_FROM_SUB_PATH": "false",  # nginx strips /grafana/
            "GF_SECURITY_COOKIE_SECURE": "true",
            "GF_SECURITY_DISABLE_GRAVATAR": "true",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            # Nothing is downloaded or reported at run time.
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
            "GF_NEWS_NEWS_FEED_ENABLED": "false",
        },
        files=[
            ConfigFile(
                CREDENTIAL_FILE,
                admin_password,
                secret=True,
                owner=GRAFANA_UID,
                group=GRAFANA_GID,
                mode="0400",
            ),
            ConfigFile(
                f"{PROVISIONING}/datasources/prometheus.yml",
                render_datasources(
                    args.prometheus_url,
                    args.scrape_interval_seconds,
                    loki_url=args.loki_url,
                    tempo_url=args.tempo_url,
                ),
            ),
            ConfigFile(f"{PROVISIONING}/dashboards/platform.yml", render_dashboard_provider()),
            *(
                ConfigFile(f"{DASHBOARDS_DIR}/{n}", text)
                for n, text in checked_dashboards(args.dashboards)
            ),
        ],
        # Only the dashboards (under DASHBOARDS_DIR) go to the volume. No checker in the
        # image (checked_dashboards checks them here) and no signal: Grafana polls.
        reload=ConfigReload(directory=DASHBOARDS_DIR, check=(), process=None),
        volumes=[DataVolume("data", "/var/lib/grafana")],
        health=HealthProbe(
            ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/api/health"],
            start_period_seconds=60,  # first boot runs the database migrations
        ),
        memory_mb=args.memory_mb,
        networks=("backend", "edge"),
        depends_on=args.depends_on,
    )


class Grafana(pulumi.ComponentResource):
    url: pulumi.Output[str]
    admin_password: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: GrafanaArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:grafana:Grafana", name, None, opts)
        self.admin_password = generated_password(f"{name}-admin-password", self)
        spec = grafana_spec(args, self.admin_password)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.url = pulumi.Output.from_input(args.root_url)
        self.register_outputs({"url": self.url, "admin_password": self.admin_password})
