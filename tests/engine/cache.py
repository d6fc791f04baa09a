"""Where scripts/bootstrap-engine put the engine tier's prerequisites, and whether they are there.

The tests download nothing: the engine (Debian trixie's docker.io, docker-cli, docker-buildx
under DOCKER_PREFIX), the stand-in base image and the package mirror are prepared by
`scripts/bootstrap`. The cache directory is keyed by a hash of the bootstrap's recipe, the package
list and runtime/requirements.txt, computed here exactly as the script does, so a changed input
means "run scripts/bootstrap again", never a stale image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPOSITORY / "scripts" / "bootstrap-engine"
PACKAGES = REPOSITORY / "tests" / "engine" / "packages.txt"
RUNTIME_REQUIREMENTS = REPOSITORY / "runtime" / "requirements.txt"
DOCKER_PREFIX = Path(os.environ.get("DATA_PLATFORM_DOCKER_PREFIX", "/opt/data-platform-docker"))
CACHE = Path(os.environ.get("DATA_PLATFORM_ENGINE_CACHE", "/var/cache/data-platform-engine"))
FIX = "run `bash scripts/bootstrap` (as root) to install it"


def cache_key() -> str:
    """The same 16 hex digits as bootstrap-engine's `cache_key`: its recipe section (from the
    `# >>> recipe` line to the `# <<< recipe` line), the package list, the runtime's wheels."""
    lines = BOOTSTRAP.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("# >>> recipe"))
    end = next(i for i, line in enumerate(lines) if line.startswith("# <<< recipe"))
    digest = hashlib.sha256("".join(lines[start : end + 1]).encode())
    for path in (PACKAGES, RUNTIME_REQUIREMENTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    return CACHE / cache_key()


def base_tar() -> Path:
    """The stand-in for debian:bookworm-slim: a minbase tarball for `docker import`."""
    return cache_dir() / "base.tar"


def mirror_dir() -> Path:
    """The flat apt repository (Packages, Release, *.deb) and wheels/ for pip."""
    return cache_dir() / "mirror"


def dockerd() -> Path:
    return DOCKER_PREFIX / "usr" / "sbin" / "dockerd"


def docker_cli() -> Path:
    return DOCKER_PREFIX / "usr" / "bin" / "docker"


def cli_plugins() -> Path:
    return DOCKER_PREFIX / "usr" / "libexec" / "docker" / "cli-plugins"


def missing() -> str | None:
    """Why the engine tier cannot run here (naming the fix), or None when it can."""
    if os.geteuid() != 0:
        return "the engine tier runs dockerd in a network namespace, which needs root"
    for tool in ("ip", "nsenter", "containerd", "runc"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` is not installed: {FIX}"
    for path in (dockerd(), docker_cli(), cli_plugins() / "docker-buildx"):
        if not path.exists():
            return f"{path} is missing (Debian trixie's docker.io/docker-cli/docker-buildx): {FIX}"
    if not (cache_dir() / "complete").exists():
        return (
            f"no base image and package mirror for the current inputs in {cache_dir()} "
            f"(packages.txt, runtime/requirements.txt or the bootstrap changed): {FIX}"
        )
    return None
