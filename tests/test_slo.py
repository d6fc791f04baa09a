"""SLOs from one Python source: the generated rules pass promtool, every burn-rate alert fires at
its threshold in time and stays quiet at a sustainable burn and during a blip, the cases fail
against broken rules, and the thresholds follow the objective."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from components.alertmanager import CONFIG_FILE
from components.config import ConfigError, parse_config
from components.monitoring.promtool import promtool_test_files
from components.monitoring.slo import (
    POLICIES,
    RULES_FILE,
    SLOS,
    BurnPolicy,
    Slo,
    availability_probe_interval_limit,
    cases,
    max_probe_interval_seconds,
    one_failed_probe_test,
    promtool_tests_yaml,
    rule_count,
    rules_yaml,
    slos,
    windows,
)
from components.render.prometheus_yml import RULES_DIR
from tests.stack_harness import run_stack, stack_run, uploads

ROOT = Path(__file__).resolve().parent.parent


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run scripts/bootstrap"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def write(tmp_path: Path, rules: str, tests: dict[str, str]) -> list[str]:
    (tmp_path / RULES_FILE).write_text(rules)
    for name, text in tests.items():
        (tmp_path / name).write_text(text)
    return sorted(tests)


def failed_tests(output: str) -> set[str]:
    """The names of the promtool tests that failed (promtool prints `name: <test>,`)."""
    return {line.strip()[len("name: ") : -1] for line in output.splitlines() if "name: " in line}


def test_the_policies_are_the_workbooks_burn_rates() -> None:
    assert [(p.long, p.short, p.factor(), p.severity) for p in POLICIES] == [
        ("1h", "5m", Decimal("14.4"), "critical"),
        ("6h", "30m", Decimal("6"), "critical"),
        ("3d", "6h", Decimal("1"), "warning"),
    ]
    assert windows() == ("5m", "30m", "1h", "6h", "3d", "30d")


def test_each_slo_has_every_window_recorded_and_its_alerts() -> None:
    rules = rules_yaml()
    for slo in SLOS:
        for window in windows():
            assert f"record: slo:sli_error:ratio_rate{window}" in rules
            assert slo.error_ratio.replace("{w}", window) in rules
        for policy in slo.policies():
            assert f"alert: {slo.alert_name(policy)}" in rules
    # a daily backup makes a 5-minute ratio one run's verdict: the backup SLO only tickets
    backup = next(s for s in SLOS if s.name == "backup")
    assert [p.kind for p in backup.policies()] == ["ticket"]


@pytest.mark.req("UT-INFRA-04.2")
def test_promtool_checks_the_slo_rules_the_stack_uploads(tmp_path: Path) -> None:
    for stack in ("dev", "prod"):
        files = uploads(stack_run(stack), "prometheus")
        (tmp_path / RULES_FILE).write_text(files[f"{RULES_DIR}/{RULES_FILE}"])
        result = promtool("check", "rules", RULES_FILE, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {rule_count()} rules found" in result.stdout


@pytest.mark.req("UT-INFRA-04.2")
def test_every_burn_rate_alert_fires_in_time_and_stays_quiet_at_1x_and_during_a_blip(
    tmp_path: Path,
) -> None:
    files = write(tmp_path, rules_yaml(), promtool_tests_yaml(RULES_FILE))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)
    alerts = sum(len(s.policies()) for s in SLOS)
    assert len(cases()) == 3 * alerts == 21


def test_the_latency_sli_counts_the_sidecars_and_the_applications_queries_together(
    tmp_path: Path,
) -> None:
    """Job `runtime` (the sidecar's probe queries, all fast) and job `app` (an application
    listed in appMetricsTargets, two thirds slow): the recorded error ratio is the pooled one,
    not either job's alone."""
    per_minute = {"runtime": (100, 100), "app": (100, 300)}  # (under 100 ms, all) a minute
    series = [
        {
            "series": f'runtime_db_query_duration_seconds_{name}{{job="{job}",'
            f'instance="{job}:9100",pool="{job}"{le}}}',
            "values": f"0+{count}x20",
        }
        for job, (good, total) in per_minute.items()
        for name, le, count in (("bucket", ',le="0.1"', good), ("count", "", total))
    ]
    tests = {
        "pooled_test.yml": yaml.safe_dump(
            {
                "rule_files": [RULES_FILE],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {
                                "expr": 'slo:sli_error:ratio_rate5m{slo="query-latency"}',
                                "eval_time": "10m",
                                # 1 - (100 + 100) / (100 + 300); runtime alone: 0, app: 2/3
                                "exp_samples": [
                                    {
                                        "labels": 'slo:sli_error:ratio_rate5m{slo="query-latency"}',
                                        "value": 0.5,
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    }
    files = write(tmp_path, rules_yaml(), tests)
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _never(slo: Slo, policy: BurnPolicy) -> str:
    return f"({slo.expr(policy)}) and on () absent(vector(1))"


def _short_window_only(slo: Slo, policy: BurnPolicy) -> str:
    return f"{slo.selector(policy.short)} > {slo.threshold(policy)}"


def _half_the_budget(slo: Slo, policy: BurnPolicy) -> str:
    """Both windows, but a threshold of half the sustainable burn: pages on every error."""
    limit = slo.budget / 2
    return f"{slo.selector(policy.long)} > {limit} and {slo.selector(policy.short)} > {limit}"


@pytest.mark.parametrize(
    ("broken", "kind"),
    [
        (_never, "fires"),
        (_short_window_only, "quiet during a blip"),
        (_half_the_budget, "quiet at a sustainable burn"),
    ],
    ids=["never-fires", "no-long-window", "threshold-below-1x"],
)
def test_the_slo_cases_fail_against_broken_rules(broken, kind: str, tmp_path: Path) -> None:
    files = write(tmp_path, rules_yaml(expr=broken), promtool_tests_yaml(RULES_FILE))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode != 0
    failed = failed_tests(result.stdout + result.stderr)
    expected = {f"{c.slo.alert_name(c.policy)} {c.kind}" for c in cases() if c.kind == kind}
    assert expected <= failed, expected - failed


def test_an_alert_that_fires_too_early_fails_its_fires_case(tmp_path: Path) -> None:
    """The 'fires' case also checks the alert is still quiet before the expected time."""
    files = write(tmp_path, rules_yaml(expr=_short_window_only), promtool_tests_yaml(RULES_FILE))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    failed = failed_tests(result.stdout + result.stderr)
    assert {f"{s.alert_name(p)} fires" for s in SLOS for p in s.policies()} <= failed


def test_thresholds_and_cases_follow_the_objective(tmp_path: Path) -> None:
    changed = slos(availability="99.5", query_latency_target="98", backup_target="95")
    availability = changed[0]
    assert [availability.threshold(p) for p in POLICIES] == [
        Decimal("0.072"),  # 14.4 x 0.5 %
        Decimal("0.03"),  # 6 x 0.5 %
        Decimal("0.005"),  # 1 x 0.5 %
    ]
    rules = rules_yaml(changed)
    assert 'slo:sli_error:ratio_rate1h{slo="availability"} > 0.072 and' in rules
    assert 'slo:sli_error:ratio_rate3d{slo="query-latency"} > 0.02 and' in rules
    assert 'slo:sli_error:ratio_rate3d{slo="backup"} > 0.05 and' in rules
    assert "vector(0.995)" in rules and "1 - slo:sli_error:ratio_rate30d" in rules
    files = write(tmp_path, rules, promtool_tests_yaml(RULES_FILE, changed))
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_generates_its_slo_rules_from_the_settings() -> None:
    run = run_stack(
        "dev", {"sloAvailability": "99.95", "sloQueryLatencyMs": 250, "sloBackupSeconds": 10}
    )
    rules = uploads(run, "prometheus")[f"{RULES_DIR}/{RULES_FILE}"]
    assert 'slo:sli_error:ratio_rate1h{slo="availability"} > 0.0072 and' in rules
    assert 'runtime_db_query_duration_seconds_bucket{le="0.25"}' in rules
    assert 'runtime_backup_duration_seconds_bucket{outcome="success",le="10.0"}' in rules


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("sloAvailability", "100", "from 95 up to (not including) 100"),
        ("sloAvailability", "99,9", "a percentage like '99.9'"),
        ("sloAvailability", "90", "from 95"),
        ("sloQueryLatencyTarget", "abc", "a percentage like '99.9'"),
        ("sloQueryLatencyMs", 120, "one of the histogram's bucket bounds: 1, 5, 10, 25"),
        ("sloBackupSeconds", 4, "one of the histogram's bucket bounds: 1, 2, 5"),
        ("sloBackupTarget", "40", "from 50"),
    ],
)
def test_a_bad_objective_is_one_clear_line(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({key: value}, stack="test")
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and lines[1].strip().startswith(f"data-platform:{key}: got")
    assert allowed in lines[1]


@pytest.mark.req("UT-INFRA-04.2")
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pages_go_to_the_critical_receiver_and_tickets_to_the_default_one(
    stack: str, tmp_path: Path
) -> None:
    """amtool routes each generated SLO alert, with its real labels, by its severity."""
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not installed: run scripts/bootstrap"
    config = tmp_path / "alertmanager.yml"
    config.write_text(uploads(stack_run(stack), "alertmanager")[CONFIG_FILE])
    rules = yaml.safe_load(rules_yaml())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 7
    for alert in alerts:
        labels = [f"alertname={alert['alert']}", *(f"{k}={v}" for k, v in alert["labels"].items())]
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        expected = "critical" if alert["labels"]["severity"] == "critical" else "default"
        assert result.stdout.strip() == expected, alert["alert"]


# -- one failed probe never pages -------------------------------------------------------------

AVAILABILITY = next(s for s in SLOS if s.name == "availability")
PAGES = [p for p in POLICIES if p.kind == "page"]


def test_the_probe_interval_limit_is_where_one_failure_stops_paging() -> None:
    """At the limit the fewest samples a long window holds (floor(long / I)) make one failure
    no more than each page's threshold; one second longer, the fast page's is exceeded."""
    limit = max_probe_interval_seconds(AVAILABILITY)
    assert limit == availability_probe_interval_limit("99.9") == 51
    for interval, pages in ((limit, False), (limit + 1, True)):
        fewest = [seconds_long // interval for seconds_long in (3600, 21600)]
        ratios = [Decimal(1) / n for n in fewest]
        thresholds = [AVAILABILITY.threshold(p) for p in PAGES]
        assert any(r > t for r, t in zip(ratios, thresholds, strict=True)) is pages, interval
    assert max_probe_interval_seconds(next(s for s in SLOS if s.name == "backup")) is None


@pytest.mark.parametrize("interval", [52, 60], ids=["limit+1", "60s"])
def test_one_failed_probe_pages_beyond_the_limit(interval: int, tmp_path: Path) -> None:
    """The promtool case the stack's tests run at the limit (51 s), run at a longer interval:
    promtool reports the fast page firing on a single failed probe (so the case can fail)."""
    case = one_failed_probe_test(AVAILABILITY, PAGES[0], interval)
    files = write(
        tmp_path, rules_yaml(), promtool_test_files("one", RULES_FILE, {f"{interval}s": [case]})
    )
    result = promtool("test", "rules", *files, cwd=tmp_path)
    assert result.returncode != 0
    assert str(case["name"]) in failed_tests(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("overrides", "allowed"),
    [
        ({"scrapeIntervalSeconds": 52}, "at most 51 with sloAvailability '99.9'"),
        ({"sloAvailability": "99.99"}, "at most 5 with sloAvailability '99.99'"),
    ],
)
def test_a_scrape_interval_at_which_one_failed_probe_pages_is_refused(
    overrides: dict[str, object], allowed: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(overrides, stack="test")
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert lines[1].strip().startswith("data-platform:scrapeIntervalSeconds: got ")
    assert allowed in lines[1] and "one failed probe" in lines[1]
    assert parse_config({"scrapeIntervalSeconds": 51}, stack="test").scrape_interval_seconds == 51
