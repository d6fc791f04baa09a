"""The Kubernetes stack's rules: pods (probes, memory, Pod Security) and Services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules.base import EDGE_SERVICES, Resource, deep_plain, get
from rules.pss import restricted_violations

# Kubernetes (platform: kubernetes): what runs a pod, where its pod spec is, and Services.
POD = "kubernetes:core/v1:Pod"
TEMPLATED_WORKLOADS = frozenset(
    {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:batch/v1:Job",
    }
)
CRON_JOB = "kubernetes:batch/v1:CronJob"
WORKLOADS = TEMPLATED_WORKLOADS | {POD, CRON_JOB}
SERVICE = "kubernetes:core/v1:Service"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"  # its PostgreSQL image: imageName
EXPOSED_SERVICE_TYPES = frozenset({"LoadBalancer", "NodePort"})


def pod_spec(resource: Resource) -> Mapping[str, Any]:
    """The pod spec a workload runs (a Pod's own spec, a template's, a CronJob's job's)."""
    spec = get(resource.props, "spec")
    if resource.type == CRON_JOB:
        spec = get(get(spec, "jobTemplate"), "spec")
    if resource.type != POD:
        spec = get(get(spec, "template"), "spec")
    plain = deep_plain(spec)
    return plain if isinstance(plain, Mapping) else {}


def pod_containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def _workload(resource: Resource) -> str:
    kind = resource.type.rsplit(":", 1)[-1]
    return f"{kind} '{get(get(resource.props, 'metadata'), 'name') or resource.name}'"


JOB = "kubernetes:batch/v1:Job"


def check_pod_probes(resource: Resource, stack: str) -> list[str]:
    if resource.type == JOB:  # runs to its end (the migration step): nothing to probe
        return []
    found = []
    for c in pod_spec(resource).get("containers") or []:
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            found.append(
                f"container '{c.get('name')}' of {_workload(resource)} has no "
                f"{' or '.join(missing)}: traffic would reach it before it is ready, and a hung "
                "process would never be restarted"
            )
    return found


def check_pod_memory(resource: Resource, stack: str) -> list[str]:
    return [
        f"container '{c.get('name')}' of {_workload(resource)} has no memory limit: one leak "
        "could take down every pod on its node"
        for c in pod_containers(pod_spec(resource))
        if not ((c.get("resources") or {}).get("limits") or {}).get("memory")
    ]


def check_pod_security(resource: Resource, stack: str) -> list[str]:
    return [
        f"{_workload(resource)} breaks the restricted Pod Security Standard: {problem}"
        for problem in restricted_violations(pod_spec(resource))
    ]


def check_service_exposure(resource: Resource, stack: str) -> list[str]:
    spec = get(resource.props, "spec")
    kind = get(spec, "type")
    if kind not in EXPOSED_SERVICE_TYPES:
        return []
    name = str(get(get(resource.props, "metadata"), "name") or resource.name)
    if name in EDGE_SERVICES:
        return []
    return [
        f"Service '{name}' is of type {kind}: it is reachable from outside the cluster; only "
        f"{', '.join(sorted(EDGE_SERVICES))} may be, everything else is ClusterIP"
    ]
