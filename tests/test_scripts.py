"""scripts/deploy drives the Pulumi CLI as the README says (recording stand-ins for `pulumi`
and `docker` here: no Pulumi CLI runs on the build machines, and a deploy must not reach a real
engine)."""

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


def system_path(tmp_path: Path, without: tuple[str, ...] = ("docker", "pulumi")) -> str:
    """/usr/bin and /bin as one directory of links, minus `without`: on a machine that has its
    own Docker (or Pulumi CLI) there, a test that takes the stand-in away must still see it
    missing."""
    links = tmp_path / "system-bin"
    links.mkdir()
    for directory in (Path("/usr/bin"), Path("/bin")):
        for tool in directory.iterdir():
            if tool.name not in without and not (links / tool.name).exists():
                (links / tool.name).symlink_to(tool)
    return str(links)


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


def test_deploy_of_the_k8s_stack_needs_a_kubeconfig_and_docker_to_build_the_runtime(
    tmp_path: Path,
) -> None:
    bin_dir = fake_tools(tmp_path, logged_in=True)
    path = f"{bin_dir}:{system_path(tmp_path)}"
    result = deploy(tmp_path, "k8s", "--yes", path=path)
    assert result.returncode == 3
    assert "runs on Kubernetes but there is no kubeconfig" in result.stderr
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("apiVersion: v1\nkind: Config\n")
    result = deploy(tmp_path, "k8s", "--yes", path=path)
    assert result.returncode == 0, result.stderr
    assert "pulumi up --stack k8s --yes" in (tmp_path / "calls.log").read_text()
    # the runtime's image is built and pushed from this machine: Docker is needed here too
    (bin_dir / "docker").unlink()
    result = deploy(tmp_path, "k8s", "--yes", path=path)
    assert result.returncode == 3 and "'docker' not found on PATH" in result.stderr


def test_deploy_says_what_is_missing(tmp_path: Path) -> None:
    result = deploy(tmp_path, "dev", path=system_path(tmp_path))
    assert result.returncode == 3
    assert "'pulumi' not found on PATH" in result.stderr
