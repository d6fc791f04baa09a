"""Fixtures of the stack-on-the-engine tests: the dev (and prod-shaped) records, applied.

- `standins`: the upstream images the stack pulls, stood in by Debian-built images tagged
  with the recorded names (tests.engine.standin_images), built once per session.
- `project_images`: the stack's own `docker:index/image:Image` records (PostgreSQL, runtime)
  built exactly as recorded (Dockerfile, context, build args, image name) with BuildKit.
- `dev_run`: the dev stack's records (logs/traces off: docs/engine-tests.md).
- `dev_stack`: those records applied (tests.engine.applier), one bring-up per test module,
  removed with their volumes afterwards. A test that destroys things uses its own module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.applier import IMAGE, Applier
from tests.engine.daemon import Engine
from tests.engine.standin_images import ENGINE_OVERRIDES, NOT_RUN, build_standins
from tests.stack_harness import ROOT, StackRun, run_stack, unwrap


@pytest.fixture(scope="session")
def standins(engine: Engine, base_image: str, mirror: str) -> dict[str, str]:
    return build_standins(engine.client())


@pytest.fixture(scope="session")
def dev_run() -> StackRun:
    return run_stack("dev", ENGINE_OVERRIDES)


def build_project_images(engine: Engine, run: StackRun) -> dict[str, str]:
    """Build each Image record as the provider would: its Dockerfile and context (relative
    to the project directory), build args and image name. Returns name -> image id."""
    from tests.engine.images import build

    built = {}
    for record in run.of_type(IMAGE):
        spec = unwrap(record.inputs)
        name = spec["imageName"]
        built[name] = build(
            engine,
            ROOT / spec["build"]["context"],
            spec["build"]["dockerfile"],
            name,
            spec["build"].get("args"),
        )
    return built


@pytest.fixture(scope="session")
def project_images(
    engine: Engine, base_image: str, mirror: str, dev_run: StackRun
) -> dict[str, str]:
    return build_project_images(engine, dev_run)


def bring_up(engine: Engine, run: StackRun, prefix: str = "") -> Applier:
    applier = Applier(engine.client(), run, omit=NOT_RUN, prefix=prefix)
    applier.down()  # leftovers of an interrupted run
    try:
        applier.up()
    except BaseException:
        applier.down()
        raise
    return applier


@pytest.fixture(scope="module")
def dev_stack(
    engine: Engine, standins: dict[str, str], project_images: dict[str, str], dev_run: StackRun
) -> Iterator[Applier]:
    applier = bring_up(engine, dev_run)
    yield applier
    applier.down(grace=5)
