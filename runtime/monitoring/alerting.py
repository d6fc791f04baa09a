"""In-process alerting for the runtime's own metrics, modelled on Prometheus + Alertmanager.

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

import hashlib
import json
import logging
import math
import operator
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.settings import mask_secret_url

log = logging.getLogger(__name__)

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


def _expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """`{value}` and `{<label>}` in an annotation, replaced by the sample's value and labels."""
    text = template.replace("{value}", f"{value:g}")
    for key, label_value in labels.items():
        text = text.replace("{" + key + "}", label_value)
    return text


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


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


class Notifier(Protocol):
    """Delivers a notification or raises; `name` labels its metrics."""

    name: str

    def send(self, notification: Notification) -> None: ...


class NotificationError(RuntimeError):
    """A receiver did not accept a notification (the message never contains a secret URL)."""


def _post_json(url: str, shown_url: str, payload: object, timeout: float) -> None:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - http(s) URLs validated by the settings
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise NotificationError(f"POST {shown_url}: HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise NotificationError(f"POST {shown_url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotificationError(f"POST {shown_url}: {type(reason).__name__}") from None


class WebhookNotifier:
    """POSTs Alertmanager's webhook JSON (version 4) to a URL (a secret: never logged)."""

    def __init__(
        self, url: str, timeout: float = 5.0, name: str = "webhook", receiver: str = "runtime"
    ) -> None:
        self.name = name
        self._url = url
        self.shown_url = mask_secret_url(url) or ""
        self.timeout = timeout
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.shown_url!r})"

    def payload(self, notification: Notification) -> dict[str, object]:
        alerts = notification.alerts
        common_labels = dict(alerts[0].labels) if alerts else {}
        for alert in alerts[1:]:
            common_labels = {k: v for k, v in common_labels.items() if alert.labels.get(k) == v}
        return {
            "version": "4",
            "groupKey": notification.group_key,
            "truncatedAlerts": 0,
            "status": notification.status,
            "receiver": self.receiver,
            "groupLabels": dict(notification.group_labels),
            "commonLabels": common_labels,
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": [
                {
                    "status": a.status,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "startsAt": _iso(a.starts_at),
                    "endsAt": _iso(a.ends_at) if a.ends_at else "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": a.fingerprint,
                }
                for a in alerts
            ],
        }

    def send(self, notification: Notification) -> None:
        _post_json(self._url, self.shown_url, self.payload(notification), self.timeout)


class AlertmanagerNotifier:
    """POSTs alerts to Alertmanager's v2 API (`/api/v2/alerts`), which groups and routes.

    A firing alert's `endsAt` lies `firing_ttl` seconds ahead: Alertmanager resolves it
    itself if the runtime stops re-sending (at every cooldown); a resolved one carries its
    resolution time.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        name: str = "alertmanager",
        firing_ttl: float = 900.0,
        source: str = "runtime",
    ) -> None:
        self.name = name
        # Alertmanager routes on this label: the runtime's alerts reach the runtime receiver.
        self.source = source
        self._url = base_url.rstrip("/") + "/api/v2/alerts"
        self.shown_url = (mask_secret_url(base_url) or "").removesuffix("/***")
        self.timeout = timeout
        self.firing_ttl = firing_ttl

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier({self.shown_url!r})"

    def payload(self, notification: Notification) -> list[dict[str, object]]:
        now = time.time()
        return [
            {
                "labels": {"source": self.source, **a.labels},
                "annotations": dict(a.annotations),
                "startsAt": _iso(a.starts_at),
                "endsAt": _iso(a.ends_at if a.ends_at else now + self.firing_ttl),
                "generatorURL": "",
            }
            for a in notification.alerts
        ]

    def send(self, notification: Notification) -> None:
        _post_json(self._url, self.shown_url, self.payload(notification), self.timeout)


class _DeliveryWorker:
    """One notifier's queue and thread: retries with doubling backoff, counts outcomes."""

    def __init__(
        self,
        notifier: Notifier,
        attempts: int,
        backoff: float,
        on_result: Callable[[str, Notification, bool, int], None],
    ) -> None:
        self.notifier = notifier
        self.attempts = attempts
        self.backoff = backoff
        self._on_result = on_result
        self._queue: queue.Queue[Notification | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"alert-delivery-{notifier.name}", daemon=True
        )
        self._thread.start()

    def submit(self, notification: Notification) -> None:
        self._queue.put(notification)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def close(self, timeout: float) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver(item)
            finally:
                self._queue.task_done()

    def _deliver(self, notification: Notification) -> None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                self.notifier.send(notification)
            except Exception as exc:
                log.warning(
                    "alert delivery via %s failed (attempt %d/%d): %s",
                    self.notifier.name,
                    attempt,
                    self.attempts,
                    exc if isinstance(exc, NotificationError) else type(exc).__name__,
                )
                if attempt < self.attempts and not self._stop.wait(delay):
                    delay *= 2
                    continue
                self._on_result(self.notifier.name, notification, False, attempt)
                return
            self._on_result(self.notifier.name, notification, True, attempt)
            return


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


class AlertManager:
    """Evaluates rules against samples and notifies; see the module docstring."""

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
            _DeliveryWorker(n, delivery_attempts, delivery_backoff, self._delivery_result)
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
            annotations = {k: _expand(v, labels, sample.value) for k, v in rule.annotations.items()}
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

    def collector(self) -> AlertingCollector:
        return AlertingCollector(self)


class AlertingCollector:
    """`runtime_alert_*` series read from an `AlertManager` at scrape time."""

    def __init__(self, manager: AlertManager) -> None:
        self.manager = manager

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        m = self.manager
        names = [w.notifier.name for w in m._workers]
        failing = set(m.failing_notifiers())
        with m._lock:
            sent = CounterMetricFamily(
                "runtime_alert_notifications",
                "Notifications a notifier delivered, by status (firing or resolved)",
                labels=["notifier", "status"],
            )
            for name in names:
                for status in ("firing", "resolved"):
                    sent.add_metric([name, status], m.delivered[(name, status)])
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
                failures.add_metric([name], m.delivery_failures[name])
                retries.add_metric([name], m.delivery_retries[name])
                up.add_metric([name], 0.0 if name in failing else 1.0)
            suppressed = CounterMetricFamily(
                "runtime_alert_notifications_suppressed",
                "Notifications held back (cooldown: a flapping alert; rate_limit: deferred)",
                labels=["reason"],
            )
            for reason in ("cooldown", "rate_limit"):
                suppressed.add_metric([reason], m.suppressed[reason])
            alerts = GaugeMetricFamily(
                "runtime_alerts", "Active alerts by name and state", labels=["alertname", "state"]
            )
            for (alertname, state), count in sorted(m.states().items()):
                alerts.add_metric([alertname, state], count)
        yield from (sent, failures, retries, up, suppressed, alerts)


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
