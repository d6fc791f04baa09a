"""The dev stack's recorded containers, applied to a real engine: start order, uploads,
secrecy and network isolation, read back from the engine (one bring-up for the module)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.engine.applier import Applier, ApplyError
from tests.engine.daemon import Engine
from tests.engine.observe import exec_in, lifecycles, read_file, wait_for
from tests.stack_harness import (
    SECRET_SIG,
    SIG_KEY,
    StackRun,
    secret_uploads,
    stack_run,
    unwrap,
)

# The first test of a session also waits for the images' builds (tests/engine/conftest.py).
pytestmark = pytest.mark.timeout(1800)


LISTENER_PORT = 18089  # a listener in the engine's namespace, outside every container network


@pytest.mark.req("UT-INFRA-01.1")
def test_no_container_is_created_before_its_dependencies_report_healthy(
    dev_stack: Applier,
) -> None:
    client = dev_stack.client
    life = lifecycles(client, dev_stack.applied_at)
    checked = 0
    for service, deps in dev_stack.plan.deps.items():
        created = life[dev_stack.container(service)].created
        assert created is not None, f"{service}: no create event"
        for dep in deps:
            dep_life = life[dev_stack.container(dep)]
            gate = dep_life.healthy if dev_stack.waits(dep) else dep_life.started
            assert gate, f"{dep} never reported {'healthy' if dev_stack.waits(dep) else 'started'}"
            assert created >= gate[0], (
                f"{service} was created {gate[0] - created:.3f}s before its dependency {dep} "
                "reported healthy"
            )
            checked += 1
    assert checked >= 10, "the dev records should have container dependencies to check"
    # and every waited-on service did become healthy, by the health check its record declares
    for service in dev_stack.plan.containers:
        if dev_stack.waits(service):
            assert life[dev_stack.container(service)].healthy, f"{service} never healthy"
    report = {}
    for s in dev_stack.plan.order():
        one = life[dev_stack.container(s)]
        if dev_stack.waits(s) and one.created is not None:
            report[s] = round(one.healthy[0] - one.created, 2)
    print("create -> healthy (s):", json.dumps(report))


@pytest.mark.req("UT-INFRA-01.1")
def test_the_health_check_start_interval_reaches_the_engine(dev_stack: Applier) -> None:
    """start_interval reached the engine (Docker 20.10 drops it; this engine keeps it)."""
    config = dev_stack.api.inspect_container(dev_stack.container("redis"))["Config"]
    assert config["Healthcheck"]["StartInterval"] == 500_000_000


def test_a_waited_record_without_a_health_check_fails_the_apply(
    engine: Engine, dev_stack: Applier
) -> None:
    """The guard behind the start order: `wait` on a container with no health check is an
    error, never a silent pass (the record broken on purpose: Redis without its check)."""
    broken = copy.deepcopy(dev_stack.plan.run)
    redis = broken.containers()["redis"].inputs
    del redis["healthcheck"], redis["ports"]  # (ports: the running stack holds 6379)
    others = [s for s in broken.containers() if s != "redis"]
    applier = Applier(engine.client(), broken, omit=others, prefix="broken-")
    try:
        with pytest.raises(ApplyError, match="redis: `wait` is set but the container has no"):
            applier.up()
    finally:
        applier.down(grace=1)


def _uploads(run: StackRun, service: str) -> list[dict[str, object]]:
    """A service's uploads as recorded, each with whether its content is a secret."""

    def is_secret(value: object) -> bool:
        return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG

    recorded = run.workloads()[service].inputs.get("uploads", [])
    all_secret = is_secret(recorded)
    found = []
    for upload in unwrap_once(recorded):
        secret = all_secret or is_secret(upload) or is_secret(unwrap_once(upload).get("content"))
        found.append({**unwrap(upload), "secret": secret})
    return found


def unwrap_once(value: Any) -> Any:
    """`value` without an outer secret marker (inner ones kept)."""
    if isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG:
        return value["value"]
    return value


def test_uploaded_files_land_with_the_declared_owner_mode_and_content(dev_stack: Applier) -> None:
    """Compared through locals and digests only, so that a failure never prints a secret."""
    run = dev_stack.plan.run
    checked = 0
    for service in dev_stack.plan.containers:
        for upload in _uploads(run, service):
            path = str(upload["file"])
            header, content = read_file(dev_stack.client, dev_stack.container(service), path)
            where = f"{service}:{path}"
            expected = hashlib.sha256(str(upload["content"]).encode()).hexdigest()
            landed = hashlib.sha256(content).hexdigest()
            assert landed == expected, f"{where}: content differs"
            owner, group = int(str(upload.get("owner", 0))), int(str(upload.get("group", 0)))
            mode = int(str(upload.get("permissions", "0644")), 8)
            uid, gid, landed_mode = header.uid, header.gid, header.mode & 0o7777
            assert (uid, gid) == (owner, group), f"{where}: owner {uid}:{gid}"
            assert landed_mode == mode, f"{where}: mode {oct(landed_mode)}"
            secret = bool(upload["secret"])
            if secret and "permissions" in upload:
                assert landed_mode & 0o077 == 0, f"{where}: a secret readable by others"
            checked += 1
    assert checked >= 10


def test_the_postgres_secrets_are_readable_by_postgres_alone(dev_stack: Applier) -> None:
    """pgBackRest's configuration and the replication password: uid 999 (postgres), 0600."""
    name = dev_stack.container("postgres")
    for path in ("/etc/pgbackrest/pgbackrest.conf", "/run/secrets/replication-password"):
        header, _ = read_file(dev_stack.client, name, path)
        assert (header.uid, header.gid, header.mode & 0o7777) == (999, 999, 0o600), path
    code, out = exec_in(
        dev_stack.client, name, ["cat", "/etc/pgbackrest/pgbackrest.conf"], user="nobody"
    )
    assert code != 0 and "Permission denied" in out


def test_each_secret_file_belongs_to_its_reader_and_the_service_works(
    dev_stack: Applier,
) -> None:
    """Every upload holding a secret (found by content) lands with its declared owner and a
    closed mode, its reader's uid:gid (the upstream image's, which the stand-ins run as) can
    read it and another uid cannot; and each service works with it (docs/secret-files.md).
    Compared through digests, so that a failure never prints a secret."""
    client, checked, undeclared = dev_stack.client, [], []
    for service, upload in secret_uploads(dev_stack.plan.run):
        if service not in dev_stack.plan.containers:
            continue
        path, where = str(upload["file"]), f"{service}:{upload['file']}"
        if upload.get("owner") is None:
            undeclared.append(where)
            continue
        name = dev_stack.container(service)
        header, content = read_file(client, name, path)
        owner, group = int(upload["owner"]), int(upload["group"])
        assert (header.uid, header.gid) == (owner, group), f"{where}: {header.uid}:{header.gid}"
        assert header.mode & 0o7777 == int(upload["permissions"], 8), f"{where}: {header.mode:o}"
        assert header.mode & 0o037 == 0, f"{where}: mode {header.mode & 0o7777:o} is open"
        # the declared owner is the uid the service's process runs as (pid 1: the server
        # itself, after its entrypoint dropped root), its group too unless the mode gives
        # the group nothing
        _, status = exec_in(client, name, ["cat", "/proc/1/status"])
        ids = dict(re.findall(r"^(Uid|Gid):\s+(\d+)", status, re.MULTILINE))
        runs_as = int(ids["Uid"]), int(ids["Gid"])
        by_owner = owner == runs_as[0]
        by_group = group == runs_as[1] and header.mode & 0o040  # root's, read by its group
        assert by_owner or by_group, f"{where}: {owner}:{group}, the service runs as {runs_as}"
        assert by_group or group == runs_as[1] or header.mode & 0o070 == 0, f"{where}: {group}"
        code, out = exec_in(client, name, ["cat", path], user="{}:{}".format(*runs_as))
        same = hashlib.sha256(out.encode()).digest() == hashlib.sha256(content).digest()
        assert code == 0 and same, f"{where}: its reader {runs_as} cannot read it"
        code, out = exec_in(client, name, ["cat", path], user="12345:12345")
        assert code != 0 and "Permission denied" in out, f"{where}: another uid reads it"
        checked.append(where)
    assert undeclared == [], undeclared  # docs/secret-files.md
    assert len(checked) >= 9, checked

    # Redis read requirepass from its 0400 redis.conf: no password, no answer; AUTH works
    redis = dev_stack.container("redis")
    _, out = exec_in(client, redis, ["redis-cli", "ping"])
    assert "NOAUTH" in out, "redis answered a client without the password"
    code, out = exec_in(
        client,
        redis,
        ["sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" redis-cli ping'],
    )
    assert code == 0 and out.strip() == "PONG", out
    # the exporters read their password files and scrape their targets
    for url, up in (
        ("http://redis-exporter:9121/metrics", "redis_up 1"),
        ("http://postgres-exporter:9187/metrics", "pg_up 1"),
    ):
        code, out = _fetch(dev_stack, "prometheus", url)
        assert code == 0 and up in out.splitlines(), f"{url}: no {up!r}"
    # the sidecar read app_config.json (0400, uid 999): it reaches PostgreSQL and Redis
    code, out = exec_in(
        client,
        dev_stack.container("runtime"),
        [
            "python",
            "-c",
            "import urllib.request; "
            "print(urllib.request.urlopen('http://127.0.0.1:9180/healthz', timeout=10)"
            ".read().decode())",
        ],
    )
    assert code == 0, out
    report = json.loads(out)
    statuses = {s["service_name"]: s["status"] for s in report["services"]}
    assert statuses.get("postgres") == statuses.get("redis") == "running", statuses


def test_no_secret_appears_in_docker_inspect(dev_stack: Applier) -> None:
    run = dev_stack.plan.run
    secrets = [s for s in run.generated_secrets if len(s) >= 8]
    assert secrets, "the dev run generates passwords and a key"
    for service in dev_stack.plan.containers:
        inspected = json.dumps(dev_stack.api.inspect_container(dev_stack.container(service)))
        for secret in secrets:
            first_line = secret.strip().splitlines()[0] if "\n" in secret else secret
            needle = secret if "\n" not in secret else secret.strip().splitlines()[1]
            leaked = needle in inspected  # not asserted directly: a failure must not print it
            assert not leaked, f"{service}: a secret starting {first_line[:4]!r} in inspect"


# -- isolation (ET-INFRA-01.2) --------------------------------------------------------------


@pytest.fixture(scope="module")
def listener(engine: Engine) -> Iterator[int]:
    """An HTTP server in the engine's namespace on every address: what "outside" looks like
    to a container (the namespace has no other way out)."""
    server = engine.popen(
        [sys.executable, "-m", "http.server", str(LISTENER_PORT), "--bind", "0.0.0.0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{LISTENER_PORT}/')"
    try:
        wait_for(
            "the listener",
            lambda: engine.run([sys.executable, "-c", probe], check=False).returncode == 0,
            timeout=20,
        )
        yield LISTENER_PORT
    finally:
        server.terminate()
        server.wait(timeout=10)


def _gateway(dev_stack: Applier, network: str) -> str:
    net = dev_stack.client.networks.get(dev_stack.network_names()[network])
    return str(net.attrs["IPAM"]["Config"][0]["Gateway"])


def _fetch(dev_stack: Applier, service: str, url: str) -> tuple[int, str]:
    return exec_in(
        dev_stack.client, dev_stack.container(service), ["timeout", "5", "wget", "-q", "-O-", url]
    )


@pytest.mark.req("ET-INFRA-01.2")
def test_backend_peers_reach_each_other_by_alias(dev_stack: Applier) -> None:
    # prometheus is on the backend network only
    for url in (
        "http://alertmanager:9093/-/ready",
        "http://postgres-exporter:9187/metrics",
        "http://redis-exporter:9121/metrics",
        "http://nginx:8081/healthz",
    ):
        code, out = _fetch(dev_stack, "prometheus", url)
        assert code == 0, f"prometheus -> {url}: {out}"


@pytest.mark.req("ET-INFRA-01.2")
def test_a_backend_only_container_cannot_connect_outside(dev_stack: Applier, listener: int) -> None:
    outside = f"http://{_gateway(dev_stack, 'platform-docker-edge')}:{listener}/"
    # the control: a container on the edge network reaches the listener
    code, out = _fetch(dev_stack, "alertmanager", outside)
    assert code == 0, f"the listener should answer the edge network: {out}"
    code, out = _fetch(dev_stack, "prometheus", outside)
    assert code != 0, "prometheus, on the internal backend network, reached outside"
    _, routes = exec_in(
        dev_stack.client, dev_stack.container("prometheus"), ["cat", "/proc/net/route"]
    )
    destinations = [line.split()[1] for line in routes.splitlines()[1:] if line.strip()]
    assert "00000000" not in destinations, "a default route out of the backend network"


@pytest.mark.req("ET-INFRA-01.2")
def test_in_the_prod_records_only_nginx_publishes_ports() -> None:
    run = stack_run("prod")
    published = {
        service: unwrap(record.inputs).get("ports", [])
        for service, record in run.containers().items()
    }
    assert {s for s, ports in published.items() if ports} == {"nginx"}
