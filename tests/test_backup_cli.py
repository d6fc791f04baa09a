"""`python -m runtime backup ...` as a script sees it: output, one-line errors, exit codes."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest

from tests.servers import fingerprint, flip

ROOT = Path(__file__).resolve().parent.parent
KEY_B64 = base64.b64encode(bytes(range(32))).decode()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return errors[0]


@pytest.mark.req("UT-INFRA-02.3", "ET-INFRA-02.2")
def test_cli_create_list_verify_restore_and_fallback(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": pgbench_db,
        "BACKUP_DIR": str(tmp_path),
        "BACKUP_ENCRYPTION_KEY": KEY_B64,
        "BACKUP_ENCRYPTION_KEY_ID": "ops-2026",
    }
    first = run(env, "backup", "create", "--json")
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["status"] == "success" and created["size_bytes"] > 0
    second = run(env, "backup", "create")
    assert second.returncode == 0, second.stderr
    newer_id = second.stdout.split()[0]

    listed = run(env, "backup", "list", "--json")
    assert [b["backup_id"] for b in json.loads(listed.stdout)] == [newer_id, created["backup_id"]]
    assert run(env, "backup", "verify", "--deep").returncode == 0

    data = tmp_path / f"{newer_id}.dump.enc"
    data.write_bytes(flip(data.read_bytes()))
    bad = run(env, "backup", "verify", newer_id)
    assert bad.returncode == 1
    assert one_line_error(bad).startswith(f"error: backup {newer_id} failed verification: checksum")

    restored = run(env, "backup", "restore", "--target", empty_db)
    assert restored.returncode == 3, restored.stderr  # done, from an older backup
    assert f"warning: skipped {newer_id}: checksum mismatch" in restored.stderr
    assert restored.stdout.startswith(f"restored {created['backup_id']} into ")
    assert fingerprint(empty_db) == fingerprint(pgbench_db)
    assert "app-test-password" not in restored.stdout + restored.stderr

    pruned = run(env, "backup", "prune", "--dry-run")
    assert pruned.returncode == 0 and "would delete" not in pruned.stdout


def test_cli_restore_exit_0_when_nothing_was_skipped(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": pgbench_db, "BACKUP_DIR": str(tmp_path)}
    assert run(env, "backup", "create").returncode == 0
    restored = run(env, "backup", "restore", "latest", "--target", empty_db, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["skipped"] == []


def test_cli_failed_backup_exits_1_with_one_line_and_no_password(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://app:Sup3r-secret@127.0.0.1:1/app",
        "BACKUP_DIR": str(tmp_path),
    }
    proc = run(env, "backup", "create")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith("error: backup ") and " failed: " in line
    assert "Sup3r-secret" not in proc.stderr + proc.stdout
    assert run(env, "backup", "list").stdout == ""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"BACKUP_MIN_KEEP": "none"},
            "error: BACKUP_MIN_KEEP: got 'none'; allowed: an integer from 1 to 10000",
        ),
        (
            {"BACKUP_ENCRYPTION_KEY": "dG9vIHNob3J0", "BACKUP_ENCRYPTION_KEY_ID": "k"},
            "error: BACKUP_ENCRYPTION_KEY: got ***; allowed: base64 of exactly 32 random bytes",
        ),
    ],
)
def test_cli_bad_configuration_exits_2(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    proc = run({"BACKUP_DIR": str(tmp_path), **env}, "backup", "list")
    assert proc.returncode == 2
    assert one_line_error(proc) == expected
    assert "dG9vIHNob3J0" not in proc.stderr


def test_cli_usage_errors_exit_2() -> None:
    assert (
        run(
            {},
        ).returncode
        == 2
    )
    assert run({}, "backup").returncode == 2
    assert run({}, "backup", "restore").returncode == 2  # --target is required


def test_cli_restore_with_no_backups_exits_1(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": pgbench_db, "BACKUP_DIR": str(tmp_path)}
    proc = run(env, "backup", "restore", "--target", empty_db)
    assert proc.returncode == 1
    assert one_line_error(proc) == "error: no restorable backup"


def test_cli_s3_from_environment_only(pgbench_db: str, moto_endpoint: str) -> None:
    """BACKUP_S3_* and the AWS_* variables are all the CLI needs for MinIO-style storage."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="cli-backups")
    env = {
        "DATABASE_URL": pgbench_db,
        "BACKUP_S3_BUCKET": "cli-backups",
        "BACKUP_S3_ENDPOINT": moto_endpoint,
        "BACKUP_S3_PREFIX": "nightly",
        "BACKUP_ENCRYPTION_KEY": KEY_B64,
        "BACKUP_ENCRYPTION_KEY_ID": "ops-2026",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    created = run(env, "backup", "create")
    assert created.returncode == 0, created.stderr
    backup_id, _, _, location = created.stdout.split()
    assert location == f"s3://cli-backups/nightly/{backup_id}.dump.enc"
    assert run(env, "backup", "verify", backup_id).returncode == 0
    listed = json.loads(run(env, "backup", "list", "--json").stdout)
    assert [(b["backup_id"], b["state"], b["key_id"]) for b in listed] == [
        (backup_id, "verified", "ops-2026")
    ]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="cli-backups")["Contents"]]
    assert sorted(keys) == [
        f"nightly/{backup_id}.dump.enc",
        f"nightly/{backup_id}.manifest.json",
        f"nightly/{backup_id}.verify.json",
    ]


@pytest.mark.req("UT-INFRA-02.3")
def test_cli_schedule_runs_a_verified_backup_and_stops_on_sigterm(
    pgbench_db: str, tmp_path: Path
) -> None:
    """The sidecar's loop: with no backup yet it catches up once at start, then waits."""
    env = {"DATABASE_URL": pgbench_db, "BACKUP_DIR": str(tmp_path), "BACKUP_SCHEDULE": "0 3 * * *"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "DATABASE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "backup", "schedule"],
        cwd=ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*.verify.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # let prune run after the verification
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    listed = json.loads(run(env, "backup", "list", "--json").stdout)
    assert [b["state"] for b in listed] == ["verified"]  # once, not a burst


def test_verbose_logs_at_the_configured_log_level(empty_db: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": empty_db, "BACKUP_DIR": str(tmp_path)}
    shown = run({**env, "LOG_LEVEL": "INFO"}, "backup", "create", "-v")
    assert shown.returncode == 0, shown.stderr
    assert any(json.loads(ln)["level"] == "info" for ln in shown.stderr.splitlines())
    quiet = run({**env, "LOG_LEVEL": "WARNING"}, "backup", "create", "-v")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


SPY = """
import subprocess, sys
from runtime.cli import main
popen = subprocess.Popen.__init__
loaded = []
def spy(self, args, *rest, **kw):
    if args[0].endswith("pg_dump") and "--version" not in args:
        slow = ("psycopg", "botocore", "cryptography")
        loaded.append(sorted(m for m in slow if m in sys.modules))
    popen(self, args, *rest, **kw)
subprocess.Popen.__init__ = spy
code = main(["backup", "create"])
print(loaded, code, file=sys.stderr)
"""


def test_cli_create_starts_pg_dump_before_the_slow_imports(pgbench_db: str, tmp_path: Path) -> None:
    """The process's fixed cost runs while pg_dump dumps (docs/benchmarks.md): no psycopg,
    boto or cryptography is loaded when pg_dump is spawned, and the backup still verifies."""
    env = {"DATABASE_URL": pgbench_db, "BACKUP_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", SPY],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("BACKUP_")}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stderr.splitlines()[-1] == "[[]] 0", proc.stderr
    assert run(env, "backup", "verify").returncode == 0
