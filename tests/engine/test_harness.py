"""The engine tier's harness: dockerd in a namespace of its own, the stand-in base, the mirror."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.engine.daemon import Engine
from tests.engine.images import MIRROR_URL, build


def test_the_engine_and_its_bridges_live_only_in_their_own_namespace(engine: Engine) -> None:
    bridge = engine.docker(
        "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"
    ).stdout.strip()
    inside = engine.run(["ip", "-o", "-4", "addr"]).stdout
    outside = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    assert f" {bridge}/" in inside
    assert f" {bridge}/" not in outside
    assert engine.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.45"


def test_a_build_installs_from_the_mirror_only(
    engine: Engine, base_image: str, mirror: str, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends pgbackrest=2.45-* "
        "&& pgbackrest version\n"
    )
    build(engine, tmp_path, "Dockerfile", "harness-probe:1")
    sources = engine.docker("run", "--rm", "harness-probe:1", "cat", "/etc/apt/sources.list").stdout
    assert sources.strip() == f"deb [trusted=yes] {MIRROR_URL} ./"
    assert mirror == MIRROR_URL


def test_the_stand_in_keeps_dpkg_from_installing_what_the_slim_image_leaves_out(
    engine: Engine, base_image: str
) -> None:
    """The upstream slim image's dpkg excludes: a Dockerfile that needs locale files (ours) must
    lift them, and on the stand-in it fails the same way if it does not."""
    config = engine.docker(
        "run", "--rm", "debian:bookworm-slim", "cat", "/etc/dpkg/dpkg.cfg.d/docker"
    ).stdout
    assert "path-exclude /usr/share/locale/*" in config.splitlines()
    assert "path-exclude /usr/share/man/*" in config.splitlines()
