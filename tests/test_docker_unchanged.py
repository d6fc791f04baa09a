"""The Kubernetes seam leaves the Docker stacks exactly as they were.

`tests/data/docker_stacks.json` holds dev's and prod's resources (URN, parent, dependencies,
protect, a digest of each input) as recorded before the Kubernetes platform was added. An
intended change to the Docker stacks regenerates it (see tests/docker_snapshot.py) and the
diff is reviewed with that change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker_snapshot import SNAPSHOT_FILE, current

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_docker_stacks_register_the_same_resources_with_the_same_inputs(stack: str) -> None:
    recorded = json.loads((ROOT / SNAPSHOT_FILE).read_text())[stack]
    now = current()[stack]
    assert [r["urn"] for r in now] == [r["urn"] for r in recorded]
    for before, after in zip(recorded, now, strict=True):
        assert after == before, f"{after['urn']} changed"
