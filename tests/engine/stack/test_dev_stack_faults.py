"""Faults on the dev stack's containers on a real engine: a crashed main process, a container
past its memory limit, a replaced container, a stop of the whole stack. The tests run in file
order on one bring-up; each leaves the stack healthy for the next, the last stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, cast

import pytest

from tests.engine.applier import Applier
from tests.engine.daemon import Engine
from tests.engine.observe import exec_in, lifecycles, state, wait_for

# The first test of a session also waits for the images' builds (tests/engine/conftest.py).
pytestmark = pytest.mark.timeout(1800)

# Polls the sidecar's /healthz from the engine's namespace and prints each new status of one
# service: running, then (after the kill) stopped or error, then running again.
POLLER = """
import json, sys, time, urllib.error, urllib.request
url, service, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
seen = []
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        body = urllib.request.urlopen(url, timeout=2).read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        time.sleep(0.05)
        continue
    report = json.loads(body)["services"]
    status = next(s["status"] for s in report if s["service_name"] == service)
    if not seen or seen[-1] != status:
        seen.append(status)
        print(status, flush=True)
    if len(seen) >= 3 and status == "running":
        break
    time.sleep(0.05)
"""


def psql(stack: Applier, sql: str) -> str:
    """Run SQL as the app user over the container's own socket; its unaligned output."""
    code, out = exec_in(
        stack.client,
        stack.container("postgres"),
        [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "app",
            "-d",
            "app",
            "-c",
            sql,
        ],
        user="postgres",
    )
    assert code == 0, out
    return out.strip()


def redis_cli(stack: Applier, *args: str) -> str:
    code, out = exec_in(
        stack.client,
        stack.container("redis"),
        [
            "sh",
            "-c",
            'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" redis-cli "$@"',
            "-",
            *args,
        ],
    )
    assert code == 0, out
    return out.strip()


def healthy(stack: Applier, service: str) -> bool:
    current = state(stack.client, stack.container(service))
    return bool(current["Running"] and current.get("Health", {}).get("Status") == "healthy")


@pytest.fixture(scope="module")
def stack(dev_stack: Applier) -> Iterator[Applier]:
    psql(dev_stack, "CREATE TABLE IF NOT EXISTS engine_facts (id int PRIMARY KEY, note text)")
    yield dev_stack


def _sidecar_url(stack: Applier) -> str:
    networks = stack.api.inspect_container(stack.container("runtime"))["NetworkSettings"]
    edge = stack.network_names()["platform-docker-edge"]
    return f"http://{networks['Networks'][edge]['IPAddress']}:9180/healthz"


@pytest.mark.req("UT-INFRA-01.2")
@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_a_killed_main_process_is_restarted_and_the_sidecar_sees_it_go_and_return(
    engine: Engine, stack: Applier, service: str
) -> None:
    name = stack.container(service)
    before = stack.api.inspect_container(name)["RestartCount"]
    poller = engine.popen(
        [sys.executable, "-c", POLLER, _sidecar_url(stack), service, "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = cast(IO[str], poller.stdout)  # text=True
        first = lines.readline().strip()
        if not first:
            poller.wait(timeout=30)
            errors = cast(IO[str], poller.stderr).read()
            raise AssertionError(f"the poller of the sidecar's /healthz failed: {errors}")
        assert first == "running", f"the sidecar saw {service} {first} before the kill"
        since = time.time()
        os.kill(engine.pid_of(name), signal.SIGKILL)  # a crash, not `docker kill`
        wait_for(
            f"{service} restarted and healthy",
            lambda: (
                stack.api.inspect_container(name)["RestartCount"] > before
                and healthy(stack, service)
            ),
            timeout=90,
        )
        seen = ["running", *(line.strip() for line in lines)]
    finally:
        poller.kill()
        poller.wait()
    final = state(stack.client, name)
    assert final["Running"] and not final["OOMKilled"]
    assert seen[0] == "running" and seen[-1] == "running", seen
    assert set(seen[1:-1]) & {"stopped", "error"}, f"the sidecar never saw {service} down: {seen}"
    life = lifecycles(stack.client, since)[name]
    assert life.died and life.started and life.started[-1] > life.died[0]
    print(
        f"{service}: sidecar statuses {seen}; killed -> healthy "
        f"{life.healthy[-1] - since if life.healthy else float('nan'):.2f}s"
    )


@pytest.mark.req("ET-INFRA-01.1")
def test_a_container_past_its_memory_limit_is_oom_killed_and_restarted(stack: Applier) -> None:
    """A 400 MB string (one SETRANGE) in Redis, limited to 384 MB with no swap: the engine
    kills redis-server, restarts it, and the other services go on serving."""
    name = stack.container("redis")
    limit = stack.api.inspect_container(name)["HostConfig"]["Memory"]
    assert limit == 384 * 1024 * 1024
    before = stack.api.inspect_container(name)["RestartCount"]
    since = time.time()
    exec_in(
        stack.client,
        name,
        [
            "sh",
            "-c",
            'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" '
            "redis-cli SETRANGE engine:oom 400000000 x",
        ],
    )
    wait_for(
        "redis OOM-killed, restarted and healthy",
        lambda: (
            stack.api.inspect_container(name)["RestartCount"] > before and healthy(stack, "redis")
        ),
        timeout=90,
    )
    life = lifecycles(stack.client, since)[name]
    assert life.oom, "no oom event for redis"
    assert redis_cli(stack, "EXISTS", "engine:oom") == "0"
    for other in ("postgres", "prometheus", "alertmanager", "runtime"):
        assert healthy(stack, other), f"{other} stopped serving while redis was OOM-killed"
        assert (
            stack.api.inspect_container(stack.container(other))["RestartCount"] == 0
            or other == "postgres"
        )
    assert psql(stack, "SELECT 1") == "1"


@pytest.mark.req("PT-INFRA-01.1")
def test_replaced_postgres_and_redis_containers_keep_every_row_and_key(stack: Applier) -> None:
    """What `pulumi up` does when an input changes: the provider deletes the container, then
    creates it again from the record (the volumes are resources of their own)."""
    psql(
        stack,
        "INSERT INTO engine_facts SELECT g, 'row ' || g FROM generate_series(1, 500) g "
        "ON CONFLICT DO NOTHING",
    )
    for i in range(100):
        redis_cli(stack, "SET", f"engine:key:{i}", f"value {i}")
    old = {s: stack.api.inspect_container(stack.container(s))["Id"] for s in ("postgres", "redis")}
    for service in ("postgres", "redis"):
        stack.remove(service)
        stack.create(service)
    for service in ("postgres", "redis"):
        assert stack.api.inspect_container(stack.container(service))["Id"] != old[service]
    assert psql(stack, "SELECT count(*) FROM engine_facts WHERE id <= 500") == "500"
    assert redis_cli(stack, "GET", "engine:key:99") == "value 99"
    assert redis_cli(stack, "EVAL", "return #redis.call('keys', 'engine:key:*')", "0") == "100"


@pytest.mark.req("UT-INFRA-01.3")
def test_a_stop_in_reverse_order_loses_no_committed_row_and_needs_no_recovery(
    stack: Applier,
) -> None:
    psql(
        stack, "INSERT INTO engine_facts SELECT g, 'stop ' || g FROM generate_series(1001, 2000) g"
    )
    redis_cli(stack, "SET", "engine:before-stop", "kept")
    since = time.time()
    stack.stop_all()
    life = lifecycles(stack.client, since)
    order = [s for s in reversed(stack.plan.order()) if not stack.one_shot(s)]
    died = [life[stack.container(s)].died[0] for s in order]
    assert died == sorted(died), "the containers did not stop in reverse dependency order"
    pg = state(stack.client, stack.container("postgres"))
    assert pg["ExitCode"] == 0 and not pg["OOMKilled"], pg
    restarted = time.time()
    stack.start_all()
    logs = stack.api.logs(stack.container("postgres"), since=int(restarted)).decode()
    assert "database system was shut down at" in logs, logs[-2000:]
    assert "not properly shut down" not in logs and "automatic recovery" not in logs, logs[-2000:]
    assert psql(stack, "SELECT count(*) FROM engine_facts WHERE id > 1000") == "1000"
    assert redis_cli(stack, "GET", "engine:before-stop") == "kept"
