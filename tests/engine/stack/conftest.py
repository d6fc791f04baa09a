"""Fixtures of the stack-on-the-engine tests: the dev (and prod-shaped) records, applied.

- `standins`: the upstream images the stack pulls, stood in by Debian-built images tagged
  with the recorded names (tests.engine.standin_images), built once per session.
- `project_images` (tests/engine/conftest.py): our two images, built as the stack records them
  (the tier's settings do not change their names).
- `dev_run`: the dev stack's records (logs/traces off: docs/engine-stack.md).
- `dev_stack`: those records applied (tests.engine.applier), one bring-up per test module,
  removed with their volumes afterwards. A test that destroys things uses its own module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.applier import Applier
from tests.engine.daemon import Engine
from tests.engine.standin_images import ENGINE_OVERRIDES, NOT_RUN, build_standins
from tests.stack_harness import StackRun, run_stack


@pytest.fixture(scope="session")
def standins(engine: Engine, base_image: str, mirror: str) -> dict[str, str]:
    return build_standins(engine.client())


@pytest.fixture(scope="session")
def dev_run() -> StackRun:
    return run_stack("dev", ENGINE_OVERRIDES)


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
