"""Restore drills without a server: when the sidecar's drills stay off, and the result file
every drill records and the sidecar's metrics read."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.exits import EXIT_OK
from runtime.pitr.drill import LOCK_FILE, Drill, DrillResult, memory_options
from runtime.pitr.drill_command import run_drill
from runtime.pitr.drill_metrics import STATE_FILE, DrillCollector, DrillState
from runtime.pitr.drill_schedule import RestoreDrills
from runtime.settings import PitrSettings, load_settings


def _settings(tmp_path: Path, pg_bin: Path) -> PitrSettings:
    """Every path pgBackRest or a drill would write under `tmp_path`, none on this machine."""
    section = {
        "pg_bin": str(pg_bin),
        "drill": {"scratch_path": str(tmp_path / "s")},
        "config_file": str(tmp_path / "pgbackrest.conf"),
        "repository": {"type": "posix", "path": str(tmp_path / "repo")},
        **{key: str(tmp_path / key) for key in ("log_path", "lock_path", "spool_path")},
    }
    settings = load_settings({"pitr": section}, env={}, require=()).pitr
    assert settings is not None
    return settings


def _drills(tmp_path: Path, pg_bin: Path) -> RestoreDrills:
    return RestoreDrills(_settings(tmp_path, pg_bin), DrillState())


def test_drills_stay_off_with_a_warning_without_postgresqls_server_binaries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drills = _drills(tmp_path, tmp_path)  # a directory with no pg_ctl: the client-only image
    assert drills.start() is False
    assert "restore drills are off" in caplog.text and str(tmp_path / "pg_ctl") in caplog.text
    assert not drills.heartbeat._thread.is_alive()
    drills.stop()


def test_drills_are_scheduled_where_pg_ctl_exists(tmp_path: Path) -> None:
    pg_ctl = tmp_path / "pg_ctl"
    pg_ctl.write_text("#!/bin/sh\n")
    pg_ctl.chmod(0o755)
    drills = _drills(tmp_path, tmp_path)
    try:
        assert drills.start() is True
        assert drills.scheduler.due(drills.scheduler._clock()) is None  # not at start-up
    finally:
        drills.stop()


# -- the result file: every drill recorded, read by the sidecar's collector -------------------


def _series(state: DrillState) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(DrillCollector(state))
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


GOOD = DrillResult(True, 1000.0, 30.0, rto_seconds=20.0, rpo_seconds=0.5, restored_bytes=10,
                   restore_seconds=5.0)  # fmt: skip
BAD = DrillResult(False, 2000.0, 3.0, error="pgbackrest restore failed: [028] corrupt")


def test_a_drill_run_elsewhere_shows_in_the_sidecars_series_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    file = tmp_path / STATE_FILE
    sidecar = DrillState(file)
    sidecar.enable(now=500.0)
    assert "runtime_pitr_drill_last_success" not in _series(sidecar)
    DrillState(file).record(GOOD)  # what `docker exec ... pitr drill` does, in its own process
    seen = _series(sidecar)
    assert seen["runtime_pitr_drill_last_success"] == 1
    assert seen["runtime_pitr_drill_last_success_timestamp_seconds"] == 1030.0
    assert (seen["runtime_pitr_drill_rto_seconds"], seen["runtime_pitr_drill_rpo_seconds"]) == (
        20.0,
        0.5,
    )
    DrillState(file).record(BAD)
    seen = _series(sidecar)
    assert seen["runtime_pitr_drill_last_success"] == 0
    assert seen["runtime_pitr_drill_last_timestamp_seconds"] == 2003.0
    assert seen["runtime_pitr_drill_failures_total"] == 1
    assert seen["runtime_pitr_drill_last_success_timestamp_seconds"] == 1030.0  # the good one
    # a restarted sidecar: the same series, and drills on since the first start, not this one
    restarted = DrillState(file)
    restarted.enable(now=9999.0)
    assert _series(restarted) == seen
    assert seen["runtime_pitr_drill_enabled_since_timestamp_seconds"] == 500.0
    assert not list(tmp_path.glob(".last-drill*")), "no temporary file left behind"
    # written by root (`docker exec -u 0`), still readable by the sidecar's uid 999
    assert file.stat().st_mode & 0o777 == 0o644


def test_cancelled_and_busy_drills_change_nothing(tmp_path: Path) -> None:
    state = DrillState(tmp_path / STATE_FILE)
    state.record(GOOD)
    before = (tmp_path / STATE_FILE).read_text()
    state.record(DrillResult(False, 3000.0, 1.0, error="cancelled", cancelled=True))
    state.record(DrillResult(False, 3000.0, 0.0, error="busy", refused=True, busy=True))
    assert (tmp_path / STATE_FILE).read_text() == before


def test_the_file_of_a_sidecar_before_this_change_is_read(tmp_path: Path) -> None:
    old = {"finished_at": 7.0, "rto_seconds": 1.0, "rpo_seconds": 2.0, "restored_bytes": 3,
           "throughput_bytes_per_second": 4.0}  # fmt: skip
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    assert (
        _series(DrillState(tmp_path / STATE_FILE))[
            "runtime_pitr_drill_last_success_timestamp_seconds"
        ]
        == 7.0
    )


def test_a_drill_is_refused_while_another_process_holds_the_scratch_path(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path)
    settings.drill_scratch.mkdir()
    with open(settings.drill_scratch / LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another drill (the sidecar's, or a second exec)
        result = Drill(settings).run()
    assert result.busy and result.refused and not result.success
    assert result.error == f"a drill is already running on {settings.drill_scratch}"


def test_the_cli_records_its_drill_where_the_sidecar_reads(tmp_path: Path) -> None:
    """`pitr drill` against an empty repository fails before it starts; that failure is
    what the sidecar's `RestoreDrillFailed` reads."""
    settings = _settings(tmp_path, tmp_path)
    assert run_drill(settings) != EXIT_OK  # refused or not started: either is a failure
    seen = _series(DrillState(settings.drill_scratch / STATE_FILE))
    assert seen["runtime_pitr_drill_last_success"] == 0
    assert seen["runtime_pitr_drill_failures_total"] == 1


def test_the_copys_memory_follows_the_setting() -> None:
    # 64 MB: the values the drill used before the setting existed
    assert memory_options(64) == (
        "-c shared_buffers=32MB -c maintenance_work_mem=16MB -c work_mem=4MB"
    )
    assert memory_options(16) == "-c shared_buffers=8MB -c maintenance_work_mem=4MB -c work_mem=1MB"
