"""A PostgreSQL 15 cluster archiving into a pgBackRest repository, for tests and bench/.

`ArchivingCluster` starts a `PostgresServer` whose `archive_command` pushes WAL with the
configuration file `python -m runtime pitr ...` writes, and runs those commands exactly as an
operator (and docs/runbook-data-tier.md) does: a subprocess with PITR_* variables.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.servers import PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[1]
CIPHER_PASS = "pitr-test-passphrase-0123456789"
S3_KEY, S3_SECRET = "testing-key", "testing-secret-value"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class ArchivingCluster:
    """A cluster with `archive_mode=on` and a repository (posix, or s3 when `s3` is given)."""

    def __init__(
        self,
        *,
        s3: dict[str, str] | None = None,
        archive_timeout: int = 60,
        extra_conf: str = "",
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pitr-test-"))
        self.root.chmod(0o755)
        postgres = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if postgres:
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        self.config = self.root / "pgbackrest.conf"
        secrets = self.root / "secrets"
        secrets.mkdir(mode=0o700)
        (secrets / "cipher").write_text(CIPHER_PASS + "\n")
        self.env: dict[str, str] = {
            "PITR_CONFIG": str(self.config),
            "PITR_STANZA": "main",
            "PITR_REPO_PATH": str(self.root / "repo") if s3 is None else "/pgbackrest",
            "PITR_CIPHER_PASS_FILE": str(secrets / "cipher"),
            "PITR_LOG_PATH": str(self.root / "log"),
            "PITR_LOCK_PATH": str(self.root / "lock"),
            "PITR_SPOOL_PATH": str(self.root / "spool"),
            "PITR_ARCHIVE_TIMEOUT": "30",
            "PITR_PROCESS_MAX": "2",
        }
        if s3 is not None:
            (secrets / "s3-key").write_text(S3_KEY)
            (secrets / "s3-secret").write_text(S3_SECRET)
            self.env.update(
                PITR_REPO_TYPE="s3",
                PITR_S3_KEY_FILE=str(secrets / "s3-key"),
                PITR_S3_KEY_SECRET_FILE=str(secrets / "s3-secret"),
                PITR_S3_URI_STYLE="path",
                PITR_S3_VERIFY_TLS="false",
                **s3,
            )
        archive = (
            "wal_level = replica\narchive_mode = on\n"
            f"archive_command = 'pgbackrest --config={self.config} --stanza=main "
            "archive-push %p'\n"
            f"archive_timeout = {archive_timeout}\n"
            "max_wal_senders = 3\n"
        )
        self.server = PostgresServer(self.root / "pg", extra_conf=archive + extra_conf)
        self.env.update(
            PITR_PG_DATA=str(self.server.datadir),
            PITR_PG_PORT=str(self.server.port),
            PITR_PG_SOCKET=str(self.server.sockdir),
            PITR_PG_BIN=str(self.server.bindir),
        )
        self.restored: list[tuple[Path, int]] = []

    # -- the operator's commands ----------------------------------------------------------
    def pitr(self, *args: str, timeout: float = 600) -> Result:
        """`python -m runtime pitr ARGS` with this cluster's PITR_* variables."""
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "pitr", *args],
            env={**os.environ, **self.env},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str) -> str:
        done = self.pitr(*args)
        assert done.returncode == 0, f"pitr {' '.join(args)}: {done.stderr}{done.stdout}"
        return done.stdout

    # -- data ----------------------------------------------------------------------------
    def connect(self, port: int | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self.server.dsn.replace(str(self.server.port), str(port or self.server.port)),
            autocommit=True,
        )

    def switch_and_wait_archived(self, timeout: float = 60) -> None:
        """Close the current WAL segment and wait until the archiver has pushed it."""
        segment = self.server.psql("SELECT pg_walfile_name(pg_switch_wal())").strip()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.server.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            if done.strip() >= segment:
                return
            time.sleep(0.1)
        raise TimeoutError(f"WAL segment {segment} was not archived within {timeout}s")

    def repo_files(self) -> list[str]:
        """Names of the files in a posix repository (empty for s3)."""
        repo = self.root / "repo"
        return [p.name for p in repo.rglob("*") if p.is_file()] if repo.exists() else []

    def restored_dir(self, name: str) -> Path:
        """A path for a restored copy (not created: restore creates it)."""
        return self.root / name

    def stop_restored(self, data_dir: Path) -> None:
        subprocess.run(
            [
                *self.server._cmd(str(self.server.bindir / "pg_ctl")),
                "-D",
                str(data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
        )

    def close(self) -> None:
        for data_dir in self.root.glob("restored*"):
            self.stop_restored(data_dir)
        self.server.close()
        shutil.rmtree(self.root, ignore_errors=True)


class TickWriter:
    """Commits one row into `ticks` every `interval` seconds on its own connection and records
    (row number, commit time) of each, until stopped or until the server goes away: the
    writer whose missing rows after a restore are the data lost (RPO)."""

    def __init__(self, cluster: ArchivingCluster, interval: float = 0.02) -> None:
        self.cluster = cluster
        self.interval = interval
        self.committed: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        with self.cluster.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS ticks (id int PRIMARY KEY)")
            number = 0
            while not self._stop.is_set():
                number += 1
                try:
                    conn.execute("INSERT INTO ticks VALUES (%s)", (number,))
                except psycopg.Error:
                    return
                self.committed.append((number, time.time()))
                time.sleep(self.interval)

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def present(self) -> set[int]:
        """The row numbers the cluster's server holds now (after a restore, say)."""
        with self.cluster.connect() as conn:
            return {int(r[0]) for r in conn.execute("SELECT id FROM ticks").fetchall()}
