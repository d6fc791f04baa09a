"""Reorganising the stacks leaves the Kubernetes stack exactly as it was.

`tests/data/kubernetes_stack.json` holds the k8s stack's resources (URN, parent,
dependencies, protect, a digest of each input), recorded before the Docker and Kubernetes
stacks were cut into one neutral base and two platform wings. An intended change
regenerates it (see tests/kubernetes_snapshot.py) and the diff is reviewed with that change.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.kubernetes_snapshot import SNAPSHOT_FILE, current

ROOT = Path(__file__).resolve().parent.parent


def test_the_kubernetes_stack_registers_the_same_resources_with_the_same_inputs() -> None:
    recorded = json.loads((ROOT / SNAPSHOT_FILE).read_text())
    now = current()
    assert [r["urn"] for r in now] == [r["urn"] for r in recorded]
    for before, after in zip(recorded, now, strict=True):
        assert after == before, f"{after['urn']} changed"
