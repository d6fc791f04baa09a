"""Breakages for the policy tests: a real resource of our stack, broken in one way each.

Shared by the rules' unit tests (test_policy.py) and the real pack's (test_policy_pack.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import rules
from tests.stack_harness import DIGEST

Mutation = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Mutation:
    return lambda props: props.__setitem__(key, value)


def _drop(key: str) -> Mutation:
    return lambda props: props.pop(key)


def _edit_nginx_conf(old: str, new: str) -> Mutation:
    def edit(props: dict[str, Any]) -> None:
        (upload,) = [u for u in props["uploads"] if u["file"].endswith("/nginx.conf")]
        assert old in upload["content"]
        upload["content"] = upload["content"].replace(old, new)

    return edit


def _publish_on_all_interfaces(props: dict[str, Any]) -> None:
    for port in props["ports"]:
        port["ip"] = "0.0.0.0"


def _drop_nginx_conf(props: dict[str, Any]) -> None:
    props["uploads"] = [u for u in props["uploads"] if not u["file"].endswith("/nginx.conf")]


def _edit_container(name: str, edit: Callable[[dict[str, Any]], None]) -> Mutation:
    """Edit one container of a Kubernetes workload's pod template."""

    def mutate(props: dict[str, Any]) -> None:
        (container,) = [
            c for c in props["spec"]["template"]["spec"]["containers"] if c["name"] == name
        ]
        edit(container)

    return mutate


def _edit_pod(key: str, value: Any) -> Mutation:
    return lambda props: props["spec"]["template"]["spec"].__setitem__(key, value)


def _service_type(kind: str) -> Mutation:
    return lambda props: props["spec"].__setitem__("type", kind)


CTR, IMG, NET = rules.CONTAINER, rules.IMAGE, rules.NETWORK
DEPLOYMENT, STATEFUL_SET = "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"
# (rule, stack, resource type, name suffix, mutation, expected words in the message)
BREAKAGES: list[tuple[str, str, str, str, Mutation, str]] = [
    (
        "image-pinned-tag",
        "dev",
        IMG,
        "alertmanager-image",
        _set("name", "prom/alertmanager:latest"),
        "':latest'",
    ),
    (
        "image-pinned-tag",
        "dev",
        rules.BUILT_IMAGE,
        "postgres-image",
        _set("imageName", "data-platform-postgres:latest"),
        "':latest'",
    ),
    (
        "image-pinned-digest-prod",
        "prod",
        rules.BUILT_IMAGE,
        "postgres-image",
        lambda props: props["build"]["args"].__setitem__(
            "POSTGRES_IMAGE", "postgres:15.13-bookworm"
        ),
        "'postgres:15.13-bookworm' is pinned to a tag only",
    ),
    ("image-pinned-tag", "dev", IMG, "redis-image", _set("name", "redis"), "has no tag"),
    (
        "image-pinned-tag",
        "prod",
        rules.BUILT_IMAGE,
        "runtime-image",
        _set("imageName", "data-platform-runtime:latest"),
        "':latest'",
    ),
    (
        "image-pinned-tag",
        "prod",
        IMG,
        "grafana-image",
        _set("name", "grafana/grafana:latest" + DIGEST),
        "':latest'",
    ),
    (
        "image-pinned-digest-prod",
        "prod",
        IMG,
        "nginx-image",
        _set("name", "nginx:1.27.4-alpine"),
        "pinned to a tag only",
    ),
    ("container-healthcheck", "dev", CTR, "-grafana", _drop("healthcheck"), "no healthcheck"),
    # Loki probes itself (`loki -health`): no longer a reviewed exception
    ("container-healthcheck", "dev", CTR, "-loki", _drop("healthcheck"), "no healthcheck"),
    (
        "container-healthcheck",
        "prod",
        CTR,
        "-redis",
        _set("healthcheck", {"tests": ["NONE"]}),
        "no healthcheck",
    ),
    ("container-restart-policy", "dev", CTR, "-postgres", _drop("restart"), "restart policy 'no'"),
    ("container-restart-policy", "prod", CTR, "-nginx", _set("restart", "no"), "restart policy"),
    ("container-memory-limit", "prod", CTR, "-prometheus", _drop("memory"), "no memory limit"),
    ("container-memory-limit", "dev", CTR, "-redis", _set("memory", 0), "no memory limit"),
    (
        "ports-edge-only-prod",
        "prod",
        CTR,
        "-postgres",
        _set("ports", [{"internal": 5432, "external": 5432, "ip": "127.0.0.1"}]),
        "only nginx may publish",
    ),
    (
        "ports-edge-only-prod",
        "prod",
        CTR,
        "-grafana",
        _set("ports", [{"internal": 3000, "external": 3000}]),
        "publishes 0.0.0.0:3000->3000",
    ),
    ("ports-loopback-dev", "dev", CTR, "-postgres", _publish_on_all_interfaces, "127.0.0.1 only"),
    ("ports-loopback-dev", "dev", CTR, "-redis", _publish_on_all_interfaces, "0.0.0.0:6379->6379"),
    ("backend-network-internal", "prod", NET, "-backend", _set("internal", False), "not internal"),
    ("backend-network-internal", "dev", NET, "-backend", _drop("internal"), "not internal"),
    ("no-new-privileges", "prod", CTR, "-alertmanager", _set("securityOpts", []), "no-new-priv"),
    (
        "capabilities-dropped",
        "prod",
        CTR,
        "-prometheus",
        _set("capabilities", {"drops": ["NET_RAW"]}),
        "drop ALL",
    ),
    (
        "capabilities-dropped",
        "dev",
        CTR,
        "-nginx",
        _set("capabilities", {"drops": ["ALL"], "adds": ["CHOWN", "SYS_ADMIN"]}),
        "adds SYS_ADMIN",
    ),
    ("capabilities-dropped", "prod", CTR, "-grafana", _set("privileged", True), "is privileged"),
    (
        "nginx-tls-modern",
        "prod",
        CTR,
        "-nginx-config-apply",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.1 TLSv1.2;"),
        "enables TLSv1.1",
    ),
    (
        "nginx-tls-modern",
        "dev",
        CTR,
        "-nginx-config-apply",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1 TLSv1.2 TLSv1.3;"),
        "enables TLSv1",
    ),
    (
        "nginx-tls-modern",
        "prod",
        CTR,
        "-nginx-config-apply",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "# ssl_protocols TLSv1.2 TLSv1.3;"),
        "sets no ssl_protocols",
    ),
    (
        "nginx-tls-modern",
        "dev",
        CTR,
        "-nginx-config-apply",
        _drop_nginx_conf,
        "no uploaded nginx.conf",
    ),
    # Kubernetes (the k8s stack)
    (
        "image-pinned-tag",
        "k8s",
        DEPLOYMENT,
        "-nginx-deployment",
        _edit_container("nginx", lambda c: c.__setitem__("image", "nginx")),
        "image 'nginx' has no tag",
    ),
    (
        "image-pinned-tag",
        "k8s",
        rules.CNPG_CLUSTER,
        "-postgres-cluster",
        lambda props: props["spec"].__setitem__("imageName", "ghcr.io/cnpg/postgresql:latest"),
        "':latest'",
    ),
    (
        "pod-probes",
        "k8s",
        DEPLOYMENT,
        "-blackbox-deployment",
        _edit_container("blackbox", lambda c: c.pop("readinessProbe")),
        "has no readinessProbe",
    ),
    (
        "pod-probes",
        "k8s",
        STATEFUL_SET,
        "-redis-statefulset",
        _edit_container("redis", lambda c: c.pop("livenessProbe")),
        "has no livenessProbe",
    ),
    (
        "pod-memory-limit",
        "k8s",
        STATEFUL_SET,
        "-runtime-statefulset",
        _edit_container("runtime", lambda c: c["resources"].pop("limits")),
        "no memory limit",
    ),
    (
        "pod-security-restricted",
        "k8s",
        STATEFUL_SET,
        "-runtime-statefulset",
        _edit_container(
            "runtime", lambda c: c["securityContext"].__setitem__("allowPrivilegeEscalation", True)
        ),
        "allowPrivilegeEscalation is not false",
    ),
    (
        "pod-security-restricted",
        "k8s",
        DEPLOYMENT,
        "-nginx-deployment",
        _edit_pod("hostNetwork", True),
        "hostNetwork is set",
    ),
    (
        "service-cluster-internal",
        "k8s",
        "kubernetes:core/v1:Service",
        "-redis-service",
        _service_type("LoadBalancer"),
        "Service 'redis' is of type LoadBalancer",
    ),
    (
        "service-cluster-internal",
        "k8s",
        "kubernetes:core/v1:Service",
        "-postgres-service",
        _service_type("NodePort"),
        "of type NodePort",
    ),
]


# Rules that keep the services isolated on the network (the specification's ET-INFRA-01.2).
ISOLATION_RULES = {
    "ports-edge-only-prod",
    "ports-loopback-dev",
    "backend-network-internal",
    "service-cluster-internal",
}


def breakage_params() -> list[Any]:
    """BREAKAGES as pytest parameters, the isolation cases tagged with their spec ID."""
    return [
        pytest.param(
            *b,
            id=f"{b[0]}-{b[1]}-{b[3].strip('-')}",
            marks=[pytest.mark.req("ET-INFRA-01.2")] if b[0] in ISOLATION_RULES else [],
        )
        for b in BREAKAGES
    ]
