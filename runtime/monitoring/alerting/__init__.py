"""In-process alerting for the runtime's own metrics, modelled on Prometheus + Alertmanager.

Cut at its seams: `rules` (samples, rules, alerts and notifications as data), `engine`
(`AlertEngine`: evaluation, grouping, cooldown, rate limit), `delivery` (notifiers and their
retrying workers) and `exposition` (the `runtime_alert_*` series). docs/runtime-monitoring.md.

`AlertManager` is the engine's old name, kept as a deprecated alias (it is in the documented
public API, `runtime.AlertManager`); it warns on use because it reads as the Alertmanager
service.
"""

from __future__ import annotations

import warnings
from typing import Any

from runtime.monitoring.alerting.delivery import (
    AlertmanagerNotifier,
    NotificationError,
    Notifier,
    WebhookNotifier,
)
from runtime.monitoring.alerting.engine import AlertEngine
from runtime.monitoring.alerting.exposition import AlertingCollector
from runtime.monitoring.alerting.rules import (
    NOTIFIER_FAILING,
    NOTIFIER_FAILING_METRIC,
    AlertSnapshot,
    Notification,
    Rule,
    Sample,
    default_rules,
    fingerprint,
)

__all__ = [
    "NOTIFIER_FAILING",
    "NOTIFIER_FAILING_METRIC",
    "AlertEngine",
    "AlertSnapshot",
    "AlertingCollector",
    "AlertmanagerNotifier",
    "Notification",
    "NotificationError",
    "Notifier",
    "Rule",
    "Sample",
    "WebhookNotifier",
    "default_rules",
    "fingerprint",
]


def __getattr__(name: str) -> Any:
    if name == "AlertManager":
        warnings.warn(
            "AlertManager is now AlertEngine (the name clashed with the Alertmanager service)",
            DeprecationWarning,
            stacklevel=2,
        )
        return AlertEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
