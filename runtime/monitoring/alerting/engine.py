"""Evaluation and routing: `AlertEngine` turns samples into alerts and notifications.

- A `Rule` compares one metric's samples with a threshold. A breaching series becomes a
  *pending* alert; once it has breached for `for_seconds` it is *firing*. When the breach
  stops (or the series disappears) a firing alert is *resolved*; a pending one is dropped.
- Identity is the label set: `alertname`, the sample's labels and the rule's labels,
  hashed into a fingerprint. A thousand identical breaches are one alert.
- Alerts are grouped by `group_by` labels; a group is notified when it has a firing alert
  not notified within the cooldown (ALERT_COOLDOWN, Alertmanager's repeat interval, which
  also silences an alert that flaps back within it) or a notified alert that resolved.
- A token bucket limits notifications per minute; a limited group waits for the next token
  (deferred, not dropped).
- Each notifier delivers on its own thread with retries and backoff, so a slow receiver
  never stalls evaluation. A notifier whose deliveries keep failing raises the
  `AlertNotifierFailing` alert, delivered through the other notifiers (ET-INFRA-04.1).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from runtime.monitoring.alerting.delivery import DeliveryWorker, Notifier
from runtime.monitoring.alerting.exposition import AlertingCollector
from runtime.monitoring.alerting.rules import (
    NOTIFIER_FAILING,
    NOTIFIER_FAILING_METRIC,
    AlertSnapshot,
    Notification,
    Rule,
    Sample,
    expand,
    fingerprint,
)

log = logging.getLogger("runtime.monitoring.alerting")


@dataclass
class _Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    group_key: str
    active_at: float
    value: float
    for_seconds: float
    state: Literal["pending", "firing", "resolved"] = "pending"
    fired_at: float | None = None
    resolved_at: float | None = None
    notified: bool = False  # a firing notification went out in this episode
    seen: bool = True

    def snapshot(self) -> AlertSnapshot:
        status: Literal["firing", "resolved"] = "resolved" if self.state == "resolved" else "firing"
        return AlertSnapshot(
            dict(self.labels),
            dict(self.annotations),
            status,
            self.fired_at if self.fired_at is not None else self.active_at,
            self.resolved_at,
            self.fingerprint,
            self.value,
        )


class _TokenBucket:
    """At most `per_minute` notifications a minute, with a burst of as many."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.tokens = per_minute
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class AlertEngine:
    """Evaluates rules against samples and notifies; see the module docstring. (Named so as
    not to be taken for the Alertmanager service; `AlertManager` is its deprecated alias.)"""

    def __init__(
        self,
        rules: Iterable[Rule],
        notifiers: Sequence[Notifier] = (),
        *,
        cooldown: float = 300.0,
        group_by: Sequence[str] = ("alertname",),
        group_wait: float = 0.0,
        rate_limit_per_minute: float = 30.0,
        delivery_attempts: int = 3,
        delivery_backoff: float = 0.5,
        notifier_failure_threshold: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not math.isfinite(cooldown) or cooldown < 0:
            raise ValueError(f"cooldown: got {cooldown!r}; allowed: a number of seconds >= 0")
        if not math.isfinite(rate_limit_per_minute) or rate_limit_per_minute < 1:
            raise ValueError(
                f"rate_limit_per_minute: got {rate_limit_per_minute!r}; allowed: a number >= 1"
            )
        if delivery_attempts < 1:
            raise ValueError(f"delivery_attempts: got {delivery_attempts!r}; allowed: >= 1")
        if notifier_failure_threshold < 1:
            raise ValueError(
                f"notifier_failure_threshold: got {notifier_failure_threshold!r}; allowed: >= 1"
            )
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"notifiers: got names {names!r}; allowed: distinct names")
        self.rules = [
            *rules,
            Rule(
                NOTIFIER_FAILING,
                NOTIFIER_FAILING_METRIC,
                ">",
                0,
                labels={"severity": "critical"},
                annotations={"summary": "alert notifications through a notifier keep failing"},
            ),
        ]
        self.cooldown = cooldown
        self.group_by = tuple(group_by)
        self.group_wait = group_wait
        self.notifier_failure_threshold = notifier_failure_threshold
        self._clock = clock
        self._lock = threading.RLock()
        self._alerts: dict[str, _Alert] = {}
        self._last_sent: dict[str, float] = {}  # fingerprint -> last firing notification
        self._bucket = _TokenBucket(rate_limit_per_minute, clock())
        self._consecutive_failures: Counter[str] = Counter()
        self.delivered: Counter[tuple[str, str]] = Counter()  # (notifier, status)
        self.delivery_failures: Counter[str] = Counter()
        self.delivery_retries: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()  # reason -> count
        self.notifications_sent = 0
        self._workers = [
            DeliveryWorker(n, delivery_attempts, delivery_backoff, self._delivery_result)
            for n in notifiers
        ]

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, samples: Iterable[Sample], now: float | None = None) -> list[Notification]:
        """Update alert states from `samples` and send what is due; returns what was sent."""
        now = self._clock() if now is None else now
        samples = [*samples, *self._notifier_samples()]
        with self._lock:
            for alert in self._alerts.values():
                alert.seen = alert.state == "resolved"
            for rule in self.rules:
                for sample in samples:
                    if sample.metric == rule.metric and rule.breached(sample.value):
                        self._breach(rule, sample, now)
            for alert in self._alerts.values():
                if not alert.seen and alert.state == "firing":
                    alert.state, alert.resolved_at = "resolved", now
            self._alerts = {
                fp: a for fp, a in self._alerts.items() if a.seen or a.state != "pending"
            }
            notifications = self._dispatch(now)
        for notification in notifications:
            for worker in self._workers:
                worker.submit(notification)
        return notifications

    def _breach(self, rule: Rule, sample: Sample, now: float) -> None:
        labels = {**sample.labels, **rule.labels, "alertname": rule.name}
        fp = fingerprint(labels)
        alert = self._alerts.get(fp)
        if alert is None or alert.state == "resolved":
            if alert is not None and alert.notified:
                return  # its resolved notification is still due: a new episode waits
            annotations = {k: expand(v, labels, sample.value) for k, v in rule.annotations.items()}
            group_key = "{" + ",".join(f'{k}="{labels.get(k, "")}"' for k in self.group_by) + "}"
            alert = _Alert(labels, annotations, fp, group_key, now, sample.value, rule.for_seconds)
            self._alerts[fp] = alert
        alert.seen = True
        alert.value = sample.value
        if alert.state == "pending" and now - alert.active_at >= alert.for_seconds:
            alert.state, alert.fired_at = "firing", now

    def _dispatch(self, now: float) -> list[Notification]:
        groups: dict[str, list[_Alert]] = {}
        for alert in self._alerts.values():
            if alert.state != "pending":
                groups.setdefault(alert.group_key, []).append(alert)
        notifications = []
        for group_key, alerts in groups.items():
            firing = [a for a in alerts if a.state == "firing"]
            due = [
                a
                for a in firing
                if a.fingerprint not in self._last_sent
                or now - self._last_sent[a.fingerprint] >= self.cooldown
            ]
            resolved = [a for a in alerts if a.state == "resolved" and a.notified]
            due_fps = {a.fingerprint for a in due}
            for alert in firing:
                if (
                    alert.fingerprint not in due_fps
                    and not alert.notified
                    and alert.fired_at == now
                ):
                    self.suppressed["cooldown"] += 1  # flapped back within the cooldown
            if not due and not resolved:
                continue
            if due and not resolved and self.group_wait > 0:
                first = min(a.fired_at if a.fired_at is not None else now for a in due)
                if now - first < self.group_wait:
                    continue  # wait for the group's other alerts, then send them together
            if not self._bucket.take(now):
                self.suppressed["rate_limit"] += 1
                continue
            for alert in firing:
                alert.notified = True
                self._last_sent[alert.fingerprint] = now
            snapshots = tuple(a.snapshot() for a in firing + resolved)
            group_labels = {k: alerts[0].labels.get(k, "") for k in self.group_by}
            notifications.append(Notification(group_key, group_labels, snapshots))
            for alert in resolved:
                alert.notified = False
        self._alerts = {
            fp: a
            for fp, a in self._alerts.items()
            if not (a.state == "resolved" and not a.notified)
        }
        # forget cooldowns that are over for alerts that are gone (bounded memory)
        self._last_sent = {
            fp: sent
            for fp, sent in self._last_sent.items()
            if fp in self._alerts or now - sent < self.cooldown
        }
        self.notifications_sent += len(notifications)
        return notifications

    # -- delivery outcomes -----------------------------------------------------------------
    def _delivery_result(
        self, notifier: str, notification: Notification, ok: bool, attempts: int
    ) -> None:
        with self._lock:
            self.delivery_retries[notifier] += attempts - 1
            if ok:
                self.delivered[(notifier, notification.status)] += 1
                self._consecutive_failures[notifier] = 0
            else:
                self.delivery_failures[notifier] += 1
                self._consecutive_failures[notifier] += 1
                log.error(
                    "alert notification via %s failed after %d attempts (%d in a row)",
                    notifier,
                    attempts,
                    self._consecutive_failures[notifier],
                )

    def failing_notifiers(self) -> list[str]:
        """Notifiers whose last `notifier_failure_threshold` deliveries all failed."""
        with self._lock:
            return sorted(
                name
                for name, count in self._consecutive_failures.items()
                if count >= self.notifier_failure_threshold
            )

    def _notifier_samples(self) -> list[Sample]:
        failing = set(self.failing_notifiers())
        return [
            Sample(
                NOTIFIER_FAILING_METRIC,
                1.0 if w.notifier.name in failing else 0.0,
                {"notifier": w.notifier.name},
            )
            for w in self._workers
        ]

    # -- introspection and lifecycle -----------------------------------------------------
    def active(self) -> list[AlertSnapshot]:
        """Pending and firing alerts (pending ones are reported with status firing=False)."""
        with self._lock:
            return [a.snapshot() for a in self._alerts.values() if a.state != "resolved"]

    def states(self) -> Counter[tuple[str, str]]:
        """(alertname, state) -> count, for the `runtime_alerts` gauge."""
        with self._lock:
            return Counter(
                (a.labels["alertname"], a.state)
                for a in self._alerts.values()
                if a.state != "resolved"
            )

    def wait_delivered(self, timeout: float) -> bool:
        """Block until every queued notification was delivered or given up on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.idle() for w in self._workers):
                return True
            time.sleep(0.01)
        return all(w.idle() for w in self._workers)

    def close(self, timeout: float = 5.0) -> None:
        for worker in self._workers:
            worker.close(timeout)

    def notifier_names(self) -> list[str]:
        return [w.notifier.name for w in self._workers]

    def counts(self) -> DeliveryCounts:
        """A consistent copy of the delivery counters, for the exposition."""
        with self._lock:
            return DeliveryCounts(
                Counter(self.delivered),
                Counter(self.delivery_failures),
                Counter(self.delivery_retries),
                Counter(self.suppressed),
                self.states(),
            )

    def collector(self) -> AlertingCollector:
        return AlertingCollector(self)


@dataclass(frozen=True)
class DeliveryCounts:
    delivered: Counter[tuple[str, str]]  # (notifier, status)
    failures: Counter[str]
    retries: Counter[str]
    suppressed: Counter[str]  # reason
    states: Counter[tuple[str, str]]  # (alertname, state) of active alerts
