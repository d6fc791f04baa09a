"""The Kubernetes stack's resources as a comparable snapshot (see tests/docker_snapshot.py).

`tests/test_kubernetes_unchanged.py` compares today's k8s run with
`tests/data/kubernetes_stack.json`. When a change to the Kubernetes stack is intended,
regenerate the file and review its diff in the commit:

    .venv/bin/python -m tests.kubernetes_snapshot > tests/data/kubernetes_stack.json
"""

from __future__ import annotations

import json
from typing import Any

from tests.docker_snapshot import snapshot
from tests.stack_harness import K8S_CONFIG, run_stack

SNAPSHOT_FILE = "tests/data/kubernetes_stack.json"


def current() -> list[dict[str, Any]]:
    return snapshot(run_stack("k8s", K8S_CONFIG))


if __name__ == "__main__":
    print(json.dumps(current(), indent=1, sort_keys=True))
