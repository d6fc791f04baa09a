"""The `runtime_alert_*` series, read from an `AlertEngine` at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:  # the engine imports this module to offer `collector()`
    from runtime.monitoring.alerting.engine import AlertEngine


class AlertingCollector:
    """`runtime_alert_*` series read from an `AlertEngine` at scrape time."""

    def __init__(self, manager: AlertEngine) -> None:
        self.manager = manager

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        names = self.manager.notifier_names()
        failing = set(self.manager.failing_notifiers())
        c = self.manager.counts()
        sent = CounterMetricFamily(
            "runtime_alert_notifications",
            "Notifications a notifier delivered, by status (firing or resolved)",
            labels=["notifier", "status"],
        )
        for name in names:
            for status in ("firing", "resolved"):
                sent.add_metric([name, status], c.delivered[(name, status)])
        failures = CounterMetricFamily(
            "runtime_alert_notification_failures",
            "Notifications a notifier gave up on after all retries",
            labels=["notifier"],
        )
        retries = CounterMetricFamily(
            "runtime_alert_notification_retries",
            "Delivery attempts repeated after a failure",
            labels=["notifier"],
        )
        up = GaugeMetricFamily(
            "runtime_alert_notifier_up",
            "0 while a notifier's recent deliveries all failed",
            labels=["notifier"],
        )
        for name in names:
            failures.add_metric([name], c.failures[name])
            retries.add_metric([name], c.retries[name])
            up.add_metric([name], 0.0 if name in failing else 1.0)
        suppressed = CounterMetricFamily(
            "runtime_alert_notifications_suppressed",
            "Notifications held back (cooldown: a flapping alert; rate_limit: deferred)",
            labels=["reason"],
        )
        for reason in ("cooldown", "rate_limit"):
            suppressed.add_metric([reason], c.suppressed[reason])
        alerts = GaugeMetricFamily(
            "runtime_alerts", "Active alerts by name and state", labels=["alertname", "state"]
        )
        for (alertname, state), count in sorted(c.states.items()):
            alerts.add_metric([alertname, state], count)
        yield from (sent, failures, retries, up, suppressed, alerts)
