"""Plain Kubernetes objects (dicts) for one `ServiceSpec`: pure functions, no Pulumi calls.

`platform.py` resolves a spec's Pulumi inputs and hands the plain spec to these functions, so
everything that decides what the cluster runs is testable offline: strict schema validation
(kubernetes-validate), the restricted Pod Security Standard and the NetworkPolicy edges.

How a Docker idea maps here:
- a data volume -> a StatefulSet's PersistentVolumeClaim; no volume -> a Deployment;
- an uploaded file -> a key of the service's ConfigMap, or of its Secret when `secret`,
  mounted read-only at the same path (subPath); a checksum annotation rolls the pods when a
  file changes, as a changed upload replaces a Docker container;
- the health probe -> readiness and liveness probes (exec), plus a startup probe when the
  service needs time; a service without a probe (a scratch image) gets a TCP probe;
- the memory limit -> the memory request and limit;
- the backend/edge networks -> pod labels that the NetworkPolicies select;
- dropped capabilities and no-new-privileges -> the restricted Pod Security Standard. A pod
  runs as a non-root user from the start, so the capabilities a Docker entrypoint needs to
  chown and switch user are never added back.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.spec import ServiceSpec, TaskSpec

Obj = dict[str, Any]

PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
PART_OF_VALUE = "data-platform"
NETWORK_LABEL = "platform.network/{}"
CHECKSUM = "platform/config-checksum"
# Unprivileged users may bind ports below 1024 (a "safe" sysctl, allowed by "restricted").
UNPRIVILEGED_PORTS = "net.ipv4.ip_unprivileged_port_start"
NOBODY = 65534
CONFIG_VOLUME = "config"
SECRET_VOLUME = "secrets"  # noqa: S105 - a volume name
SCRATCH_VOLUME = "scratch-{}"


@dataclass(frozen=True)
class ClusterSettings:
    """How every service runs on this cluster; the image facts a spec does not carry.

    `users`: the uid a service's image runs as (images whose USER is root are run as this uid
    instead); `scratch_dirs`: writable directories an image needs besides /tmp, so the root
    filesystem stays read-only; `extra_ports`: ports a service serves besides its main one.
    """

    namespace: str
    storage_class: str
    volume_size: str
    health_interval_seconds: int
    startup_timeout_seconds: int
    replicas: Mapping[str, int] = field(default_factory=dict)
    users: Mapping[str, int] = field(default_factory=dict)
    scratch_dirs: Mapping[str, Sequence[str]] = field(default_factory=dict)
    extra_ports: Mapping[str, Sequence[int]] = field(default_factory=dict)
    # The Secret (kubernetes.io/dockerconfigjson) pods of locally built images pull with;
    # empty when the nodes' own credentials reach the registry.
    pull_secret: str = ""


def labels(service: str) -> dict[str, str]:
    """The selector labels of one service's pods."""
    return {NAME: service, PART_OF: PART_OF_VALUE}


def pod_labels(spec: ServiceSpec) -> dict[str, str]:
    networks = set(spec.networks) | ({"edge"} if spec.published else set())
    return {**labels(spec.name), **{NETWORK_LABEL.format(n): "true" for n in sorted(networks)}}


def file_key(path: str) -> str:
    """A ConfigMap/Secret key for a file path (keys allow only [-._a-zA-Z0-9])."""
    return re.sub(r"[^-._a-zA-Z0-9]", "_", path.strip("/"))


def metadata(name: str, namespace: str, extra: Mapping[str, str] | None = None) -> Obj:
    return {"name": name, "namespace": namespace, "labels": {**labels(name), **(extra or {})}}


def config_map(spec: ServiceSpec, namespace: str, contents: Mapping[str, str]) -> Obj:
    """The service's non-secret files, by path."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec.name, namespace),
        "data": {file_key(path): text for path, text in sorted(contents.items())},
    }


def secret(spec: ServiceSpec, namespace: str, contents: Mapping[str, str]) -> Obj:
    """The service's secret files, by path (the Pulumi layer keeps `stringData` secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(spec.name, namespace),
        "stringData": {file_key(path): text for path, text in sorted(contents.items())},
    }


def pull_secret(name: str, namespace: str, server: str, username: str, password: str) -> Obj:
    """Registry credentials the kubelet pulls with (a `kubernetes.io/dockerconfigjson` Secret,
    in the format of Docker's config.json)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {server: {"username": username, "password": password, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": metadata(name, namespace),
        "stringData": {".dockerconfigjson": json.dumps(config, sort_keys=True)},
    }


def container_ports(spec: ServiceSpec, cluster: ClusterSettings) -> list[int]:
    ports = [spec.port, *(p.container_port for p in spec.published)]
    ports += list(cluster.extra_ports.get(spec.name, ()))
    return sorted(set(ports))


def service(spec: ServiceSpec, cluster: ClusterSettings) -> Obj:
    """A ClusterIP Service named like the Docker alias, so in-namespace names stay the same."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec.name, cluster.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": labels(spec.name),
            "ports": [
                {"name": f"tcp-{p}", "port": p, "targetPort": p, "protocol": "TCP"}
                for p in container_ports(spec, cluster)
            ],
        },
    }


def _probes(spec: ServiceSpec, cluster: ClusterSettings) -> Obj:
    interval = cluster.health_interval_seconds
    if spec.health is None:
        # No shell or HTTP client in the image: the port accepting connections is the signal.
        check: Obj = {"tcpSocket": {"port": spec.port}}
        timeout, retries, start = 5, 3, 10
    else:
        check = {"exec": {"command": list(spec.health.command)}}
        timeout = spec.health.timeout_seconds
        retries = spec.health.retries
        start = spec.health.start_period_seconds
    base = {**check, "timeoutSeconds": timeout, "periodSeconds": interval}
    probes: Obj = {
        "readinessProbe": {**base, "failureThreshold": retries},
        "livenessProbe": {**base, "failureThreshold": retries},
    }
    if start > interval:
        # Liveness waits until the service has started once, at most the startup timeout.
        period = 2
        probes["startupProbe"] = {
            **check,
            "timeoutSeconds": timeout,
            "periodSeconds": period,
            "failureThreshold": math.ceil(cluster.startup_timeout_seconds / period),
        }
    return probes


def _mounts(spec: ServiceSpec) -> tuple[list[Obj], list[Obj]]:
    """Volumes and mounts: files (one subPath each), scratch directories, data volumes."""
    volumes: list[Obj] = []
    mounts: list[Obj] = []
    plain = [f for f in spec.files if not f.secret]
    secrets = [f for f in spec.files if f.secret]
    if plain:
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": spec.name}})
    if secrets:
        # 0440: readable by the pod's group (fsGroup), nobody else.
        volumes.append(
            {"name": SECRET_VOLUME, "secret": {"secretName": spec.name, "defaultMode": 0o440}}
        )
    for f in spec.files:
        mounts.append(
            {
                "name": SECRET_VOLUME if f.secret else CONFIG_VOLUME,
                "mountPath": f.path,
                "subPath": file_key(f.path),
                "readOnly": True,
            }
        )
    for v in spec.volumes:
        mounts.append({"name": v.name, "mountPath": v.mount_path})
    return volumes, mounts


def pod_template(spec: ServiceSpec, cluster: ClusterSettings, checksum: str) -> Obj:
    uid = cluster.users.get(spec.name, NOBODY)
    volumes, mounts = _mounts(spec)
    for i, path in enumerate(("/tmp", *cluster.scratch_dirs.get(spec.name, ()))):  # noqa: S108
        volumes.append({"name": SCRATCH_VOLUME.format(i), "emptyDir": {}})
        mounts.append({"name": SCRATCH_VOLUME.format(i), "mountPath": path})
    ports = container_ports(spec, cluster)
    pod_security: Obj = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if min(ports) < 1024:
        pod_security["sysctls"] = [{"name": UNPRIVILEGED_PORTS, "value": "0"}]
    container: Obj = {
        "name": spec.name,
        "image": spec.image,
        "ports": [{"containerPort": p, "protocol": "TCP"} for p in ports],
        "resources": {
            "requests": {"cpu": "50m", "memory": f"{spec.memory_mb}Mi"},
            "limits": {"memory": f"{spec.memory_mb}Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
        **_probes(spec, cluster),
    }
    if spec.command is not None:
        # Docker's `command` is the image's CMD: the arguments to its entrypoint.
        container["args"] = [str(a) for a in spec.command]
    if spec.env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in spec.env.items()]
    pod: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.stop_grace_seconds,
        "securityContext": pod_security,
        "containers": [container],
        "volumes": volumes,
    }
    if spec.build is not None and cluster.pull_secret:
        # Built here and pushed to the stack's registry (platform.py); public images need none.
        pod["imagePullSecrets"] = [{"name": cluster.pull_secret}]
    return {
        "metadata": {"labels": pod_labels(spec), "annotations": {CHECKSUM: checksum}},
        "spec": pod,
    }


def workload(spec: ServiceSpec, cluster: ClusterSettings, checksum: str) -> Obj:
    """A StatefulSet (one replica, a claim per data volume) or a Deployment."""
    template = pod_template(spec, cluster, checksum)
    selector = {"matchLabels": labels(spec.name)}
    meta = metadata(spec.name, cluster.namespace)
    if spec.volumes:
        claim_spec: Obj = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": cluster.volume_size}},
        }
        if cluster.storage_class:
            claim_spec["storageClassName"] = cluster.storage_class
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "serviceName": spec.name,
                "selector": selector,
                "updateStrategy": {"type": "RollingUpdate"},
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Retain",
                    "whenScaled": "Retain",
                },
                "template": template,
                "volumeClaimTemplates": [
                    {"metadata": {"name": v.name}, "spec": claim_spec} for v in spec.volumes
                ],
            },
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": cluster.replicas.get(spec.name, 1),
            "selector": selector,
            # A new pod is ready before an old one goes: never below the replica count.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": template,
        },
    }


def task_secret(task: TaskSpec, namespace: str, contents: Mapping[str, str]) -> Obj:
    """A task's files, all in one Secret (a task's files are its app_config)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(task.name, namespace),
        "stringData": {file_key(path): text for path, text in sorted(contents.items())},
    }


def job(task: TaskSpec, cluster: ClusterSettings, pull_secret: str = "") -> Obj:
    """A `batch/v1` Job running the task once: no retry (`backoffLimit: 0`; a failed
    migration must fail the deploy, not run again with a new restore point), bounded by the
    task's timeout, under the same restricted pod security as every service."""
    uid = cluster.users.get(task.name, NOBODY)
    volumes: list[Obj] = [{"name": SCRATCH_VOLUME.format(0), "emptyDir": {}}]
    mounts: list[Obj] = [{"name": SCRATCH_VOLUME.format(0), "mountPath": "/tmp"}]  # noqa: S108
    if task.files:
        volumes.append(
            {"name": SECRET_VOLUME, "secret": {"secretName": task.name, "defaultMode": 0o440}}
        )
        mounts += [
            {
                "name": SECRET_VOLUME,
                "mountPath": f.path,
                "subPath": file_key(f.path),
                "readOnly": True,
            }
            for f in task.files
        ]
    container: Obj = {
        "name": task.name,
        "image": task.image,
        "command": list(task.entrypoint),
        "args": list(task.command),
        "resources": {
            "requests": {"cpu": "50m", "memory": f"{task.memory_mb}Mi"},
            "limits": {"memory": f"{task.memory_mb}Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if task.env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in task.env.items()]
    pod: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if pull_secret:
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    networks = {NETWORK_LABEL.format(n): "true" for n in sorted(set(task.networks))}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(task.name, cluster.namespace, {"platform/task": task.identity}),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": task.timeout_seconds,
            "template": {"metadata": {"labels": {**labels(task.name), **networks}}, "spec": pod},
        },
    }


def pod_disruption_budget(spec: ServiceSpec, namespace: str) -> Obj:
    """At most one pod of a service evicted at a time (node drains, upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(spec.name, namespace),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(spec.name)}},
    }


def objects(
    spec: ServiceSpec, cluster: ClusterSettings, contents: Mapping[str, str], checksum: str
) -> list[Obj]:
    """Every object of one service, with its files' contents by path (for validation)."""
    plain = {f.path: contents[f.path] for f in spec.files if not f.secret}
    secrets = {f.path: contents[f.path] for f in spec.files if f.secret}
    found = [
        workload(spec, cluster, checksum),
        service(spec, cluster),
        pod_disruption_budget(spec, cluster.namespace),
    ]
    if plain:
        found.append(config_map(spec, cluster.namespace, plain))
    if secrets:
        found.append(secret(spec, cluster.namespace, secrets))
    return found


# -- the namespace and its network policies ---------------------------------------------------


def namespace(name: str) -> Obj:
    """The namespace, enforcing the restricted Pod Security Standard on every pod."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def _policy(name: str, namespace: str, selector: Obj, spec: Obj) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {PART_OF: PART_OF_VALUE}},
        "spec": {"podSelector": selector, **spec},
    }


def network_policies(
    namespace: str, gateway_namespace: str, entry: str, entry_ports: Sequence[int]
) -> list[Obj]:
    """Default deny, then exactly what Docker's networks allow.

    Docker: every container on `backend` reaches every other one on it (and nothing outside:
    internal); containers also on `edge` reach out; only the entry point's published ports
    are reachable from outside. Here: the same three rules, plus DNS (Docker's resolver is
    built in, the cluster's is a pod in kube-system) and the Gateway in place of the host's
    published ports.
    """
    backend = {"matchLabels": {NETWORK_LABEL.format("backend"): "true"}}
    edge = {"matchLabels": {NETWORK_LABEL.format("edge"): "true"}}
    ours = {"matchLabels": {PART_OF: PART_OF_VALUE}}
    both = ["Ingress", "Egress"]
    return [
        _policy("default-deny", namespace, ours, {"policyTypes": both}),
        _policy(
            "backend",
            namespace,
            backend,
            {
                "policyTypes": both,
                "ingress": [{"from": [{"podSelector": backend}]}],
                "egress": [{"to": [{"podSelector": backend}]}],
            },
        ),
        _policy(
            "edge-egress",
            namespace,
            edge,
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}
                ],
            },
        ),
        _policy(
            "dns",
            namespace,
            ours,
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                },
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
                    }
                ],
            },
        ),
        _policy(
            "entry",
            namespace,
            {"matchLabels": labels(entry)},
            {
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {
                                        "kubernetes.io/metadata.name": gateway_namespace
                                    }
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": p} for p in entry_ports],
                    }
                ],
            },
        ),
    ]
