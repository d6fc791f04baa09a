"""What every rule reads: one resource as a policy sees it, the `Rule` record, the stack, and
the resource's inputs without Pulumi's secret marker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Stacks where developer conveniences (data ports on loopback, tag-only images) are allowed.
# Any other stack name, or none at all, gets the production rules: unknown means strict.
DEV_STACKS = frozenset({"dev"})
# Services allowed to publish ports in production: the TLS-terminating reverse proxy.
EDGE_SERVICES = frozenset({"nginx"})

# Pulumi's wire format for a secret value: {SIG_KEY: SECRET_SIG, "value": ...}.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a type tag, not a password

Enforcement = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Resource:
    """One resource as a policy sees it."""

    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A house rule: which resources it looks at, how it is enforced and why (keyword fields,
    so the table in table.py reads as records)."""

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


def plain(value: Any) -> Any:
    """`value` without Pulumi's secret marker (one level; nested values are read lazily)."""
    while isinstance(value, Mapping) and value.get(_SIG_KEY) == _SECRET_SIG:
        value = value["value"]
    return value


def get(props: Any, key: str) -> Any:
    props = plain(props)
    return plain(props.get(key)) if isinstance(props, Mapping) else None


def items(value: Any) -> list[Any]:
    value = plain(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return []


def deep_plain(value: Any) -> Any:
    """`value` with every secret marker stripped, at any depth (a pod spec is read whole)."""
    value = plain(value)
    if isinstance(value, Mapping):
        return {k: deep_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [deep_plain(v) for v in value]
    return value
