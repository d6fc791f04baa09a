"""Restore drills without a server: when the sidecar's drills stay off."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.pitr.drill_metrics import DrillState
from runtime.pitr.drill_schedule import RestoreDrills
from runtime.settings import load_settings


def _drills(tmp_path: Path, pg_bin: Path) -> RestoreDrills:
    settings = load_settings(
        {"pitr": {"pg_bin": str(pg_bin), "drill": {"scratch_path": str(tmp_path / "s")}}},
        env={},
        require=(),
    ).pitr
    assert settings is not None
    return RestoreDrills(settings, DrillState())


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
