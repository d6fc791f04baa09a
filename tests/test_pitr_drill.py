"""Restore drills (`python -m runtime pitr drill`) with real PostgreSQL 15 and pgBackRest 2.45.

Each test drives the command as a subprocess against an archiving cluster with
`archive_timeout=1` and a heartbeat written every second, as the sidecar writes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.pitr.drill import DrillResult
from runtime.pitr.drill_metrics import KEPT_FILES, DrillCollector, DrillState
from runtime.pitr.drill_schedule import RestoreDrills
from runtime.pitr.heartbeat import Heartbeat
from runtime.settings import load_settings
from tests.pitr_harness import REPO_ROOT, ArchivingCluster, Result, TickWriter
from tests.servers import free_port

pytestmark = pytest.mark.slow


class DrillCluster:
    """An archiving cluster with the drill's settings, a table to count and a heartbeat."""

    def __init__(self) -> None:
        self.c = ArchivingCluster(archive_timeout=1)
        self.scratch = self.c.root / "scratch"
        self.c.env.update(
            PITR_DRILL_SCRATCH=str(self.scratch),
            PITR_DRILL_MARGIN="30",
            PITR_DRILL_PORT=str(free_port()),
            PITR_DRILL_TIMEOUT="300",
            PITR_DRILL_TABLES="public.batch",
            PITR_DRILL_DATABASE=self.c.server.database,
        )
        settings = load_settings({}, env=self.c.env, require=()).pitr
        assert settings is not None
        self.settings = settings
        self.heartbeat = Heartbeat(settings, interval=1)
        self.c.ok("check")
        with self.c.connect() as conn:
            conn.execute("CREATE TABLE batch AS SELECT g AS n FROM generate_series(1, 500) g")
        self.c.ok("backup", "--type", "full")
        self.heartbeat.start()

    def drill(self) -> tuple[Result, dict[str, Any]]:
        done = self.c.pitr("drill", "--json")
        return done, json.loads(done.stdout) if done.stdout.strip() else {}

    def popen(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "runtime", "pitr", "drill"],
            env={**os.environ, **self.c.env}, cwd=REPO_ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def leftovers(self) -> list[str]:
        """What a drill left: files under the scratch path (but the lock and the result file
        the sidecar's metrics read), processes naming it."""
        found = self.scratch.rglob("*") if self.scratch.exists() else []
        files = [str(p) for p in found if p.relative_to(self.scratch).name not in KEPT_FILES]
        needle = str(self.scratch).encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                shown = cmdline.replace(b"\0", b" ").decode()
                files.append(f"process {pid}: {shown}")
        return files

    def batch_count(self) -> int:
        with self.c.connect() as conn:
            row = conn.execute("SELECT count(*) FROM batch").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        self.heartbeat.stop()
        self.c.close()


@pytest.fixture
def dc() -> Iterator[DrillCluster]:
    made = DrillCluster()
    try:
        yield made
    finally:
        made.close()


def _samples(state: DrillState) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(DrillCollector(state))
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def _commits_between(writer: TickWriter, start: float, end: float) -> int:
    return sum(1 for _, at in writer.committed if start <= at < end)


def test_a_drill_under_write_load_passes_with_rpo_within_the_archive_timeout(
    dc: DrillCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = TickWriter(dc.c)
    time.sleep(3)
    quiet_start = time.time()
    time.sleep(8)
    quiet_end = time.time()
    done, result = dc.drill()
    drill_end = time.time()
    writer.stop()
    assert done.returncode == 0, done.stderr
    assert result["success"] is True and result["error"] is None
    assert 0 <= result["rpo_seconds"] <= 2  # archive_timeout=1, heartbeat every second
    assert 0 < result["rto_seconds"] < result["duration_seconds"]
    assert result["restored_bytes"] > 10 << 20 and result["throughput_bytes_per_second"] > 0
    assert result["counts"] == {"public.batch": {"primary": 500, "copy": 500}}
    assert dc.leftovers() == []
    drill_start = drill_end - result["duration_seconds"]
    base = _commits_between(writer, quiet_start, quiet_end) / (quiet_end - quiet_start)
    during = _commits_between(writer, drill_start, drill_end) / (drill_end - drill_start)
    with capsys.disabled():
        print(
            f"\ndrill: RTO {result['rto_seconds']:.2f} s, RPO {result['rpo_seconds']:.2f} s, "
            f"{result['restored_bytes']} bytes in {result['restore_seconds']:.2f} s; primary "
            f"commits/s {base:.1f} without a drill, {during:.1f} during it "
            f"({during / base:.0%})"
        )


def _archive_segments(c: ArchivingCluster) -> list[Path]:
    return sorted(
        p
        for p in (c.root / "repo" / "archive").rglob("0000*")
        if p.is_file() and len(p.name.split("-")[0]) == 24
    )


def test_a_drill_against_a_missing_wal_segment_fails_cleans_up_and_leaves_the_primary(
    dc: DrillCluster,
) -> None:
    c = dc.c
    c.switch_and_wait_archived()
    with c.connect() as conn:
        conn.execute("INSERT INTO batch SELECT g FROM generate_series(501, 600) g")
    c.switch_and_wait_archived()
    _archive_segments(c)[-2].unlink()  # after the backup, with more WAL archived behind it
    done, result = dc.drill()
    assert done.returncode == 1, done.stderr
    assert result["success"] is False
    assert "recovery ended before configured recovery target was reached" in done.stderr
    assert dc.leftovers() == []
    assert dc.batch_count() == 600  # the primary is untouched and still writable
    with c.connect() as conn:
        conn.execute("INSERT INTO batch VALUES (601)")


def test_a_drill_against_a_corrupted_backup_file_fails_naming_pgbackrest_error(
    dc: DrillCluster,
) -> None:
    stored = max(
        (dc.c.root / "repo" / "backup").rglob("pg_data/base/*/*"), key=lambda p: p.stat().st_size
    )
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    done, result = dc.drill()
    assert done.returncode == 1
    assert done.stderr.startswith("error: pgbackrest restore failed:")
    assert result["success"] is False and result["rto_seconds"] is None
    assert dc.leftovers() == []
    assert dc.batch_count() == 500
    # the sidecar's drill records it: the series RestoreDrillFailed fires on
    drills = RestoreDrills(dc.settings, DrillState())
    outcome = drills.run()
    assert outcome is not None and outcome.error is not None
    assert "pgbackrest restore failed" in outcome.error
    samples = _samples(drills.state)
    assert samples["runtime_pitr_drill_last_success"] == 0
    assert samples["runtime_pitr_drill_failures_total"] == 1
    assert "runtime_pitr_drill_rpo_seconds" not in samples
    assert dc.leftovers() == []


def test_sigterm_mid_restore_leaves_no_scratch_data_and_no_server_and_the_next_drill_passes(
    dc: DrillCluster,
) -> None:
    process = dc.popen()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the restore has begun writing the copy
        if any(dc.scratch.glob("drill-*/*")):
            break
        time.sleep(0.01)
    else:
        pytest.fail("the drill never started restoring")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr
    assert dc.leftovers() == []
    done, result = dc.drill()
    assert done.returncode == 0, done.stderr
    assert result["success"] is True


def test_stopping_the_sidecars_drills_mid_restore_cancels_and_cleans_up(
    dc: DrillCluster,
) -> None:
    drills = RestoreDrills(dc.settings, DrillState())  # what Sidecar.stop() stops
    outcome: list[DrillResult | None] = []
    runner = threading.Thread(target=lambda: outcome.append(drills.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not any(dc.scratch.glob("drill-*/*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    drills.stop()
    runner.join(60)
    assert outcome and outcome[0] is not None and outcome[0].cancelled, outcome
    assert dc.leftovers() == []
    samples = _samples(drills.state)
    assert samples["runtime_pitr_drill_failures_total"] == 0  # a cancel is no failure
    assert "runtime_pitr_drill_last_success" not in samples


def test_a_drill_without_room_for_the_copy_is_refused_before_writing_naming_the_sizes(
    dc: DrillCluster,
) -> None:
    dc.scratch.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dc.scratch)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        done, result = dc.drill()
        assert done.returncode == 2, done.stderr
        assert "not enough disk for the drill's copy" in done.stderr
        assert "bytes are free" in done.stderr and "needs" in done.stderr
        assert result["refused"] is True
        # no copy: only the drill's lock and the result file the sidecar's metrics read
        assert {p.name for p in dc.scratch.iterdir()} <= KEPT_FILES
    finally:
        subprocess.run(["umount", str(dc.scratch)], check=False)
