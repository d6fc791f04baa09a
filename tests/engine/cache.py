"""Where scripts/bootstrap-engine put the engine tier's prerequisites, and whether they are there.

The tests download nothing: the engine (Debian trixie's docker.io, docker-cli, docker-buildx
under DOCKER_PREFIX), the stand-in base image and the package mirror are prepared by
`scripts/bootstrap`. Each part of the cache (base, debs, wheels) is keyed by a hash of its
recipe section of the bootstrap and its input files, computed here exactly as the script
does, so a changed input means "run scripts/bootstrap again", never a stale image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPOSITORY / "scripts" / "bootstrap-engine"
HERE = REPOSITORY / "tests" / "engine"
DOCKER_PREFIX = Path(os.environ.get("DATA_PLATFORM_DOCKER_PREFIX", "/opt/data-platform-docker"))
CACHE = Path(os.environ.get("DATA_PLATFORM_ENGINE_CACHE", "/var/cache/data-platform-engine"))
FIX = "run `bash scripts/bootstrap` (as root) to install it"
# Each part of the cache and its input files (besides its recipe section of the bootstrap).
PARTS: dict[str, tuple[Path, ...]] = {
    "base": (),
    "debs": (HERE / "packages.txt",),
    "wheels": (REPOSITORY / "runtime" / "requirements.txt", HERE / "wheels.txt"),
}


def part_key(part: str) -> str:
    """The same 16 hex digits as bootstrap-engine's `part_key`: the part's recipe section (from
    its `# >>> PART` line to its `# <<< PART` line) and its input files."""
    lines = BOOTSTRAP.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# >>> {part}"))
    end = next(i for i, line in enumerate(lines) if line.startswith(f"# <<< {part}"))
    digest = hashlib.sha256("".join(lines[start : end + 1]).encode())
    for path in PARTS[part]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def part_dir(part: str) -> Path:
    return CACHE / f"{part}-{part_key(part)}"


def base_tar() -> Path:
    """The stand-in for debian:bookworm-slim: a minbase tarball for `docker import`."""
    return part_dir("base") / "base.tar"


def debs_dir() -> Path:
    """The flat apt repository: Packages, Release and the .debs."""
    return part_dir("debs")


def wheels_dir() -> Path:
    """The wheelhouse pip reads (find-links) in builds."""
    return part_dir("wheels")


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
    for part, inputs in PARTS.items():
        if not (part_dir(part) / "complete").exists():
            changed = ", ".join(str(p.relative_to(REPOSITORY)) for p in inputs) or "its recipe"
            return f"no cached {part} for the current inputs ({changed}) in {part_dir(part)}: {FIX}"
    return None
