"""What alerting is about: samples, rules, the alerts and notifications they make.

Identity is the label set (`fingerprint`), as in Alertmanager. `default_rules` are the
runtime's own alerts; the engine adds `AlertNotifierFailing` (ET-INFRA-04.1).
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOTIFIER_FAILING = "AlertNotifierFailing"
NOTIFIER_FAILING_METRIC = "runtime_alert_notifier_failing"


@dataclass(frozen=True)
class Sample:
    """One value of one metric series, as the rules see it."""

    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """`metric <op> threshold` for `for_seconds` fires `name` with `labels` added."""

    name: str
    metric: str
    op: Comparison
    threshold: float
    for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"Rule.name: got {self.name!r}; allowed: [A-Za-z_][A-Za-z0-9_]*")
        if not self.metric:
            raise ValueError(f"Rule.metric: got {self.metric!r}; allowed: a metric name")
        if self.op not in _OPERATORS:
            raise ValueError(f"Rule.op: got {self.op!r}; allowed: {', '.join(_OPERATORS)}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"Rule.threshold: got {self.threshold!r}; allowed: a finite number")
        if not math.isfinite(self.for_seconds) or self.for_seconds < 0:
            raise ValueError(
                f"Rule.for_seconds: got {self.for_seconds!r}; allowed: a number of seconds >= 0"
            )

    def breached(self, value: float) -> bool:
        return math.isfinite(value) and _OPERATORS[self.op](value, self.threshold)


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity for a label set (order-independent), like Alertmanager's."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(key.encode() + b"\xff" + labels[key].encode() + b"\xff")
    return digest.hexdigest()[:16]


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """`{value}` and `{<label>}` in an annotation, replaced by the sample's value and labels."""
    text = template.replace("{value}", f"{value:g}")
    for key, label_value in labels.items():
        text = text.replace("{" + key + "}", label_value)
    return text


@dataclass(frozen=True)
class AlertSnapshot:
    """An alert as a notification carries it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: Literal["firing", "resolved"]
    starts_at: float
    ends_at: float | None
    fingerprint: str
    value: float


@dataclass(frozen=True)
class Notification:
    """One message about one group: its firing alerts and the ones that just resolved."""

    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[AlertSnapshot, ...]

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


def default_rules(
    cpu_threshold: float,
    memory_threshold: float,
    for_seconds: float,
    disk_threshold: float = 90.0,
) -> list[Rule]:
    """The runtime's own alerts: CPU, memory, disk, a dependency down, collection failing."""
    return [
        Rule(
            "RuntimeDiskFull",
            "disk_usage",
            ">",
            disk_threshold,
            for_seconds,
            {"severity": "warning"},
            {"summary": "disk usage of {path} is {value}%"},
        ),
        Rule(
            "RuntimeHighCpu",
            "cpu_usage",
            ">",
            cpu_threshold,
            for_seconds,
            {"severity": "warning"},
            {"summary": "CPU usage is {value}%"},
        ),
        Rule(
            "RuntimeHighMemory",
            "memory_usage",
            ">",
            memory_threshold,
            for_seconds,
            {"severity": "warning"},
            {"summary": "memory usage is {value}% of the limit"},
        ),
        Rule(
            "RuntimeServiceDown",
            "service_up",
            "<",
            1,
            for_seconds,
            {"severity": "critical"},
            {"summary": "a service the runtime depends on is not running"},
        ),
        Rule(
            "RuntimeMetricsCollectionFailing",
            "collection_failed",
            ">",
            0,
            0.0,
            {"severity": "warning"},
            {"summary": "the runtime cannot collect its metrics"},
        ),
    ]
