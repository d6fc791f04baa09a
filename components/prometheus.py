"""Prometheus: scrapes every service and evaluates alert rules, behind nginx at /prometheus/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.render.prometheus_yml import RULES_DIR, render_prometheus_yml
from components.spec import (
    ConfigFile,
    ConfigReload,
    DataVolume,
    HealthProbe,
    Platform,
    ScrapeTarget,
    ServiceSpec,
)

PORT = 9090
CONFIG_DIR = "/etc/prometheus"
CONFIG_FILE = f"{CONFIG_DIR}/prometheus.yml"


@dataclass(frozen=True)
class PrometheusArgs:
    image: str
    memory_mb: int
    stack: str
    external_url: str
    retention: str
    scrape_interval_seconds: int
    alertmanager_address: str
    scrape_targets: Sequence[ScrapeTarget] = ()
    # file name -> rules YAML; the monitoring issue generates these from one Python source.
    rule_files: Mapping[str, str] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()


def prometheus_spec(args: PrometheusArgs) -> ServiceSpec:
    config = render_prometheus_yml(
        args.stack, args.scrape_interval_seconds, args.alertmanager_address, args.scrape_targets
    )
    return ServiceSpec(
        name="prometheus",
        image=args.image,
        port=PORT,
        command=[
            f"--config.file={CONFIG_FILE}",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={args.retention}",
            # Links in the UI point at the public path; nginx strips the prefix.
            f"--web.external-url={args.external_url}",
            "--web.route-prefix=/",
        ],
        files=[
            ConfigFile(CONFIG_FILE, config),
            *(ConfigFile(f"{RULES_DIR}/{n}", text) for n, text in sorted(args.rule_files.items())),
        ],
        volumes=[DataVolume("data", "/prometheus")],
        health=HealthProbe(["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/-/ready"]),
        memory_mb=args.memory_mb,
        depends_on=args.depends_on,
        # SIGHUP re-reads prometheus.yml and the rules; the TSDB head stays in memory.
        reload=ConfigReload(
            directory=CONFIG_DIR,
            check=("promtool", "check", "config", CONFIG_FILE),
            process="prometheus",
        ),
    )


class Prometheus(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PrometheusArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:prometheus:Prometheus", name, None, opts)
        spec = prometheus_spec(args)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.url = pulumi.Output.from_input(f"http://{spec.address}")
        self.register_outputs({"url": self.url})
