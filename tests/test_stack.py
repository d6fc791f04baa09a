"""The stack under Pulumi's mocks: services, edges, ports, networks, secrets, bad config."""

from __future__ import annotations

import json
import re
from graphlib import TopologicalSorter
from pathlib import Path

import pytest

from components.config import SETTINGS, ConfigError
from tests.stack_harness import (
    PROD_CONFIG,
    PROD_PRIVATE_KEY,
    Registration,
    StackRun,
    plain_strings,
    run_stack,
    stack_run,
    unwrap,
    uploads,
)

STACKS = ("dev", "prod")
CORE = {"postgres", "redis", "alertmanager", "prometheus", "grafana", "nginx"}
EXPORTERS = {
    "postgres-exporter",
    "redis-exporter",
    "nginx-exporter",
    "node-exporter",
    "cadvisor",
    "blackbox",
}
LOGS_TRACES = {"loki", "tempo", "alloy"}
SERVICES = CORE | EXPORTERS | LOGS_TRACES | {"runtime"}
REPLICAS = {"dev": set(), "prod": {"postgres-replica-1"}}  # postgresReplicas: dev 0, prod 1
# Scratch and distroless images have no shell to run a probe in; Prometheus's `up` watches
# them instead.
NO_SHELL = {"nginx-exporter", "tempo"}
# the first volume of each stateful service (its own data)
STATEFUL = {
    "runtime": "/backups",
    "postgres": "/var/lib/postgresql/data",
    "postgres-replica-1": "/var/lib/postgresql/data",
    "redis": "/data",
    "alertmanager": "/alertmanager",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
    "loki": "/loki",
    "tempo": "/var/tempo",
    "alloy": "/var/lib/alloy/data",
}
# Capabilities each image's entrypoint needs back after every one is dropped: postgres and
# redis chown their data as root then switch user; nginx binds 80/443 and its workers switch
# user; prometheus, alertmanager and grafana run as non-root users and need none.
ADDED_CAPABILITIES = {
    "postgres": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    "postgres-replica-1": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    "redis": ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"],
    "nginx": ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"],
    "cadvisor": ["DAC_READ_SEARCH", "SYS_PTRACE"],
}  # every other service (prometheus, grafana, exporters, the runtime...) adds none
# The start order, stated once: the services each service waits for (healthy, or created for
# one without a health check) before its container is created. Only what a service needs to
# start correctly; docs/start-order.md says why each edge is kept and each former one went.
# One-shot containers (a configuration's apply and reload, the migration step) are checked
# where they are built (tests/test_config_reload.py, tests/test_migration_step.py).
WAITS_FOR: dict[str, set[str]] = {
    "postgres": set(),
    "postgres-replica-1": {"postgres"},  # pg_basebackup from the primary through its slot
    "redis": set(),
    "alertmanager": set(),
    "prometheus": set(),  # a target still starting is an `up 0` series, inside every `for:`
    "grafana": set(),  # its data sources connect on the first query
    "nginx": set(),  # upstreams resolved per request: a 502 until one is up
    "loki": set(),
    "tempo": set(),
    "alloy": {"loki", "tempo"},
    "postgres-exporter": {"postgres"},
    "redis-exporter": {"redis"},
    "nginx-exporter": {"nginx"},
    # a failed probe is an availability SLI sample: probing before nginx answers would page
    "blackbox": {"nginx"},
    "node-exporter": set(),
    "cadvisor": set(),
    "runtime": {"postgres", "redis", "alloy"},
}
# The edges the start order had before it kept only what each service needs (2026-12-05).
FORMER_EDGES = (
    ("postgres", "prometheus"),
    ("redis", "prometheus"),
    ("alertmanager", "prometheus"),
    ("prometheus", "grafana"),
    ("loki", "grafana"),
    ("tempo", "grafana"),
    ("grafana", "nginx"),
    ("prometheus", "nginx"),
    ("alertmanager", "nginx"),
)


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest) -> StackRun:
    return stack_run(request.param)


def start_order(run: StackRun) -> list[str]:
    graph = {s: run.container_dependencies(s) for s in run.containers()}
    return list(TopologicalSorter(graph).static_order())


def service_waits(run: StackRun) -> dict[str, set[str]]:
    """Each service -> the services (not one-shots) its container waits for."""
    one_shots = set(run.one_shots())
    return {s: run.container_dependencies(s) - one_shots for s in run.containers()}


def order_differences(graph: dict[str, set[str]]) -> list[str]:
    """How `graph` (service -> what it waits for) differs from WAITS_FOR."""
    found = []
    for service, deps in sorted(graph.items()):
        want = WAITS_FOR[service] & set(graph)  # alloy exists only with logsTraces
        found += [f"{service} does not wait for {d}" for d in sorted(want - deps)]
        found += [f"{service} waits for {d} too" for d in sorted(deps - want)]
    return found


# -- services -----------------------------------------------------------------------------


@pytest.mark.req("UT-INFRA-01.1", "UT-INFRA-01.2")
def test_every_service_runs_pinned_healthchecked_and_restarting(run: StackRun) -> None:
    containers = run.containers()
    assert set(containers) == SERVICES | REPLICAS[run.stack]
    images = {unwrap(r.inputs)["name"] for r in run.of_type("docker:index/remoteImage:RemoteImage")}
    # built from this repository: the runtime sidecar, and PostgreSQL (primary and replicas)
    built = {unwrap(r.inputs)["imageName"] for r in run.of_type("docker:index/image:Image")}
    assert {b.split(":")[0] for b in built} == {"data-platform-runtime", "data-platform-postgres"}
    images |= built
    assert len(images) == len(SERVICES)
    for image in images:
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), image
    for service, reg in containers.items():
        inputs = unwrap(reg.inputs)
        if service == "runtime":
            assert re.fullmatch(r"data-platform-runtime:[0-9a-f]{16}", inputs["image"])
        elif service.startswith("postgres") and service != "postgres-exporter":
            assert re.fullmatch(r"data-platform-postgres:[0-9a-f]{16}", inputs["image"])
        else:
            assert inputs["image"].startswith("sha256:"), (
                f"{service}: image must be RemoteImage.image_id"
            )
        labels = {x["label"]: x["value"] for x in inputs["labels"]}
        if service in NO_SHELL:
            assert "healthcheck" not in inputs and inputs["wait"] is False, service
            assert labels["platform.health"] == "prometheus-up"
            continue
        assert labels["platform.health"] == "docker"
        health = inputs["healthcheck"]
        assert health["tests"][0] == "CMD" and len(health["tests"]) > 1, service
        assert health["retries"] >= 1 and health["timeout"].endswith("s"), service
        assert inputs["wait"] is True, service
        assert inputs["waitTimeout"] >= 30, service
        assert inputs["restart"] == "unless-stopped", service
        assert inputs["memory"] > 0 and inputs["memorySwap"] == inputs["memory"], service
        assert inputs["logDriver"] == "json-file" and inputs["logOpts"]["max-size"], service
        assert "no-new-privileges:true" in inputs["securityOpts"], service
        assert inputs["destroyGraceSeconds"] >= 30, service


def test_containers_drop_every_capability_and_add_back_only_what_the_image_needs(
    run: StackRun,
) -> None:
    for service, reg in run.containers().items():
        capabilities = unwrap(reg.inputs)["capabilities"]
        assert capabilities["drops"] == ["ALL"], service
        assert capabilities.get("adds", []) == ADDED_CAPABILITIES.get(service, []), service


def test_components_are_typed_and_own_their_children(run: StackRun) -> None:
    expected = {
        "postgres": "infra:postgres:Postgres",
        "redis": "infra:redis:Redis",
        "alertmanager": "infra:alertmanager:Alertmanager",
        "prometheus": "infra:prometheus:Prometheus",
        "grafana": "infra:grafana:Grafana",
        "nginx": "infra:nginx:Nginx",
        "loki": "infra:loki:Loki",
        "tempo": "infra:tempo:Tempo",
        "alloy": "infra:alloy:Alloy",
    }
    for service, reg in run.containers().items():
        expected["runtime"] = "infra:runtime:RuntimeSidecar"
        expected["postgres-replica-1"] = "infra:postgres:PostgresReplica"
        assert run.component_of(reg) == expected.get(service, "infra:exporters:Exporter")
    for reg in run.registrations:
        if reg.custom:
            assert reg.parent in run.by_urn, f"{reg.type} {reg.name} has no component parent"


def test_every_service_component_is_a_direct_child_of_the_platform(run: StackRun) -> None:
    """URNs carry the parent chain: moving a service under another component replaces it."""
    (platform,) = run.of_type("infra:stack:DataPlatform")
    for service, reg in run.containers().items():
        component = run.by_urn[reg.parent]
        assert component.parent == platform.urn, service
        assert component.name == f"platform-{service}", service
    assert {r.parent for r in run.of_type("infra:docker:DockerPlatform")} == {platform.urn}


def test_restart_attempts_apply_with_on_failure() -> None:
    run = run_stack("dev", {"restartPolicy": "on-failure", "restartAttempts": 5})
    for reg in run.containers().values():
        inputs = unwrap(reg.inputs)
        assert (inputs["restart"], inputs["maxRetryCount"]) == ("on-failure", 5)


# -- order of start and shutdown ------------------------------------------------------------


@pytest.mark.req("UT-INFRA-01.1", "PT-INFRA-01.1")
def test_each_service_waits_for_exactly_what_it_needs_to_start(run: StackRun) -> None:
    assert order_differences(service_waits(run)) == []
    order = start_order(run)
    position = {s: i for i, s in enumerate(order)}
    for service, deps in service_waits(run).items():
        assert all(position[d] < position[service] for d in deps), order


def test_no_waited_hop_is_left_between_postgres_and_the_monitoring_or_the_edge() -> None:
    """The deployment's critical path is PostgreSQL's first start, then its dependents: the
    admin UIs and nginx start with it, not after it (docs/engine-stack.md's measurement)."""
    waits = service_waits(stack_run("dev"))
    for service in ("alertmanager", "prometheus", "grafana", "nginx"):
        assert waits[service] == set(), service


@pytest.mark.parametrize(
    "edge",
    [(d, s) for s, deps in WAITS_FOR.items() for d in sorted(deps)],
    ids=lambda e: f"{e[0]}->{e[1]}",
)
def test_removing_any_edge_is_caught(edge: tuple[str, str]) -> None:
    run = stack_run("prod")
    graph = service_waits(run)
    graph[edge[1]].discard(edge[0])
    assert order_differences(graph) == [f"{edge[1]} does not wait for {edge[0]}"]


@pytest.mark.parametrize("edge", FORMER_EDGES, ids=lambda e: f"{e[0]}->{e[1]}")
def test_restoring_a_former_edge_is_caught(edge: tuple[str, str]) -> None:
    graph = service_waits(stack_run("dev"))
    graph[edge[1]].add(edge[0])
    assert order_differences(graph) == [f"{edge[1]} waits for {edge[0]} too"]


@pytest.mark.req("UT-INFRA-01.3")
def test_shutdown_order_is_the_reverse(run: StackRun) -> None:
    """Pulumi deletes a resource only after everything that depends on it."""
    stop = list(reversed(start_order(run)))
    position = {s: i for i, s in enumerate(stop)}
    for service, deps in service_waits(run).items():
        for dep in deps:
            assert position[service] < position[dep], (service, dep, stop)


@pytest.mark.req("PT-INFRA-01.1")
def test_data_lives_in_named_volumes(run: StackRun) -> None:
    volumes = {r.urn: r for r in run.of_type("docker:index/volume:Volume")}
    for service, path in STATEFUL.items():
        if service not in run.containers():
            continue  # a replica of prod
        reg = run.containers()[service]
        mounts = unwrap(reg.inputs)["volumes"]
        assert mounts[0]["containerPath"] == path, service
        if service not in ("postgres", "runtime"):  # those two share volumes (test below)
            # alloy also reads the host's container logs, read-only; a reloaded service its
            # configuration volume, read-only (docs/changes.md)
            data = [m for m in mounts if not m.get("hostPath") and not m.get("readOnly")]
            assert len(data) == 1, service
        # the volume is a resource of its own, so replacing the container keeps the data
        assert any(v.parent == reg.parent for v in volumes.values()), service
    # nginx keeps no data: its one volume holds its configuration, mounted read-only
    (nginx_mount,) = unwrap(run.containers()["nginx"].inputs)["volumes"]
    assert (nginx_mount["containerPath"], nginx_mount["readOnly"]) == ("/etc/nginx", True)
    for service in EXPORTERS:  # exporters keep no data; host views are read-only
        mounts = unwrap(run.containers()[service].inputs).get("volumes", [])
        assert all(m.get("readOnly") and m.get("hostPath") for m in mounts), service
    scratch = ("-socket", "-config", "-drill")
    persistent = {v.protect for v in volumes.values() if not v.name.endswith(scratch)}
    assert persistent == ({False} if run.stack == "dev" else {True})
    # the socket directory the sidecar shares, the generated configuration and the drills'
    # scratch are not data: never protected
    assert {v.protect for v in volumes.values() if v.name.endswith(scratch)} == {False}


# -- ports and networks ---------------------------------------------------------------------


def _published(run: StackRun) -> dict[str, list[tuple[str, int, int]]]:
    return {
        s: [(p["ip"], p["internal"], p["external"]) for p in unwrap(r.inputs).get("ports", [])]
        for s, r in run.containers().items()
    }


@pytest.mark.req("ET-INFRA-01.2")
def test_prod_publishes_only_nginx_80_and_443() -> None:
    published = _published(stack_run("prod"))
    assert published.pop("nginx") == [("0.0.0.0", 80, 80), ("0.0.0.0", 443, 443)]
    assert all(ports == [] for ports in published.values()), published


@pytest.mark.req("ET-INFRA-01.2")
def test_dev_publishes_data_ports_on_loopback_only() -> None:
    published = _published(stack_run("dev"))
    assert published.pop("postgres") == [("127.0.0.1", 5432, 5432)]
    assert published.pop("redis") == [("127.0.0.1", 6379, 6379)]
    assert published.pop("nginx") == [("0.0.0.0", 80, 8080), ("0.0.0.0", 443, 8443)]
    assert all(ports == [] for ports in published.values()), published


@pytest.mark.req("ET-INFRA-01.2")
def test_backend_network_is_internal_and_only_the_edge_faces_out(run: StackRun) -> None:
    networks = {
        unwrap(r.inputs)["internal"]: r for r in run.of_type("docker:index/network:Network")
    }
    assert set(networks) == {True, False}
    backend_name = f"{networks[True].name}-"
    edge_name = f"{networks[False].name}-"
    on: dict[str, set[str]] = {}
    for service, reg in run.containers().items():
        names = {n["name"] for n in unwrap(reg.inputs)["networksAdvanced"]}
        on[service] = {"backend" for n in names if n.startswith(backend_name)} | {
            "edge" for n in names if n.startswith(edge_name)
        }
        assert "backend" in on[service], service
    published = {s for s, ports in _published(run).items() if ports}
    # nginx serves; the others send notifications (and the runtime ships backups to S3);
    # with an S3 pgBackRest repository (prod), postgres pushes its WAL there
    egress = {"nginx", "grafana", "alertmanager", "runtime"}
    if run.stack == "prod":
        egress.add("postgres")
    assert {s for s, nets in on.items() if "edge" in nets} == egress | published


# -- secrets ------------------------------------------------------------------------------


def test_no_generated_secret_appears_in_plain_text(run: StackRun) -> None:
    secrets = list(run.generated_secrets)
    if run.stack == "prod":
        # every secret setting an operator gives prod (the k8s* ones belong to the k8s stack)
        secrets += [
            PROD_CONFIG[s.key] for s in SETTINGS if s.secret and not s.key.startswith("k8s")
        ]
        assert PROD_PRIVATE_KEY in secrets and PROD_CONFIG["watchdogWebhookUrl"] in secrets
        assert PROD_CONFIG["pitrS3SecretKey"] in secrets
    # includes the replication password and the pgBackRest repository's cipher passphrase
    assert len(secrets) >= 6
    for reg in run.registrations:
        for text in plain_strings(reg.inputs):
            for secret in secrets:
                assert secret not in text, f"secret in plain text in {reg.type} {reg.name}"
    for name, value in run.outputs.items():
        if name in run.secret_outputs:
            continue
        for secret in secrets:
            assert secret not in repr(value), f"secret in plain stack output {name}"
    assert "app_config" in run.secret_outputs


def test_secrets_reach_services_only_through_files(run: StackRun) -> None:
    for service, reg in run.containers().items():
        env = unwrap(reg.inputs).get("envs", [])
        assert not any("PASSWORD=" in e for e in env), (service, env)
    postgres = unwrap(run.containers()["postgres"].inputs)
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres-password" in postgres["envs"]
    grafana = unwrap(run.containers()["grafana"].inputs)
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana-admin-password" in grafana["envs"]
    # every *_FILE variable names a file that is uploaded, and its content is never plain
    for reg in run.containers().values():
        uploads = {u["file"]: u["content"] for u in unwrap(reg.inputs).get("uploads", [])}
        plain = set(plain_strings(reg.inputs.get("uploads", [])))
        for env in unwrap(reg.inputs).get("envs", []):
            name, _, path = env.partition("=")
            if name.endswith("_FILE"):
                assert path in uploads, (name, path)
                assert uploads[path] not in plain, f"{path} must be a secret"


# -- stack outputs ------------------------------------------------------------------------


def test_app_config_tells_an_application_everything(run: StackRun) -> None:
    app = run.outputs["app_config"]
    password = app["database"]["password"]
    assert app["database"]["dsn"] == f"postgresql://app:{password}@postgres:5432/app"
    assert app["redis"]["url"] == f"redis://:{app['redis']['password']}@redis:6379/0"
    assert set(app["pool"]) == {"size", "max_overflow", "timeout_seconds", "statement_timeout_ms"}
    assert app["backup"]["schedule"] == "0 2 * * *"
    assert app["endpoints"]["grafana_url"].endswith("/grafana/")
    assert ("local" in app["database"]) == (run.stack == "dev")
    assert run.outputs["public_url"] == app["endpoints"]["public_url"]


# -- bad configuration ----------------------------------------------------------------------


@pytest.mark.req("ET-INFRA-01.1")
@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("backupSchedule", "every night", "cron expression"),
        ("backupSchedule", "0 25 * * *", "cron expression"),
        ("redisMaxMemory", "512", "a size like 512mb"),
        ("redisMaxMemory", "lots", "a size like 512mb"),
        ("dbPoolSize", "0", "an integer >= 1"),
        ("dbPoolSize", "ten", "an integer"),
        ("redisEvictionPolicy", "lru", "one of noeviction, allkeys-lru"),
        ("dbPoolSzie", "10", "unknown key"),
        ("redisImage", "redis:latest", "pinned tag"),
        ("redisImage", "redis", "pinned to a tag or digest"),
        ("nginxWorkerProcesses", "0", "'auto' or an integer"),
        ("redisMaxMemory", "2gb", "less than the container limit redisMemoryMb"),
        ("postgresMaxConnections", "10", "more than dbPoolSize + dbMaxOverflow"),
    ],
)
def test_bad_config_fails_with_key_value_and_rule(key: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("dev", {key: value})
    message = str(raised.value)
    problems = message.splitlines()[1:]
    assert len(problems) == 1, message
    assert f"data-platform:{key}" in problems[0]
    assert repr(value) in problems[0] or value in problems[0]
    assert allowed in problems[0]


def test_prod_without_a_certificate_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError, match=r"pulumi config set --secret tlsPrivateKey"):
        run_stack("prod")


@pytest.mark.parametrize("key", ["alertWebhookUrl", "watchdogWebhookUrl", "tlsPrivateKey"])
def test_secret_setting_stored_in_plain_text_is_refused(key: str) -> None:
    import pulumi

    from tests.stack_harness import load_cli_config

    value = PROD_CONFIG[key]
    config = load_cli_config("dev", {key: value})
    pulumi.runtime.set_all_config(config, [])  # not marked secret
    from components.config import load_stack_config

    with pytest.raises(ConfigError, match=rf"{key}: stored in plain text") as raised:
        load_stack_config()
    assert value not in str(raised.value)


@pytest.mark.parametrize(
    "value", ["http://hc-ping.example.com/uuid-token", "hc-ping.example.com/uuid", "https://"]
)
def test_a_heartbeat_url_must_be_https_and_is_never_echoed(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("dev", {"watchdogWebhookUrl": value})
    (problem,) = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert problem == (
        "data-platform:watchdogWebhookUrl: got [secret]; "
        "allowed: an https:// URL, or empty for no heartbeat"
    )


def test_the_heartbeat_url_stays_secret_in_inputs_and_outputs() -> None:
    """Even on dev, where nothing else is secret config, the file holding it is a secret."""
    heartbeat = PROD_CONFIG["watchdogWebhookUrl"]
    run = run_stack("dev", {"watchdogWebhookUrl": heartbeat})
    alertmanager = run.one_shots()["alertmanager-config-apply"]  # its files: docs/changes.md
    assert heartbeat in json.dumps(unwrap(alertmanager.inputs))  # it is there...
    for reg in run.registrations:  # ...but never in plain text
        assert not any(heartbeat in s for s in plain_strings(reg.inputs)), reg.name
    assert heartbeat not in repr(
        {k: v for k, v in run.outputs.items() if k not in run.secret_outputs}
    )


# -- the runtime sidecar ------------------------------------------------------------------


def test_the_sidecar_runs_this_repositorys_runtime_with_the_app_config(run: StackRun) -> None:
    (image,) = [
        r for r in run.of_type("docker:index/image:Image") if r.name.endswith("runtime-image")
    ]
    build = unwrap(image.inputs)
    assert build["build"] == {"context": ".", "dockerfile": "runtime/Dockerfile"}
    assert build["skipPush"] is True
    sidecar = unwrap(run.containers()["runtime"].inputs)
    assert sidecar["command"] == ["serve", "--port", "9180"]
    assert "APP_CONFIG_FILE=/run/secrets/app_config.json" in sidecar["envs"]
    files = {u["file"]: u["content"] for u in sidecar["uploads"]}
    assert json.loads(files["/run/secrets/app_config.json"]) == run.outputs["app_config"]
    prometheus = uploads(run, "prometheus")
    assert "runtime:9180" in prometheus["/etc/prometheus/prometheus.yml"]


def _seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


@pytest.mark.parametrize("overrides", [{}, {"healthCheckTimeout": "45"}], ids=["default", "45"])
def test_dockers_probe_of_the_sidecar_waits_as_long_as_the_sidecars_own_probes(
    overrides: dict[str, str],
) -> None:
    """/healthz probes PostgreSQL then Redis, each for up to the health-check timeout; Docker
    must wait that long, or a slow but healthy sidecar is marked unhealthy."""
    run = run_stack("dev", overrides) if overrides else stack_run("dev")
    timeout = run.outputs["app_config"]["monitoring"]["health_check_timeout_seconds"]
    health = unwrap(run.containers()["runtime"].inputs)["healthcheck"]
    (client,) = re.findall(r"timeout=(\d+)\)", health["tests"][-1])
    assert 2 * timeout <= int(client) < _seconds(health["timeout"])


def test_the_sidecars_probe_accepts_a_slow_healthz(tmp_path: Path) -> None:
    """The probe command itself, against a /healthz that answers after 4 s (longer than the
    3 s it once allowed, far shorter than two 60 s probes): healthy."""
    import http.server
    import subprocess
    import sys
    import threading
    import time

    from components.runtime_sidecar import PORT, healthz_probe

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(4)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probe = healthz_probe(60)
    command = [
        sys.executable,  # the image's `python`
        *probe.command[1:-1],
        probe.command[-1].replace(f":{PORT}/", f":{server.server_port}/"),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=probe.timeout_seconds
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr


def test_the_sidecar_image_tag_follows_its_inputs(tmp_path: Path) -> None:
    from components.runtime_sidecar import source_hash

    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime/Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "runtime/requirements.txt").write_text("redis==8.1.0\n")
    (tmp_path / "runtime/cache.py").write_text("x = 1\n")
    first = source_hash(tmp_path)
    assert source_hash(tmp_path) == first
    (tmp_path / "runtime/cache.py").write_text("x = 2\n")
    assert source_hash(tmp_path) != first


# -- the data tier: WAL archiving, the pgBackRest repository, replicas ----------------------


def _uploads(run: StackRun, service: str) -> dict[str, dict[str, object]]:
    return {u["file"]: u for u in unwrap(run.containers()[service].inputs).get("uploads", [])}


def _command_settings(run: StackRun, service: str) -> dict[str, str]:
    command = unwrap(run.containers()[service].inputs)["command"]
    start = command.index("-c")
    assert command[start - 1] == "postgres"
    pairs = command[start:]
    assert pairs[0::2] == ["-c"] * (len(pairs) // 2)
    return dict(p.split("=", 1) for p in pairs[1::2])


def test_the_primary_archives_its_wal_through_pgbackrest(run: StackRun) -> None:
    settings = _command_settings(run, "postgres")
    assert settings["archive_mode"] == "on" and settings["wal_level"] == "replica"
    assert settings["archive_command"] == "pgbackrest --stanza=main archive-push %p"
    assert settings["archive_timeout"] == "60"  # walArchiveTimeout: the RPO
    assert int(settings["max_wal_senders"]) >= 10
    assert settings["hba_file"] in _uploads(run, "postgres")


def test_the_archive_timeout_follows_its_setting() -> None:
    run = run_stack("dev", {"walArchiveTimeout": 5})
    assert _command_settings(run, "postgres")["archive_timeout"] == "5"
    assert run.outputs["app_config"]["pitr"]["archive_timeout_seconds"] == 5


def test_the_postgres_image_is_built_here_on_the_configured_base(run: StackRun) -> None:
    (image,) = [
        r for r in run.of_type("docker:index/image:Image") if r.name.endswith("postgres-image")
    ]
    build = unwrap(image.inputs)["build"]
    assert build["dockerfile"] == "images/postgres/Dockerfile" and build["context"] == "."
    assert build["args"] == {"POSTGRES_IMAGE": "debian:bookworm-20250520-slim"}
    other = run_stack("dev", {"postgresImage": "debian:bookworm-20250610-slim"})
    (rebuilt,) = [
        r for r in other.of_type("docker:index/image:Image") if r.name.endswith("postgres-image")
    ]
    assert unwrap(rebuilt.inputs)["imageName"] != unwrap(image.inputs)["imageName"]


def test_pgbackrest_conf_is_one_secret_file_for_the_primary_and_the_sidecar(run: StackRun) -> None:
    path = "/etc/pgbackrest/pgbackrest.conf"
    primary, sidecar = _uploads(run, "postgres")[path], _uploads(run, "runtime")[path]
    assert primary["content"] == sidecar["content"]
    for upload in (primary, sidecar):
        assert (upload["owner"], upload["permissions"]) == ("999", "0600")
    conf = str(primary["content"])
    cipher = run.outputs["app_config"]["pitr"]["cipher_pass"]
    assert f"repo1-cipher-pass={cipher}\n" in conf and "repo1-cipher-type=aes-256-cbc" in conf
    assert cipher in run.generated_secrets  # a RandomPassword, secret in every input
    if run.stack == "dev":
        assert "repo1-type=posix\nrepo1-path=/var/lib/pgbackrest\n" in conf
    else:
        assert "repo1-type=s3\n" in conf and "repo1-s3-bucket=platform-example-pitr\n" in conf
        assert f"repo1-s3-key={PROD_CONFIG['pitrS3AccessKey']}\n" in conf


def test_the_sidecar_reads_the_primarys_data_and_repository(run: StackRun) -> None:
    """pgBackRest backs up where the data directory is readable and the socket answers."""

    def mounts(service: str) -> dict[str, dict[str, object]]:
        volumes = unwrap(run.containers()[service].inputs)["volumes"]
        return {str(v["containerPath"]): v for v in volumes}

    primary, sidecar = mounts("postgres"), mounts("runtime")
    data, socket = "/var/lib/postgresql/data", "/var/run/postgresql"
    assert sidecar[data]["volumeName"] == primary[data]["volumeName"]
    assert sidecar[data]["readOnly"] is True
    assert sidecar[socket]["volumeName"] == primary[socket]["volumeName"]
    repo = "/var/lib/pgbackrest"
    if run.stack == "dev":  # posix repository: the same protected volume in both
        assert sidecar[repo]["volumeName"] == primary[repo]["volumeName"]
    else:  # S3: nothing to share
        assert repo not in sidecar and repo not in primary


def test_replicas_follow_the_setting_and_start_after_a_healthy_primary(run: StackRun) -> None:
    replicas = {s for s in run.containers() if s.startswith("postgres-replica-")}
    assert replicas == REPLICAS[run.stack]
    primary = unwrap(run.containers()["postgres"].inputs)
    assert primary["wait"] is True  # so "after" means "after it is healthy"
    for replica in replicas:
        assert "postgres" in run.container_dependencies(replica)
        inputs = unwrap(run.containers()[replica].inputs)
        assert inputs["healthcheck"]["tests"] == ["CMD", "streaming-check", "app"]
        assert inputs["wait"] is True


def test_a_replica_publishes_nothing_and_sits_on_the_backend_only() -> None:
    run = stack_run("prod")
    inputs = unwrap(run.containers()["postgres-replica-1"].inputs)
    assert "ports" not in inputs
    backend = [
        unwrap(r.inputs)
        for r in run.of_type("docker:index/network:Network")
        if unwrap(r.inputs)["internal"]
    ]
    assert len(backend) == 1
    assert [n["aliases"] for n in inputs["networksAdvanced"]] == [["postgres-replica-1"]]
    assert all("backend" in n["name"] for n in inputs["networksAdvanced"])


def test_a_replica_gets_its_password_as_a_0600_file_only() -> None:
    run = stack_run("prod")
    reg = run.containers()["postgres-replica-1"]
    inputs = unwrap(reg.inputs)
    uploads = _uploads(run, "postgres-replica-1")
    passfile = uploads["/run/secrets/replication.pgpass"]
    assert (passfile["owner"], passfile["permissions"]) == ("999", "0600")
    password = str(passfile["content"]).rstrip("\n").rsplit(":", 1)[1]
    assert str(passfile["content"]) == f"postgres:5432:*:replicator:{password}\n"
    assert password in run.generated_secrets
    assert password not in set(plain_strings(reg.inputs))
    settings = _command_settings(run, "postgres-replica-1")
    assert settings["primary_conninfo"] == (
        "host=postgres port=5432 user=replicator passfile=/run/secrets/replication.pgpass "
        "application_name=postgres_replica_1"
    )
    assert settings["primary_slot_name"] == "postgres_replica_1"
    assert not any(password in e for e in inputs.get("envs", []))
    # the primary gets the same password as a file, for its init script
    primary = _uploads(run, "postgres")["/run/secrets/replication-password"]
    assert primary["content"] == password and primary["permissions"] == "0600"


def test_app_config_has_the_read_only_endpoints_and_the_pitr_settings(run: StackRun) -> None:
    app = run.outputs["app_config"]
    replicas = app["database"]["replicas"]
    assert len(replicas) == len(REPLICAS[run.stack])
    password = app["database"]["password"]
    for index, replica in enumerate(replicas, start=1):
        host = f"postgres-replica-{index}"
        assert (replica["host"], replica["port"]) == (host, 5432)
        assert replica["dsn"] == (
            f"postgresql://app:{password}@{host}:5432/app?target_session_attrs=read-only"
        )
    pitr = app["pitr"]
    assert pitr["stanza"] == "main" and pitr["config_file"] == "/etc/pgbackrest/pgbackrest.conf"
    assert (pitr["full_schedule"], pitr["diff_schedule"]) == ("0 1 * * 0", "0 1 * * 1-6")
    assert pitr["retention_full"] == (1 if run.stack == "dev" else 4)
    assert pitr["cipher_type"] == "aes-256-cbc" and len(pitr["cipher_pass"]) == 32
    repository = pitr["repository"]
    if run.stack == "dev":
        assert repository == {"type": "posix", "path": "/var/lib/pgbackrest"}
    else:
        assert repository["type"] == "s3" and repository["path"] == "/pgbackrest/prod"
        assert repository["s3_endpoint"] == "s3.eu-west-1.amazonaws.com"
        assert repository["s3_secret_key"] == PROD_CONFIG["pitrS3SecretKey"]


@pytest.mark.req("ET-INFRA-01.1")
@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("postgresReplicas", "-1", "an integer from 0 to 5"),
        ("postgresReplicas", "two", "an integer"),
        ("walArchiveTimeout", "0", "an integer from 1 to 86400"),
        ("pitrRetentionFull", "0", "an integer >= 1"),
        ("pitrFullSchedule", "weekly", "cron expression"),
        ("pitrDiffSchedule", "0 25 * * 1-6", "cron expression"),
        ("pitrRepoType", "gcs", "one of posix, s3"),
        ("pitrS3Bucket", "My_Bucket", "an S3 bucket name"),
        ("replicationLagAlertBytes", "0", "an integer >= 1"),
        ("postgresImage", "postgres:15.13-bookworm", "Debian bookworm slim image"),
        ("postgresImage", "debian:bookworm-slim", "a dated Debian bookworm slim image"),
        ("postgresImage", "debian:trixie-20250520-slim", "Debian bookworm slim image"),
    ],
)
def test_bad_data_tier_settings_fail_with_key_value_and_rule(
    key: str, value: str, allowed: str
) -> None:
    test_bad_config_fails_with_key_value_and_rule(key, value, allowed)
    registered: list[Registration] = []
    with pytest.raises(ConfigError):
        run_stack("dev", {key: value}, registered=registered)
    assert registered == [], "a bad setting must stop the program before it creates anything"


def test_the_nothing_created_check_sees_what_a_good_run_creates() -> None:
    registered: list[Registration] = []
    run_stack("dev", registered=registered)
    assert any(r.type == "docker:index/container:Container" for r in registered)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"pitrRepoType": "s3"}, "pitrS3Bucket/pitrS3Region/pitrS3AccessKey/pitrS3SecretKey"),
        (
            {"pitrRepoType": "s3", "pitrS3Bucket": "b-1", "pitrS3Region": "eu-west-1"},
            "pitrS3AccessKey/pitrS3SecretKey",
        ),
    ],
)
def test_an_s3_repository_without_bucket_or_credentials_is_refused(
    overrides: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("dev", overrides)
    (problem,) = str(raised.value).splitlines()[1:]
    assert f"data-platform:{missing}: not set" in problem
    assert "pulumi config set --secret pitrS3AccessKey" in problem


def test_prod_without_s3_credentials_says_how_to_set_them() -> None:
    overrides = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("pitrS3")}
    with pytest.raises(ConfigError, match=r"pitrS3AccessKey/pitrS3SecretKey: not set"):
        run_stack("prod", overrides)
