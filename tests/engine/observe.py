"""What the engine itself reports about the applied stack: its event log, files inside a
container, commands run in one. Checks read these, never the applier's own bookkeeping."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import docker

from tests.engine.applier import OWNER_LABEL


@dataclass
class Lifecycle:
    """Engine event times (seconds since the epoch, nanosecond precision) of one container."""

    created: float | None = None
    started: list[float] = field(default_factory=list)
    healthy: list[float] = field(default_factory=list)
    unhealthy: list[float] = field(default_factory=list)
    died: list[float] = field(default_factory=list)
    oom: list[float] = field(default_factory=list)


def lifecycles(client: docker.DockerClient, since: float) -> dict[str, Lifecycle]:
    """Container name -> its lifecycle as the engine's event log has it, from `since` to now,
    for the containers an applier created."""
    found: dict[str, Lifecycle] = {}
    events = client.api.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"type": "container", "label": OWNER_LABEL},
        decode=True,
    )
    for event in events:
        name = event["Actor"]["Attributes"]["name"]
        when = event["timeNano"] / 1e9
        if when < since:
            continue
        life = found.setdefault(name, Lifecycle())
        action = event["Action"]
        if action == "create":
            life.created = when
        elif action == "start":
            life.started.append(when)
        elif action == "health_status: healthy":
            life.healthy.append(when)
        elif action == "health_status: unhealthy":
            life.unhealthy.append(when)
        elif action == "die":
            life.died.append(when)
        elif action == "oom":
            life.oom.append(when)
    return found


def read_file(
    client: docker.DockerClient, container: str, path: str
) -> tuple[tarfile.TarInfo, bytes]:
    """A file in a container as the engine's archive API returns it: header and content."""
    stream, _ = client.api.get_archive(container, path)
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmembers()[0]
        extracted = tar.extractfile(member)
        return member, extracted.read() if extracted else b""


def exec_in(
    client: docker.DockerClient,
    container: str,
    argv: Sequence[str],
    *,
    user: str = "",
    environment: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run `argv` in a running container; its exit code and combined output."""
    created = client.api.exec_create(container, list(argv), user=user, environment=environment)
    output = client.api.exec_start(created["Id"]).decode(errors="replace")
    code: int = client.api.exec_inspect(created["Id"])["ExitCode"]
    return code, output


def state(client: docker.DockerClient, container: str) -> dict[str, Any]:
    result: dict[str, Any] = client.api.inspect_container(container)["State"]
    return result


def wait_for(what: str, check: Any, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
