"""The Docker stacks' rules: containers, the backend network and nginx's TLS."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from rules.base import EDGE_SERVICES, Resource, get, items

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"  # built from this repository (runtime, postgres)
NETWORK = "docker:index/network:Network"

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
    # Tempo 2.10.8 has no self-probe flag (Loki's `-health` came in Loki 3.7.0)
    "tempo": 'distroless; watched by up{job="tempo"} (alert LogsTracesComponentDown)',
}
RESTART_POLICIES = frozenset({"always", "unless-stopped", "on-failure"})
WEAK_TLS_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
TITLE_LABEL = "org.opencontainers.image.title"
# A container that runs once to the end (a configuration check and copy, a reload signal):
# not a service, so no health check or restart policy (components/docker/platform.py).
ONE_SHOT_LABEL = "platform.one-shot"
NGINX_CONFIG_DIR = "/etc/nginx"


def service_of(resource: Resource) -> str:
    """The service a container runs: its title label, else its single network alias."""
    for label in items(get(resource.props, "labels")):
        if get(label, "label") == TITLE_LABEL:
            return str(get(label, "value"))
    aliases = {
        str(alias)
        for network in items(get(resource.props, "networksAdvanced"))
        for alias in items(get(network, "aliases"))
    }
    return aliases.pop() if len(aliases) == 1 else resource.name


def is_one_shot(resource: Resource) -> bool:
    """A container `pulumi up` runs to its end (attach, must_run false): the migration step,
    a configuration's apply and reload. It is not a service: nothing waits for it to be
    healthy, and it must not restart."""
    return get(resource.props, "attach") is True and get(resource.props, "mustRun") is False


def one_shot(resource: Resource) -> str | None:
    """The kind of a one-shot container (`config-apply`, `config-reload`), else None."""
    for label in items(get(resource.props, "labels")):
        if get(label, "label") == ONE_SHOT_LABEL:
            return str(get(label, "value"))
    return None


def check_healthcheck(resource: Resource, stack: str) -> list[str]:
    tests = items(get(get(resource.props, "healthcheck"), "tests"))
    if not tests and (service_of(resource) in NO_HEALTHCHECK or is_one_shot(resource)):
        return []
    if not tests or tests[0] == "NONE":
        return [
            f"container '{service_of(resource)}' has no healthcheck: dependents would start "
            "before it is ready and a hung process would never be noticed"
        ]
    return []


def check_restart(resource: Resource, stack: str) -> list[str]:
    restart = get(resource.props, "restart")
    if restart not in RESTART_POLICIES and not is_one_shot(resource):
        allowed = ", ".join(sorted(RESTART_POLICIES))
        return [
            f"container '{service_of(resource)}' has restart policy {restart or 'no'!r}; "
            f"use one of {allowed}"
        ]
    return []


def check_memory(resource: Resource, stack: str) -> list[str]:
    memory = get(resource.props, "memory")
    if not isinstance(memory, int | float) or memory <= 0:
        return [
            f"container '{service_of(resource)}' has no memory limit: one leak could take "
            "down every service on the host"
        ]
    return []


def _ports(resource: Resource) -> list[Any]:
    return items(get(resource.props, "ports"))


def _number(value: Any) -> Any:
    """Numbers arrive as floats (protobuf's Struct has no integers): 5432.0 reads as 5432."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _describe(port: Any) -> str:
    ip = get(port, "ip") or "0.0.0.0"  # noqa: S104 - Docker's default when no ip is given
    return f"{ip}:{_number(get(port, 'external'))}->{_number(get(port, 'internal'))}"


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
        if not _is_loopback(get(port, "ip"))
    ]


def check_no_new_privileges(resource: Resource, stack: str) -> list[str]:
    options = {str(o).replace("=", ":") for o in items(get(resource.props, "securityOpts"))}
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
    if get(resource.props, "privileged") is True:
        found.append(f"container '{service}' is privileged: it has every capability and device")
    capabilities = get(resource.props, "capabilities")
    drops = {_capability(c) for c in items(get(capabilities, "drops"))}
    if "ALL" not in drops:
        found.append(
            f"container '{service}' keeps Docker's default capabilities; drop ALL and add back "
            "only what its image needs"
        )
    # numbered instances of a service (postgres-replica-2) share its allowance
    allowed = ALLOWED_CAPABILITIES.get(re.sub(r"-[0-9]+$", "", service), frozenset())
    extra = sorted({_capability(c) for c in items(get(capabilities, "adds"))} - allowed)
    if extra:
        found.append(
            f"container '{service}' adds {', '.join(extra)}, which its image does not need "
            f"(allowed: {', '.join(sorted(allowed)) or 'none'}; see ALLOWED_CAPABILITIES)"
        )
    return found


def check_backend_internal(resource: Resource, stack: str) -> list[str]:
    if not resource.name.endswith("backend"):
        return []
    if get(resource.props, "internal") is True:
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
    for upload in items(get(resource.props, "uploads")):
        if str(get(upload, "file")).endswith("/nginx.conf"):
            return str(get(upload, "content"))
    return None


def check_nginx_tls(resource: Resource, stack: str) -> list[str]:
    service = service_of(resource)
    conf = _nginx_conf(resource)
    if conf is None:
        # nginx reads its files from a volume its config-apply container writes (and checks
        # there); the reload container carries none. Either way nginx.conf is checked once.
        mounted = any(
            get(v, "containerPath") == NGINX_CONFIG_DIR and get(v, "volumeName")
            for v in items(get(resource.props, "volumes"))
        )
        if service in EDGE_SERVICES and not mounted and one_shot(resource) != "config-reload":
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
