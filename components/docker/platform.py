"""How services run on one Docker host: networks, images, volumes and containers.

The platform is itself a component owning the two networks; every service's image, volumes
and container are created as children of that service's component (`parent=`), so
`pulumi stack` shows them under the service that asked for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.spec import ConfigFile, RuntimePolicy, ServiceSpec

# Docker's json-file driver grows without bound unless told otherwise. `labels` copies the
# service's title label into every log line's `attrs`, which Alloy turns into Loki's
# `service` label (components/render/alloy_config.py).
LOG_OPTIONS = {"max-size": "10m", "max-file": "5", "labels": "org.opencontainers.image.title"}


@dataclass(frozen=True)
class DockerService:
    """The container a dependent waits on, plus its image and volumes."""

    container: docker.Container
    image: docker.RemoteImage | docker.Image
    volumes: tuple[docker.Volume, ...]

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
            ]
            or None,
            devices=[
                docker.ContainerDeviceArgs(host_path=d, container_path=d, permissions="r")
                for d in spec.devices
            ]
            or None,
            uploads=[_upload(f) for f in spec.files] or None,
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
            ],
            opts=child.merge(pulumi.ResourceOptions(depends_on=list(spec.depends_on))),
        )
        self._containers[spec.name] = container
        return DockerService(container=container, image=image, volumes=volumes)

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
            start_interval="1s",  # probe every second until healthy (Docker 25+)
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
        group=file.owner,
        permissions=file.mode,
    )
