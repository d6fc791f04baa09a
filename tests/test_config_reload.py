"""Configuration changes reach nginx, Prometheus and Alertmanager without a new container.

Under Pulumi's mocks: which inputs of which resources a configuration-only change touches
(docs/changes.md). Run for real (sh, the copy into the volume): the apply script against a
directory standing in for the volume. On the real engine: tests/engine/stack/test_reload.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.docker.platform import (
    OneShotFailed,
    apply_script,
    reload_script,
    require_exit_zero,
)
from components.spec import ConfigReload
from tests.stack_harness import (
    PROD_CONFIG,
    Registration,
    StackRun,
    run_stack,
    stack_run,
    unwrap,
)

CONTAINER = "docker:index/container:Container"
CONFIG_DIRS = {
    "nginx": "/etc/nginx",
    "prometheus": "/etc/prometheus",
    "alertmanager": "/etc/alertmanager",
}
RELOADED = tuple(CONFIG_DIRS)
# One setting per reloaded service whose only effect is that service's configuration file.
CONFIG_ONLY_CHANGE = {
    "frontendUpstream": "frontend-v2:3000",  # nginx.conf
    "appMetricsTargets": ["app:9100"],  # prometheus.yml
    "alertWebhookUrl": "https://hooks.example.com/services/T1/B1/other-s3cr3t",  # alertmanager.yml
}


def changed_inputs(before: StackRun, after: StackRun) -> dict[str, list[str]]:
    """Resource name -> the inputs whose values differ between two runs (same URNs)."""
    old = {r.urn: r for r in before.registrations}
    new = {r.urn: r for r in after.registrations}
    assert old.keys() == new.keys(), "a configuration change added or removed resources"
    found = {}
    for urn, reg in new.items():
        a, b = old[urn].inputs, reg.inputs
        keys = sorted(
            k
            for k in a.keys() | b.keys()
            if json.dumps(a.get(k), sort_keys=True, default=str)
            != json.dumps(b.get(k), sort_keys=True, default=str)
        )
        # The mocks make a new self-signed key on every run (a real stack keeps its key).
        if keys and not reg.type.startswith("tls:"):
            found[reg.name] = keys
    return found


@pytest.fixture(scope="module", params=["dev", "prod"])
def runs(request: pytest.FixtureRequest) -> tuple[StackRun, StackRun]:
    stack = str(request.param)
    base: dict[str, Any] = PROD_CONFIG if stack == "prod" else {}
    return stack_run(stack), run_stack(stack, {**base, **CONFIG_ONLY_CHANGE})


def test_a_configuration_change_changes_only_the_apply_containers_uploads(
    runs: tuple[StackRun, StackRun],
) -> None:
    before, after = runs
    assert changed_inputs(before, after) == {
        f"platform-docker-{s}-config-apply": ["uploads"] for s in RELOADED
    }


def test_no_service_container_carries_its_reloaded_files(runs: tuple[StackRun, StackRun]) -> None:
    _, after = runs
    for service, directory in CONFIG_DIRS.items():
        inputs = unwrap(after.containers()[service].inputs)
        assert "uploads" not in inputs, service
        (mount,) = [v for v in inputs["volumes"] if v["containerPath"] == directory]
        assert mount["volumeName"].startswith(f"platform-docker-{service}-config-")
        assert mount["readOnly"] is True


def test_the_reload_follows_the_apply_container_and_joins_the_service_pid_namespace(
    runs: tuple[StackRun, StackRun],
) -> None:
    _, run = runs
    shots = run.one_shots()
    for service in RELOADED:
        apply, reload = shots[f"{service}-config-apply"], shots[f"{service}-config-reload"]
        service_container = run.containers()[service]
        # replaced with the apply container: its label carries the apply container's id
        assert apply.urn in reload.dependencies
        # the container's id (the mocks': its name + "-id"), which Docker keeps as given
        assert unwrap(reload.inputs)["pidMode"] == f"container:{service_container.name}-id"
        assert unwrap(reload.inputs)["networkMode"] == "none"
        # the first deployment writes the volume before the service starts
        assert apply.urn in service_container.dependencies
        for shot in (apply, reload):
            inputs = unwrap(shot.inputs)
            assert (inputs["attach"], inputs["mustRun"], inputs["logs"]) == (True, False, True)


def test_the_apply_container_checks_with_the_program_itself() -> None:
    commands = {
        s: unwrap(stack_run("dev").one_shots()[f"{s}-config-apply"].inputs)["command"][0]
        for s in RELOADED
    }
    assert "nginx -t -q" in commands["nginx"]
    assert "promtool check config /etc/prometheus/prometheus.yml" in commands["prometheus"]
    assert "amtool check-config /etc/alertmanager/alertmanager.yml" in commands["alertmanager"]


def test_the_nginx_key_is_readable_by_root_alone() -> None:
    (key,) = [
        u
        for u in unwrap(stack_run("prod").one_shots()["nginx-config-apply"].inputs)["uploads"]
        if u["file"].endswith("tls.key")
    ]
    assert (key.get("owner"), key["permissions"]) == ("0", "0400")  # root: the master reads it


def test_a_failed_check_fails_the_update_with_the_programs_message() -> None:
    message = 'nginx: [emerg] invalid port in upstream "frontend:x" in /etc/nginx/nginx.conf:9'
    keeps = "the running nginx keeps its previous configuration"
    with pytest.raises(OneShotFailed) as caught:
        require_exit_zero("nginx: the configuration check", 1, message + "\n", keeps)
    assert str(caught.value) == (
        "nginx: the configuration check failed (exit 1); the running nginx keeps its "
        f"previous configuration:\n{message}"
    )
    require_exit_zero("nginx: the configuration check", 0, "", keeps)


def test_a_refused_configuration_fails_the_run_and_signals_nothing() -> None:
    message = 'nginx: [emerg] invalid host in upstream "front end:3000"'
    registered: list[Registration] = []
    with pytest.raises(Exception, match="the configuration check failed") as caught:
        run_stack(
            "dev",
            registered=registered,
            exits={"platform-docker-nginx-config-apply": (1, message)},
        )
    assert message in str(caught.value)
    names = {r.name for r in registered}
    assert "platform-docker-nginx-config-apply" in names
    assert "platform-docker-nginx-config-reload" not in names


# -- the scripts, run by a real shell ---------------------------------------------------------


def run_apply(src: Path, live: Path, check: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    script = apply_script(ConfigReload(str(src), check, "nginx"), live=str(live))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_apply_script_writes_every_file_and_removes_stale_ones(tmp_path: Path) -> None:
    src, live = tmp_path / "etc", tmp_path / "volume"
    (src / "tls").mkdir(parents=True)
    live.mkdir()
    (src / "nginx.conf").write_text("new conf")
    (src / "tls" / "tls.key").write_text("key")
    (src / "tls" / "tls.key").chmod(0o400)
    (live / "nginx.conf").write_text("old conf")
    (live / "gone.conf").write_text("no longer generated")
    result = run_apply(src, live, ("true",))
    assert result.returncode == 0, result.stderr
    assert tree(live) == {"nginx.conf": "new conf", "tls/tls.key": "key"}
    assert (live / "tls" / "tls.key").stat().st_mode & 0o777 == 0o400


def test_a_refused_configuration_leaves_the_live_files_untouched(tmp_path: Path) -> None:
    src, live = tmp_path / "etc", tmp_path / "volume"
    src.mkdir()
    live.mkdir()
    (src / "nginx.conf").write_text("broken conf")
    (live / "nginx.conf").write_text("serving conf")
    refuse = ("sh", "-c", "echo 'nginx: [emerg] host not found in upstream' >&2; exit 1")
    result = run_apply(src, live, refuse)
    assert result.returncode == 1
    assert "host not found in upstream" in result.stderr
    assert tree(live) == {"nginx.conf": "serving conf"}


def test_the_reload_script_refuses_when_pid_1_is_not_the_program() -> None:
    # In a fresh PID namespace the shell itself is PID 1: not nginx.
    script = reload_script("nginx", "nginx")
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "PID 1 of nginx is sh, not nginx: nothing reloaded" in result.stderr
