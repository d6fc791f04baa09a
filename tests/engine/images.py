"""Images on the test engine: the stand-in base, the local package mirror, BuildKit builds.

    import_base(engine)                  # debian:bookworm-slim (and the pinned tag) from base.tar
    with serve_mirror(engine):           # apt + pip for builds, on the namespace's 127.0.0.1
        build(engine, context, "images/postgres/Dockerfile", "pg:test", {"BASE_IMAGE": ...})

No registry can be reached, so the upstream `debian:bookworm-slim` is stood in for by a Debian
bookworm minbase built by scripts/bootstrap with mmdebstrap: what the tests build FROM it is the
project's own Dockerfile, unchanged. Its /etc/apt/sources.list and /etc/pip.conf name the mirror
at http://127.0.0.1:8090/ (a flat apt repository of tests/engine/packages.txt with dependencies,
and the wheels of runtime/requirements.txt), which `serve_mirror` serves inside the engine's
namespace; builds run with `--network host` (that namespace: loopback and dockerd's bridges
only), so each Dockerfile's own `apt-get install` and `pip install` run for real, offline.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.engine import cache
from tests.engine.daemon import Engine
from tests.stack_harness import StackRun, unwrap

MIRROR_PORT = 8090  # scripts/bootstrap-engine writes it into the base's apt and pip config
MIRROR_URL = f"http://127.0.0.1:{MIRROR_PORT}/"
BASE_TAGS: tuple[str, ...] = ("debian:bookworm-slim",)


def pinned_base_tags() -> tuple[str, ...]:
    """The dated tag(s) our Dockerfiles pin by default (the stack's `postgresImage` default),
    which the stand-in also answers to."""
    from components.config import DEFAULT_BASE_IMAGE

    return (DEFAULT_BASE_IMAGE,)


def import_base(engine: Engine, tags: Sequence[str] = ()) -> str:
    """Import the stand-in base under `debian:bookworm-slim` and each of `tags`; its image id."""
    all_tags = [*BASE_TAGS, *(t for t in tags if t not in BASE_TAGS)]
    with cache.base_tar().open("rb") as tar:
        imported = subprocess.run(
            engine.in_netns([str(cache.docker_cli()), "import", "-", all_tags[0]]),
            stdin=tar,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
            env=engine.env(),
        )
    image_id = imported.stdout.strip()
    for tag in all_tags[1:]:
        engine.docker("tag", all_tags[0], tag)
    return image_id


@contextmanager
def serve_mirror(engine: Engine) -> Iterator[str]:
    """Serve the package mirror on the engine namespace's 127.0.0.1:8090 while in the block:
    the apt repository at /, the wheelhouse at /wheels/ (links into the cache)."""
    root = engine.root / "mirror"
    if not root.exists():
        root.mkdir()
        for deb in cache.debs_dir().iterdir():
            (root / deb.name).symlink_to(deb)
        (root / "wheels").symlink_to(cache.wheels_dir())
    server = engine.popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(MIRROR_PORT),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe = (
            "import sys, urllib.request\n"
            f"urllib.request.urlopen({MIRROR_URL + 'Release'!r}, timeout=2).read()\n"
        )
        deadline = time.monotonic() + 20
        while True:
            if engine.run([sys.executable, "-c", probe], check=False).returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the package mirror did not start on {MIRROR_URL}")
            time.sleep(0.2)
        yield MIRROR_URL
    finally:
        server.terminate()
        server.wait(timeout=10)


def build(
    engine: Engine,
    context: Path,
    dockerfile: str,
    tag: str,
    args: Mapping[str, str] | None = None,
    *,
    timeout: float = 900,
) -> str:
    """`docker build` with BuildKit (Debian's CLI and buildx), as the stack builds: the context
    directory, the Dockerfile path relative to it, the build args. Needs `serve_mirror` active
    when the Dockerfile installs packages. Returns the image id; a failed build raises with
    BuildKit's log in the message."""
    argv = ["build", "--network", "host", "--progress", "plain"]
    argv += ["--file", str(context / dockerfile), "--tag", tag]
    for key, value in sorted((args or {}).items()):
        argv += ["--build-arg", f"{key}={value}"]
    result = engine.docker(*argv, str(context), check=False, timeout=timeout)
    if result.returncode != 0:
        raise BuildFailed(tag, result.stderr[-6000:])
    return engine.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


class BuildFailed(AssertionError):
    """A `docker build` that failed; carries BuildKit's output."""

    def __init__(self, tag: str, log: str) -> None:
        super().__init__(f"docker build of {tag} failed:\n{log}")
        self.log = log


def recorded_builds(run: StackRun) -> dict[str, dict[str, Any]]:
    """The stack's image builds by resource name suffix (postgres-image, runtime-image)."""
    found = {}
    for reg in run.of_type("docker:index/image:Image"):
        inputs = unwrap(reg.inputs)
        found[reg.name.rsplit("-", 2)[-2] + "-image"] = inputs
    return found
