"""The house rules for the data platform's stacks, as plain functions over one resource.

One module per concern: base.py (the resource, the `Rule` record, reading inputs), images.py
(pinning, both platforms), docker.py (containers, networks, nginx TLS), kubernetes.py (pods,
Services), pss.py (the restricted Pod Security Standard) and table.py (`RULES`). The pack
and the tests `import rules` (policy/ on `sys.path`); this package keeps that name.

Why plain modules: constructing a `pulumi_policy.PolicyPack` starts a gRPC server and blocks,
so tests cannot import the pack. Everything that decides whether a resource breaks a rule
lives here and imports nothing from Pulumi; `pack.py` only wraps each `Rule` in a
`ResourceValidationPolicy`.

A rule sees what the engine hands a policy: the resource type token, its logical name, its
inputs as a camelCase-keyed mapping (`healthcheck`, `networksAdvanced`, `securityOpts`, ...)
and the stack name. Values may still carry Pulumi's secret marker (the unit-test harness
records them that way); `plain` strips it. In a real preview a value that is not known yet is
a proxy that raises on access: rules read only the keys they need, one at a time, and let that
exception through, so the engine reports "can't run policy during preview" for that resource
instead of a false pass or a false violation.
"""

from rules.base import (
    DEV_STACKS,
    EDGE_SERVICES,
    Enforcement,
    Resource,
    Rule,
    is_dev,
    stack_of,
)
from rules.docker import (
    ALLOWED_CAPABILITIES,
    BUILT_IMAGE,
    CONTAINER,
    IMAGE,
    NETWORK,
    NO_HEALTHCHECK,
    RESTART_POLICIES,
    TITLE_LABEL,
    WEAK_TLS_PROTOCOLS,
    check_nginx_tls,
    service_of,
)
from rules.kubernetes import (
    CNPG_CLUSTER,
    CRON_JOB,
    POD,
    SERVICE,
    WORKLOADS,
    check_service_exposure,
)
from rules.pss import restricted_violations
from rules.table import RULES, violations

__all__ = [
    "ALLOWED_CAPABILITIES",
    "BUILT_IMAGE",
    "CNPG_CLUSTER",
    "CONTAINER",
    "CRON_JOB",
    "DEV_STACKS",
    "EDGE_SERVICES",
    "IMAGE",
    "NETWORK",
    "NO_HEALTHCHECK",
    "POD",
    "RESTART_POLICIES",
    "RULES",
    "SERVICE",
    "TITLE_LABEL",
    "WEAK_TLS_PROTOCOLS",
    "WORKLOADS",
    "Enforcement",
    "Resource",
    "Rule",
    "check_nginx_tls",
    "check_service_exposure",
    "is_dev",
    "restricted_violations",
    "service_of",
    "stack_of",
    "violations",
]
