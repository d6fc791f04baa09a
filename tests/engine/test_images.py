"""Our two images, built for real from a clean checkout exactly as the stack records them, and
the PostgreSQL image run with the dev stack's own recorded container inputs.

The builds take the `docker:index/image:Image` registrations of the dev stack under Pulumi's
mocks (context, Dockerfile, build args, image name), so the test follows the stack. The
containers here are created from the recorded `docker:index/container:Container` inputs by a
deliberately small applier (`create_recorded`: image, command, env, user, health check with
start_interval, networks and aliases, volumes, uploads with owner and mode, restart, memory,
capabilities, security options, log options); the whole stack's start order and behaviour are
the subject of the stack-level engine tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.engine.daemon import Engine
from tests.engine.images import BuildFailed, build, recorded_builds
from tests.stack_harness import Registration, StackRun, stack_run, unwrap

pytestmark = pytest.mark.timeout(1800)

OLD_DOCKERIGNORE = (
    "# Only runtime/ goes into the sidecar image.\n*\n!runtime/\nruntime/**/__pycache__\n"
)


def test_the_stack_builds_exactly_our_two_images() -> None:
    builds = recorded_builds(stack_run("dev"))
    assert sorted(builds) == ["postgres-image", "runtime-image"]
    for inputs in builds.values():
        assert inputs["build"]["context"] == "."


def test_both_images_build_from_a_clean_checkout_and_run_as_uid_999(
    engine: Engine, project_images: dict[str, str]
) -> None:
    postgres, runtime = project_images["postgres-image"], project_images["runtime-image"]
    ids = engine.docker("run", "--rm", "--entrypoint", "id", postgres, "postgres").stdout
    assert ids.startswith("uid=999(postgres) gid=999(postgres)"), ids
    ids = engine.docker("run", "--rm", "--entrypoint", "id", runtime).stdout
    assert ids.startswith("uid=999(postgres)"), ids
    versions = engine.docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        postgres,
        "-c",
        "postgres --version; pgbackrest version",
    ).stdout
    assert re.search(r"\(PostgreSQL\) 15\.\d+", versions) and "pgBackRest 2.45" in versions
    config = json.loads(engine.docker("image", "inspect", postgres).stdout)[0]["Config"]
    assert config["StopSignal"] == "SIGINT"


def test_the_postgres_image_does_not_build_with_the_old_dockerignore(
    engine: Engine, base_image: str, mirror: str, checkout: Path, tmp_path: Path
) -> None:
    """The defect the first real build found: `*` + `!runtime/` kept images/postgres/ out of
    the context, so every COPY of it failed."""
    broken = tmp_path / "checkout"
    shutil.copytree(checkout, broken)
    (broken / ".dockerignore").write_text(OLD_DOCKERIGNORE)
    spec = recorded_builds(stack_run("dev"))["postgres-image"]["build"]
    with pytest.raises(BuildFailed, match="images/postgres"):
        build(engine, broken, spec["dockerfile"], "broken-context:1", spec.get("args"))


# -- a small applier of recorded container inputs -----------------------------------------


def _duration_ns(value: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", value)
    assert match, value
    scale = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}[match.group(2)]
    return int(match.group(1)) * scale


def network_names(run: StackRun) -> dict[str, bool]:
    """Docker network name as the containers reference it -> internal (the mocks name a
    network `<resource name>-<7 hex of sha256(type/name)>`, tests/stack_harness.py)."""
    found = {}
    for reg in run.of_type("docker:index/network:Network"):
        digest = hashlib.sha256(f"{reg.type}/{reg.name}".encode()).hexdigest()
        found[f"{reg.name}-{digest[:7]}"] = bool(unwrap(reg.inputs).get("internal"))
    return found


def uploads_tar(uploads: list[Mapping[str, Any]]) -> bytes:
    """What pulumi-docker's `uploads` sends: a tar extracted at `/`, one entry per file with
    its full path, owner and mode (default root, 0644)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for upload in uploads:
            data = upload["content"].encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            info.mode = int(upload.get("permissions") or "0644", 8)
            info.uid = info.gid = int(upload.get("owner") or 0)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_recorded(
    engine: Engine, reg: Registration, *, name: str, overrides: Mapping[str, Any] | None = None
) -> str:
    """Create (not start) a container from a Container registration's inputs; its id."""
    i = {**unwrap(reg.inputs), **(overrides or {})}
    networks = [n["name"] for n in i.get("networksAdvanced", [])]
    mib = 1024 * 1024
    host: dict[str, Any] = {
        "Mounts": [
            {
                "Type": "volume",
                "Source": v["volumeName"],
                "Target": v["containerPath"],
                "ReadOnly": bool(v.get("readOnly")),
            }
            for v in i.get("volumes", [])
        ],
        "RestartPolicy": {"Name": i.get("restart", "no")},
        "CapAdd": i.get("capabilities", {}).get("adds"),
        "CapDrop": i.get("capabilities", {}).get("drops"),
        "SecurityOpt": i.get("securityOpts"),
        "LogConfig": {"Type": i.get("logDriver", "json-file"), "Config": i.get("logOpts", {})},
        "NetworkMode": networks[0] if networks else "none",
    }
    if "memory" in i:
        host["Memory"] = int(i["memory"]) * mib
        host["MemorySwap"] = int(i.get("memorySwap", i["memory"])) * mib
    config: dict[str, Any] = {
        "Image": i["image"],
        "Env": i.get("envs", []),
        "Labels": {x["label"]: x["value"] for x in i.get("labels", [])},
        "HostConfig": host,
        "NetworkingConfig": {
            "EndpointsConfig": {
                n["name"]: {"Aliases": n.get("aliases", [])} for n in i.get("networksAdvanced", [])
            }
        },
    }
    if "command" in i:
        config["Cmd"] = i["command"]
    if i.get("user"):
        config["User"] = i["user"]
    if "stopTimeout" in i:
        config["StopTimeout"] = int(i["stopTimeout"])
    if "healthcheck" in i:
        hc = i["healthcheck"]
        config["Healthcheck"] = {
            "Test": hc["tests"],
            "Interval": _duration_ns(hc.get("interval", "30s")),
            "Timeout": _duration_ns(hc.get("timeout", "30s")),
            "Retries": int(hc.get("retries", 3)),
            "StartPeriod": _duration_ns(hc.get("startPeriod", "0s")),
            "StartInterval": _duration_ns(hc.get("startInterval", "5s")),
        }
    api = engine.client().api
    # The raw Engine API: the SDK's create_container drops StartInterval.
    response = api.post(
        f"{api.base_url}/v{api.api_version}/containers/create", params={"name": name}, json=config
    )
    assert response.status_code == 201, response.text
    created = response.json()
    container_id: str = created["Id"]
    for extra in networks[1:]:
        aliases = next(n["aliases"] for n in i["networksAdvanced"] if n["name"] == extra)
        api.connect_container_to_network(container_id, extra, aliases=aliases)
    if i.get("uploads"):
        api.put_archive(container_id, "/", uploads_tar(i["uploads"]))
    return container_id


def wait_healthy(engine: Engine, container: str, timeout: float = 180) -> float:
    """Seconds until the container's health check reports healthy (fails on exit/timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        state = json.loads(engine.docker("inspect", container).stdout)[0]["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return time.monotonic() - start
        assert state["Status"] in ("created", "running", "restarting"), state
        time.sleep(0.5)
    logs = engine.docker("logs", "--tail", "50", container, check=False)
    raise AssertionError(f"{container} not healthy in {timeout:.0f} s:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def primary(engine: Engine, project_images: dict[str, str]) -> Iterator[str]:
    """The dev stack's PostgreSQL container, as recorded, started and healthy."""
    run = stack_run("dev")
    for name, internal in network_names(run).items():
        args = ["network", "create", "--driver", "bridge", *(["--internal"] if internal else [])]
        engine.docker(*args, name)
    container = create_recorded(engine, run.containers()["postgres"], name="image-test-postgres")
    engine.docker("start", container)
    wait_healthy(engine, container)
    yield container
    engine.docker("rm", "-f", "-v", container, check=False)


def psql(engine: Engine, container: str, sql: str) -> str:
    """A query over the socket as the image's `postgres` user (peer, mapped to the superuser)."""
    return engine.docker(
        "exec", "-u", "postgres", container, "psql", "-XAtq", "-U", "app", "-d", "app", "-c", sql
    ).stdout.strip()


def test_the_primary_initialises_with_the_recorded_inputs(engine: Engine, primary: str) -> None:
    assert (
        psql(engine, primary, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'")
        == "t"
    )
    assert psql(engine, primary, "SHOW server_encoding") == "UTF8"
    assert psql(engine, primary, "SHOW lc_collate") == "en_US.utf8"
    assert psql(engine, primary, "SHOW archive_mode") == "on"
    # the stanza exists and WAL reaches the repository
    check = engine.docker("exec", "-u", "postgres", primary, "pgbackrest", "--stanza=main", "check")
    assert check.returncode == 0
    info = json.loads(
        engine.docker(
            "exec",
            "-u",
            "postgres",
            primary,
            "pgbackrest",
            "--stanza=main",
            "--output=json",
            "info",
        ).stdout
    )
    assert info[0]["name"] == "main" and info[0]["status"]["code"] in (0, 2), info
    # the server runs as uid 999 and its environment carries no password
    environ = engine.docker("exec", "-u", "postgres", primary, "cat", "/proc/1/environ").stdout
    assert "PGDATA=/var/lib/postgresql/data/pgdata" in environ
    assert "POSTGRES_PASSWORD=" not in environ
    assert engine.docker("exec", primary, "stat", "-c", "%u", "/proc/1").stdout.strip() == "999"


def test_uploads_land_with_the_recorded_owner_and_mode(engine: Engine, primary: str) -> None:
    owners = engine.docker(
        "exec",
        primary,
        "stat",
        "-c",
        "%u %a %n",
        "/var/lib/postgresql/data/pgdata",
        "/run/secrets/replication-password",
        "/etc/pgbackrest/pgbackrest.conf",
    ).stdout.split("\n")
    assert owners[:3] == [
        "999 700 /var/lib/postgresql/data/pgdata",
        "999 600 /run/secrets/replication-password",
        "999 600 /etc/pgbackrest/pgbackrest.conf",
    ]


def test_pitr_check_passes_in_the_sidecar_sharing_the_recorded_volumes(
    engine: Engine, primary: str
) -> None:
    run = stack_run("dev")
    sidecar = create_recorded(
        engine,
        run.containers()["runtime"],
        name="image-test-pitr-check",
        overrides={"command": ["pitr", "check"], "restart": "no"},
    )
    try:
        engine.docker("start", "--attach", sidecar, timeout=300, check=False)
        state = json.loads(engine.docker("inspect", sidecar).stdout)[0]["State"]
        logs = engine.docker("logs", sidecar, check=False)
        assert state["ExitCode"] == 0, logs.stdout + logs.stderr
        assert (
            engine.docker("inspect", "--format", "{{.Config.User}}", sidecar).stdout.strip()
            == "999"
        )
    finally:
        engine.docker("rm", "-f", sidecar, check=False)
