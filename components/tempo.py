"""Tempo: stores the runtime's traces (OTLP from Alloy); Grafana queries it. One process.

Distroless like Loki, but unlike Loki's (`loki -health`) its binary has no self-probe at
2.10.8: no shell to probe with, so `up{job="tempo"}` watches it (a reviewed exception in the
policy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.render.tempo_yml import DATA_DIR, HTTP_PORT, OTLP_HTTP_PORT, render_tempo_yml
from components.spec import ConfigFile, DataVolume, Platform, ScrapeTarget, ServiceSpec

PORT = HTTP_PORT
CONFIG = "/etc/tempo/platform.yml"


@dataclass(frozen=True)
class TempoArgs:
    image: str
    memory_mb: int
    retention_days: int
    depends_on: Sequence[pulumi.Resource] = ()


def tempo_spec(args: TempoArgs) -> ServiceSpec:
    return ServiceSpec(
        name="tempo",
        image=args.image,
        port=PORT,
        command=[f"-config.file={CONFIG}"],
        files=[ConfigFile(CONFIG, render_tempo_yml(args.retention_days))],
        volumes=[DataVolume("data", DATA_DIR)],
        health=None,  # distroless: watched by up{job="tempo"}
        memory_mb=args.memory_mb,
        depends_on=args.depends_on,
    )


class Tempo(pulumi.ComponentResource):
    otlp_endpoint: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: TempoArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:tempo:Tempo", name, None, opts)
        spec = tempo_spec(args)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.url = f"http://{spec.address}"
        self.scrape_targets = [ScrapeTarget("tempo", spec.address)]
        self.otlp_url = f"http://{spec.name}:{OTLP_HTTP_PORT}"
        self.otlp_endpoint = pulumi.Output.from_input(self.otlp_url)
        self.register_outputs({"otlp_endpoint": self.otlp_endpoint})
