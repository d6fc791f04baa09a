"""How services run on one Docker host: networks, images, volumes and containers.

The platform is itself a component owning the two networks; every service's image, volumes
and container are created as children of that service's component (`parent=`), so
`pulumi stack` shows them under the service that asked for them.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components.spec import ConfigFile, ConfigReload, RuntimePolicy, ServiceSpec, TaskSpec

# Docker's json-file driver grows without bound unless told otherwise. `labels` copies the
# service's title label into every log line's `attrs`, which Alloy turns into Loki's
# `service` label (components/render/alloy_config.py).
LOG_OPTIONS = {"max-size": "10m", "max-file": "5", "labels": "org.opencontainers.image.title"}
# Where a one-shot apply container mounts the service's configuration volume.
LIVE_DIR = "/run/platform-config"
# The label that tells a one-shot container (apply, reload) from a service's container.
ONE_SHOT_LABEL = "platform.one-shot"
TITLE_LABEL = "org.opencontainers.image.title"


@dataclass
class ConfigVolume:
    """A reloaded service's files: the volume it reads them from, the one-shot container
    that checks and writes them, and the one that makes the program reload them (None for a
    program that re-reads them on its own)."""

    volume: docker.Volume
    apply: docker.Container
    directory: str
    reload: docker.Container | None = None


# How much of a failed one-shot's output the error shows (its tail: where the error is).
FAILED_OUTPUT_CHARS = 4000


class OneShotFailed(pulumi.RunError):
    """A one-shot container (the migration step, a configuration check or reload) exited
    non-zero: `pulumi up` stops there, before what depends on it."""


def require_exit_zero(
    what: str,
    exit_code: int | None,
    logs: str | None,
    consequence: str,
    secrets: Sequence[str] = (),
) -> None:
    """The provider waits for an attached container to exit and records its exit code and
    output, but does not fail on a non-zero exit (docs/changes.md): the program does, with
    the end of the output, every secret in it masked."""
    if exit_code == 0:
        return
    output = logs or ""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        output = output.replace(secret, "***")
    tail = output[-FAILED_OUTPUT_CHARS:].strip()
    raise OneShotFailed(f"{what} failed (exit {exit_code}); {consequence}:\n{tail}")


def task_result(task: TaskSpec, exit_code: int | None, logs: str | None, secrets: list[str]) -> str:
    """The task's identity once it exited 0 (see `require_exit_zero`)."""
    command = " ".join([*task.entrypoint, *task.command])
    consequence = "nothing that depends on it was created or replaced; the end of its output"
    require_exit_zero(f"{task.name}: {command}", exit_code, logs, consequence, secrets)
    return task.identity


@dataclass(frozen=True)
class DockerTask:
    """The one-shot container of a task, and `done` (see `components.spec.CompletedTask`)."""

    container: docker.Container
    done: pulumi.Output[str]

    @property
    def workload(self) -> pulumi.Resource:
        return self.container


@dataclass(frozen=True)
class DockerService:
    """The container a dependent waits on, plus its image and volumes."""

    container: docker.Container
    image: docker.RemoteImage | docker.Image
    volumes: tuple[docker.Volume, ...]
    config: ConfigVolume | None = None

    @property
    def workload(self) -> pulumi.Resource:
        return self.container


class DockerPlatform(pulumi.ComponentResource):
    """Runs `ServiceSpec`s as containers on a backend (internal) and an edge network."""

    def __init__(
        self,
        name: str,
        policy: RuntimePolicy,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:docker:DockerPlatform", name, None, opts)
        self.name = name
        self.policy = policy
        # (service, volume name) -> volume, for services that mount another's (SharedVolume)
        self._volumes: dict[tuple[str, str], docker.Volume] = {}
        self._built: dict[str, docker.Image] = {}  # image name -> its build
        self._containers: dict[str, docker.Container] = {}  # service -> container (PID joins)
        child = pulumi.ResourceOptions(parent=self)
        # internal=True: no route off the host; only services also on `edge` can reach out
        # or be reached (nginx, and the egress of Grafana and Alertmanager).
        self.backend = docker.Network(f"{name}-backend", internal=True, driver="bridge", opts=child)
        self.edge = docker.Network(f"{name}-edge", internal=False, driver="bridge", opts=child)
        self.register_outputs(
            {"backend_network": self.backend.name, "edge_network": self.edge.name}
        )

    def deploy(self, spec: ServiceSpec, parent: pulumi.ComponentResource) -> DockerService:
        prefix = f"{self.name}-{spec.name}"
        child = pulumi.ResourceOptions(parent=parent)
        image: docker.RemoteImage | docker.Image
        if spec.build is not None and spec.image in self._built:
            # one build per image: the primary and its replicas run the same one
            image = self._built[spec.image]
            image_ref: pulumi.Output[str] = image.image_name
        elif spec.build is not None:
            image = docker.Image(
                f"{prefix}-image",
                image_name=spec.image,
                build=docker.DockerBuildArgs(
                    context=spec.build.context,
                    dockerfile=spec.build.dockerfile,
                    args=dict(spec.build.args) or None,
                ),
                skip_push=True,  # built on the Docker host that runs it; no registry needed
                opts=child,
            )
            self._built[spec.image] = image
            image_ref = image.image_name
        else:
            image = docker.RemoteImage(
                f"{prefix}-image", name=spec.image, keep_locally=True, opts=child
            )
            image_ref = image.image_id
        volumes = tuple(
            # protect: `pulumi destroy` refuses to delete the data until it is unprotected.
            docker.Volume(
                f"{prefix}-{v.name}",
                opts=child.merge(
                    pulumi.ResourceOptions(protect=self.policy.protect_data and v.persistent)
                ),
            )
            for v in spec.volumes
        )
        for volume, v in zip(volumes, spec.volumes, strict=True):
            self._volumes[(spec.name, v.name)] = volume
        shared = [(self._shared(spec.name, s.service, s.name), s) for s in spec.shared_volumes]
        networks = set(spec.networks)
        if spec.published:
            # Docker publishes no port of a container attached only to internal networks.
            networks.add("edge")
        config: ConfigVolume | None = None
        reloaded, kept = reloaded_files(spec)
        if spec.reload is not None and reloaded:
            config = self._config_volume(
                spec,
                spec.reload,
                reloaded,
                image_ref,
                sorted(networks),
                [vol for vol, _ in shared],
                child,
            )
        container = docker.Container(
            prefix,
            image=image_ref,
            command=list(spec.command) if spec.command is not None else None,
            entrypoints=list(spec.entrypoint) if spec.entrypoint is not None else None,
            envs=[pulumi.Output.concat(k, "=", v) for k, v in spec.env.items()] or None,
            user=spec.user,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=(self.backend if n == "backend" else self.edge).name,
                    aliases=[spec.name],
                )
                for n in sorted(networks)
            ],
            ports=[
                docker.ContainerPortArgs(
                    internal=p.container_port, external=p.host_port, ip=p.host_ip
                )
                for p in spec.published
            ]
            or None,
            volumes=[
                *(
                    docker.ContainerVolumeArgs(volume_name=vol.name, container_path=v.mount_path)
                    for vol, v in zip(volumes, spec.volumes, strict=True)
                ),
                *(
                    docker.ContainerVolumeArgs(
                        volume_name=vol.name,
                        container_path=s.mount_path,
                        read_only=s.read_only or None,
                    )
                    for vol, s in shared
                ),
                *(
                    docker.ContainerVolumeArgs(
                        host_path=m.host_path, container_path=m.container_path, read_only=True
                    )
                    for m in spec.host_mounts
                ),
                *(
                    [
                        docker.ContainerVolumeArgs(
                            volume_name=config.volume.name,
                            container_path=config.directory,
                            read_only=True,
                        )
                    ]
                    if config
                    else []
                ),
            ]
            or None,
            devices=[
                docker.ContainerDeviceArgs(host_path=d, container_path=d, permissions="r")
                for d in spec.devices
            ]
            or None,
            # With a config volume its files reach it through the apply container, so a
            # change to one of them is no input of this container and never replaces it.
            uploads=[_upload(f) for f in (kept if config else spec.files)] or None,
            healthcheck=self._healthcheck(spec),
            wait=spec.health is not None,
            wait_timeout=self.policy.startup_timeout_seconds if spec.health else None,
            restart="no" if spec.one_shot else self.policy.restart_policy,
            max_retry_count=(
                self.policy.restart_attempts
                if self.policy.restart_policy == "on-failure" and not spec.one_shot
                else None
            ),
            # a one-shot container is waited for (attach) and may then stay exited (must_run)
            attach=spec.one_shot or None,
            must_run=False if spec.one_shot else None,
            pid_mode=(
                pulumi.Output.concat("container:", self._pid_owner(spec).id)
                if spec.pid_namespace_of
                else None
            ),
            memory=spec.memory_mb,
            memory_swap=spec.memory_mb,  # equal to memory: no swap, so the limit is real
            log_driver="json-file",
            log_opts=LOG_OPTIONS,
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(
                drops=["ALL"], adds=sorted(spec.capabilities) or None
            ),
            destroy_grace_seconds=spec.stop_grace_seconds,
            stop_timeout=spec.stop_grace_seconds,
            labels=[
                docker.ContainerLabelArgs(label="org.opencontainers.image.title", value=spec.name),
                docker.ContainerLabelArgs(label="platform.stack", value=pulumi.get_stack()),
                docker.ContainerLabelArgs(
                    label="platform.health", value="docker" if spec.health else "prometheus-up"
                ),
                *(
                    [docker.ContainerLabelArgs(label=ONE_SHOT_LABEL, value="run")]
                    if spec.one_shot
                    else []
                ),
            ],
            opts=child.merge(
                pulumi.ResourceOptions(
                    depends_on=[*spec.depends_on, *([config.apply] if config else [])]
                )
            ),
        )
        self._containers[spec.name] = container
        if spec.one_shot:
            _fail_unless_zero(spec.name, "its run", container, "what depends on it is not started")
        if config is not None and spec.reload is not None:
            if spec.reload.process is not None:
                config.reload = self._reload(
                    spec, spec.reload.process, image_ref, container, config, child
                )
            else:
                # the program re-reads the files on its own: only the apply's exit is checked
                _fail_unless_zero(spec.name, "the configuration apply", config.apply)
        return DockerService(container=container, image=image, volumes=volumes, config=config)

    def _one_shot(
        self,
        name: str,
        spec: ServiceSpec,
        kind: str,
        opts: pulumi.ResourceOptions,
        labels: Sequence[docker.ContainerLabelArgs] = (),
        **inputs: Any,
    ) -> docker.Container:
        """A container of the service's image that runs once to the end (`one_shot_container`),
        with the service's limits and capabilities, through `/bin/sh -c`."""
        return one_shot_container(
            name,
            title=spec.name,
            kind=kind,
            memory_mb=spec.memory_mb,
            capabilities=spec.capabilities,
            opts=opts,
            labels=labels,
            entrypoints=["/bin/sh", "-c"],
            **inputs,
        )

    def _config_volume(
        self,
        spec: ServiceSpec,
        reload: ConfigReload,
        files: Sequence[ConfigFile],
        image_ref: pulumi.Input[str],
        networks: Sequence[str],
        shared: Sequence[docker.Volume],
        child: pulumi.ResourceOptions,
    ) -> ConfigVolume:
        """The volume the service reads `files` (those under `reload.directory`) from, and
        the one-shot container that checks new files with the program's own checker (if its
        image has one) and writes them into it.

        The apply container runs the service's own image with the files uploaded where the
        program reads them, so the check sees exactly what the program will; it is replaced
        (uploads force a new container) whenever a file changes, and runs before the service
        on the first deployment, so the service starts with its files in place.
        """
        prefix = f"{self.name}-{spec.name}"
        volume = docker.Volume(f"{prefix}-config", opts=child)
        secret = any(f.secret for f in files)
        apply = self._one_shot(
            f"{prefix}-config-apply",
            spec,
            "config-apply",
            child.merge(
                pulumi.ResourceOptions(
                    depends_on=list(spec.depends_on),
                    additional_secret_outputs=["containerLogs"] if secret else None,
                )
            ),
            image=image_ref,
            command=[apply_script(reload)],
            # root writes the root-owned volume, with no capability beyond the service's (no
            # CAP_CHOWN): its copies are root's, in its primary group, the readers' (apply_user)
            user=apply_user(files),
            networks_advanced=[
                # the service's networks, so a checker resolves the names the program will
                docker.ContainerNetworksAdvancedArgs(
                    name=(self.backend if n == "backend" else self.edge).name
                )
                for n in networks
            ],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=LIVE_DIR),
                # what the files refer to in other services' volumes (nginx: the ACME
                # certificate), read-only, so the check loads it as the program will
                *(
                    docker.ContainerVolumeArgs(
                        volume_name=vol.name, container_path=s.mount_path, read_only=True
                    )
                    for vol, s in zip(shared, spec.shared_volumes, strict=True)
                ),
            ],
            uploads=[_upload(f) for f in files],
        )
        return ConfigVolume(volume=volume, apply=apply, directory=reload.directory)

    def _reload(
        self,
        spec: ServiceSpec,
        process: str,
        image_ref: pulumi.Input[str],
        container: docker.Container,
        config: ConfigVolume,
        child: pulumi.ResourceOptions,
    ) -> docker.Container:
        """A one-shot container in the service's PID namespace that sends SIGHUP to its
        PID 1. Its label carries the apply container's id, so it is replaced, and runs again,
        exactly when new files were written; and only once the check passed: a refused
        configuration fails `pulumi up` before this container is even declared."""
        prefix = f"{self.name}-{spec.name}"
        reloader = self._one_shot(
            f"{prefix}-config-reload",
            spec,
            "config-reload",
            child,
            [
                docker.ContainerLabelArgs(
                    label="platform.config-apply", value=_succeeded(spec.name, config.apply)
                )
            ],
            image=image_ref,
            command=[reload_script(spec.name, process)],
            user=spec.user,  # the program's own user may signal it without CAP_KILL
            # the id, not the name: Docker keeps `container:<id>` whichever it was given, and
            # the provider reads that back (a name would show a change on every refresh)
            pid_mode=pulumi.Output.concat("container:", container.id),
            network_mode="none",
        )
        _fail_unless_zero(spec.name, "the reload", reloader)
        return reloader

    def run_once(self, task: TaskSpec, parent: pulumi.ComponentResource) -> DockerTask:
        """A container that runs the task to its end during `pulumi up` (attach) and stays,
        exited, so the next `up` sees no change and does not run it again; a changed image or
        command replaces it, which runs it once more.

        pulumi-docker 5.2 (the Terraform provider's create path) waits for an attached
        container to stop and records `exit_code` and `container_logs`, but a non-zero exit
        does not fail the resource: `done` raises instead (docs/migrations-stack.md)."""
        prefix = f"{self.name}-{task.name}"
        child = pulumi.ResourceOptions(parent=parent)
        image = docker.RemoteImage(
            f"{prefix}-image", name=task.image, keep_locally=True, opts=child
        )
        container = one_shot_container(
            prefix,
            image=image.image_id,
            entrypoints=list(task.entrypoint),
            command=list(task.command),
            envs=[pulumi.Output.concat(k, "=", v) for k, v in task.env.items()] or None,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=(self.backend if n == "backend" else self.edge).name,
                    aliases=[task.name],
                )
                for n in sorted(set(task.networks))
            ],
            uploads=[_upload(f) for f in task.files] or None,
            rm=False,  # kept (exited): gone, the next `up` would create and run it again
            title=task.name,
            kind="task",
            memory_mb=task.memory_mb,
            capabilities=(),
            labels=[docker.ContainerLabelArgs(label="platform.health", value="one-shot")],
            opts=child.merge(
                pulumi.ResourceOptions(
                    depends_on=list(task.depends_on),
                    custom_timeouts=pulumi.CustomTimeouts(create=f"{task.timeout_seconds}s"),
                )
            ),
        )
        secrets = pulumi.Output.all(*task.secrets)
        done = pulumi.Output.all(container.exit_code, container.container_logs, secrets).apply(
            lambda v: task_result(task, v[0], v[1], [str(s) for s in v[2]])
        )
        # only the identity comes out: not secret, whatever the masked values were
        return DockerTask(container=container, done=pulumi.Output.unsecret(done))

    def _pid_owner(self, spec: ServiceSpec) -> docker.Container:
        try:
            return self._containers[str(spec.pid_namespace_of)]
        except KeyError:
            raise ValueError(
                f"{spec.name} joins the PID namespace of {spec.pid_namespace_of!r}, "
                "which is not deployed yet"
            ) from None

    def _shared(self, user: str, service: str, name: str) -> docker.Volume:
        try:
            return self._volumes[(service, name)]
        except KeyError:
            raise ValueError(
                f"{user} mounts volume {name!r} of {service!r}, which is not deployed yet"
            ) from None

    def _healthcheck(self, spec: ServiceSpec) -> docker.ContainerHealthcheckArgs | None:
        if spec.health is None:
            return None
        return docker.ContainerHealthcheckArgs(
            tests=["CMD", *spec.health.command],
            interval=f"{self.policy.health_interval_seconds}s",
            timeout=f"{spec.health.timeout_seconds}s",
            retries=spec.health.retries,
            start_period=f"{spec.health.start_period_seconds}s",
            # Probe twice a second until healthy (Docker 25+): a waited-on service is seen
            # healthy about a second sooner by the provider's 1 s `wait` poll, on every hop of
            # the dependency chain (docs/engine-stack.md, "Measured start times").
            start_interval="500ms",
        )


def _upload(file: ConfigFile) -> docker.ContainerUploadArgs:
    """A file for the container; its hash makes a content change replace the container."""
    content = pulumi.Output.from_input(file.content)
    if file.secret:
        content = pulumi.Output.secret(content)
    digest = content.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())
    return docker.ContainerUploadArgs(
        file=file.path,
        content=content,
        source_hash=pulumi.Output.secret(digest) if file.secret else digest,
        owner=file.owner,
        group=file.group or file.owner,
        permissions=file.mode,
    )


def one_shot_container(
    name: str,
    *,
    title: str,
    kind: str,
    memory_mb: int,
    capabilities: Sequence[str],
    opts: pulumi.ResourceOptions,
    labels: Sequence[docker.ContainerLabelArgs] = (),
    **inputs: Any,
) -> docker.Container:
    """A container `pulumi up` runs once to its end and keeps, exited: the provider's `attach`
    waits for the exit (`must_run=False`) and `logs` keeps the output in `container_logs`
    (`require_exit_zero` fails the run on a non-zero exit). It is never restarted, and has
    the services' log options and hardening: the migration step, a configuration's apply
    and reload."""
    return docker.Container(
        name,
        attach=True,
        must_run=False,
        logs=True,
        restart="no",
        memory=memory_mb,
        memory_swap=memory_mb,
        log_driver="json-file",
        log_opts=LOG_OPTIONS,
        security_opts=["no-new-privileges:true"],
        capabilities=docker.ContainerCapabilitiesArgs(
            drops=["ALL"], adds=sorted(capabilities) or None
        ),
        labels=[
            docker.ContainerLabelArgs(label="org.opencontainers.image.title", value=title),
            docker.ContainerLabelArgs(label="platform.stack", value=pulumi.get_stack()),
            docker.ContainerLabelArgs(label=ONE_SHOT_LABEL, value=kind),
            *labels,
        ],
        opts=opts,
        **inputs,
    )


def reloaded_files(spec: ServiceSpec) -> tuple[list[ConfigFile], list[ConfigFile]]:
    """The files the config volume holds (under `reload.directory`) and those that stay
    uploads of the container (all of them without `reload`)."""
    if spec.reload is None:
        return [], list(spec.files)
    inside = f"{spec.reload.directory.rstrip('/')}/"
    reloaded = [f for f in spec.files if f.path.startswith(inside)]
    return reloaded, [f for f in spec.files if not f.path.startswith(inside)]


def apply_user(files: Sequence[ConfigFile]) -> str:
    """root, in the group its files declare for their reader (see `apply_script`)."""
    groups = {f.group for f in files if f.group and f.group != "0"}
    if len(groups) > 1:
        raise ValueError(f"reloaded files declare several groups {sorted(groups)}; allowed: one")
    return f"0:{groups.pop()}" if groups else "0"


def apply_script(reload: ConfigReload, live: str = LIVE_DIR) -> str:
    """Check the files where the program reads them, then move each into the volume with a
    rename (atomic per file; the program reads them only on the SIGHUP that follows, or, with
    no `process`, each whole file on its next poll).

    The whole directory is copied (the image's own files, such as nginx's mime.types, and
    ours), and files no longer generated are removed. A failed check exits non-zero before
    anything is written: the live files stay as they were. No `check`: nothing is run first.
    """
    src = reload.directory
    new = f"{live}/.new"
    return "\n".join(
        (
            "set -eu",
            *([shlex.join(reload.check)] if reload.check else []),
            # a copy is root's, in the group root runs in here (`apply_user`), with the mode
            # its upload declared (less the umask's 022)
            f'rm -rf "{new}" && mkdir "{new}" && cp -R "{src}/." "{new}/"',
            f'cd "{new}"',
            f'find . -mindepth 1 -type d | while read -r d; do mkdir -p "{live}/$d"; done',
            f'find . ! -type d | while read -r f; do mv -f "$f" "{live}/$f"; done',
            f'cd "{live}" && rm -rf "{new}"',
            f"find . ! -type d | while read -r f; do"
            f' [ -e "{src}/$f" ] || [ -L "{src}/$f" ] || rm -f "$f"; done',
            f"echo '{'checked and written' if reload.check else 'written'}: {src}'",
        )
    )


def reload_script(service: str, process: str) -> str:
    """SIGHUP to the program, after making sure PID 1 is the program (an entry point that
    does not `exec` it would take the signal instead)."""
    return "\n".join(
        (
            "set -eu",
            "comm=$(cat /proc/1/comm)",
            f'if [ "$comm" != {shlex.quote(process)} ]; then',
            f'  echo "PID 1 of {service} is $comm, not {process}: nothing reloaded" >&2',
            "  exit 1",
            "fi",
            "kill -HUP 1",
            f"echo 'sent SIGHUP to {process} (PID 1)'",
        )
    )


def _keeps_previous(service: str) -> str:
    return f"the running {service} keeps its previous configuration"


def _fail_unless_zero(
    service: str, step: str, container: docker.Container, consequence: str | None = None
) -> None:
    consequence = consequence or _keeps_previous(service)
    pulumi.Output.all(container.exit_code, container.container_logs).apply(
        lambda v: require_exit_zero(f"{service}: {step}", v[0], v[1], consequence)
    )


def _succeeded(service: str, apply: docker.Container) -> pulumi.Output[str]:
    """The apply container's id, once it exited 0; its check's message (and the end of the
    update) otherwise."""

    def check(values: list[Any]) -> str:
        what = f"{service}: the configuration check"
        require_exit_zero(what, values[1], values[2], _keeps_previous(service))
        return str(values[0])

    return pulumi.Output.all(apply.id, apply.exit_code, apply.container_logs).apply(check)
