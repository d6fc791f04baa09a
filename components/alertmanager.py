"""Alertmanager: routes alerts to receivers, behind nginx at /alertmanager/ for admins.

The alert webhook and the Watchdog's heartbeat URL come from secret config; the file that
holds them is then a secret too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.render.alertmanager_yml import render_alertmanager_yml
from components.spec import (
    ConfigFile,
    ConfigReload,
    DataVolume,
    HealthProbe,
    Platform,
    ScrapeTarget,
    ServiceSpec,
)

PORT = 9093
# prom/alertmanager:v0.27.0 runs as `nobody`: uid 65534, gid 65534 (docs/secret-files.md).
ALERTMANAGER_UID = ALERTMANAGER_GID = "65534"
CONFIG_DIR = "/etc/alertmanager"
CONFIG_FILE = f"{CONFIG_DIR}/alertmanager.yml"


@dataclass(frozen=True)
class AlertmanagerArgs:
    image: str
    memory_mb: int
    external_url: str  # the public URL links in notifications point at
    webhook_url: pulumi.Output[str] | None = None
    watchdog_url: pulumi.Output[str] | None = None


def alertmanager_spec(args: AlertmanagerArgs) -> ServiceSpec:
    config: pulumi.Input[str]
    if args.webhook_url is None and args.watchdog_url is None:
        config = render_alertmanager_yml(None, None)
    else:
        config = pulumi.Output.all(args.webhook_url, args.watchdog_url).apply(
            lambda urls: render_alertmanager_yml(urls[0], urls[1])
        )
    return ServiceSpec(
        name="alertmanager",
        image=args.image,
        port=PORT,
        command=[
            f"--config.file={CONFIG_FILE}",
            "--storage.path=/alertmanager",
            # Links in notifications (externalURL, silence links) point at the public path;
            # nginx strips the prefix, so Alertmanager itself still serves at /.
            f"--web.external-url={args.external_url}",
            "--web.route-prefix=/",
        ],
        # The URLs carry tokens: the whole file is a secret when either is set.
        files=[
            ConfigFile(
                CONFIG_FILE,
                config,
                secret=not isinstance(config, str),
                # root-owned, read by Alertmanager's group: the one-shot that checks and writes
                # it into the config volume runs as root in that group without CAP_CHOWN, so
                # the file keeps this owner, group and mode in the volume (components/docker)
                owner="0",
                group=ALERTMANAGER_GID,
                mode="0440",
            )
        ],
        volumes=[DataVolume("data", "/alertmanager")],
        health=HealthProbe(["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/-/ready"]),
        memory_mb=args.memory_mb,
        # edge: egress to the webhook receivers; nothing is published.
        networks=("backend", "edge"),
        # SIGHUP re-reads the routes; silences and notification state stay.
        reload=ConfigReload(
            directory=CONFIG_DIR,
            check=("amtool", "check-config", CONFIG_FILE),
            process="alertmanager",
        ),
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
