"""Alert routing end to end: the generated alertmanager.yml in amtool and in a real Alertmanager.

A real Alertmanager (Debian's 0.25) runs the configuration the stack uploads, with the
container's own command line; alerts are posted to its v2 API the way Prometheus and the
runtime sidecar post them, and notifications arrive at real HTTP receivers. Only the receiver
URLs (to local ones) and the grouping delays (to a second) differ from the generated file.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alertmanager import CONFIG_FILE
from tests.http_receiver import Receiver
from tests.servers import AlertmanagerServer, NginxServer
from tests.stack_harness import (
    PROD_CONFIG,
    StackRun,
    run_stack,
    stack_run,
    unwrap,
    uploads,
)

ALERT_HOOK = PROD_CONFIG["alertWebhookUrl"]
HEARTBEAT = PROD_CONFIG["watchdogWebhookUrl"]
# The rule before issue 14: alerts without job/instance labels (all the runtime's) were
# "equal", so one runtime critical silenced every runtime warning.
OLD_INHIBIT_RULES = [
    {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["job", "instance"],
    }
]


@pytest.fixture(scope="module")
def dev_with_alert_hook() -> StackRun:
    """dev with an alert webhook and no heartbeat URL (the Watchdog goes nowhere)."""
    return run_stack("dev", {"alertWebhookUrl": ALERT_HOOK})


def generated_config(run: StackRun) -> str:
    return uploads(run, "alertmanager")[CONFIG_FILE]


def command(run: StackRun) -> list[str]:
    return list(unwrap(run.containers()["alertmanager"].inputs)["command"])


def external_url(run: StackRun) -> str:
    """What Alertmanager puts in externalURL: its --web.external-url without the final slash."""
    return f"{run.outputs['public_url']}/alertmanager"


def for_test(config: str, urls: dict[str, str], inhibit_rules: Any = None) -> str:
    """The generated file with local receivers and one-second grouping; nothing else changed."""
    for old, new in urls.items():
        assert old in config, old
        config = config.replace(old, new)
    doc = yaml.safe_load(config)
    for route in [doc["route"], *doc["route"]["routes"]]:
        route["group_wait"] = "1s"
        route["group_interval"] = "1s"
    if inhibit_rules is not None:
        doc["inhibit_rules"] = inhibit_rules
    return yaml.safe_dump(doc, sort_keys=False)


def alert(**labels: str) -> dict[str, Any]:
    return {"labels": labels, "annotations": {"summary": labels["alertname"]}}


def delivered(receiver: Receiver) -> list[tuple[str, dict[str, str]]]:
    """(receiver name in the payload, labels) of every alert notified so far."""
    return [
        (body["receiver"], a["labels"])
        for body in receiver.bodies()
        for a in body["alerts"]
        if a["status"] == "firing"
    ]


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    alerts, heartbeat = Receiver(), Receiver()
    yield alerts, heartbeat
    alerts.close()
    heartbeat.close()


# -- routes: amtool --------------------------------------------------------------------------


def amtool_route(config: str, labels: tuple[str, ...], tmp_path: Path) -> str:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not installed: run scripts/bootstrap"
    path = tmp_path / "alertmanager.yml"
    path.write_text(config)
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.req("UT-INFRA-04.2")
@pytest.mark.parametrize(
    ("stack", "labels", "receiver"),
    [
        ("prod", ("alertname=PostgresDown", "severity=critical"), "critical"),
        ("prod", ("alertname=HostHighCpu", "severity=warning"), "default"),
        (
            "prod",
            ("alertname=RuntimeServiceDown", "severity=critical", "source=runtime"),
            "runtime",
        ),
        ("prod", ("alertname=RuntimeHighCpu", "severity=warning", "source=runtime"), "runtime"),
        # the dead man's switch: its heartbeat receiver, or nowhere; never the alert channel
        ("prod", ("alertname=Watchdog", "severity=none"), "watchdog"),
        ("dev", ("alertname=Watchdog", "severity=none"), "null"),
    ],
)
def test_amtool_routes_each_alert_to_its_receiver(
    stack: str, labels: tuple[str, ...], receiver: str, tmp_path: Path
) -> None:
    assert amtool_route(generated_config(stack_run(stack)), labels, tmp_path) == receiver


def test_the_watchdog_receiver_is_the_heartbeat_url_alone() -> None:
    doc = yaml.safe_load(generated_config(stack_run("prod")))
    receivers = {r["name"]: r for r in doc["receivers"]}
    (heartbeat,) = receivers["watchdog"]["webhook_configs"]
    assert heartbeat["url"] == HEARTBEAT and heartbeat["send_resolved"] is False
    others = [
        c["url"] for n, r in receivers.items() if n != "watchdog" for c in r["webhook_configs"]
    ]
    assert HEARTBEAT not in others and set(others) == {ALERT_HOOK}
    dev = {r["name"]: r for r in yaml.safe_load(generated_config(stack_run("dev")))["receivers"]}
    assert dev["null"] == {"name": "null"} and "watchdog" not in dev


# -- inhibition: a real Alertmanager ------------------------------------------------------------

# Each alert as Prometheus (job/instance) or the runtime sidecar (source="runtime") sends it.
RUNTIME_POSTGRES_DOWN = alert(
    alertname="RuntimeServiceDown", severity="critical", source="runtime", service="postgres"
)
RUNTIME_HIGH_CPU = alert(alertname="RuntimeHighCpu", severity="warning", source="runtime")
RUNTIME_POSTGRES_SLOW = alert(
    alertname="RuntimeServiceSlow", severity="warning", source="runtime", service="postgres"
)
RUNTIME_REDIS_SLOW = alert(
    alertname="RuntimeServiceSlow", severity="warning", source="runtime", service="redis"
)
PG = {"job": "postgres", "instance": "postgres-exporter:9187"}
POSTGRES_DOWN = alert(alertname="PostgresDown", severity="critical", **PG)
POSTGRES_CONNECTIONS = alert(alertname="PostgresTooManyConnections", severity="warning", **PG)
REDIS_MEMORY = alert(
    alertname="RedisMemoryNearLimit",
    severity="warning",
    job="redis",
    instance="redis-exporter:9121",
)
WARNINGS = {
    "runtime cpu (no service)": RUNTIME_HIGH_CPU,
    "runtime about postgres": RUNTIME_POSTGRES_SLOW,
    "runtime about redis": RUNTIME_REDIS_SLOW,
    "postgres exporter": POSTGRES_CONNECTIONS,
    "redis exporter": REDIS_MEMORY,
}


@pytest.mark.req("UT-INFRA-04.2")
@pytest.mark.parametrize(
    ("rules", "suppressed"),
    [
        # a critical silences the warnings of its own target, and only those
        ("generated", {"runtime about postgres", "postgres exporter"}),
        # the old rule: RuntimeServiceDown about postgres silenced every runtime warning
        (
            "old",
            {
                "runtime cpu (no service)",
                "runtime about postgres",
                "runtime about redis",
                "postgres exporter",
            },
        ),
    ],
)
def test_a_critical_suppresses_only_the_warnings_of_its_own_target(
    rules: str,
    suppressed: set[str],
    receivers: tuple[Receiver, Receiver],
    dev_with_alert_hook: StackRun,
    tmp_path: Path,
) -> None:
    hook, _ = receivers
    run = dev_with_alert_hook
    config = for_test(
        generated_config(run),
        {ALERT_HOOK: hook.url},
        inhibit_rules=OLD_INHIBIT_RULES if rules == "old" else None,
    )
    alertmanager = AlertmanagerServer(config, command(run), tmp_path)
    try:
        # the criticals first, as when a target goes down and its warnings follow
        alertmanager.post_alerts([RUNTIME_POSTGRES_DOWN, POSTGRES_DOWN])
        wait_until(lambda: len(delivered(hook)) >= 2)
        alertmanager.post_alerts(list(WARNINGS.values()))
        expected = {name for name in WARNINGS if name not in suppressed}

        def arrived() -> set[str]:
            seen = [labels for _, labels in delivered(hook)]
            return {name for name, a in WARNINGS.items() if a["labels"] in seen}

        wait_until(lambda: arrived() >= expected)
        time.sleep(3)  # three more group intervals: a suppressed warning would arrive by now
        assert arrived() == expected
        listed = alertmanager.alerts()
        state = {
            name: b["status"]
            for name, a in WARNINGS.items()
            for b in listed
            if b["labels"] == a["labels"]
        }
        assert set(state) == set(WARNINGS)
        assert {n for n, s in state.items() if s["inhibitedBy"]} == suppressed
        assert {n for n, s in state.items() if s["state"] == "suppressed"} == suppressed
        # every notification links to the public Alertmanager, not the container's hostname
        assert {body["externalURL"] for body in hook.bodies()} == {external_url(run)}
    finally:
        alertmanager.close()


# -- the Watchdog: a real Alertmanager ---------------------------------------------------------


def test_the_watchdog_reaches_the_heartbeat_and_never_the_alert_receiver(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    hook, heartbeat = receivers
    run = stack_run("prod")
    config = for_test(generated_config(run), {ALERT_HOOK: hook.url, HEARTBEAT: heartbeat.url})
    alertmanager = AlertmanagerServer(config, command(run), tmp_path)
    try:
        alertmanager.post_alerts([alert(alertname="Watchdog", severity="none"), REDIS_MEMORY])
        wait_until(lambda: heartbeat.bodies() and delivered(hook))
        time.sleep(3)  # more group intervals: a misrouted Watchdog would have arrived
        beats = heartbeat.bodies()
        assert beats and all(b["receiver"] == "watchdog" for b in beats)
        assert {a["labels"]["alertname"] for b in beats for a in b["alerts"]} == {"Watchdog"}
        assert [labels["alertname"] for _, labels in delivered(hook)] == ["RedisMemoryNearLimit"]
        assert {b["externalURL"] for b in beats + hook.bodies()} == {external_url(run)}
        assert external_url(run) == "https://platform.example.com/alertmanager"
    finally:
        alertmanager.close()


def test_without_a_heartbeat_url_the_watchdog_goes_nowhere(
    receivers: tuple[Receiver, Receiver], dev_with_alert_hook: StackRun, tmp_path: Path
) -> None:
    hook, _ = receivers
    run = dev_with_alert_hook
    config = for_test(generated_config(run), {ALERT_HOOK: hook.url})
    alertmanager = AlertmanagerServer(config, command(run), tmp_path)
    try:
        alertmanager.post_alerts([alert(alertname="Watchdog", severity="none"), REDIS_MEMORY])
        wait_until(lambda: bool(delivered(hook)))
        time.sleep(3)
        assert [labels["alertname"] for _, labels in delivered(hook)] == ["RedisMemoryNearLimit"]
        (watchdog,) = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "Watchdog"]
        assert [r["name"] for r in watchdog["receivers"]] == ["null"]
        assert external_url(run) == "https://localhost:8443/alertmanager"
    finally:
        alertmanager.close()


# -- Alertmanager behind nginx, for admins ------------------------------------------------------


@pytest.mark.parametrize("allowed", [True, False], ids=["admin-network", "other-network"])
def test_nginx_serves_alertmanager_at_its_public_path_to_admins_only(
    allowed: bool, tmp_path: Path
) -> None:
    cidrs = ["127.0.0.1/32"] if allowed else ["10.0.0.0/8"]
    run = run_stack("dev", {"adminAllowCidrs": cidrs})
    alertmanager = AlertmanagerServer(
        generated_config(run), command(run), tmp_path / "alertmanager"
    )
    nginx = NginxServer(
        uploads(run, "nginx"), tmp_path / "nginx", upstreams={"alertmanager": alertmanager.port}
    )
    try:
        site = f"https://localhost:{nginx.https}"
        ready = nginx.curl("-o", "/dev/null", "-w", "%{http_code}", f"{site}/alertmanager/-/ready")
        status = nginx.curl(f"{site}/alertmanager/api/v2/status")
        prometheus = nginx.curl("-o", "/dev/null", "-w", "%{http_code}", f"{site}/prometheus/")
        if allowed:
            assert ready.stdout == "200"
            assert '"cluster"' in status.stdout and '"config"' in status.stdout
            assert prometheus.stdout == "502"  # allowed through; no Prometheus runs here
        else:
            assert ready.stdout == "403" and prometheus.stdout == "403"
    finally:
        nginx.close()
        alertmanager.close()
