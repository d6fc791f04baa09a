"""How services run on a Kubernetes cluster: the thin Pulumi layer over `objects.py`.

The platform is a component owning the provider, the namespace and its NetworkPolicies;
each service's objects are children of that service's component (`parent=`), as on Docker.
An image a spec builds from this repository is built on this machine and pushed to the
stack's registry (pulumi-docker), and its pods run the pushed digest.
Pulumi inputs of a spec (generated passwords, rendered files) are resolved with one `apply`
and handed to the pure functions; `stringData` of a Secret stays a secret Output.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.kubernetes import objects
from components.kubernetes.objects import ClusterSettings
from components.spec import ImageBuild, ServiceSpec, TaskSpec

PULL_SECRET = "registry-credentials"  # noqa: S105 - a Secret's name


@dataclass(frozen=True)
class KubernetesService:
    """The workload dependents wait on (the provider waits for its rollout to be ready)."""

    workload: pulumi.Resource


@dataclass(frozen=True)
class KubernetesTask:
    """A task's Job; `done` resolves once the provider saw it complete (see `run_once`)."""

    workload: pulumi.Resource
    done: pulumi.Output[str]


@dataclass(frozen=True)
class ImageRegistry:
    """Where images built from this repository are pushed, for the cluster's nodes to pull.

    `prefix` is `host[:port][/path]`; without `password` the push uses this machine's
    `docker login` and the nodes pull with their own credentials.
    """

    prefix: str
    username: str = ""
    password: pulumi.Output[str] | None = None

    @property
    def server(self) -> str:
        return self.prefix.split("/", 1)[0]


def _resolved(
    spec: ServiceSpec, image: pulumi.Input[str]
) -> pulumi.Output[tuple[ServiceSpec, str]]:
    """The spec with its image (the pushed digest of a built one), plain command and env
    (secret if any of them is), and its checksum.

    File contents are resolved separately (`_contents`): only their digest reaches the pod
    template, so a secret file never makes the workload secret and never leaks into it.
    """
    command = list(spec.command) if spec.command is not None else None
    env = dict(spec.env)
    digest = pulumi.Output.unsecret(_contents(spec).apply(checksum))

    def build(values: list[Any]) -> tuple[ServiceSpec, str]:
        n_cmd = len(command) if command is not None else 0
        plain_cmd = [str(v) for v in values[:n_cmd]] if command is not None else None
        plain_env = {k: str(v) for k, v in zip(env, values[n_cmd:-2], strict=True)}
        resolved = dataclasses.replace(
            spec, image=str(values[-2]), command=plain_cmd, env=plain_env
        )
        return resolved, str(values[-1])

    return pulumi.Output.all(*(command or []), *env.values(), image, digest).apply(build)


def _contents(spec: ServiceSpec) -> pulumi.Output[dict[str, str]]:
    """The files' contents by path; secret as soon as one secret file is in it."""
    paths = [f.path for f in spec.files]
    return pulumi.Output.all(*(f.content for f in spec.files)).apply(
        lambda texts: {p: str(t) for p, t in zip(paths, texts, strict=True)}
    )


def _meta(name: str, namespace: str) -> Any:
    """ObjectMeta as a plain dict (the SDK's TypedDicts type it more narrowly)."""
    return objects.metadata(name, namespace)


def secret_data(data: pulumi.Output[dict[str, Any]]) -> pulumi.Output[dict[str, Any]]:
    """A Secret's `stringData`, marked secret whatever its inputs were."""
    marked: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(data)
    return marked


def checksum(contents: dict[str, str]) -> str:
    """A digest of every file: a changed file changes the pod template and rolls the pods.

    Not a secret (a SHA-256 of high-entropy generated values), so diffs stay readable.
    """
    digest = hashlib.sha256()
    for path, text in sorted(contents.items()):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


class KubernetesPlatform(pulumi.ComponentResource):
    """Runs `ServiceSpec`s in one namespace of a cluster, behind default-deny policies."""

    def __init__(
        self,
        name: str,
        cluster: ClusterSettings,
        context: str,
        gateway_namespace: str,
        entry: str,
        entry_ports: Sequence[int],
        registry: ImageRegistry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:kubernetes:KubernetesPlatform", name, None, opts)
        self.name = name
        self.registry = registry
        if registry.password is not None:
            cluster = dataclasses.replace(cluster, pull_secret=PULL_SECRET)
        self.cluster = cluster
        self._pull_secrets: list[pulumi.Resource] = []
        # An explicit provider: the program never deploys to whatever kubectl points at.
        self.provider = k8s.Provider(
            f"{name}-provider",
            context=context or None,
            namespace=cluster.namespace,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        ns = objects.namespace(cluster.namespace)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=ns["metadata"], opts=self.child(self)
        )
        self.policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{p['metadata']['name']}",
                metadata=p["metadata"],
                spec=p["spec"],
                opts=self.child(self),
            )
            for p in objects.network_policies(
                cluster.namespace, gateway_namespace, entry, entry_ports
            )
        ]
        if registry.password is not None:
            self._pull_secrets.append(self._pull_secret(registry, registry.password))
        self.register_outputs({"namespace": self.namespace.metadata["name"]})

    def _pull_secret(
        self, registry: ImageRegistry, password: pulumi.Output[str]
    ) -> pulumi.Resource:
        def build(pw: str) -> dict[str, Any]:
            obj = objects.pull_secret(
                PULL_SECRET, self.cluster.namespace, registry.server, registry.username, pw
            )
            data: dict[str, Any] = obj["stringData"]
            return data

        return k8s.core.v1.Secret(
            f"{self.name}-{PULL_SECRET}",
            metadata=_meta(PULL_SECRET, self.cluster.namespace),
            type="kubernetes.io/dockerconfigjson",
            string_data=secret_data(password.apply(build)),
            opts=self.child(self, [self.namespace]),
        )

    def _push(
        self, spec: ServiceSpec, build: ImageBuild, parent: pulumi.ComponentResource
    ) -> docker.Image:
        """Build the spec's image here and push it under the registry's prefix, same tag."""
        reg = self.registry
        return docker.Image(
            f"{self.name}-{spec.name}-image",
            image_name=f"{reg.prefix}/{spec.image}",
            build=docker.DockerBuildArgs(
                context=build.context, dockerfile=build.dockerfile, args=dict(build.args) or None
            ),
            registry=docker.RegistryArgs(
                server=reg.server, username=reg.username, password=reg.password
            )
            if reg.password is not None
            else None,
            skip_push=False,
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def child(
        self, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()
    ) -> pulumi.ResourceOptions:
        """Options for an object: this provider, under `parent`, after the namespace."""
        after = [] if parent is self else [self.namespace]
        return pulumi.ResourceOptions(
            parent=parent, provider=self.provider, depends_on=[*after, *depends_on]
        )

    def deploy(self, spec: ServiceSpec, parent: pulumi.ComponentResource) -> KubernetesService:
        prefix = f"{self.name}-{spec.name}"
        ns = self.cluster.namespace
        # The pushed image's digest: a rebuild with the same tag still rolls the pods.
        image: pulumi.Input[str] = spec.image
        if spec.build is not None:
            image = self._push(spec, spec.build, parent).repo_digest
        resolved = _resolved(spec, image)
        contents = _contents(spec)
        plain = [f.path for f in spec.files if not f.secret]
        secret_paths = [f.path for f in spec.files if f.secret]
        files: list[pulumi.Resource] = []
        if plain:
            data = contents.apply(
                lambda c: objects.config_map(spec, ns, {p: c[p] for p in plain})["data"]
            )
            files.append(
                k8s.core.v1.ConfigMap(
                    f"{prefix}-config",
                    metadata=_meta(spec.name, ns),
                    data=data,
                    opts=self.child(parent),
                )
            )
        if secret_paths:
            string_data = contents.apply(
                lambda c: objects.secret(spec, ns, {p: c[p] for p in secret_paths})["stringData"]
            )
            files.append(
                k8s.core.v1.Secret(
                    f"{prefix}-secret",
                    metadata=_meta(spec.name, ns),
                    type="Opaque",
                    string_data=secret_data(string_data),
                    opts=self.child(parent),
                )
            )
        body = resolved.apply(lambda r: objects.workload(r[0], self.cluster, r[1]))
        workload_spec: Any = body.apply(lambda o: o["spec"])
        pulls = self._pull_secrets if spec.build is not None else []
        workload_opts = self.child(parent, depends_on=[*files, *pulls, *spec.depends_on])
        workload: pulumi.Resource
        if spec.volumes:
            workload = k8s.apps.v1.StatefulSet(
                f"{prefix}-statefulset",
                metadata=_meta(spec.name, ns),
                spec=workload_spec,
                opts=workload_opts,
            )
        else:
            workload = k8s.apps.v1.Deployment(
                f"{prefix}-deployment",
                metadata=_meta(spec.name, ns),
                spec=workload_spec,
                opts=workload_opts,
            )
        svc = objects.service(spec, self.cluster)
        k8s.core.v1.Service(
            f"{prefix}-service", metadata=svc["metadata"], spec=svc["spec"], opts=self.child(parent)
        )
        pdb = objects.pod_disruption_budget(spec, ns)
        k8s.policy.v1.PodDisruptionBudget(
            f"{prefix}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=self.child(parent)
        )
        return KubernetesService(workload=workload)

    def run_once(self, task: TaskSpec, parent: pulumi.ComponentResource) -> KubernetesTask:
        """The task as a `batch/v1` Job (CloudNativePG's advice for migrations).

        pulumi-kubernetes 4.x awaits a Job: its create succeeds once the Job's `Complete`
        condition is true and fails as soon as `Failed` is (the provider's Job docs), so a
        failed migration fails the resource and the engine never reaches its dependents.
        Its pod template is immutable: a changed image or command replaces the Job."""
        prefix = f"{self.name}-{task.name}"
        ns = self.cluster.namespace
        paths = [f.path for f in task.files]
        contents = pulumi.Output.all(*(f.content for f in task.files)).apply(
            lambda texts: {p: str(t) for p, t in zip(paths, texts, strict=True)}
        )
        secret = k8s.core.v1.Secret(
            f"{prefix}-secret",
            metadata=_meta(task.name, ns),
            type="Opaque",
            string_data=secret_data(
                contents.apply(lambda c: objects.task_secret(task, ns, c)["stringData"])
            ),
            opts=self.child(parent),
        )
        body = objects.job(task, self.cluster, self.cluster.pull_secret)
        env = dict(task.env)
        if env:  # Pulumi inputs among the values: resolved into the container's env
            body_out: Any = pulumi.Output.all(*env.values()).apply(
                lambda values: _with_env(body, dict(zip(env, values, strict=True)))
            )
        else:
            body_out = body
        job = k8s.batch.v1.Job(
            f"{prefix}-job",
            metadata=body["metadata"],
            spec=pulumi.Output.from_input(body_out).apply(lambda b: b["spec"]),
            opts=self.child(
                parent, depends_on=[secret, *self._pull_secrets, *task.depends_on]
            ).merge(
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{task.timeout_seconds + 60}s",
                        update=f"{task.timeout_seconds + 60}s",
                    )
                )
            ),
        )
        done = job.metadata.apply(lambda _: task.identity)
        return KubernetesTask(workload=job, done=done)


def _with_env(body: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """The Job with its container's env set to resolved values."""
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    return body
