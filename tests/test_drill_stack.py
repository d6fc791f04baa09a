"""The restore drills switched on in the deployed stack (docs/runtime-pitr-drill.md): the
sidecar's scratch volume, the `pitr.drill` settings it exports, the settings' rules, and the
sidecar image that can run a drill. The drill itself runs on the real engine
(tests/engine/stack/test_drill.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.config import ConfigError
from components.monitoring.alerts import (
    ALERTS,
    RT,
    RULES_FILE,
    Case,
    _s,
    _test,
    rules_yaml,
)
from components.monitoring.promtool import RUNBOOK_URL, promtool_test_files
from tests.stack_harness import StackRun, run_stack, stack_run, unwrap

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = "/var/lib/pgbackrest-drill"


@pytest.fixture(scope="module", params=("dev", "prod"))
def run(request: pytest.FixtureRequest) -> StackRun:
    return stack_run(request.param)


def _mounts(run: StackRun, service: str) -> dict[str, dict[str, object]]:
    volumes = unwrap(run.containers()[service].inputs).get("volumes", [])
    return {str(v["containerPath"]): v for v in volumes}


def test_the_sidecar_mounts_its_own_unprotected_scratch_volume(run: StackRun) -> None:
    mount = _mounts(run, "runtime")[SCRATCH]
    assert not mount.get("readOnly")
    others = {
        str(m["volumeName"])
        for service in run.containers()
        if service != "runtime"
        for m in _mounts(run, service).values()
        if "volumeName" in m
    }
    assert mount["volumeName"] not in others, "the scratch volume is the sidecar's alone"
    (volume,) = [
        r for r in run.of_type("docker:index/volume:Volume") if r.name.endswith("-runtime-drill")
    ]
    assert volume.protect is False, "scratch, emptied after every drill: cheap to lose"


def test_the_stack_exports_the_drill_settings_with_their_defaults(run: StackRun) -> None:
    drill = run.outputs["app_config"]["pitr"]["drill"]
    assert drill == {
        "schedule": "0 4 * * 3",
        "timeout_seconds": 3600,
        "memory_mb": 64,
        "scratch_path": SCRATCH,
        "margin_seconds": 120,
        "tables": "",
        "database": "app",
    }


def test_the_drill_settings_follow_the_stack_settings() -> None:
    run = run_stack(
        "dev",
        {
            "pitrDrillSchedule": "30 3 * * 6",
            "pitrDrillTimeoutSeconds": "900",
            "pitrDrillMemoryMb": "96",
            "pitrDrillTables": '["orders", "sales.invoices"]',
            "walArchiveTimeout": "300",
        },
    )
    drill = run.outputs["app_config"]["pitr"]["drill"]
    assert (drill["schedule"], drill["timeout_seconds"], drill["memory_mb"]) == (
        "30 3 * * 6",
        900,
        96,
    )
    assert drill["tables"] == "orders,sales.invoices"
    # the wait for the archive grows with archive_timeout: a healthy archive never fails a drill
    assert drill["margin_seconds"] == 600


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"pitrDrillTables": '["orders; drop table x"]'},
            "pitrDrillTables: got ['orders; drop table x']; allowed: a list of table names",
        ),
        ({"pitrDrillSchedule": "weekly"}, "pitrDrillSchedule: got 'weekly'; allowed: a 5-field"),
        (
            {"pitrDrillTimeoutSeconds": "0"},
            "pitrDrillTimeoutSeconds: got 0; allowed: an integer from 1 to 86400",
        ),
        (
            {"pitrDrillMemoryMb": "200"},
            "pitrDrillMemoryMb: got 200; allowed: at most half of runtimeMemoryMb (256 MB)",
        ),
    ],
)
def test_bad_drill_settings_are_refused_naming_key_value_and_rule(
    overrides: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("dev", overrides)
    assert problem in str(raised.value)


def test_kubernetes_promises_no_drill() -> None:
    """The drill is Docker-only: the k8s app_config has no `pitr` section at all (so no
    `pitr.drill`), and counted tables are refused there rather than silently ignored."""
    assert "pitr" not in stack_run("k8s").outputs["app_config"]
    with pytest.raises(ConfigError) as raised:
        run_stack("k8s", {"pitrDrillTables": '["orders"]'})
    assert "pitrDrillTables: got ['orders']; allowed: [] on kubernetes" in str(raised.value)


def test_the_sidecar_image_can_run_a_drill_as_uid_999() -> None:
    """PostgreSQL's server in the image without a cluster, and `postgres` at uid/gid 999 before
    the packages (postgresql-common reuses it). The engine tier builds and runs it for real."""
    text = (ROOT / "runtime/Dockerfile").read_text()
    user = text.index("groupadd --system --gid 999 postgres")
    no_cluster = text.index("create_main_cluster = false")
    install = text.index("apt-get install")
    assert user < no_cluster < install
    assert re.search(r"\bpostgresql-15=15\.\*", text) and "locales=" in text
    assert "useradd --system --uid 999 --gid postgres" in text
    assert f"install -d -o postgres -g postgres -m 0700 {SCRATCH}" in text
    assert re.search(r"^USER 999$", text, re.M)
    # PID 1 reaps orphans (the drill's copy, pgBackRest's async archive-get): without it they
    # stayed zombies of the runtime (tests/engine/stack/test_drill.py)
    assert "tini=" in text
    assert re.search(r'^ENTRYPOINT \["tini", "--", "python", "-m", "runtime"\]$', text, re.M)


# -- RestoreDrillMissing when no drill has ever passed (promtool) ---------------------------

ENABLED = _s("runtime_pitr_drill_enabled_since_timestamp_seconds", RT)
GOOD = _s("runtime_pitr_drill_last_success_timestamp_seconds", RT)


def _case(series: dict[str, str], at: str, firing: bool) -> tuple[Case, bool]:
    return Case(series=series, eval_time=at, labels=RT if firing else {}, interval="1h"), firing


MISSING_CASES = {
    # drills on for 180 h (more than a week + 4 h), none ever passed: the success series is
    # absent, and that must not keep the alert quiet
    "on, never passed, past the schedule": _case({ENABLED: "0x200"}, "180h", True),
    "on, never passed, within the schedule": _case({ENABLED: "0x200"}, "160h", False),
    "on, passed 13 h ago": _case({ENABLED: "0x200", GOOD: "600000x200"}, "180h", False),
    "on, last passed 180 h ago": _case({ENABLED: "0x200", GOOD: "0x200"}, "180h", True),
    "off (no pg_ctl): nothing to miss": _case({}, "180h", False),
}


@pytest.mark.parametrize("name", sorted(MISSING_CASES))
def test_restore_drill_missing_fires_when_drills_are_on_and_none_ever_passed(
    name: str, tmp_path: Path
) -> None:
    case, firing = MISSING_CASES[name]
    alert = next(a for a in ALERTS if a.name == "RestoreDrillMissing")
    (tmp_path / RULES_FILE).write_text(rules_yaml())
    tests = promtool_test_files(
        "missing", RULES_FILE, {case.interval: [_test(alert, case, firing, RUNBOOK_URL)]}
    )
    for file, text in tests.items():
        (tmp_path / file).write_text(text)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/bootstrap"
    done = subprocess.run(
        [promtool, "test", "rules", *sorted(tests)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
