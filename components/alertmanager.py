"""Alertmanager: routes Prometheus's alerts to receivers (webhook from secret config)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.render.alertmanager_yml import render_alertmanager_yml
from components.spec import ConfigFile, DataVolume, HealthProbe, Platform, ScrapeTarget, ServiceSpec

PORT = 9093
CONFIG_FILE = "/etc/alertmanager/alertmanager.yml"


@dataclass(frozen=True)
class AlertmanagerArgs:
    image: str
    memory_mb: int
    webhook_url: pulumi.Output[str] | None = None


def alertmanager_spec(args: AlertmanagerArgs) -> ServiceSpec:
    if args.webhook_url is not None:
        config: pulumi.Input[str] = args.webhook_url.apply(render_alertmanager_yml)
    else:
        config = render_alertmanager_yml(None)
    return ServiceSpec(
        name="alertmanager",
        image=args.image,
        port=PORT,
        command=[f"--config.file={CONFIG_FILE}", "--storage.path=/alertmanager"],
        # The webhook URL carries a token: the whole file is a secret when it is set.
        files=[ConfigFile(CONFIG_FILE, config, secret=args.webhook_url is not None)],
        volumes=[DataVolume("data", "/alertmanager")],
        health=HealthProbe(["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/-/ready"]),
        memory_mb=args.memory_mb,
        # edge: egress to the webhook receivers; nothing is published.
        networks=("backend", "edge"),
    )


class Alertmanager(pulumi.ComponentResource):
    url: pulumi.Output[str]
    scrape_targets: list[ScrapeTarget]

    def __init__(
        self,
        name: str,
        args: AlertmanagerArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:alertmanager:Alertmanager", name, None, opts)
        spec = alertmanager_spec(args)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.url = pulumi.Output.from_input(f"http://{spec.address}")
        self.scrape_targets = [ScrapeTarget("alertmanager", spec.address)]
        self.register_outputs({"url": self.url})
