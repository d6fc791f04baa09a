"""A dashboard change on the real engine: the stack's own update writes it into Grafana's
configuration volume through the apply one-shot, and the running Grafana container is kept
(no reload container: Grafana's file provider polls the directory).

Grafana is stood in by a stub here (tests/engine/standins/grafana-stub, uid 472 as Grafana),
so this proves the delivery: the new file inside the same running container, readable by
uid 472, a removed dashboard gone. Grafana's re-reading of it is its file provider's
documented polling, not tested here (docs/changes.md).
"""

from __future__ import annotations

import json
import time

import pytest

import components.stack
from components.monitoring.dashboards import dashboard_files
from components.render.grafana_provisioning import DASHBOARDS_DIR
from tests.engine.applier import Applier
from tests.engine.observe import exec_in
from tests.engine.standin_images import ENGINE_OVERRIDES
from tests.stack_harness import run_stack

pytestmark = pytest.mark.timeout(1200)

EDITED = "platform-overview.json"
DROPPED = "platform-redis.json"
GRAFANA_UID = "472"


def test_a_dashboard_change_reaches_the_running_grafana_container(
    dev_stack: Applier, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = dev_stack
    grafana = stack.container("grafana")
    before = stack.api.inspect_container(grafana)
    edited = dashboard_files()
    code, out = exec_in(stack.client, grafana, ["cat", f"{DASHBOARDS_DIR}/{EDITED}"])
    assert (code, out) == (0, edited[EDITED])  # the first deployment wrote them
    board = json.loads(edited[EDITED])
    board["title"] += " (edited on the engine)"
    edited[EDITED] = json.dumps(board, indent=2, sort_keys=True)
    del edited[DROPPED]
    monkeypatch.setattr(components.stack, "dashboard_files", lambda: edited)

    started = time.monotonic()
    replaced = stack.update(run_stack("dev", ENGINE_OVERRIDES))
    print(f"grafana: dashboards written in {time.monotonic() - started:.2f}s; replaced {replaced}")

    # only one-shots ran (nginx's too: the mocks make a new self-signed key on every run)
    assert "grafana-config-apply" in replaced
    assert all(r.endswith(("-config-apply", "-config-reload")) for r in replaced), replaced
    assert "grafana-config-reload" not in stack.plan.containers  # nothing to signal
    code, logs = stack.exits["grafana-config-apply"]
    assert (code, logs.strip()) == (0, f"written: {DASHBOARDS_DIR}")
    after = stack.api.inspect_container(grafana)
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]  # not restarted
    assert after["RestartCount"] == before["RestartCount"]

    # inside the running container, read as its own user: uid 472, Grafana's
    code, out = exec_in(stack.client, grafana, ["id", "-u"])
    assert out.strip() == GRAFANA_UID
    path = f"{DASHBOARDS_DIR}/{EDITED}"
    code, out = exec_in(stack.client, grafana, ["cat", path])
    assert (code, out) == (0, edited[EDITED])
    code, out = exec_in(stack.client, grafana, ["stat", "-c", "%u %g %a", path, DASHBOARDS_DIR])
    assert out.split("\n")[:2] == ["0 0 644", "0 0 755"], out  # root's, readable by all
    code, out = exec_in(stack.client, grafana, ["ls", DASHBOARDS_DIR])
    assert out.split() == sorted(edited)  # the dropped one removed, no leftover
    code, out = exec_in(stack.client, grafana, ["touch", f"{DASHBOARDS_DIR}/x.json"])
    assert code != 0 and "Read-only file system" in out, out  # Grafana cannot alter them
