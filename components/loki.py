"""Loki: stores the logs Alloy collects; Grafana queries it. One process, one volume.

The image is distroless (no shell, no HTTP client), but the binary probes itself: since
3.7.0, `loki -health` GETs `/ready` and exits 0 on 200 (cmd/loki/health.go; Loki's own
compose file uses it). So Docker probes it and `wait` holds Alloy and Grafana until it is
ready (docs/logs-traces.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.render.loki_yml import DATA_DIR, HTTP_PORT, render_loki_yml
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    Platform,
    ScrapeTarget,
    ServiceSpec,
)

PORT = HTTP_PORT
CONFIG = "/etc/loki/platform.yml"
BINARY = "/usr/bin/loki"  # the image's entrypoint
# `-health` has its own 5 s HTTP timeout; Docker's must be longer so Loki's answer wins.
# The ingester joins its ring before /ready says 200: Loki's compose file allows 30 s.
HEALTH = HealthProbe(
    [BINARY, "-health", f"-health.url=http://127.0.0.1:{PORT}/ready"],
    timeout_seconds=10,
    start_period_seconds=30,
)


@dataclass(frozen=True)
class LokiArgs:
    image: str
    memory_mb: int
    retention_days: int
    depends_on: Sequence[pulumi.Resource] = ()


def loki_spec(args: LokiArgs) -> ServiceSpec:
    return ServiceSpec(
        name="loki",
        image=args.image,
        port=PORT,
        command=[f"-config.file={CONFIG}"],
        files=[ConfigFile(CONFIG, render_loki_yml(args.retention_days))],
        volumes=[DataVolume("data", DATA_DIR)],
        health=HEALTH,
        memory_mb=args.memory_mb,
        depends_on=args.depends_on,
    )


class Loki(pulumi.ComponentResource):
    push_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: LokiArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:loki:Loki", name, None, opts)
        spec = loki_spec(args)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.url = f"http://{spec.address}"
        self.scrape_targets = [ScrapeTarget("loki", spec.address)]
        self.push_url = pulumi.Output.from_input(f"{self.url}/loki/api/v1/push")
        self.register_outputs({"push_url": self.push_url})
