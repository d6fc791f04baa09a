"""A Docker engine of the tests' own: dockerd in a fresh network namespace, stopped afterwards.

    engine = start_engine()          # raises EngineUnavailable(reason) where it cannot start
    engine.docker("ps")              # Debian trixie's CLI against this daemon only
    engine.run(["curl", ...])        # any command inside the daemon's namespace
    engine.client()                  # docker.DockerClient (Docker SDK for Python)
    engine.stop()

Why a namespace: the daemon and every container it runs see only the namespace's loopback and
the bridges dockerd creates in it, so nothing can reach any address outside this machine, and
the bridges' 172.x addresses never appear in the host's own namespace. It is entered with
`nsenter --net=/var/run/netns/NAME`, not `ip netns exec`, which remounts /sys and hides the
cgroups dockerd needs. Each engine has its own data root, exec root and socket under a fresh
temporary directory, so several test sessions (and a developer's own Docker) never share state.
Anything that talks to a container's address must go through `run`/`popen` (the namespace).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.engine import cache

if TYPE_CHECKING:
    import docker as docker_sdk

START_TIMEOUT = 60.0


class EngineUnavailable(RuntimeError):
    """The engine cannot start here; the message says why and what to run."""


class DockerFailed(subprocess.CalledProcessError):
    """A docker CLI command that failed; its message ends with the CLI's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


@dataclass
class Engine:
    """A running dockerd in its own network namespace (see the module docstring)."""

    netns: str
    root: Path
    process: subprocess.Popen[bytes]
    _clients: list[Any] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        """The daemon's socket as a DOCKER_HOST URL."""
        return f"unix://{self.socket}"

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess using this engine: DOCKER_HOST, Debian's CLI first on
        PATH, a private DOCKER_CONFIG (with buildx as a CLI plugin), BuildKit on."""
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [
                str(cache.DOCKER_PREFIX / "usr" / "bin"),
                str(cache.DOCKER_PREFIX / "usr" / "sbin"),
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
                env.get("PATH", ""),
            ]
        )
        env["DOCKER_HOST"] = self.docker_host
        env["DOCKER_CONFIG"] = str(self.root / "config")
        env["DOCKER_BUILDKIT"] = "1"
        env.pop("DOCKER_CONTEXT", None)
        env.pop("DOCKER_TLS_VERIFY", None)
        env.pop("DOCKER_CERT_PATH", None)
        env.update(extra or {})
        return env

    def in_netns(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside the daemon's network namespace."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the daemon's namespace; output captured as text."""
        return subprocess.run(
            self.in_netns(argv),
            check=check,
            timeout=timeout,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(env),
        )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running command (a server) inside the daemon's namespace."""
        kwargs.setdefault("env", self.env())
        return subprocess.Popen(self.in_netns(argv), **kwargs)

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Debian's docker CLI against this daemon (run in its namespace, e.g. for --network host
        builds). A failure raises with the CLI's stderr in the message."""
        result = self.run(
            [str(cache.docker_cli()), *args], check=False, timeout=timeout, input=input, env=env
        )
        if check and result.returncode != 0:
            raise DockerFailed(result.returncode, ["docker", *args], result.stdout, result.stderr)
        return result

    def client(self) -> docker_sdk.DockerClient:
        """A Docker SDK client for this daemon (closed by `stop`)."""
        import docker as docker_sdk

        client = docker_sdk.DockerClient(base_url=self.docker_host, timeout=120)
        self._clients.append(client)
        return client

    def pid_of(self, container: str) -> int:
        """The host pid of a container's main process (to kill it from the host, which the
        restart policy treats as a crash; `docker kill` is a manual stop)."""
        out = self.docker("inspect", "--format", "{{.State.Pid}}", container).stdout
        return int(out.strip())

    def stop(self) -> None:
        """Remove every container, stop dockerd, delete the namespace and the directories."""
        for client in self._clients:
            client.close()
        if self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=60).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        _unmount_under(self.root)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """Unmount whatever dockerd left mounted under `root` (deepest first)."""
    prefix = str(root) + "/"
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def start_engine() -> Engine:
    """Start dockerd in a new network namespace and wait until it answers.

    Raises EngineUnavailable when the prerequisites are missing (naming the fix) or the daemon
    does not come up (with the tail of its log)."""
    reason = cache.missing()
    if reason is not None:
        raise EngineUnavailable(reason)
    # Short paths: containerd's socket lives under the exec root (sun_path is 108 bytes).
    root = Path(tempfile.mkdtemp(prefix="dpe-", dir="/tmp"))
    netns = f"dpe-{root.name[4:]}-{secrets.token_hex(2)}"
    (root / "config").mkdir()
    (root / "config" / "config.json").write_text(
        json.dumps({"cliPluginsExtraDirs": [str(cache.cli_plugins())]})
    )
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    log = (root / "dockerd.log").open("wb")
    engine: Engine | None = None
    try:
        subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{netns}", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
        )
        env = {
            "PATH": f"{cache.DOCKER_PREFIX}/usr/sbin:{cache.DOCKER_PREFIX}/usr/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin"
        }
        process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/var/run/netns/{netns}",
                "--",
                str(cache.dockerd()),
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "x"),
                "--host",
                f"unix://{root / 'docker.sock'}",
                "--pidfile",
                str(root / "dockerd.pid"),
                "--storage-driver",
                "overlay2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        engine = Engine(netns=netns, root=root, process=process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if engine.socket.exists():
                probe = engine.docker("version", "--format", "{{.Server.Version}}", check=False)
                if probe.returncode == 0:
                    return engine
            time.sleep(0.2)
        tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
        raise EngineUnavailable(f"dockerd did not start within {START_TIMEOUT:.0f} s:\n{tail}")
    except BaseException:
        if engine is not None:
            engine.stop()
        else:
            subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
            shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        log.close()
