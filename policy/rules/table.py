"""The rules' table: one keyword record per house rule, in the order the pack reports them."""

from __future__ import annotations

from rules.base import Resource, Rule
from rules.docker import (
    BUILT_IMAGE,
    CONTAINER,
    IMAGE,
    NETWORK,
    check_backend_internal,
    check_capabilities,
    check_dev_loopback,
    check_healthcheck,
    check_memory,
    check_nginx_tls,
    check_no_new_privileges,
    check_prod_ports,
    check_restart,
)
from rules.images import check_image_digest, check_image_tag
from rules.kubernetes import (
    CNPG_CLUSTER,
    SERVICE,
    WORKLOADS,
    check_pod_memory,
    check_pod_probes,
    check_pod_security,
    check_service_exposure,
)

_BREAKS_SAFETY = "a violation is unsafe in every stack and the fix is always in our hands"

RULES: tuple[Rule, ...] = (
    Rule(
        name="image-pinned-tag",
        description="Images are pinned to a version tag (or digest), never ':latest' or untagged.",
        enforcement="mandatory",
        why="an unpinned image changes what runs without a change to the code under review",
        types=frozenset({IMAGE, BUILT_IMAGE, CNPG_CLUSTER, *WORKLOADS}),
        check=check_image_tag,
    ),
    Rule(
        name="image-pinned-digest-prod",
        description=(
            "Outside dev, images (and the bases of locally built ones) are also pinned to a digest."
        ),
        enforcement="advisory",
        why=(
            "digests cannot be resolved without registry access, which the build machines lack; "
            "the tag is pinned and mandatory, the digest is reported on every preview until set"
        ),
        types=frozenset({IMAGE, BUILT_IMAGE}),
        check=check_image_digest,
        stacks="prod",
    ),
    Rule(
        name="container-healthcheck",
        description="Every container has a healthcheck.",
        enforcement="mandatory",
        why="start order (wait=True) and restarts depend on it; " + _BREAKS_SAFETY,
        types=frozenset({CONTAINER}),
        check=check_healthcheck,
    ),
    Rule(
        name="container-restart-policy",
        description="Every container has a restart policy.",
        enforcement="mandatory",
        why="without one a crashed service stays down; " + _BREAKS_SAFETY,
        types=frozenset({CONTAINER}),
        check=check_restart,
    ),
    Rule(
        name="container-memory-limit",
        description="Every container has a memory limit.",
        enforcement="mandatory",
        why="one unbounded container can starve every other service on the host",
        types=frozenset({CONTAINER}),
        check=check_memory,
    ),
    Rule(
        name="ports-edge-only-prod",
        description="Outside dev, only the edge (nginx) publishes ports.",
        enforcement="mandatory",
        why="a published database or admin port is reachable from the network: no exceptions",
        types=frozenset({CONTAINER}),
        check=check_prod_ports,
        stacks="prod",
    ),
    Rule(
        name="ports-loopback-dev",
        description="In dev, ports other than the edge's bind to loopback only.",
        enforcement="mandatory",
        why="dev hosts are laptops on shared networks; 127.0.0.1 gives the same convenience",
        types=frozenset({CONTAINER}),
        check=check_dev_loopback,
        stacks="dev",
    ),
    Rule(
        name="backend-network-internal",
        description="The backend network is internal (no route off the host).",
        enforcement="mandatory",
        why="it carries PostgreSQL and Redis; isolation is the design, not a preference",
        types=frozenset({NETWORK}),
        check=check_backend_internal,
    ),
    Rule(
        name="no-new-privileges",
        description="Containers run with no-new-privileges.",
        enforcement="mandatory",
        why="it costs nothing and every image here runs with it",
        types=frozenset({CONTAINER}),
        check=check_no_new_privileges,
    ),
    Rule(
        name="capabilities-dropped",
        description="Containers drop ALL capabilities and add back only what their image needs.",
        enforcement="mandatory",
        why=(
            "added capabilities are the difference between a bug and a host compromise; a new "
            "need is met by a reviewed change to ALLOWED_CAPABILITIES"
        ),
        types=frozenset({CONTAINER}),
        check=check_capabilities,
    ),
    Rule(
        name="nginx-tls-modern",
        description="nginx allows only TLS 1.2 and 1.3 (never SSLv3, TLS 1.0 or 1.1).",
        enforcement="mandatory",
        why="TLS 1.0/1.1 are deprecated (RFC 8996) and fail compliance scans",
        types=frozenset({CONTAINER}),
        check=check_nginx_tls,
    ),
    Rule(
        name="pod-probes",
        description="Every Kubernetes container has a readiness and a liveness probe.",
        enforcement="mandatory",
        why="rollouts and Services wait on readiness, restarts on liveness; " + _BREAKS_SAFETY,
        types=WORKLOADS,
        check=check_pod_probes,
    ),
    Rule(
        name="pod-memory-limit",
        description="Every Kubernetes container has a memory limit.",
        enforcement="mandatory",
        why="one unbounded container can starve every other pod on its node",
        types=WORKLOADS,
        check=check_pod_memory,
    ),
    Rule(
        name="pod-security-restricted",
        description=(
            "Pods meet the restricted Pod Security Standard, with a read-only root filesystem."
        ),
        enforcement="mandatory",
        why="the namespace enforces the standard: a violating pod would be refused at apply time",
        types=WORKLOADS,
        check=check_pod_security,
    ),
    Rule(
        name="service-cluster-internal",
        description=(
            "Kubernetes Services are ClusterIP, except the edge's (no other LoadBalancer/NodePort)."
        ),
        enforcement="mandatory",
        why="the Gateway is the one way in; a LoadBalancer or NodePort bypasses it and its TLS",
        types=frozenset({SERVICE}),
        check=check_service_exposure,
    ),
)


def violations(resource: Resource, stack: str) -> dict[str, list[str]]:
    """Every rule `resource` breaks in `stack`, by rule name."""
    found = {rule.name: rule.violations(resource, stack) for rule in RULES}
    return {name: messages for name, messages in found.items() if messages}
