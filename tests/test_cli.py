"""`python -m runtime` as scripts see it: settings from app_config alone, exit code 2 and one
line for every bad or missing setting on every command, and imports only what a verb needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = (
    "BACKUP_",
    "DATABASE_",
    "REDIS_",
    "APP_CONFIG",
    "ALERT",
    "MONITORING_",
    "HEALTH_",
    "PITR_",
)


def run(
    env: dict[str, str], *args: str, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return subprocess.run(
        [sys.executable, *flags, "-m", "runtime", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_commands_take_their_settings_from_app_config_alone(
    pgbench_db: str, tmp_path: Path
) -> None:
    config = tmp_path / "app_config.json"
    config.write_text(
        json.dumps(
            {
                "database": {"dsn": pgbench_db},
                "redis": {"url": "redis://127.0.0.1:1/0"},
                "backup": {"dir": str(tmp_path / "backups"), "min_keep": 1},
            }
        )
    )
    env = {"APP_CONFIG_FILE": str(config)}
    created = run(env, "backup", "create", "--json")
    assert created.returncode == 0, created.stderr
    backup_id = json.loads(created.stdout)["backup_id"]
    listed = run(env, "backup", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [b["backup_id"] for b in json.loads(listed.stdout)] == [backup_id]
    assert (tmp_path / "backups" / f"{backup_id}.dump").exists()


EVERY_COMMAND = [
    ("backup", "create"),
    ("backup", "list"),
    ("backup", "verify"),
    ("backup", "verify", "--deep"),
    ("backup", "restore", "--target", "postgresql://u@127.0.0.1:1/x"),
    ("backup", "prune"),
    ("backup", "schedule"),
    ("pitr", "check"),
    ("pitr", "backup", "--type", "diff"),
    ("pitr", "info"),
    ("pitr", "restore", "--latest"),
    ("serve", "--port", "0"),
]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_an_invalid_setting_exits_2_with_one_line_on_every_command(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": "postgresql://app:pw-s3cret@127.0.0.1:1/app",
        "BACKUP_DIR": str(tmp_path),
        "HEALTH_CHECK_TIMEOUT": "soon",
    }
    proc = run(env, *command)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: HEALTH_CHECK_TIMEOUT: got 'soon'; allowed: a number of seconds > 0"
    ]
    assert "pw-s3cret" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "command",
    [c for c in EVERY_COMMAND if c[1] in ("create", "schedule") or "--deep" in c],
    ids=" ".join,
)
def test_a_missing_database_exits_2_with_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    proc = run({"BACKUP_DIR": str(tmp_path)}, *command)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: DATABASE_URL (database.dsn): got None; allowed: a value (it is required)"
    ]


def test_an_unreadable_app_config_file_exits_2(tmp_path: Path) -> None:
    proc = run({"APP_CONFIG_FILE": str(tmp_path / "missing.json")}, "backup", "list")
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "APP_CONFIG_FILE" in proc.stderr


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output (`import time: self | cumulative | name`)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


@pytest.mark.parametrize(
    "command",
    [("backup", "--help"), ("backup", "list"), ("pitr", "--help"), ("pitr", "info", "--help")],
    ids=" ".join,
)
def test_backup_and_pitr_commands_import_neither_redis_nor_monitoring(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    proc = run({"BACKUP_DIR": str(tmp_path)}, *command, flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    names = imported(proc.stderr)
    assert "runtime.cli" in names  # the parsing works: the test can fail
    assert not {n for n in names if n == "redis" or n.startswith("redis.")}
    assert not {n for n in names if n.startswith("runtime.monitoring")}
    assert "runtime.cache" not in names and "prometheus_client" not in names
