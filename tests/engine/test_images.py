"""Our two images, built for real from a clean checkout exactly as the stack records them, and
the PostgreSQL image run with the dev stack's own recorded container inputs.

The builds take the `docker:index/image:Image` registrations of the dev stack under Pulumi's
mocks (context, Dockerfile, build args, image name), so the test follows the stack. The
containers here are created from the recorded `docker:index/container:Container` inputs by the
tier's one applier (tests/engine/applier.py), the PostgreSQL record alone and then the sidecar's
with `pitr check` as its command; the whole stack's start order and behaviour are the subject of
the stack-level engine tests.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.applier import Applier
from tests.engine.daemon import Engine
from tests.engine.images import BuildFailed, build, recorded_builds
from tests.stack_harness import stack_run

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
    assert ids.startswith("uid=999(postgres) gid=999(postgres)"), ids  # docs/secret-files.md
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


# -- the recorded PostgreSQL and sidecar containers, applied --------------------------------


@pytest.fixture(scope="module")
def recorded(engine: Engine, project_images: dict[str, str]) -> Iterator[Applier]:
    """The dev records' networks and volumes, and its PostgreSQL container started and
    healthy by its recorded `wait`, through the stack tests' applier (prefixed names, so it
    never meets a stack test's objects); removed with the volumes at the module's end."""
    run = stack_run("dev")
    others = set(run.containers()) - {"postgres", "runtime"}
    applier = Applier(engine.client(), run, omit=others, prefix="image-test-")
    applier.down()  # leftovers of an interrupted run
    try:
        applier.create_networks()
        applier.create_volumes()
        applier.create("postgres")
        yield applier
    finally:
        applier.down(grace=5)


@pytest.fixture(scope="module")
def primary(recorded: Applier) -> str:
    """The dev stack's PostgreSQL container, as recorded, started and healthy: its name."""
    return recorded.container("postgres")


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
    engine: Engine, recorded: Applier
) -> None:
    sidecar = recorded.prepare("runtime", {"command": ["pitr", "check"], "restart": "no"})
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
