"""Alert rules from one Python source: promtool checks them, and tests each one both ways."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from components.config import parse_config
from components.monitoring.alerts import (
    ALERTS,
    BACKUP_MARGIN_SECONDS,
    RULES_FILE,
    THRESHOLDS,
    alerts_for,
    promtool_tests_yaml,
    rules_yaml,
)
from components.monitoring.runbooks import runbooks_markdown
from components.stack import alert_thresholds
from tests.stack_harness import run_stack, stack_run, uploads

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "AcmeRenewalFailing",
    "Watchdog", "TargetDown", "EndpointDown", "TlsCertificateExpiringSoon", "PostgresDown",
    "PostgresRestarted", "PostgresTooManyConnections", "PostgresDeadlocks", "RedisDown",
    "RedisMemoryNearLimit", "RedisRejectedConnections", "NginxDown", "HostHighCpu",
    "HostLowMemory", "HostDiskAlmostFull", "HostDiskWillFillIn24h", "ContainerOomKilled",
    "ContainerRestarting", "BackupMissing", "BackupFailed", "PrometheusConfigReloadFailed",
    "PrometheusRuleEvaluationFailures", "PrometheusAlertmanagerMissing", "WalArchivingFailing",
    "PhysicalFullBackupMissing", "PhysicalBackupMissing", "PhysicalBackupFailed",
    "RestoreDrillMissing", "RestoreDrillFailed", "RestoreDrillRpoHigh",
    "ReplicaNotStreaming", "ReplicationLagHigh", "ReplicationSlotRetainingWal",
    "BaseBackupMissing", "BaseBackupFailed",
    "LogsTracesComponentDown", "LogIngestionStopped", "ErrorLogRateHigh",
}  # fmt: skip


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run scripts/bootstrap"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path, rules: str, tests: dict[str, str]) -> list[str]:
    (tmp_path / RULES_FILE).write_text(rules)
    for name, text in tests.items():
        (tmp_path / name).write_text(text)
    return sorted(tests)


def test_the_alert_set_covers_the_platform() -> None:
    assert {a.name for a in ALERTS} == EXPECTED
    for alert in ALERTS:
        assert alert.severity in ("critical", "warning", "none")
        assert alert.summary and alert.action
        assert alert.quiet is not None or alert.name == "Watchdog"


@pytest.mark.req("UT-INFRA-04.2")
def test_promtool_checks_the_rules_the_stack_uploads(tmp_path: Path) -> None:
    files = uploads(stack_run("prod"), "prometheus")
    (tmp_path / RULES_FILE).write_text(files[f"/etc/prometheus/rules/{RULES_FILE}"])
    result = promtool("check", "rules", RULES_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # Docker's rules: all but CloudNativePG's (Kubernetes only)
    assert f"SUCCESS: {len(alerts_for('docker'))} rules found" in result.stdout
    assert len(alerts_for("docker")) == len(ALERTS) - 2


@pytest.mark.req("UT-INFRA-04.2")
def test_every_alert_fires_and_stays_quiet_when_it_should(tmp_path: Path) -> None:
    files = write(tmp_path, rules_yaml(), promtool_tests_yaml(RULES_FILE))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_promtool_tests_can_fail(tmp_path: Path) -> None:
    """Rules that never fire fail each 'fires' test; rules that always fire, each quiet one."""
    never = [replace(a, expr=f"({a.expr}) and on() absent(vector(1))") for a in ALERTS]
    files = write(tmp_path, rules_yaml(never), promtool_tests_yaml(RULES_FILE, never))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode != 0
    for alert in ALERTS:
        assert f"alertname: {alert.name}," in result.stdout + result.stderr, alert.name

    always = [replace(a, expr="vector(1)") for a in ALERTS]
    files = write(tmp_path, rules_yaml(always), promtool_tests_yaml(RULES_FILE, always))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode != 0
    for alert in ALERTS:
        if alert.quiet is not None:
            assert f"alertname: {alert.name}," in result.stdout + result.stderr, alert.name


def test_runbooks_are_generated_from_the_rules() -> None:
    expected = runbooks_markdown()
    assert (ROOT / "docs/runbooks.md").read_text() == expected, (
        "docs/runbooks.md is out of date: "
        "`.venv/bin/python -m components.monitoring.runbooks > docs/runbooks.md`"
    )


def test_thresholds_in_the_uploaded_rules_follow_the_settings() -> None:
    run = run_stack(
        "dev",
        {
            "replicationLagAlertBytes": 1000,
            "replicationSlotMaxRetainedBytes": 5000,
            "pitrFullSchedule": "0 1 * * *",
        },
    )
    text = uploads(run, "prometheus")[f"/etc/prometheus/rules/{RULES_FILE}"]
    assert "pg_stat_replication_pg_wal_lsn_diff > 1000\n" in text
    assert "pg_replication_slots_pg_wal_lsn_diff > 5000\n" in text
    # a daily full backup: missing after a day and the margin
    assert f'{{type="full"}}) > {86400 + BACKUP_MARGIN_SECONDS}\n' in text
    assert "$" not in text


def test_the_default_thresholds_are_what_the_default_settings_give() -> None:
    assert alert_thresholds(parse_config({}, "dev")) == replace(
        THRESHOLDS,
        acme_renewal_overdue_seconds=0,  # tlsMode self-signed: it cannot fire
    )
    acme = parse_config(
        {"tlsMode": "acme", "acmeEmail": "ops@example.com", "domain": "a.example"}, "dev"
    )
    assert alert_thresholds(acme) == THRESHOLDS
