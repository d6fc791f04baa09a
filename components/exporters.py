"""Exporters: the metrics of PostgreSQL, Redis, nginx, the host, the containers and the edge.

Each exporter says what it scrapes and which service it needs (its dependency edge); all sit
on the backend network, publish nothing, and are scraped by Prometheus under a fixed job.
Credentials reach them as uploaded secret files, like everywhere else in the stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components.render.blackbox_yml import HTTPS_MODULE, render_blackbox_yml
from components.spec import (
    ConfigFile,
    HealthProbe,
    HostMount,
    Platform,
    ScrapeTarget,
    ServiceSpec,
)

# Each exporter's metrics port, written once: its spec, its health probe and its scrape job
# (Prometheus on Docker, a ServiceMonitor on Kubernetes) read it from here.
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121
NGINX_EXPORTER_PORT = 9113
NODE_EXPORTER_PORT = 9100
# The uid:gid each exporter that reads a secret runs as in its image (docs/secret-files.md):
# postgres-exporter v0.16.0 `USER nobody` (busybox), redis_exporter v1.67.0 `USER 59000:59000`.
POSTGRES_EXPORTER_UID = "65534"
REDIS_EXPORTER_UID = "59000"
CADVISOR_PORT = 8080
BLACKBOX_PORT = 9115


def _http_probe(port: int, path: str = "/metrics") -> HealthProbe:
    return HealthProbe(["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"])


@dataclass(frozen=True)
class ExporterImages:
    postgres: str
    redis: str
    nginx: str
    node: str
    cadvisor: str
    blackbox: str


# Queries the exporter runs besides its built-in collectors (extend.query-path): the server's
# start time, which the PostgresRestarted alert watches, is not a default collector in every
# exporter version.
POSTGRES_EXPORTER_QUERIES = """\
pg_postmaster:
  query: "SELECT extract(epoch from pg_postmaster_start_time()) AS start_time_seconds"
  master: true
  metrics:
    - start_time_seconds:
        usage: "GAUGE"
        description: "Time at which the postmaster started (Unix seconds)"
"""


def postgres_exporter_spec(
    image: str, database: str, user: str, password: pulumi.Input[str], target: pulumi.Resource
) -> ServiceSpec:
    credential = "/run/secrets/postgres-password"
    queries = "/etc/postgres_exporter/queries.yml"
    return ServiceSpec(
        name="postgres-exporter",
        image=image,
        port=POSTGRES_EXPORTER_PORT,
        command=[f"--extend.query-path={queries}"],
        env={
            "DATA_SOURCE_URI": f"postgres:5432/{database}?sslmode=disable",
            "DATA_SOURCE_USER": user,
            "DATA_SOURCE_PASS_FILE": credential,
        },
        files=[
            ConfigFile(credential, password, secret=True, owner=POSTGRES_EXPORTER_UID, mode="0400"),
            ConfigFile(queries, POSTGRES_EXPORTER_QUERIES),
        ],
        health=_http_probe(POSTGRES_EXPORTER_PORT),
        memory_mb=64,
        depends_on=[target],
    )


def redis_exporter_spec(
    image: str, password: pulumi.Output[str], target: pulumi.Resource
) -> ServiceSpec:
    address = "redis://redis:6379"
    credential = "/run/secrets/redis-passwords.json"  # redis_exporter: {address: password}
    return ServiceSpec(
        name="redis-exporter",
        image=image,
        port=REDIS_EXPORTER_PORT,
        command=[f"--redis.addr={address}", f"--redis.password-file={credential}"],
        files=[
            ConfigFile(
                credential,
                password.apply(lambda pw: json.dumps({address: pw})),
                secret=True,
                owner=REDIS_EXPORTER_UID,
                mode="0400",
            )
        ],
        health=_http_probe(REDIS_EXPORTER_PORT),
        memory_mb=64,
        depends_on=[target],
    )


def nginx_exporter_spec(
    image: str, stub_status_address: str, target: pulumi.Resource
) -> ServiceSpec:
    return ServiceSpec(
        name="nginx-exporter",
        image=image,
        port=NGINX_EXPORTER_PORT,
        command=[f"--nginx.scrape-uri=http://{stub_status_address}/stub_status"],
        health=None,  # a scratch image: no shell to probe with; `up{job="nginx"}` watches it
        memory_mb=32,
        depends_on=[target],
    )


def node_exporter_spec(image: str) -> ServiceSpec:
    return ServiceSpec(
        name="node-exporter",
        image=image,
        port=NODE_EXPORTER_PORT,
        command=["--path.rootfs=/host"],
        host_mounts=[HostMount("/", "/host")],
        health=_http_probe(NODE_EXPORTER_PORT),
        memory_mb=64,
    )


def cadvisor_spec(image: str) -> ServiceSpec:
    return ServiceSpec(
        name="cadvisor",
        image=image,
        port=CADVISOR_PORT,
        command=[
            "--docker_only=true",
            "--housekeeping_interval=15s",
            "--store_container_labels=false",
        ],
        host_mounts=[
            HostMount("/", "/rootfs"),
            HostMount("/var/run", "/var/run"),
            HostMount("/sys", "/sys"),
            HostMount("/var/lib/docker", "/var/lib/docker"),
            HostMount("/dev/disk", "/dev/disk"),
        ],
        devices=["/dev/kmsg"],
        # every container's /proc entries and Docker's state, read as root
        capabilities=("DAC_READ_SEARCH", "SYS_PTRACE"),
        health=_http_probe(CADVISOR_PORT, "/healthz"),
        memory_mb=256,
    )


def blackbox_spec(
    image: str, server_name: str, verify: bool, target: pulumi.Resource
) -> ServiceSpec:
    config = "/etc/blackbox_exporter/config.yml"
    return ServiceSpec(
        name="blackbox",
        image=image,
        port=BLACKBOX_PORT,
        command=[f"--config.file={config}"],
        files=[ConfigFile(config, render_blackbox_yml(server_name, verify))],
        health=_http_probe(BLACKBOX_PORT, "/-/healthy"),
        memory_mb=64,
        depends_on=[target],
    )


# exporter service name -> (Prometheus job, port). Names are stable network aliases, so
# Prometheus can list every target before the exporters (some started after it) exist.
SCRAPE_JOBS = {
    "postgres-exporter": ("postgres", POSTGRES_EXPORTER_PORT),
    "redis-exporter": ("redis", REDIS_EXPORTER_PORT),
    "nginx-exporter": ("nginx", NGINX_EXPORTER_PORT),
    "node-exporter": ("node", NODE_EXPORTER_PORT),
    "cadvisor": ("cadvisor", CADVISOR_PORT),
}
BLACKBOX_ADDRESS = f"blackbox:{BLACKBOX_PORT}"


def scrape_targets(probe_url: str, host_metrics: bool) -> list[ScrapeTarget]:
    """Every exporter's scrape job, plus the blackbox probe of `probe_url`."""
    targets = [
        ScrapeTarget(job, f"{name}:{port}")
        for name, (job, port) in SCRAPE_JOBS.items()
        if host_metrics or job not in ("node", "cadvisor")
    ]
    targets.append(
        ScrapeTarget(
            "blackbox",
            BLACKBOX_ADDRESS,
            metrics_path="/probe",
            probe_module=HTTPS_MODULE,
            probe_target=probe_url,
        )
    )
    return targets


class Exporter(pulumi.ComponentResource):
    """One exporter container; Prometheus finds it by its alias (see `scrape_targets`)."""

    def __init__(
        self,
        name: str,
        spec: ServiceSpec,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:exporters:Exporter", name, None, opts)
        platform.deploy(spec, parent=self)
        self.register_outputs({"address": spec.address})
