"""A restore drill in the deployed stack, on the real engine: the dev records (with counted
tables and a short archive timeout) applied, a drill run by an operator inside the sidecar
container against the real primary and its pgBackRest repository, then the sidecar's /metrics
(docs/runtime-pitr-drill.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from runtime.pitr.drill_metrics import KEPT_FILES
from tests.engine.applier import Applier
from tests.engine.daemon import Engine
from tests.engine.observe import exec_in, state, wait_for
from tests.engine.stack.conftest import bring_up
from tests.engine.standin_images import ENGINE_OVERRIDES
from tests.stack_harness import run_stack

# The first test of a session also waits for the images' builds (tests/engine/conftest.py).
pytestmark = pytest.mark.timeout(1800)

SCRATCH = "/var/lib/pgbackrest-drill"
ARCHIVE_TIMEOUT = 5  # walArchiveTimeout here: the drill waits for its target's segment
PSQL = ("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app")
# The sidecar's processes named postgres or pgbackrest, running or zombie (a drill's copy, its
# restore or pgBackRest's async archive-get left behind): "pid comm state ppid" each
STRAYS = """
import os
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    if comm in ("postgres", "pgbackrest"):
        found.append(f"{pid} {comm} {state} {ppid}")
print(found)
"""


@pytest.fixture(scope="module")
def stack(
    engine: Engine, standins: dict[str, str], project_images: dict[str, str]
) -> Iterator[Applier]:
    overrides = {
        **ENGINE_OVERRIDES,
        "walArchiveTimeout": ARCHIVE_TIMEOUT,
        "pitrDrillTables": '["drill_facts"]',
    }
    applier = bring_up(engine, run_stack("dev", overrides))
    yield applier
    applier.down(grace=5)


def _sql(stack: Applier, query: str) -> str:
    code, out = exec_in(
        stack.client, stack.container("postgres"), [*PSQL, "-c", query], user="postgres"
    )
    assert code == 0, out
    return out.strip()


def _metrics(engine: Engine, stack: Applier) -> dict[str, float]:
    """The sidecar's /metrics, fetched from the engine's namespace: `runtime_pitr_drill_*`."""
    networks = stack.api.inspect_container(stack.container("runtime"))["NetworkSettings"]
    edge = stack.network_names()["platform-docker-edge"]
    url = f"http://{networks['Networks'][edge]['IPAddress']}:9180/metrics"
    fetch = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=30).read().decode())"
    )
    text = engine.run([sys.executable, "-c", fetch]).stdout
    found = {}
    for line in text.splitlines():
        if line.startswith("runtime_pitr_drill_"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _scratch(stack: Applier) -> tuple[set[str], str]:
    code, out = exec_in(
        stack.client,
        stack.container("runtime"),
        ["sh", "-c", f"ls -A {SCRATCH}; stat -c 'owner %u %a' {SCRATCH}"],
    )
    assert code == 0, out
    lines = out.split()
    owner = " ".join(lines[-3:])
    return set(lines[:-3]), owner


def _retry_while_locked(done: tuple[int, str]) -> bool:
    code, out = done
    if code != 0 and "unable to acquire lock" in out:
        return False
    assert code == 0, out
    return True


def test_a_drill_in_the_sidecar_restores_the_primary_and_shows_in_its_metrics(
    engine: Engine, stack: Applier
) -> None:
    runtime = stack.container("runtime")
    # the sidecar found PostgreSQL's server in its image: drills are on
    on = wait_for("the sidecar's drills to be on", lambda: _metrics(engine, stack), timeout=60)
    assert "runtime_pitr_drill_enabled_since_timestamp_seconds" in on, on
    assert "runtime_pitr_drill_last_success" not in on  # no drill yet
    _sql(stack, "CREATE TABLE drill_facts (id int PRIMARY KEY)")
    _sql(stack, "INSERT INTO drill_facts SELECT generate_series(1, 1234)")
    backup = ["python", "-m", "runtime", "pitr", "backup", "--type", "full"]
    # the sidecar may be taking its own first backup: pgBackRest's lock refuses a second
    wait_for(
        "a full backup of our own",
        lambda: _retry_while_locked(exec_in(stack.client, runtime, backup)),
        timeout=300,
        interval=2,
    )
    _sql(stack, "INSERT INTO drill_facts SELECT generate_series(1235, 1300)")  # WAL, not backup

    code, uid = exec_in(stack.client, runtime, ["id", "-u"])
    assert (code, uid.strip()) == (0, "999")
    # PID 1 is the image's tini, which reaps what a drill orphans
    assert exec_in(stack.client, runtime, ["cat", "/proc/1/comm"])[1].strip() == "tini"
    code, out = exec_in(
        stack.client, runtime, ["python", "-m", "runtime", "pitr", "drill", "--json"]
    )
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    print("drill:", json.dumps(result))
    assert result["success"] is True and result["error"] is None
    assert result["counts"] == {"drill_facts": {"primary": 1300, "copy": 1300}}
    # what RestoreDrillRpoHigh allows: archive_timeout + 30 s
    assert 0 <= result["rpo_seconds"] <= ARCHIVE_TIMEOUT + 30
    assert 0 < result["rto_seconds"] <= result["duration_seconds"]

    seen = _metrics(engine, stack)
    assert seen["runtime_pitr_drill_last_success"] == 1
    assert seen["runtime_pitr_drill_rto_seconds"] == pytest.approx(result["rto_seconds"])
    assert seen["runtime_pitr_drill_rpo_seconds"] == pytest.approx(result["rpo_seconds"])
    assert seen["runtime_pitr_drill_failures_total"] == 0

    entries, owner = _scratch(stack)
    assert entries <= KEPT_FILES, f"the drill left {entries - KEPT_FILES} in {SCRATCH}"
    assert owner == "owner 999 700"
    code, out = exec_in(stack.client, runtime, ["python", "-c", STRAYS])
    assert (code, out.strip()) == (0, "[]"), "a process of the drill is still running"

    # a restarted sidecar still shows the drill: RestoreDrillMissing stays quiet
    stack.api.restart(runtime, timeout=30)
    wait_for(
        "the restarted sidecar to be healthy",
        lambda: state(stack.client, runtime).get("Health", {}).get("Status") == "healthy",
        timeout=120,
        interval=1,
    )
    after = _metrics(engine, stack)
    for name in (
        "runtime_pitr_drill_last_success",
        "runtime_pitr_drill_last_success_timestamp_seconds",
        "runtime_pitr_drill_rto_seconds",
        "runtime_pitr_drill_rpo_seconds",
        "runtime_pitr_drill_enabled_since_timestamp_seconds",
    ):
        assert after[name] == seen[name], name
