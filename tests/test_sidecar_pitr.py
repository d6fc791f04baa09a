"""The sidecar's scheduled physical backups, as in the stack: `python -m runtime serve` from an
app_config with a `pitr` section, against a primary that archives through the stack's own
pgbackrest.conf (posix repository, encrypted; tests/data_tier.py), with real pgBackRest."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.data_tier import CIPHER_PASS, ArchivingPrimary
from tests.servers import runtime_serve

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def primary() -> Iterator[ArchivingPrimary]:
    """An archiving primary whose stanza the image's init script created, as at first start."""
    server = ArchivingPrimary(archive_timeout_seconds=60)
    try:
        server.run_init_script()
        yield server
    finally:
        server.close()


def app_config(primary: ArchivingPrimary, full: str, diff: str) -> dict[str, Any]:
    """The `pitr` section the stack exports (components/stack.py `pitr_section`), pointed at
    the test primary's files."""
    return {
        "stack": "test",
        "pitr": {
            "stanza": "main",
            "config_file": str(primary.conf),
            "repository": {"type": "posix", "path": str(primary.repo)},
            "cipher_type": "aes-256-cbc",
            "cipher_pass": CIPHER_PASS,
            "retention_full": 2,
            "full_schedule": full,
            "diff_schedule": diff,
            "archive_timeout_seconds": 60,
            # the drills' state is written when the sidecar starts: never on this machine's /var
            "drill": {"scratch_path": str(primary.repo.with_name("drill-scratch"))},
        },
        "monitoring": {"interval_seconds": 1, "health_check_timeout_seconds": 5},
    }


def _samples(base: str) -> Samples:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(check: Any, timeout: float, proc: subprocess.Popen[str], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the sidecar exited: {log.read_text()}")
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


def backups_in(primary: ArchivingPrimary) -> list[dict[str, Any]]:
    info = json.loads(primary.pgbackrest("info", "--output=json").stdout)
    return list(info[0].get("backup", []))


FULL = ("runtime_pitr_last_backup_timestamp_seconds", (("type", "full"),))
SUCCESS = ("runtime_pitr_last_backup_success", ())


@pytest.mark.req("UT-INFRA-02.3", "UT-INFRA-04.1")
def test_the_sidecar_takes_the_scheduled_physical_backup_and_exposes_it(
    primary: ArchivingPrimary, tmp_path: Path
) -> None:
    conf_before = (primary.conf.read_bytes(), primary.conf.stat().st_mtime_ns)
    # every minute: the latest slot is due as soon as the sidecar starts; the yearly
    # differential is covered by that full backup and skipped
    config = app_config(primary, full="* * * * *", diff="0 3 1 1 *")
    started = time.time()
    with runtime_serve(config, tmp_path) as (base, proc, log):
        samples = wait_for(
            lambda: (s := _samples(base)).get(SUCCESS) is not None and s, 180, proc, log
        )
        assert samples[SUCCESS] == 1, log.read_text()
        assert started - 1 <= samples[FULL] <= time.time()
        assert samples[("runtime_pitr_backup_failures_total", ())] == 0
        assert samples[("runtime_pitr_backup_duration_seconds", (("type", "full"),))] > 0
        assert ("runtime_pitr_last_backup_timestamp_seconds", (("type", "diff"),)) not in samples
    backups = backups_in(primary)
    assert [b["type"] for b in backups] == ["full"]
    assert abs(backups[0]["timestamp"]["stop"] - samples[FULL]) <= 2
    assert proc.returncode == 0  # SIGTERM: a clean stop
    # the stack's file was used as it is, never rewritten
    assert (primary.conf.read_bytes(), primary.conf.stat().st_mtime_ns) == conf_before
    assert CIPHER_PASS not in (log.read_text())

    # Restarted with no slot due since that backup: no new backup, and the timestamp the
    # alerts read comes back from the repository at once (not absent until the next one).
    config = app_config(primary, full="0 3 1 1 *", diff="0 3 1 1 *")
    with runtime_serve(config, tmp_path) as (base, proc, log):
        again = wait_for(lambda: (s := _samples(base)).get(FULL) is not None and s, 60, proc, log)
        assert again[FULL] == pytest.approx(backups[0]["timestamp"]["stop"], abs=1)
        assert SUCCESS not in again  # no run of its own yet
        time.sleep(2)
    assert len(backups_in(primary)) == 1
