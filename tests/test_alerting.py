"""In-process alerting against a real local HTTP receiver (webhook and Alertmanager v2)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.monitoring import (
    AlertEngine,
    AlertmanagerNotifier,
    CgroupMemoryReader,
    MemoryReading,
    MonitoringService,
    Rule,
    Sample,
    WebhookNotifier,
    default_rules,
)
from runtime.monitoring.alerting import fingerprint
from tests.http_receiver import Receiver
from tests.servers import free_port


class Clock:
    """A settable wall clock, so cooldowns of minutes are tested in milliseconds."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


HIGH_CPU = Rule("HighCpu", "cpu_usage", ">", 80, for_seconds=0.5, labels={"severity": "page"})


def _manager(notifiers: list[Any], **kwargs: Any) -> AlertEngine:
    kwargs.setdefault("delivery_backoff", 0.05)
    return AlertEngine(kwargs.pop("rules", [HIGH_CPU]), notifiers, **kwargs)


# -- identity and validation ---------------------------------------------------------------


def test_fingerprint_is_the_label_set() -> None:
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})
    assert fingerprint({"a": "1", "b": ""}) != fingerprint({"a": "1"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "high cpu"}, "Rule.name: got 'high cpu'"),
        ({"op": "=>"}, "Rule.op: got '=>'; allowed: >, >="),
        ({"threshold": float("nan")}, "Rule.threshold"),
        ({"for_seconds": -1}, "Rule.for_seconds: got -1"),
    ],
)
def test_bad_rules_are_rejected_clearly(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"name": "A", "metric": "m", "op": ">", "threshold": 1.0}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Rule(**{**fields, **kwargs})


def test_bad_manager_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="cooldown: got -1"):
        AlertEngine([], cooldown=-1)
    with pytest.raises(ValueError, match="rate_limit_per_minute: got 0"):
        AlertEngine([], rate_limit_per_minute=0)


# -- for:, delivery time, resolution ---------------------------------------------------------


@pytest.mark.req("UT-INFRA-04.2", "PT-INFRA-04.1")
def test_breach_past_for_notifies_once_within_a_second_then_resolves(
    receiver: Receiver,
) -> None:
    manager = _manager([WebhookNotifier(receiver.url + "/hook")], cooldown=300)
    value = {"cpu": 95.0}
    stop = threading.Event()

    def loop() -> None:  # the evaluation loop, as the sidecar runs it (every 50 ms)
        while not stop.wait(0.05):
            manager.evaluate([Sample("cpu_usage", value["cpu"], {"instance": "sidecar"})])

    breach_started = time.monotonic()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        # Pending during `for:` (0.5 s): nothing is sent.
        time.sleep(0.3)
        assert receiver.bodies() == []
        assert [a.labels["alertname"] for a in manager.active()] == ["HighCpu"]
        got = receiver.wait_for(1, timeout=5)
        assert len(got) == 1
        delay = got[0].at - (breach_started + HIGH_CPU.for_seconds)
        assert 0 <= delay < 1.0  # the bound; the specification allows 30 s
        time.sleep(0.5)  # the breach goes on, within the cooldown: still one notification
        assert len(receiver.bodies()) == 1
        body = got[0].body
        assert got[0].path == "/hook"
        assert (body["version"], body["status"], body["groupLabels"]) == (
            "4",
            "firing",
            {"alertname": "HighCpu"},
        )
        (alert,) = body["alerts"]
        assert alert["labels"] == {
            "alertname": "HighCpu",
            "instance": "sidecar",
            "severity": "page",
        }
        assert alert["status"] == "firing"
        assert alert["fingerprint"] == fingerprint(alert["labels"])
        value["cpu"] = 10.0  # recovery
        recovered = time.monotonic()
        got = receiver.wait_for(2, timeout=5)
        assert len(got) == 2
        assert got[1].at - recovered < 1.0
        resolved = got[1].body
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    finally:
        stop.set()
        thread.join(5)
        manager.close()
    assert manager.active() == []


def test_breach_shorter_than_for_never_notifies(receiver: Receiver) -> None:
    clock = Clock()
    manager = _manager([WebhookNotifier(receiver.url)], clock=clock)
    manager.evaluate([Sample("cpu_usage", 99)])
    clock.now += 0.4
    manager.evaluate([Sample("cpu_usage", 99)])
    clock.now += 0.4
    manager.evaluate([Sample("cpu_usage", 50)])  # recovered while pending
    clock.now += 10
    manager.evaluate([Sample("cpu_usage", 99)])  # a new episode starts its own for:
    assert manager.wait_delivered(5)
    assert receiver.bodies() == []
    manager.close()


# -- deduplication, cooldown, grouping, rate limit (ET-INFRA-04.2) ----------------------------


@pytest.mark.req("ET-INFRA-04.2")
def test_storm_of_1000_identical_breaches_gives_one_notification_per_cooldown(
    receiver: Receiver,
) -> None:
    clock = Clock()
    cooldown = 300.0  # ALERT_COOLDOWN's default
    rule = Rule("HighCpu", "cpu_usage", ">", 80)
    manager = _manager(
        [WebhookNotifier(receiver.url)], rules=[rule], cooldown=cooldown, clock=clock
    )
    start = clock.now
    # 1,000 identical breaches in one evaluation are one alert, one notification.
    manager.evaluate([Sample("cpu_usage", 99, {"instance": "a"})] * 1000)
    # then 1,000 more, one a second, for 1,000 s (cooldown 300 s): t = 0, 300, 600, 900
    for i in range(1, 1001):
        clock.now = start + i
        manager.evaluate([Sample("cpu_usage", 99, {"instance": "a"})])
    assert manager.wait_delivered(10)
    bodies = receiver.bodies()
    assert len(bodies) == 4
    assert all(len(b["alerts"]) == 1 and b["status"] == "firing" for b in bodies)
    assert {b["alerts"][0]["fingerprint"] for b in bodies} == {
        fingerprint({"alertname": "HighCpu", "instance": "a"})
    }
    manager.close()


@pytest.mark.req("ET-INFRA-04.2")
def test_flapping_within_cooldown_is_suppressed(receiver: Receiver) -> None:
    clock = Clock()
    rule = Rule("HighCpu", "cpu_usage", ">", 80)
    manager = _manager([WebhookNotifier(receiver.url)], rules=[rule], cooldown=60, clock=clock)
    for i in range(100):  # up, down, up, down... once a second
        clock.now += 1
        manager.evaluate([Sample("cpu_usage", 99 if i % 2 == 0 else 10)])
    assert manager.wait_delivered(10)
    statuses = [b["status"] for b in receiver.bodies()]
    # 100 s of flapping with a 60 s cooldown: fire+resolve, then once more after 60 s
    assert statuses == ["firing", "resolved", "firing", "resolved"]
    assert manager.suppressed["cooldown"] > 40
    manager.close()


@pytest.mark.req("ET-INFRA-04.2")
def test_alerts_are_grouped_by_alertname(receiver: Receiver) -> None:
    rule = Rule("ServiceDown", "service_up", "<", 1, annotations={"summary": "{service} down"})
    manager = _manager([WebhookNotifier(receiver.url)], rules=[rule])
    manager.evaluate(
        [Sample("service_up", 0, {"service": s}) for s in ("postgres", "redis", "grafana")]
    )
    assert manager.wait_delivered(5)
    (body,) = receiver.bodies()
    assert body["groupLabels"] == {"alertname": "ServiceDown"}
    assert sorted(a["labels"]["service"] for a in body["alerts"]) == [
        "grafana",
        "postgres",
        "redis",
    ]
    assert body["commonLabels"] == {"alertname": "ServiceDown"}
    assert sorted(a["annotations"]["summary"] for a in body["alerts"]) == [
        "grafana down",
        "postgres down",
        "redis down",
    ]
    manager.close()


@pytest.mark.req("ET-INFRA-04.2")
def test_rate_limit_defers_notifications_without_losing_them(receiver: Receiver) -> None:
    clock = Clock()
    rules = [Rule(f"Alert{i}", f"m{i}", ">", 0) for i in range(25)]
    manager = _manager(
        [WebhookNotifier(receiver.url)],
        rules=rules,
        rate_limit_per_minute=10,
        cooldown=3600,
        clock=clock,
    )
    samples = [Sample(f"m{i}", 1) for i in range(25)]
    manager.evaluate(samples)
    assert manager.wait_delivered(5)
    assert len(receiver.bodies()) == 10  # the burst
    assert manager.suppressed["rate_limit"] == 15
    clock.now += 30  # half a minute: 5 more tokens
    manager.evaluate(samples)
    assert manager.wait_delivered(5)
    assert len(receiver.bodies()) == 15
    clock.now += 60
    manager.evaluate(samples)
    assert manager.wait_delivered(5)
    names = sorted(b["groupLabels"]["alertname"] for b in receiver.bodies())
    assert names == sorted(f"Alert{i}" for i in range(25))  # each exactly once
    manager.close()


# -- Alertmanager v2 API ----------------------------------------------------------------------


@pytest.mark.req("UT-INFRA-04.2")
def test_alertmanager_v2_api_receives_firing_then_resolved(receiver: Receiver) -> None:
    clock = Clock(time.time())
    rule = Rule("HighMemory", "memory_usage", ">", 90, annotations={"summary": "at {value}%"})
    manager = _manager([AlertmanagerNotifier(receiver.url + "/")], rules=[rule], clock=clock)
    manager.evaluate([Sample("memory_usage", 97.5)])
    clock.now += 5
    manager.evaluate([Sample("memory_usage", 20)])
    assert manager.wait_delivered(5)
    firing, resolved = receiver.received
    assert firing.path == resolved.path == "/api/v2/alerts"
    (alert,) = firing.body
    assert alert["labels"] == {"alertname": "HighMemory", "source": "runtime"}
    assert alert["annotations"] == {"summary": "at 97.5%"}
    assert alert["endsAt"] > alert["startsAt"]  # in the future while firing
    (done,) = resolved.body
    assert done["startsAt"] == alert["startsAt"]
    assert done["endsAt"] < alert["endsAt"]  # the resolution time
    manager.close()


# -- a failing receiver: retries, then reported (ET-INFRA-04.1) ------------------------------


@pytest.mark.req("ET-INFRA-04.1")
def test_receiver_errors_are_retried(receiver: Receiver) -> None:
    receiver.fail_next = 2
    manager = _manager([WebhookNotifier(receiver.url)], rules=[Rule("A", "m", ">", 0)])
    manager.evaluate([Sample("m", 1)])
    assert manager.wait_delivered(5)
    assert receiver.requests == 3
    assert len(receiver.bodies()) == 1
    assert manager.delivery_retries["webhook"] == 2
    assert manager.delivery_failures["webhook"] == 0
    manager.close()


@pytest.mark.req("ET-INFRA-04.1")
def test_receiver_down_is_retried_then_reported_through_the_other_notifier(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    down_url = f"http://127.0.0.1:{free_port()}/hooks/T0K3N-s3cret"
    webhook = WebhookNotifier(down_url)
    manager = _manager(
        [webhook, AlertmanagerNotifier(receiver.url)],
        rules=[Rule("A", "m", ">", 0)],
        delivery_attempts=3,
    )
    registry = CollectorRegistry()
    registry.register(manager.collector())
    manager.evaluate([Sample("m", 1)])
    assert manager.wait_delivered(5)
    assert manager.delivery_failures["webhook"] == 1
    assert manager.delivery_retries["webhook"] == 2  # 3 attempts
    assert manager.failing_notifiers() == ["webhook"]
    manager.evaluate([Sample("m", 1)])  # the next round raises the meta-alert
    assert manager.wait_delivered(5)
    am_alerts = [a for body in receiver.bodies() for a in body]
    failing = [a for a in am_alerts if a["labels"]["alertname"] == "AlertNotifierFailing"]
    assert [a["labels"]["notifier"] for a in failing] == ["webhook"]
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert values[("runtime_alert_notification_failures_total", (("notifier", "webhook"),))] >= 1
    assert values[("runtime_alert_notifier_up", (("notifier", "webhook"),))] == 0
    assert values[("runtime_alert_notifier_up", (("notifier", "alertmanager"),))] == 1
    assert (
        values[
            (
                "runtime_alert_notifications_total",
                (("notifier", "alertmanager"), ("status", "firing")),
            )
        ]
        == 2
    )
    assert "s3cret" not in caplog.text and "s3cret" not in repr(webhook)
    assert "T0K3N" not in caplog.text
    manager.close()


# -- properties (hypothesis) -------------------------------------------------------------------


@pytest.mark.req("ET-INFRA-04.2")
@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.sampled_from([10.0, 95.0]), min_size=1, max_size=120),
    step=st.sampled_from([1.0, 7.0, 30.0]),
    cooldown=st.sampled_from([0.0, 60.0, 300.0]),
    for_seconds=st.sampled_from([0.0, 15.0]),
)
def test_property_notifications_are_deduplicated_and_consistent(
    values: list[float], step: float, cooldown: float, for_seconds: float
) -> None:
    """Whatever the breach pattern: firing notifications for one alert are at least a
    cooldown apart, a resolved one only follows a firing one, and never two resolved in a row."""
    clock = Clock()
    rule = Rule("HighCpu", "cpu_usage", ">", 80, for_seconds=for_seconds)
    manager = AlertEngine([rule], [], cooldown=cooldown, rate_limit_per_minute=1e6, clock=clock)
    sent: list[tuple[float, str]] = []
    for value in values:
        clock.now += step
        for note in manager.evaluate([Sample("cpu_usage", value, {"instance": "x"})]):
            assert len(note.alerts) == 1  # one identity, however many breaches
            sent.append((clock.now, note.status))
    firing_times = [t for t, status in sent if status == "firing"]
    assert all(b - a >= cooldown for a, b in itertools.pairwise(firing_times))
    if all(v > 80 for v in values) and (len(values) - 1) * step >= for_seconds:
        assert firing_times  # a breach that outlasts for: is always notified
    previous = "resolved"
    for _, status in sent:
        if status == "resolved":
            assert previous == "firing"
        previous = status
    manager.close()


class _UnreadableMemory(CgroupMemoryReader):
    def read(self) -> MemoryReading:
        raise PermissionError("memory.current: permission denied")


@pytest.mark.req("ET-INFRA-04.1")
def test_collection_failure_raises_an_alert_to_the_receiver(receiver: Receiver) -> None:
    manager = _manager([WebhookNotifier(receiver.url)], rules=default_rules(90, 90, for_seconds=0))
    service = MonitoringService(memory_reader=_UnreadableMemory(), alert_manager=manager)
    assert service.run_once() is None  # handled, not raised
    assert manager.wait_delivered(5)
    (body,) = receiver.bodies()
    assert body["groupLabels"] == {"alertname": "RuntimeMetricsCollectionFailing"}
    assert service.errors["memory"] == 1
    manager.close()


@pytest.mark.req("ET-INFRA-04.2")
def test_group_wait_batches_and_1000_distinct_alerts_make_one_notification(
    receiver: Receiver,
) -> None:
    clock = Clock()
    rule = Rule("ServiceDown", "service_up", "<", 1)
    manager = _manager([WebhookNotifier(receiver.url)], rules=[rule], group_wait=10, clock=clock)
    manager.evaluate([Sample("service_up", 0, {"service": "a"})])
    clock.now += 5
    manager.evaluate([Sample("service_up", 0, {"service": s}) for s in ("a", "b")])
    assert manager.wait_delivered(5) and receiver.bodies() == []  # still waiting
    clock.now += 5  # 10 s after the first: a and b go out together
    manager.evaluate([Sample("service_up", 0, {"service": s}) for s in ("a", "b")])
    storm = [Sample("service_up", 0, {"service": f"s{i}"}) for i in range(1000)]
    for _ in range(4):  # 1,000 new alerts join the group; sent once group_wait has passed
        clock.now += 4
        manager.evaluate([Sample("service_up", 0, {"service": s}) for s in ("a", "b")] + storm)
    assert manager.wait_delivered(5)
    first, second = receiver.bodies()
    assert sorted(a["labels"]["service"] for a in first["alerts"]) == ["a", "b"]
    assert len(second["alerts"]) == 1002  # the storm: one more notification for the group
    manager.close()


def test_the_old_name_alertmanager_still_works_and_warns() -> None:
    import runtime
    import runtime.monitoring

    with pytest.warns(DeprecationWarning, match="AlertEngine"):
        assert runtime.monitoring.AlertManager is AlertEngine
    with pytest.warns(DeprecationWarning):
        from runtime.monitoring.alerting import AlertManager  # noqa: F401
    runtime.__dict__.pop("AlertManager", None)
    with pytest.warns(DeprecationWarning):
        assert runtime.AlertManager is AlertEngine
