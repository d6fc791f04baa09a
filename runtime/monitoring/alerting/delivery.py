"""Delivery: notifiers (a webhook in Alertmanager's format, Alertmanager's v2 API) and the
per-notifier worker that retries with backoff on its own thread, so a slow receiver never
stalls evaluation. Receiver URLs are secrets: only their masked form is ever shown.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from runtime.monitoring.alerting.rules import Notification
from runtime.settings_rules import mask_secret_url

log = logging.getLogger("runtime.monitoring.alerting")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


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


class DeliveryWorker:
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
