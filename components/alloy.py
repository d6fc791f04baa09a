"""Grafana Alloy: every container's logs to Loki, the runtime's OTLP traces to Tempo.

It reads Docker's json-file logs through a read-only mount of /var/lib/docker/containers
(not the Docker socket; docs/logs-traces.md weighs the two). The image (Ubuntu) has bash but
no wget or curl, so the health probe speaks HTTP through bash's /dev/tcp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.render.alloy_config import (
    CONTAINER_LOGS,
    HTTP_PORT,
    OTLP_HTTP_PORT,
    render_alloy_config,
)
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    HostMount,
    Platform,
    ScrapeTarget,
    ServiceSpec,
)

PORT = HTTP_PORT
CONFIG = "/etc/alloy/platform.alloy"
STORAGE = "/var/lib/alloy/data"  # read positions: a restart neither re-sends nor skips lines
_READY = (
    f"exec 3<>/dev/tcp/127.0.0.1/{HTTP_PORT}; "
    "printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3; "
    "read -r status <&3; [[ $status == *' 200 '* ]]"
)


@dataclass(frozen=True)
class AlloyArgs:
    image: str
    memory_mb: int
    stack: str
    loki_push_url: str
    tempo_otlp_endpoint: str
    depends_on: Sequence[pulumi.Resource] = ()


def alloy_spec(args: AlloyArgs) -> ServiceSpec:
    return ServiceSpec(
        name="alloy",
        image=args.image,
        port=PORT,
        command=[
            "run",
            CONFIG,
            f"--storage.path={STORAGE}",
            f"--server.http.listen-addr=0.0.0.0:{HTTP_PORT}",
            "--disable-reporting",
        ],
        files=[
            ConfigFile(
                CONFIG,
                render_alloy_config(args.loki_push_url, args.tempo_otlp_endpoint, args.stack),
            )
        ],
        volumes=[DataVolume("data", STORAGE)],
        host_mounts=[HostMount(CONTAINER_LOGS, CONTAINER_LOGS)],
        health=HealthProbe(["bash", "-c", _READY], start_period_seconds=30),
        memory_mb=args.memory_mb,
        depends_on=args.depends_on,
    )


class Alloy(pulumi.ComponentResource):
    otlp_endpoint: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: AlloyArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:alloy:Alloy", name, None, opts)
        spec = alloy_spec(args)
        platform.deploy(spec, parent=self)
        self.address = spec.address
        self.scrape_targets = [ScrapeTarget("alloy", spec.address)]
        # Where applications and the runtime send OTLP/HTTP (the SDK appends /v1/traces).
        self.otlp_endpoint = pulumi.Output.from_input(f"http://{spec.name}:{OTLP_HTTP_PORT}")
        self.register_outputs({"otlp_endpoint": self.otlp_endpoint})
