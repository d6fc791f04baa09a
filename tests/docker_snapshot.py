"""The Docker stacks' resources as a comparable snapshot: URN, parent, dependencies, inputs.

`tests/test_docker_unchanged.py` compares today's dev and prod runs with
`tests/data/docker_stacks.json`. When a change to the Docker stacks is intended (a new
setting, a new service), regenerate the file and review its diff in the commit:

    .venv/bin/python -m tests.docker_snapshot > tests/data/docker_stacks.json
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from tests.stack_harness import PROD_CONFIG, StackRun, run_stack, unwrap

SNAPSHOT_FILE = "tests/data/docker_stacks.json"
# The mocks generate a fresh key (and certificate) per run: PEM blocks are compared by kind,
# and SHA-256 digests (upload hashes of those files) by shape; the contents still count.
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
# The runtime image's tag is a hash of runtime/'s code (components/runtime_sidecar.py): a
# change to the runtime is not a change to the stack's shape.
_RUNTIME_TAG = re.compile(r"(data-platform-runtime:)[0-9a-f]{16}\b")
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.DOTALL)
# prod with fixed stand-ins for its secret settings, so the snapshot is reproducible
PROD_STANDINS = {
    **PROD_CONFIG,
    "tlsCertificate": "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n",
    "tlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nstand-in\n-----END PRIVATE KEY-----\n",
    "alertWebhookUrl": "https://hooks.example.com/services/stand-in",
    "watchdogWebhookUrl": "https://hc-ping.example.com/stand-in",
}


def _digest(value: Any) -> str:
    text = json.dumps(unwrap(value), sort_keys=True, default=str)
    text = _PEM.sub(lambda m: f"<PEM {m.group(1)}>", text.replace("\\n", "\n"))
    text = _SHA256.sub("<sha256>", text)
    text = _RUNTIME_TAG.sub(r"\1<source hash>", text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def snapshot(run: StackRun) -> list[dict[str, Any]]:
    """One record per resource; inputs as a digest per key, so a diff names the key."""
    records = []
    for r in run.registrations:
        records.append(
            {
                "urn": r.urn,
                "parent": r.parent,
                "dependencies": sorted(r.dependencies),
                "protect": r.protect,
                "inputs": {k: _digest(v) for k, v in sorted(r.inputs.items())},
            }
        )
    return sorted(records, key=lambda rec: rec["urn"])


def current() -> dict[str, list[dict[str, Any]]]:
    return {
        "dev": snapshot(run_stack("dev")),
        "prod": snapshot(run_stack("prod", PROD_STANDINS)),
    }


if __name__ == "__main__":
    print(json.dumps(current(), indent=1, sort_keys=True))
