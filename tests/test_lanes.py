"""The lanes tests/conftest.py marks (docs/testing.md): real-server tests are `server`,
promtool's rule tests are `slow`, and a test that only reads settings is in neither."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_settings.py", "tests/test_alerts.py"]


def _collected(marks: str) -> set[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--co",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            marks,
            *FILES,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_tests_are_marked_from_the_servers_and_tools_they_use() -> None:
    server = _collected("server")
    slow = _collected("slow")
    fast = _collected("not server and not slow")
    # a fixture (postgres_server, redis_server) starts the servers: server
    assert (
        "tests/test_settings.py::"
        "test_one_app_config_file_configures_pool_and_cache_against_real_servers" in server
    )
    # promtool test rules, reached through the module's helpers: slow
    assert "tests/test_alerts.py::test_the_promtool_tests_can_fail" in slow
    # settings only, and promtool's quick `check rules`: fast
    assert "tests/test_settings.py::test_mask_url" in fast
    assert not server & fast and not slow & fast
    assert len(fast) > len(server) + len(slow)
