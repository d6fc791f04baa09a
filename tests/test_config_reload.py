"""Configuration changes reach nginx, Prometheus, Alertmanager and Grafana's dashboards
without a new container.

Under Pulumi's mocks: which inputs of which resources a configuration-only change touches
(docs/changes.md). Run for real (sh, the copy into the volume): the apply script against a
directory standing in for the volume. On the real engine: tests/engine/stack/test_reload.py
and test_reload_grafana.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import components.stack
from components.docker.platform import (
    OneShotFailed,
    apply_script,
    reload_script,
    require_exit_zero,
)
from components.grafana import checked_dashboards
from components.monitoring.dashboards import dashboard_files
from components.render.grafana_provisioning import DASHBOARD_POLL_SECONDS, DASHBOARDS_DIR
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


# -- Grafana: its dashboards in a volume, no signal (its file provider polls them) ----------

EDITED = "platform-overview.json"
GRAFANA_KEPT = {  # read at start only: still files of Grafana's container
    "/run/secrets/grafana-admin-password",
    "/etc/grafana/provisioning/datasources/prometheus.yml",
    "/etc/grafana/provisioning/dashboards/platform.yml",
}
# dev's self-signed key and certificate: the mocks make a new key on every run
MOCK_KEY_FILES = {"/etc/nginx/tls/tls.crt", "/etc/nginx/tls/tls.key"}


def edited_dashboard_files() -> dict[str, str]:
    """The stack's dashboards with one title changed: a dashboard-only change."""
    files = dashboard_files()
    board = json.loads(files[EDITED])
    board["title"] += " (edited)"
    return {**files, EDITED: json.dumps(board, indent=2, sort_keys=True)}


def changed_files(before: StackRun, after: StackRun) -> dict[str, set[str]]:
    """Container name -> the uploaded files whose content differs between two runs."""
    old = {r.name: r for r in before.of_type(CONTAINER)}
    found = {}
    for reg in after.of_type(CONTAINER):
        a = {u["file"]: u["content"] for u in unwrap(old[reg.name].inputs).get("uploads", [])}
        b = {u["file"]: u["content"] for u in unwrap(reg.inputs).get("uploads", [])}
        paths = {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)} - MOCK_KEY_FILES
        if paths:
            found[reg.name] = paths
    return found


@pytest.fixture(scope="module", params=["dev", "prod"])
def dashboard_runs(request: pytest.FixtureRequest) -> tuple[StackRun, StackRun]:
    stack = str(request.param)
    base: dict[str, Any] = PROD_CONFIG if stack == "prod" else {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(components.stack, "dashboard_files", edited_dashboard_files)
        after = run_stack(stack, base)
    return stack_run(stack), after


def test_a_dashboard_change_changes_only_grafanas_apply_container_uploads(
    dashboard_runs: tuple[StackRun, StackRun],
) -> None:
    before, after = dashboard_runs
    assert changed_files(before, after) == {
        "platform-docker-grafana-config-apply": {f"{DASHBOARDS_DIR}/{EDITED}"}
    }
    changed = changed_inputs(before, after)
    assert changed.pop("platform-docker-grafana-config-apply") == ["uploads"]
    # dev's nginx files differ by the mocks' new key alone (changed_files above); its apply
    # container's uploads are then its only changed input
    assert changed in ({}, {"platform-docker-nginx-config-apply": ["uploads"]})


def test_grafana_gets_no_reload_container_and_keeps_its_start_time_files(
    dashboard_runs: tuple[StackRun, StackRun],
) -> None:
    _, run = dashboard_runs
    shots = run.one_shots()
    assert "grafana-config-reload" not in shots
    grafana, apply = run.containers()["grafana"], shots["grafana-config-apply"]
    inputs = unwrap(grafana.inputs)
    assert {u["file"] for u in inputs["uploads"]} == GRAFANA_KEPT
    (mount,) = [v for v in inputs["volumes"] if v["containerPath"] == DASHBOARDS_DIR]
    assert mount["volumeName"].startswith("platform-docker-grafana-config-")
    assert mount["readOnly"] is True
    # what stands in for the signal: Grafana polls that very directory
    provider = {u["file"]: u["content"] for u in inputs["uploads"]}[
        "/etc/grafana/provisioning/dashboards/platform.yml"
    ]
    (polled,) = yaml.safe_load(provider)["providers"]
    assert polled["options"]["path"] == DASHBOARDS_DIR
    assert polled["updateIntervalSeconds"] == DASHBOARD_POLL_SECONDS
    assert apply.urn in grafana.dependencies  # the first deployment writes them first
    written = unwrap(apply.inputs)
    paths = {u["file"] for u in written["uploads"]}
    assert {f"{DASHBOARDS_DIR}/{name}" for name in edited_dashboard_files()} <= paths
    assert all(p.startswith(f"{DASHBOARDS_DIR}/") for p in paths), paths  # only dashboards
    # root writes them; no owner or mode declared: the provider's root 0644, which the copy
    # keeps (less the umask), so Grafana's uid 472 reads them
    assert written["user"] == "0"
    assert all(u.get("permissions", "0644") == "0644" for u in written["uploads"])
    assert "written: /etc/grafana/dashboards" in written["command"][0]


def test_a_failed_grafana_apply_fails_the_run() -> None:
    output = "cp: can't create '/run/platform-config/.new/x.json': No space left on device"
    with pytest.raises(Exception, match="grafana: the configuration apply failed") as caught:
        run_stack("dev", exits={"platform-docker-grafana-config-apply": (1, output)})
    assert output in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.json", '{"title": "x",}', "dashboard 'broken.json' is not valid JSON (Expecting"),
        ("list.json", "[1, 2]", "dashboard 'list.json' is a JSON list, not an object"),
        ("../escape.json", "{}", "dashboard file name '../escape.json' is not allowed"),
        ("board.yaml", "{}", "dashboard file name 'board.yaml' is not allowed"),
    ],
)
def test_a_dashboard_grafana_would_skip_is_refused_when_rendered(
    name: str, text: str, expected: str
) -> None:
    with pytest.raises(ValueError, match="allowed: ") as caught:
        checked_dashboards({"ok.json": "{}", name: text})
    assert expected in str(caught.value)


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
