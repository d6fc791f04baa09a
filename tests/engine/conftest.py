"""Fixtures of the real-engine tier (tests/engine/, marker `engine`).

- `engine`: one dockerd per test session in its own network namespace (tests.engine.daemon).
  Where it cannot start the tier is skipped with the reason and the command to run, except under
  CI=true, where it fails: a skipped tier in CI would hide a broken install.
- `base_image`: the stand-in debian:bookworm-slim imported into it (tests.engine.images).
- `mirror`: the local apt/pip mirror served to builds for the whole session.
- `checkout`: a copy of the repository's tracked files (what a fresh clone has).
- `project_images`: our two images built from `checkout` exactly as the dev stack records
  them (context, Dockerfile, build args, image name): {"postgres-image": name,
  "runtime-image": name}, the names the recorded containers use.

Run the tier alone with `.venv/bin/python -m pytest -m engine`; leave it out with `-m "not engine"`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.daemon import Engine, EngineUnavailable, start_engine
from tests.engine.images import build, import_base, recorded_builds, serve_mirror
from tests.stack_harness import ROOT as REPOSITORY_ROOT
from tests.stack_harness import stack_run

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.engine)


def unavailable(reason: str) -> None:
    """Skip (fail under CI=true) with `reason`."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the engine tier cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine for the engine tier: {reason}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        running = start_engine()
    except EngineUnavailable as error:
        unavailable(str(error))
        raise AssertionError("unreachable") from error
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """The stand-in base's image id, tagged debian:bookworm-slim (and the pinned tag)."""
    from tests.engine.images import pinned_base_tags

    return import_base(engine, pinned_base_tags())


@pytest.fixture(scope="session")
def mirror(engine: Engine) -> Iterator[str]:
    """The mirror's URL on the engine namespace's loopback, served for the whole session."""
    with serve_mirror(engine) as url:
        yield url


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's tracked files only (as a fresh clone has them, with their current
    content): an ignored or untracked file cannot make a build pass."""
    root = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY_ROOT), "ls-files", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPOSITORY_ROOT / name
        if source.is_file() and not source.is_symlink():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return root


@pytest.fixture(scope="session")
def project_images(engine: Engine, base_image: str, mirror: str, checkout: Path) -> dict[str, str]:
    """Both images built from the clean checkout with the recorded context, Dockerfile, args
    and name (BuildKit, Debian's CLI): resource name suffix -> image name."""
    names = {}
    for key, inputs in recorded_builds(stack_run("dev")).items():
        spec = inputs["build"]
        build(
            engine,
            checkout / spec["context"],
            spec["dockerfile"],
            inputs["imageName"],
            spec.get("args"),
        )
        names[key] = inputs["imageName"]
    return names
