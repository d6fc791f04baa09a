"""Build the stand-ins for the upstream images the Docker stacks pin.

No registry can be reached, so each image the stack pulls (`RemoteImage`) is built here from
Debian packages on the locally built `debian:bookworm-slim`, and tagged with exactly the name
the stack records, so the records apply unchanged. tests/engine/standins/README.md says, per
image, what runs for real and what differs from the pinned upstream image.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import docker

from components.config import SETTINGS

HERE = Path(__file__).resolve().parent / "standins"

# setting -> the stand-in's directory under tests/engine/standins/
STANDINS = {
    "redisImage": "redis",
    "nginxImage": "nginx",
    "prometheusImage": "prometheus",
    "alertmanagerImage": "alertmanager",
    "postgresExporterImage": "postgres-exporter",
    "redisExporterImage": "redis-exporter",
    "nginxExporterImage": "nginx-exporter",
    "blackboxImage": "blackbox-exporter",
    "nodeExporterImage": "node-exporter",
    "grafanaImage": "grafana-stub",
    "acmeImage": "lego",
}
# Records the tier does not run: no Debian package, and no stub, because nothing it runs
# waits on them (docs/engine-tests.md).
NOT_RUN = ("cadvisor",)
# The stack's settings for the tier: logs and traces off (Loki, Tempo and Alloy have no
# Debian package, and a stub of a log store would test nothing of ours).
ENGINE_OVERRIDES = {"logsTraces": False}


def default_tags() -> dict[str, str]:
    """setting -> the image name the stack records by default (components/config.py)."""
    defaults = {s.key: s.default for s in SETTINGS}
    return {key: str(defaults[key]) for key in STANDINS}


def build_standins(
    client: docker.DockerClient, only: Iterable[str] | None = None
) -> dict[str, str]:
    """Build every stand-in (or those of the settings in `only`); returns tag -> image id.

    The builds run with the host network of the engine's namespace, where the local package
    mirror answers; Docker's build cache makes a rebuild of an unchanged stand-in instant.
    """
    built = {}
    tags = default_tags()
    for key in only or STANDINS:
        image, _ = client.images.build(
            path=str(HERE / STANDINS[key]),
            tag=tags[key],
            network_mode="host",
            rm=True,
            forcerm=True,
        )
        built[tags[key]] = str(image.id)
    return built
