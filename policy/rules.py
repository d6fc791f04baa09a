"""The house rules for the data platform's stacks, as plain functions over one resource.

Why a plain module: constructing a `pulumi_policy.PolicyPack` starts a gRPC server and blocks,
so tests cannot import the pack. Everything that decides whether a resource breaks a rule
lives here and imports nothing from Pulumi; `__main__.py` only wraps each `Rule` in a
`ResourceValidationPolicy`.

A rule sees what the engine hands a policy: the resource type token, its logical name, its
inputs as a camelCase-keyed mapping (`healthcheck`, `networksAdvanced`, `securityOpts`, ...)
and the stack name. Values may still carry Pulumi's secret marker (the unit-test harness
records them that way); `_plain` strips it. In a real preview a value that is not known yet is
a proxy that raises on access: rules read only the keys they need, one at a time, and let that
exception through, so the engine reports "can't run policy during preview" for that resource
instead of a false pass or a false violation.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"  # built from this repository (runtime, postgres)
NETWORK = "docker:index/network:Network"
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

# Stacks where developer conveniences (data ports on loopback, tag-only images) are allowed.
# Any other stack name, or none at all, gets the production rules: unknown means strict.
DEV_STACKS = frozenset({"dev"})
# Services allowed to publish ports in production: the TLS-terminating reverse proxy.
EDGE_SERVICES = frozenset({"nginx"})
# Capabilities a service may add back after dropping ALL, because its image's entrypoint needs
# them (chown its data as root, then switch user; nginx binds 80/443). Widening this list is a
# reviewed change to the policy, not something a stack change can do on its own.
ALLOWED_CAPABILITIES: Mapping[str, frozenset[str]] = {
    "postgres": frozenset({"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}),
    # replicas run the same image and entrypoint (chown PGDATA, then setpriv to postgres)
    "postgres-replica": frozenset({"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}),
    "redis": frozenset({"CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"}),
    "nginx": frozenset({"CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"}),
    # cAdvisor reads every container's /proc entries and Docker's state as root.
    "cadvisor": frozenset({"DAC_READ_SEARCH", "SYS_PTRACE"}),
}
# Services whose image has no shell or HTTP client to run a Docker health check with
# (`FROM scratch`). Prometheus's `up` watches them instead. A reviewed list, like the one above.
NO_HEALTHCHECK: Mapping[str, str] = {
    "nginx-exporter": 'FROM scratch; watched by up{job="nginx"} (alert TargetDown)',
    "loki": 'distroless; watched by up{job="loki"} (alert LogsTracesComponentDown)',
    "tempo": 'distroless; watched by up{job="tempo"} (alert LogsTracesComponentDown)',
}
RESTART_POLICIES = frozenset({"always", "unless-stopped", "on-failure"})
WEAK_TLS_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
TITLE_LABEL = "org.opencontainers.image.title"

# Pulumi's wire format for a secret value: {SIG_KEY: SECRET_SIG, "value": ...}.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a type tag, not a password
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

Enforcement = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Resource:
    """One resource as a policy sees it."""

    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """A house rule: which resources it looks at, how it is enforced and why."""

    name: str
    description: str
    enforcement: Enforcement
    why: str  # why this enforcement level (docs/ci.md's table repeats it)
    types: frozenset[str]
    check: Callable[[Resource, str], list[str]]
    stacks: Literal["all", "dev", "prod"] = "all"

    def applies(self, resource: Resource, stack: str) -> bool:
        if resource.type not in self.types:
            return False
        return self.stacks == "all" or (self.stacks == "dev") == is_dev(stack)

    def violations(self, resource: Resource, stack: str) -> list[str]:
        """Messages for each way `resource` breaks this rule in `stack` ([] when it passes)."""
        return self.check(resource, stack) if self.applies(resource, stack) else []


def is_dev(stack: str) -> bool:
    return stack in DEV_STACKS


def stack_of(urn: str) -> str:
    """The stack name in a URN (`urn:pulumi:<stack>::<project>::<type>::<name>`), or ""."""
    head = urn.split("::", 1)[0]
    return head.removeprefix("urn:pulumi:") if head.startswith("urn:pulumi:") else ""


# -- reading inputs ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """`value` without Pulumi's secret marker (one level; nested values are read lazily)."""
    while isinstance(value, Mapping) and value.get(_SIG_KEY) == _SECRET_SIG:
        value = value["value"]
    return value


def _get(props: Any, key: str) -> Any:
    props = _plain(props)
    return _plain(props.get(key)) if isinstance(props, Mapping) else None


def _items(value: Any) -> list[Any]:
    value = _plain(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return []


def service_of(resource: Resource) -> str:
    """The service a container runs: its title label, else its single network alias."""
    for label in _items(_get(resource.props, "labels")):
        if _get(label, "label") == TITLE_LABEL:
            return str(_get(label, "value"))
    aliases = {
        str(alias)
        for network in _items(_get(resource.props, "networksAdvanced"))
        for alias in _items(_get(network, "aliases"))
    }
    return aliases.pop() if len(aliases) == 1 else resource.name


# -- images -----------------------------------------------------------------------------------


def _image_tag(reference: str) -> str | None:
    last = reference.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else None


def _run_references(resource: Resource) -> list[str]:
    """The images a resource runs: an image resource's name, a pod's containers' images."""
    if resource.type in WORKLOADS:
        return [str(_get(c, "image")) for c in _pod_containers(_pod_spec(resource))]
    if resource.type == CNPG_CLUSTER:
        return [str(_get(_get(resource.props, "spec"), "imageName"))]
    return [str(_get(resource.props, "imageName" if resource.type == BUILT_IMAGE else "name"))]


def check_image_tag(resource: Resource, stack: str) -> list[str]:
    found = []
    for reference in _run_references(resource):
        tag = _image_tag(reference)
        if tag == "latest":
            found.append(
                f"image '{reference}' uses ':latest'; pin a version such as 'redis:7.4.2-alpine'"
            )
        elif tag is None and not _DIGEST.search(reference):
            found.append(
                f"image '{reference}' has no tag; pin a version such as 'redis:7.4.2-alpine'"
            )
    return found


def _pulled_references(resource: Resource) -> list[str]:
    """Images pulled from a registry: a RemoteImage's name, a built image's base images
    (its build arguments named *_IMAGE, such as the PostgreSQL image's POSTGRES_IMAGE)."""
    if resource.type != BUILT_IMAGE:
        return [str(_get(resource.props, "name"))]
    args = _get(_get(resource.props, "build"), "args")
    if not isinstance(args, Mapping):
        return []
    return [str(_plain(v)) for k, v in sorted(args.items()) if str(k).endswith("_IMAGE")]


def check_image_digest(resource: Resource, stack: str) -> list[str]:
    return [
        f"image '{reference}' is pinned to a tag only; in {stack or 'an unnamed stack'} pin it "
        "to a digest too ('name:tag@sha256:...', from `docker buildx imagetools inspect`) so a "
        "re-pushed tag cannot change what runs"
        for reference in _pulled_references(resource)
        if not _DIGEST.search(reference)
    ]


# -- containers -------------------------------------------------------------------------------


def check_healthcheck(resource: Resource, stack: str) -> list[str]:
    tests = _items(_get(_get(resource.props, "healthcheck"), "tests"))
    if not tests and service_of(resource) in NO_HEALTHCHECK:
        return []
    if not tests or tests[0] == "NONE":
        return [
            f"container '{service_of(resource)}' has no healthcheck: dependents would start "
            "before it is ready and a hung process would never be noticed"
        ]
    return []


def check_restart(resource: Resource, stack: str) -> list[str]:
    restart = _get(resource.props, "restart")
    if restart not in RESTART_POLICIES:
        allowed = ", ".join(sorted(RESTART_POLICIES))
        return [
            f"container '{service_of(resource)}' has restart policy {restart or 'no'!r}; "
            f"use one of {allowed}"
        ]
    return []


def check_memory(resource: Resource, stack: str) -> list[str]:
    memory = _get(resource.props, "memory")
    if not isinstance(memory, int | float) or memory <= 0:
        return [
            f"container '{service_of(resource)}' has no memory limit: one leak could take "
            "down every service on the host"
        ]
    return []


def _ports(resource: Resource) -> list[Any]:
    return _items(_get(resource.props, "ports"))


def _number(value: Any) -> Any:
    """Numbers arrive as floats (protobuf's Struct has no integers): 5432.0 reads as 5432."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _describe(port: Any) -> str:
    ip = _get(port, "ip") or "0.0.0.0"  # noqa: S104 - Docker's default when no ip is given
    return f"{ip}:{_number(_get(port, 'external'))}->{_number(_get(port, 'internal'))}"


def check_prod_ports(resource: Resource, stack: str) -> list[str]:
    service = service_of(resource)
    if service in EDGE_SERVICES:
        return []
    return [
        f"container '{service}' publishes {_describe(port)} in {stack or 'an unnamed stack'}; "
        f"only {', '.join(sorted(EDGE_SERVICES))} may publish ports outside dev"
        for port in _ports(resource)
    ]


def _is_loopback(ip: Any) -> bool:
    try:
        return ipaddress.ip_address(str(ip)).is_loopback
    except ValueError:
        return False


def check_dev_loopback(resource: Resource, stack: str) -> list[str]:
    service = service_of(resource)
    if service in EDGE_SERVICES:
        return []
    return [
        f"container '{service}' publishes {_describe(port)}; in dev a data port binds to "
        "127.0.0.1 only, never to every interface"
        for port in _ports(resource)
        if not _is_loopback(_get(port, "ip"))
    ]


def check_no_new_privileges(resource: Resource, stack: str) -> list[str]:
    options = {str(o).replace("=", ":") for o in _items(_get(resource.props, "securityOpts"))}
    if options & {"no-new-privileges", "no-new-privileges:true"}:
        return []
    return [
        f"container '{service_of(resource)}' may gain privileges (setuid binaries); set "
        "security_opts=['no-new-privileges:true']"
    ]


def _capability(name: Any) -> str:
    return str(name).upper().removeprefix("CAP_")


def check_capabilities(resource: Resource, stack: str) -> list[str]:
    service = service_of(resource)
    found: list[str] = []
    if _get(resource.props, "privileged") is True:
        found.append(f"container '{service}' is privileged: it has every capability and device")
    capabilities = _get(resource.props, "capabilities")
    drops = {_capability(c) for c in _items(_get(capabilities, "drops"))}
    if "ALL" not in drops:
        found.append(
            f"container '{service}' keeps Docker's default capabilities; drop ALL and add back "
            "only what its image needs"
        )
    # numbered instances of a service (postgres-replica-2) share its allowance
    allowed = ALLOWED_CAPABILITIES.get(re.sub(r"-[0-9]+$", "", service), frozenset())
    extra = sorted({_capability(c) for c in _items(_get(capabilities, "adds"))} - allowed)
    if extra:
        found.append(
            f"container '{service}' adds {', '.join(extra)}, which its image does not need "
            f"(allowed: {', '.join(sorted(allowed)) or 'none'}; see ALLOWED_CAPABILITIES)"
        )
    return found


# -- networks ---------------------------------------------------------------------------------


def check_backend_internal(resource: Resource, stack: str) -> list[str]:
    if not resource.name.endswith("backend"):
        return []
    if _get(resource.props, "internal") is True:
        return []
    return [
        f"network '{resource.name}' is not internal: the databases on it would have a route "
        "off the host; set internal=True"
    ]


# -- nginx TLS --------------------------------------------------------------------------------

_COMMENT = re.compile(r"#[^\n]*")
_SSL_PROTOCOLS = re.compile(r"(?:^|[;{}\s])ssl_protocols\s+([^;]*);")
_SSL_LISTEN = re.compile(r"(?:^|[;{}\s])listen\s+[^;]*\bssl\b[^;]*;")


def _nginx_conf(resource: Resource) -> str | None:
    for upload in _items(_get(resource.props, "uploads")):
        if str(_get(upload, "file")).endswith("/nginx.conf"):
            return str(_get(upload, "content"))
    return None


def check_nginx_tls(resource: Resource, stack: str) -> list[str]:
    service = service_of(resource)
    conf = _nginx_conf(resource)
    if conf is None:
        if service in EDGE_SERVICES:
            return [f"container '{service}' has no uploaded nginx.conf, so its TLS is unchecked"]
        return []
    text = _COMMENT.sub("", conf)
    directives = [m.split() for m in _SSL_PROTOCOLS.findall(text)]
    if not directives and _SSL_LISTEN.search(text):
        return [
            f"nginx.conf of '{service}' listens with ssl but sets no ssl_protocols; nginx "
            "before 1.23.4 then allows TLSv1 and TLSv1.1: set 'ssl_protocols TLSv1.2 TLSv1.3;'"
        ]
    weak = sorted({p for protocols in directives for p in protocols if p in WEAK_TLS_PROTOCOLS})
    if weak:
        return [
            f"nginx.conf of '{service}' enables {', '.join(weak)}; allow only TLSv1.2 and TLSv1.3"
        ]
    return []


# -- Kubernetes workloads and Services ---------------------------------------------------------


def _deep_plain(value: Any) -> Any:
    """`value` with every secret marker stripped, at any depth (a pod spec is read whole)."""
    value = _plain(value)
    if isinstance(value, Mapping):
        return {k: _deep_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_deep_plain(v) for v in value]
    return value


def _pod_spec(resource: Resource) -> Mapping[str, Any]:
    """The pod spec a workload runs (a Pod's own spec, a template's, a CronJob's job's)."""
    spec = _get(resource.props, "spec")
    if resource.type == CRON_JOB:
        spec = _get(_get(spec, "jobTemplate"), "spec")
    if resource.type != POD:
        spec = _get(_get(spec, "template"), "spec")
    plain = _deep_plain(spec)
    return plain if isinstance(plain, Mapping) else {}


def _pod_containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def _workload(resource: Resource) -> str:
    kind = resource.type.rsplit(":", 1)[-1]
    return f"{kind} '{_get(_get(resource.props, 'metadata'), 'name') or resource.name}'"


def check_pod_probes(resource: Resource, stack: str) -> list[str]:
    found = []
    for c in _pod_spec(resource).get("containers") or []:
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
        for c in _pod_containers(_pod_spec(resource))
        if not ((c.get("resources") or {}).get("limits") or {}).get("memory")
    ]


def check_pod_security(resource: Resource, stack: str) -> list[str]:
    return [
        f"{_workload(resource)} breaks the restricted Pod Security Standard: {problem}"
        for problem in restricted_violations(_pod_spec(resource))
    ]


def check_service_exposure(resource: Resource, stack: str) -> list[str]:
    spec = _get(resource.props, "spec")
    kind = _get(spec, "type")
    if kind not in EXPOSED_SERVICE_TYPES:
        return []
    name = str(_get(_get(resource.props, "metadata"), "name") or resource.name)
    if name in EDGE_SERVICES:
        return []
    return [
        f"Service '{name}' is of type {kind}: it is reachable from outside the cluster; only "
        f"{', '.join(sorted(EDGE_SERVICES))} may be, everything else is ClusterIP"
    ]


# -- the rules --------------------------------------------------------------------------------

_BREAKS_SAFETY = "a violation is unsafe in every stack and the fix is always in our hands"

RULES: tuple[Rule, ...] = (
    Rule(
        "image-pinned-tag",
        "Images are pinned to a version tag (or digest), never ':latest' or untagged.",
        "mandatory",
        "an unpinned image changes what runs without a change to the code under review",
        frozenset({IMAGE, BUILT_IMAGE, CNPG_CLUSTER, *WORKLOADS}),
        check_image_tag,
    ),
    Rule(
        "image-pinned-digest-prod",
        "Outside dev, images (and the bases of locally built ones) are also pinned to a digest.",
        "advisory",
        "digests cannot be resolved without registry access, which the build machines lack; "
        "the tag is pinned and mandatory, the digest is reported on every preview until set",
        frozenset({IMAGE, BUILT_IMAGE}),
        check_image_digest,
        stacks="prod",
    ),
    Rule(
        "container-healthcheck",
        "Every container has a healthcheck.",
        "mandatory",
        "start order (wait=True) and restarts depend on it; " + _BREAKS_SAFETY,
        frozenset({CONTAINER}),
        check_healthcheck,
    ),
    Rule(
        "container-restart-policy",
        "Every container has a restart policy.",
        "mandatory",
        "without one a crashed service stays down; " + _BREAKS_SAFETY,
        frozenset({CONTAINER}),
        check_restart,
    ),
    Rule(
        "container-memory-limit",
        "Every container has a memory limit.",
        "mandatory",
        "one unbounded container can starve every other service on the host",
        frozenset({CONTAINER}),
        check_memory,
    ),
    Rule(
        "ports-edge-only-prod",
        "Outside dev, only the edge (nginx) publishes ports.",
        "mandatory",
        "a published database or admin port is reachable from the network: no exceptions",
        frozenset({CONTAINER}),
        check_prod_ports,
        stacks="prod",
    ),
    Rule(
        "ports-loopback-dev",
        "In dev, ports other than the edge's bind to loopback only.",
        "mandatory",
        "dev hosts are laptops on shared networks; 127.0.0.1 gives the same convenience",
        frozenset({CONTAINER}),
        check_dev_loopback,
        stacks="dev",
    ),
    Rule(
        "backend-network-internal",
        "The backend network is internal (no route off the host).",
        "mandatory",
        "it carries PostgreSQL and Redis; isolation is the design, not a preference",
        frozenset({NETWORK}),
        check_backend_internal,
    ),
    Rule(
        "no-new-privileges",
        "Containers run with no-new-privileges.",
        "mandatory",
        "it costs nothing and every image here runs with it",
        frozenset({CONTAINER}),
        check_no_new_privileges,
    ),
    Rule(
        "capabilities-dropped",
        "Containers drop ALL capabilities and add back only what their image needs.",
        "mandatory",
        "added capabilities are the difference between a bug and a host compromise; a new "
        "need is met by a reviewed change to ALLOWED_CAPABILITIES",
        frozenset({CONTAINER}),
        check_capabilities,
    ),
    Rule(
        "nginx-tls-modern",
        "nginx allows only TLS 1.2 and 1.3 (never SSLv3, TLS 1.0 or 1.1).",
        "mandatory",
        "TLS 1.0/1.1 are deprecated (RFC 8996) and fail compliance scans",
        frozenset({CONTAINER}),
        check_nginx_tls,
    ),
    Rule(
        "pod-probes",
        "Every Kubernetes container has a readiness and a liveness probe.",
        "mandatory",
        "rollouts and Services wait on readiness, restarts on liveness; " + _BREAKS_SAFETY,
        WORKLOADS,
        check_pod_probes,
    ),
    Rule(
        "pod-memory-limit",
        "Every Kubernetes container has a memory limit.",
        "mandatory",
        "one unbounded container can starve every other pod on its node",
        WORKLOADS,
        check_pod_memory,
    ),
    Rule(
        "pod-security-restricted",
        "Pods meet the restricted Pod Security Standard, with a read-only root filesystem.",
        "mandatory",
        "the namespace enforces the standard: a violating pod would be refused at apply time",
        WORKLOADS,
        check_pod_security,
    ),
    Rule(
        "service-cluster-internal",
        "Kubernetes Services are ClusterIP, except the edge's (no other LoadBalancer/NodePort).",
        "mandatory",
        "the Gateway is the one way in; a LoadBalancer or NodePort bypasses it and its TLS",
        frozenset({SERVICE}),
        check_service_exposure,
    ),
)


def violations(resource: Resource, stack: str) -> dict[str, list[str]]:
    """Every rule `resource` breaks in `stack`, by rule name."""
    found = {rule.name: rule.violations(resource, stack) for rule in RULES}
    return {name: messages for name, messages in found.items() if messages}


# -- Kubernetes: the restricted Pod Security Standard over one pod spec ------------------------

# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted profile)
PSS_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
PSS_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """What in a pod spec the restricted Pod Security Standard refuses, plus a writable root.

    `readOnlyRootFilesystem` is not part of the standard; the platform asks it of every image
    (scratch directories are emptyDir volumes), so it is checked here too.
    """
    found: list[str] = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key} is set")
    pod_sc = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= PSS_VOLUME_TYPES:
            found.append(f"volume {volume.get('name')}: type {sorted(kinds)} not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in PSS_SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not a safe sysctl")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {sorted(caps['add'])}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f"{name}: uses a hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
    return found
