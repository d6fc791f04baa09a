"""The thin layer over the `pgbackrest` binary: its configuration file and how it is run.

Secrets go into the configuration file (mode 0600, owned by the user pgBackRest runs as),
never into argv or the environment. A provided file (`PitrSettings.config_provided`: the stack
renders it and mounts it read-only into the sidecar) is used as it is; otherwise
`render_config` writes one from the settings. pgBackRest must run as the operating-system
user that owns the data directory; when the runtime runs as root it switches with `runuser`,
as the tests' PostgreSQL does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runtime.errors import PlatformError, redact
from runtime.settings import PitrSettings

BackupType = Literal["full", "diff", "incr"]
BACKUP_TYPES: tuple[BackupType, ...] = ("full", "diff", "incr")


class PitrError(PlatformError):
    """A pgBackRest operation failed; the message is pgBackRest's own error, secrets scrubbed."""


def render_config(settings: PitrSettings) -> str:
    """pgbackrest.conf for `settings` (docs/runtime-pitr.md lists the keys the stack shares)."""
    glob = [
        f"repo1-type={settings.repo_type}",
        f"repo1-path={settings.repo_path}",
        f"repo1-retention-full={settings.retention_full}",
    ]
    if settings.cipher_pass is not None:
        glob += [
            "repo1-cipher-type=aes-256-cbc",
            f"repo1-cipher-pass={settings.cipher_pass.reveal()}",
        ]
    if settings.s3 is not None:
        s3 = settings.s3
        glob += [
            f"repo1-s3-bucket={s3.bucket}",
            f"repo1-s3-region={s3.region}",
            f"repo1-s3-endpoint={s3.endpoint}",
            f"repo1-s3-uri-style={s3.uri_style}",
            f"repo1-s3-key={s3.key.reveal()}",
            f"repo1-s3-key-secret={s3.key_secret.reveal()}",
            f"repo1-storage-port={s3.port}",
            f"repo1-storage-verify-tls={'y' if s3.verify_tls else 'n'}",
        ]
    glob += [
        f"archive-timeout={settings.archive_timeout_seconds}",
        f"compress-type={settings.compress_type}",
        f"process-max={settings.process_max}",
        "start-fast=y",
        f"log-path={settings.log_path}",
        f"lock-path={settings.lock_path}",
        f"spool-path={settings.spool_path}",
        "log-level-console=off",
        "log-level-stderr=warn",
        "log-level-file=info",
    ]
    stanza = [
        f"pg1-path={settings.pg_data}",
        f"pg1-port={settings.pg_port}",
        f"pg1-socket-path={settings.pg_socket}",
        f"pg1-user={settings.pg_user}",
    ]
    return "\n".join(["[global]", *glob, "", f"[{settings.stanza}]", *stanza, ""])


def run_as_user(settings: PitrSettings) -> str | None:
    """The user to switch to: `os_user` when we are root (pgBackRest refuses root), else none."""
    return settings.os_user if os.geteuid() == 0 else None


def chown_to(settings: PitrSettings, path: Path) -> None:
    user = run_as_user(settings)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare_config(settings: PitrSettings) -> Path:
    """The configuration file pgBackRest is run with: a provided one is only checked (it may
    be read-only and is never rewritten); otherwise it is written from the settings."""
    if settings.config_provided:
        if not os.access(settings.config_file, os.R_OK):
            raise PitrError(f"the provided {settings.config_file} is not readable")
        return settings.config_file
    return write_config(settings)


def write_config(settings: PitrSettings) -> Path:
    """Write pgbackrest.conf atomically (mode 0600) and the directories pgBackRest writes to."""
    if settings.config_provided:  # a programming error: the caller must use prepare_config
        raise PitrError(f"refusing to rewrite the provided {settings.config_file}")
    for directory in (settings.log_path, settings.lock_path, settings.spool_path):
        directory.mkdir(parents=True, exist_ok=True)
        chown_to(settings, directory)
    if settings.repo_type == "posix":
        repo = Path(settings.repo_path)
        if not repo.exists():
            repo.mkdir(parents=True, mode=0o750)
            chown_to(settings, repo)
    target = settings.config_file
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".pgbackrest.conf.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(render_config(settings))
        chown_to(settings, Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Pgbackrest:
    """Runs `pgbackrest --config=... --stanza=... <command>` as the data directory's owner."""

    def __init__(self, settings: PitrSettings, binary: str | None = None) -> None:
        found = binary or shutil.which("pgbackrest")
        if found is None:
            raise PitrError("pgbackrest is not installed (scripts/bootstrap installs it)")
        self.binary = found
        self.settings = settings

    def argv(self, command: str, *options: str) -> list[str]:
        user = run_as_user(self.settings)
        prefix = ["runuser", "-u", user, "--"] if user else []
        base = [self.binary, f"--config={self.settings.config_file}"]
        return [*prefix, *base, f"--stanza={self.settings.stanza}", *options, command]

    def run(self, command: str, *options: str, timeout: float = 3600) -> Completed:
        result = subprocess.run(
            self.argv(command, *options),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
        )
        secrets = self.settings.secrets
        return Completed(
            result.returncode, redact(result.stdout, secrets), redact(result.stderr, secrets)
        )

    def check(self, command: str, *options: str, timeout: float = 3600) -> str:
        """Run and return stdout; raise `PitrError` with pgBackRest's error lines on failure."""
        done = self.run(command, *options, timeout=timeout)
        if done.returncode != 0:
            raise PitrError(f"pgbackrest {command} failed: {error_text(done)}")
        return done.stdout


def error_text(done: Completed) -> str:
    """pgBackRest's ERROR lines (e.g. `[055]: unable to load info file ...`), joined."""
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines()]
    errors = [line for line in lines if "ERROR:" in line]
    chosen: Sequence[str] = (
        errors or [line for line in lines if line] or [f"exit code {done.returncode}"]
    )
    return " | ".join(" ".join(line.split()) for line in chosen)
