"""scripts/deploy drives the Pulumi CLI as the README says (a recording stand-in CLI here,
since no Pulumi CLI or Docker engine can run on the build machines)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fake_tools(tmp_path: Path, logged_in: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    whoami = "exit 0" if logged_in else "exit 1"
    (bin_dir / "pulumi").write_text(
        "#!/bin/sh\n"
        f'echo "pulumi $* passfile=$PULUMI_CONFIG_PASSPHRASE_FILE" >> {log}\n'
        f'[ "$1" = whoami ] && {whoami}\n'
        "exit 0\n"
    )
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def deploy(tmp_path: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    env.update(PATH=path, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return subprocess.run(
        ["bash", str(ROOT / "scripts/deploy"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_deploy_logs_in_locally_creates_the_stack_and_runs_up(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, logged_in=False)
    result = deploy(tmp_path, "dev", "--yes", path=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    passfile = tmp_path / "config/data-platform/passphrase"
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == [
        f"pulumi whoami passfile={passfile}",
        f"pulumi login --local passfile={passfile}",
        f"pulumi stack select --create --secrets-provider passphrase dev passfile={passfile}",
        f"pulumi up --stack dev --yes passfile={passfile}",
    ]
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert len(passfile.read_text().strip()) >= 32
    assert "back it up" in result.stderr


def test_deploy_keeps_an_existing_login(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, logged_in=True)
    result = deploy(tmp_path, "prod", path=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.log").read_text()
    assert "login" not in calls and "pulumi up --stack prod" in calls


def test_deploy_rejects_an_unknown_stack(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, logged_in=True)
    result = deploy(tmp_path, "staging", path=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 2
    assert "no Pulumi.staging.yaml; known stacks: dev k8s prod" in result.stderr


def test_deploy_of_the_k8s_stack_needs_a_kubeconfig_not_docker(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, logged_in=True)
    (bin_dir / "docker").unlink()  # no Docker on a machine that deploys to a cluster
    path = f"{bin_dir}:/usr/bin:/bin"
    result = deploy(tmp_path, "k8s", "--yes", path=path)
    assert result.returncode == 3
    assert "runs on Kubernetes but there is no kubeconfig" in result.stderr
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("apiVersion: v1\nkind: Config\n")
    result = deploy(tmp_path, "k8s", "--yes", path=path)
    assert result.returncode == 0, result.stderr
    assert "pulumi up --stack k8s --yes" in (tmp_path / "calls.log").read_text()
    # a Docker stack still needs Docker
    result = deploy(tmp_path, "dev", path=path)
    assert result.returncode == 3 and "'docker' not found on PATH" in result.stderr


def test_deploy_says_what_is_missing(tmp_path: Path) -> None:
    result = deploy(tmp_path, "dev", path="/usr/bin:/bin")
    assert result.returncode == 3
    assert "'pulumi' not found on PATH" in result.stderr
