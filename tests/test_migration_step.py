"""The application's migration step under Pulumi's mocks: Docker's one-shot container and
Kubernetes's Job, after a healthy PostgreSQL and before the sidecar, secrets never in plain
text, a failed migration stopping the program, bad settings refused with one line."""

from __future__ import annotations

import functools
import json
from typing import Any

import kubernetes_validate
import pytest

import rules
from components.config import ConfigError
from components.docker.platform import OneShotFailed
from components.migration import ENTRYPOINT, identity
from components.runtime_sidecar import MIGRATION_ENV
from rules import restricted_violations
from tests.stack_harness import (
    K8S_CONFIG,
    Registration,
    StackRun,
    plain_strings,
    run_stack,
    stack_run,
    unwrap,
)

IMAGE = "registry.example.com/shop/api:1.4.2"
COMMAND = ["alembic", "upgrade", "head"]
STEP = {"migrationImage": IMAGE, "migrationCommand": json.dumps(COMMAND)}
CONTAINER = "docker:index/container:Container"
JOB = "kubernetes:batch/v1:Job"


@functools.cache
def docker_run() -> StackRun:
    return run_stack("dev", STEP)


@functools.cache
def k8s_run() -> StackRun:
    return run_stack("k8s", {**K8S_CONFIG, **STEP})


def env_of(reg: Registration) -> dict[str, str]:
    return dict(e.split("=", 1) for e in unwrap(reg.inputs)["envs"])


# -- Docker --------------------------------------------------------------------------------------


def test_the_step_runs_the_application_image_through_the_runtimes_migrate() -> None:
    step = unwrap(docker_run().one_shots()["migrate-task"].inputs)
    (image,) = [
        r
        for r in docker_run().of_type("docker:index/remoteImage:RemoteImage")
        if r.inputs["name"] == IMAGE
    ]
    assert step["image"].startswith("sha256:") and image.inputs["keepLocally"] is True
    assert step["entrypoints"] == list(ENTRYPOINT) == ["python", "-m", "runtime", "migrate", "--"]
    assert step["command"] == COMMAND
    # run to its end during `pulumi up`, kept (exited), never restarted by Docker
    assert (step["attach"], step["mustRun"], step["logs"], step["rm"]) == (True, False, True, False)
    assert step["restart"] == "no"
    assert [n["name"] for n in step["networksAdvanced"]] == [
        n["name"]
        for n in unwrap(docker_run().containers()["postgres"].inputs)["networksAdvanced"]
        if "backend" in n["name"]
    ]
    assert "edge" not in json.dumps(step["networksAdvanced"])


def test_the_step_comes_after_a_healthy_postgres_and_before_the_sidecar() -> None:
    run = docker_run()
    assert run.container_dependencies("migrate-task") == {"postgres"}
    assert unwrap(run.containers()["postgres"].inputs)["wait"] is True  # created once healthy
    assert "migrate-task" in run.container_dependencies("runtime")
    # and the sidecar takes the step's result as an input: it waits for the exit code check
    assert env_of(run.containers()["runtime"])[MIGRATION_ENV] == identity(IMAGE, COMMAND)
    assert run.component_of(run.one_shots()["migrate-task"]) == "infra:app:Migration"


def test_without_the_settings_there_is_no_step_and_the_sidecar_is_unchanged() -> None:
    run = stack_run("dev")
    assert "migrate-task" not in run.one_shots()
    assert MIGRATION_ENV not in env_of(run.containers()["runtime"])
    assert not run.of_type("infra:app:Migration")


def test_the_step_is_replaced_exactly_when_its_image_or_command_changes() -> None:
    again = unwrap(run_stack("dev", STEP).one_shots()["migrate-task"].inputs)
    assert again == unwrap(docker_run().one_shots()["migrate-task"].inputs)  # no change: no re-run
    other = run_stack("dev", {**STEP, "migrationCommand": '["alembic", "upgrade", "+1"]'})
    assert unwrap(other.one_shots()["migrate-task"].inputs)["command"] == [
        "alembic",
        "upgrade",
        "+1",
    ]
    assert env_of(other.containers()["runtime"])[MIGRATION_ENV] != identity(IMAGE, COMMAND)
    assert identity(IMAGE, COMMAND) != identity(IMAGE.replace("1.4.2", "1.4.3"), COMMAND)


def test_the_steps_secrets_are_never_in_plain_text() -> None:
    run = docker_run()
    step = run.one_shots()["migrate-task"]
    secrets = [s for s in run.generated_secrets if len(s) >= 8]
    assert secrets
    plain = " ".join(plain_strings(step.inputs))
    assert not [s for s in secrets if s in plain]
    assert env_of(step) == {"APP_CONFIG_FILE": "/run/secrets/app_config.json"}  # docker inspect
    (upload,) = unwrap(step.inputs)["uploads"]
    assert upload["file"] == "/run/secrets/app_config.json"
    assert upload["content"] not in list(plain_strings(step.inputs))  # the app_config: secret
    assert json.loads(upload["content"])["database"]["password"] in secrets


def test_a_failed_migration_fails_the_program_before_the_sidecar_with_its_output_masked() -> None:
    password = json.loads(
        unwrap(docker_run().one_shots()["migrate-task"].inputs)["uploads"][0]["content"]
    )["database"]["password"]
    logs = (
        "migrate: restore point before_migration_20261205 recorded\n"
        f"sqlalchemy.exc.ProgrammingError: connect to postgresql://app:{password}@postgres\n"
        'relation "orders" already exists\n'
    )
    registered: list[Registration] = []
    with pytest.raises(OneShotFailed) as error:
        run_stack("dev", STEP, registered=registered, exits={"platform-docker-migrate": (3, logs)})
    message = str(error.value)
    assert "migrate: python -m runtime migrate -- alembic upgrade head failed (exit 3)" in message
    assert 'relation "orders" already exists' in message
    assert password not in message and "postgresql://app:***@postgres" in message
    containers = {
        a
        for r in registered
        if r.type == CONTAINER
        for n in r.inputs.get("networksAdvanced", [])
        for a in n.get("aliases") or []
    }
    assert "migrate" in containers and "postgres" in containers
    assert "runtime" not in containers  # never created or replaced after the failure


def test_the_step_passes_every_policy_rule() -> None:
    for run in (docker_run(), k8s_run()):
        found = {
            name: messages
            for r in run.registrations
            if r.custom
            for name, messages in rules.violations(
                rules.Resource(r.type, r.name, r.inputs), rules.stack_of(r.urn)
            ).items()
        }
        assert found == {}, run.stack


def test_the_policy_still_wants_a_healthcheck_and_restart_policy_from_services() -> None:
    step = docker_run().one_shots()["migrate-task"]
    as_service = {**step.inputs, "attach": False, "mustRun": True}
    found = rules.violations(rules.Resource(CONTAINER, step.name, as_service), "dev")
    assert set(found) == {"container-healthcheck", "container-restart-policy"}


# -- bad settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            {"migrationImage": "shop/api"},
            "data-platform:migrationImage: got 'shop/api'; allowed: an image pinned to a tag",
        ),
        (
            {"migrationImage": "shop/api:latest"},
            "data-platform:migrationImage: got 'shop/api:latest'; allowed: a pinned tag",
        ),
        (
            {"migrationImage": IMAGE, "migrationCommand": '["alembic", ""]'},
            "data-platform:migrationCommand: got ['alembic', '']; allowed: a JSON list of "
            'non-empty strings like ["alembic", "upgrade", "head"]',
        ),
        (
            {"migrationImage": IMAGE, "migrationCommand": "alembic upgrade head"},
            "data-platform:migrationCommand: got 'alembic upgrade head'; allowed: a JSON list",
        ),
        (
            {"migrationImage": IMAGE},
            "data-platform:migrationImage/migrationCommand: got "
            "'registry.example.com/shop/api:1.4.2' and []; allowed: both set",
        ),
        (
            {"migrationCommand": json.dumps(COMMAND)},
            "data-platform:migrationImage/migrationCommand: got '' and ['alembic', 'upgrade', "
            "'head']; allowed: both set",
        ),
        (
            {**STEP, "migrationTimeoutSeconds": "5"},
            "data-platform:migrationTimeoutSeconds: got 5; allowed:",
        ),
    ],
)
def test_a_bad_migration_setting_is_refused_with_one_line(
    overrides: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("dev", overrides)
    problems = str(error.value).splitlines()[1:]
    assert len(problems) == 1 and problems[0].strip().startswith(line), problems


# -- Kubernetes ------------------------------------------------------------------------------


def job_of(run: StackRun) -> tuple[Registration, dict[str, Any]]:
    (job,) = run.of_type(JOB)
    obj = {"apiVersion": "batch/v1", "kind": "Job", **unwrap(job.inputs)}
    return job, obj


@pytest.mark.parametrize("version", ["1.29", "1.33"])
def test_the_k8s_step_is_a_job_that_validates_strictly(version: str) -> None:
    _, obj = job_of(k8s_run())
    kubernetes_validate.validate(obj, version, strict=True)
    (secret,) = [
        r
        for r in k8s_run().of_type("kubernetes:core/v1:Secret")
        if unwrap(r.inputs)["metadata"]["name"] == "migrate"
    ]
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Secret", **unwrap(secret.inputs)}, version, strict=True
    )


def test_the_k8s_job_runs_once_under_the_restricted_standard() -> None:
    _, obj = job_of(k8s_run())
    spec = obj["spec"]
    pod = spec["template"]["spec"]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 900
    (container,) = pod["containers"]
    assert container["command"] == list(ENTRYPOINT) and container["args"] == COMMAND
    assert container["image"] == IMAGE
    assert restricted_violations(pod) == []
    labels = spec["template"]["metadata"]["labels"]
    assert labels["platform.network/backend"] == "true" and "platform.network/edge" not in labels


def test_the_k8s_job_comes_after_postgres_and_before_the_sidecar() -> None:
    run = k8s_run()
    job, _ = job_of(run)
    (cluster,) = run.of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    assert cluster.urn in job.dependencies
    (runtime,) = [
        r
        for r in run.of_type("kubernetes:apps/v1:StatefulSet")
        + run.of_type("kubernetes:apps/v1:Deployment")
        if unwrap(r.inputs)["metadata"]["name"] == "runtime"
    ]
    assert job.urn in runtime.dependencies
    env = unwrap(runtime.inputs)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": MIGRATION_ENV, "value": identity(IMAGE, COMMAND)} in env


def test_the_k8s_jobs_secrets_are_never_in_plain_text() -> None:
    run = k8s_run()
    job, obj = job_of(run)
    secrets = [s for s in run.generated_secrets if len(s) >= 8]
    assert not [s for s in secrets if s in " ".join(plain_strings(job.inputs))]
    (secret,) = [
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if unwrap(r.inputs)["metadata"]["name"] == "migrate"
    ]
    assert not [s for s in secrets if s in " ".join(plain_strings(secret.inputs))]
    assert any(s in json.dumps(unwrap(secret.inputs)["stringData"]) for s in secrets)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "APP_CONFIG_FILE", "value": "/run/secrets/app_config.json"}
    ]
