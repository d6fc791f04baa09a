"""What runs: a platform-neutral description of one service.

A service module (postgres.py, redis.py, ...) fills in a `ServiceSpec`; a platform module
(docker/platform.py, kubernetes/platform.py) turns it into real resources. Nothing in
here knows about Docker, so a second platform needs no change to any service module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pulumi

Network = Literal["backend", "edge"]


@dataclass(frozen=True)
class HealthProbe:
    """A command run inside the container; exit 0 means ready (Docker: healthcheck)."""

    command: Sequence[str]
    timeout_seconds: int = 5
    retries: int = 3
    start_period_seconds: int = 10


@dataclass(frozen=True)
class PublishedPort:
    """A container port reachable from outside the platform."""

    container_port: int
    host_port: int
    host_ip: str = "0.0.0.0"  # noqa: S104 - the edge publishes on purpose; dev data ports say 127.0.0.1


@dataclass(frozen=True)
class ConfigFile:
    """A generated file placed in the container before it starts.

    `secret` files (passwords, keys, configs embedding them) stay Pulumi secrets end to end.
    """

    path: str
    content: pulumi.Input[str]
    secret: bool = False
    # Numeric owner (uid), group (gid; default: the owner's number) and octal mode. A secret
    # belongs to the uid its reader runs as in the image, readable by nobody else (0400, or
    # 0440 with the reader's gid): docs/secret-files.md lists each reader and where that is
    # read. libpq also ignores a password file others can read.
    owner: str | None = None
    mode: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class DataVolume:
    """Persistent storage that outlives the container (a named volume / a PVC)."""

    name: str
    mount_path: str
    # False for state that is cheap to lose (a socket directory): not protected from destroy.
    persistent: bool = True


@dataclass(frozen=True)
class SharedVolume:
    """Another service's volume, mounted here too (the backup agent reads PostgreSQL's data
    directory and socket). The owning service must be deployed first."""

    service: str
    name: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class HostMount:
    """A read-only view of the host (only host-metrics exporters need one)."""

    host_path: str
    container_path: str


@dataclass(frozen=True)
class ScrapeTarget:
    """A Prometheus scrape job this service offers (the seam for exporters and the runtime).

    With `probe_module`, `address` is the blackbox exporter and `probe_target` what it probes.
    """

    job: str
    address: str
    metrics_path: str = "/metrics"
    probe_module: str | None = None
    probe_target: str | None = None


@dataclass(frozen=True)
class ImageBuild:
    """Build the image from this repository instead of pulling it.

    `ServiceSpec.image` is then the local name, tagged with a hash of the build inputs so
    the container is replaced exactly when the code it runs changes.
    """

    context: str
    dockerfile: str
    args: Mapping[str, str] = field(default_factory=dict)  # build arguments (ARG)


@dataclass(frozen=True)
class ConfigReload:
    """How the running program takes new files without a new container.

    The generated files under `directory` live in a volume a one-shot container of the
    service's image writes; the service's other files stay in its container, so a change to
    them still replaces it. `check` is the program's own checker, run against the new files
    where the program will read them (empty: the image has none). `process` is the program's
    name as PID 1 of its container, which re-reads its files on SIGHUP; None: the program
    re-reads them on its own (Grafana polls its dashboards), so nothing is signalled.
    """

    directory: str
    check: Sequence[str]
    process: str | None


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a platform needs to run one service, and nothing about how."""

    name: str
    image: str
    port: int
    # None only for images without a shell or HTTP client (scratch): Prometheus's `up` then
    # watches the service, and the platform does not wait for it to be healthy.
    health: HealthProbe | None
    memory_mb: int
    command: Sequence[pulumi.Input[str]] | None = None
    entrypoint: Sequence[str] | None = None  # replaces the image's (lego's is the binary)
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    files: Sequence[ConfigFile] = ()
    volumes: Sequence[DataVolume] = ()
    shared_volumes: Sequence[SharedVolume] = ()
    networks: Sequence[Network] = ("backend",)
    published: Sequence[PublishedPort] = ()
    depends_on: Sequence[pulumi.Resource] = ()
    stop_grace_seconds: int = 30
    user: str | None = None
    host_mounts: Sequence[HostMount] = ()
    devices: Sequence[str] = ()
    build: ImageBuild | None = None
    # Every Linux capability is dropped; these are added back because the image's entrypoint
    # needs them (chown of its data directory, then a switch to an unprivileged user).
    capabilities: Sequence[str] = ()
    # Set: a change to `files` is checked and reloaded in place (docs/changes.md).
    reload: ConfigReload | None = None
    # Join this service's PID namespace (deployed first), to signal its PID 1 (nginx's
    # master) from outside its container: the ACME client's reload after a renewal.
    pid_namespace_of: str | None = None
    # Runs once to completion (prepares a volume) instead of being kept running; services
    # that depend on it start after it has exited.
    one_shot: bool = False

    @property
    def address(self) -> str:
        """host:port other services use to reach it on the backend network."""
        return f"{self.name}:{self.port}"


@dataclass(frozen=True)
class TaskSpec:
    """A one-shot command (the application's migrations): it runs to completion once per
    change of its inputs, before what `depends_on` it; a non-zero exit fails the deploy.

    `entrypoint` replaces the image's own; `identity` names what decides a re-run (image
    and command), for the dependents that must follow it. `secrets`: values to mask in the
    output shown when it fails."""

    name: str
    image: str
    entrypoint: Sequence[str]
    command: Sequence[str]
    memory_mb: int
    timeout_seconds: int
    identity: str
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    files: Sequence[ConfigFile] = ()
    networks: Sequence[Network] = ("backend",)
    depends_on: Sequence[pulumi.Resource] = ()
    secrets: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class RuntimePolicy:
    """How every service is kept running; the same for all services of a stack."""

    restart_policy: str
    restart_attempts: int
    startup_timeout_seconds: int
    health_interval_seconds: int
    protect_data: bool


class DeployedService(Protocol):
    """What a platform hands back: the resource dependents wait on."""

    @property
    def workload(self) -> pulumi.Resource: ...


class CompletedTask(Protocol):
    """What a platform hands back for a `TaskSpec`: the resource that ran it, and `done`,
    which resolves (to the task's identity) only once it succeeded: an input of the
    dependents, so none of them is created or replaced after a failure."""

    @property
    def workload(self) -> pulumi.Resource: ...
    @property
    def done(self) -> pulumi.Output[str]: ...


class Platform(Protocol):
    """Where services run. `deploy` creates the service's resources as children of `parent`;
    `run_once` a one-shot task's."""

    def deploy(self, spec: ServiceSpec, parent: pulumi.ComponentResource) -> DeployedService: ...

    def run_once(self, task: TaskSpec, parent: pulumi.ComponentResource) -> CompletedTask: ...
