"""A real primary and hot standby configured with what the stack generates.

The primary runs with the generated server settings, pg_hba.conf and pg_ident.conf, archives
WAL through `pgbackrest archive-push` into a posix repository described by the generated
pgbackrest.conf, and gets its replication role and stanza from the image's own init script.
The standby is built by the image's replica entry point (pg_receivewal + pg_basebackup with a
password file) and runs the generated replica settings. Only paths and ports differ from the
containers: they are rewritten to the test's temporary directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from components.render.pgbackrest_conf import PgBackRestSettings, render_pgbackrest_conf
from components.render.postgresql_conf import (
    ServerSettings,
    primary_settings,
    render_pg_hba_conf,
    render_pg_ident_conf,
    render_replication_passfile,
    replica_settings,
)
from tests.servers import PostgresServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "images/postgres"
REPLICATION_PASSWORD = "Rp0123456789abcdefghijklmnopqrst"  # a throwaway cluster on loopback
CIPHER_PASS = "cipher-pass-for-tests"
SERVER = ServerSettings(max_connections=100, memory_mb=256, replicas=1, archive_timeout_seconds=1)
SLOT = "postgres_replica_1"


def conf_lines(settings: Mapping[str, str]) -> str:
    """postgresql.conf lines for `settings` (the containers pass the same as `-c` flags)."""
    return "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())


class ArchivingPrimary:
    """A PostgresServer reconfigured with the generated files, archiving to a posix repo."""

    def __init__(self, archive_timeout_seconds: int = 1) -> None:
        self.server = PostgresServer()
        root = self.server.root
        self.repo = root / "repo"
        self.conf = root / "pgbackrest.conf"
        self.hba = root / "pg_hba.conf"
        self.ident = root / "pg_ident.conf"
        for directory in (self.repo, root / "spool", root / "lock"):
            directory.mkdir()
            self.server._chown(directory)
        self.pgbackrest_settings = PgBackRestSettings(
            cipher_pass=CIPHER_PASS,
            retention_full=2,
            superuser="postgres",
            port=self.server.port,
            pgdata=str(self.server.datadir),
            socket_dir=str(self.server.sockdir),
            posix_path=str(self.repo),
            spool_path=str(root / "spool"),
            lock_path=str(root / "lock"),
        )
        self._write(self.conf, render_pgbackrest_conf(self.pgbackrest_settings), 0o640)
        self._write(self.hba, render_pg_hba_conf(), 0o640)
        self._write(self.ident, render_pg_ident_conf("postgres"), 0o640)
        settings = self.localise(
            primary_settings(
                ServerSettings(
                    SERVER.max_connections,
                    SERVER.memory_mb,
                    SERVER.replicas,
                    archive_timeout_seconds,
                )
            )
        )
        settings["archive_command"] = settings["archive_command"].replace(
            "pgbackrest ", f"pgbackrest --config={self.conf} ", 1
        )
        self.settings = settings
        self.server.stop()
        with open(self.server.datadir / "postgresql.conf", "a") as conf:
            conf.write(conf_lines(settings))
        self.server.start()

    def localise(self, settings: dict[str, str]) -> dict[str, str]:
        """The containers' file paths replaced by this test's."""
        return {**settings, "hba_file": str(self.hba), "ident_file": str(self.ident)}

    def _write(self, path: Path, text: str, mode: int) -> None:
        path.write_text(text)
        path.chmod(mode)
        self.server._chown(path)

    def as_postgres(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the server's OS user (as the containers do)."""
        environment = {
            "PATH": f"{self.server.bindir}:/usr/bin:/bin",
            "PGHOST": str(self.server.sockdir),
            "PGPORT": str(self.server.port),
            "PGBACKREST_CONFIG": str(self.conf),
            **(env or {}),
        }
        result = subprocess.run(
            self.server._cmd("env", "-i", *(f"{k}={v}" for k, v in environment.items()), *args),
            capture_output=True,
            text=True,
            errors="replace",  # a wrong cipher passphrase prints decrypted garbage
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")
        return result

    def run_init_script(self) -> subprocess.CompletedProcess[str]:
        """The image's first-start script: replication role and stanza."""
        secret = self.server.root / "replication-password"
        self._write(secret, REPLICATION_PASSWORD, 0o600)
        return self.as_postgres(
            "bash",
            str(IMAGE / "initdb/10-platform.sh"),
            env={"POSTGRES_USER": "postgres", "REPLICATION_PASSWORD_FILE": str(secret)},
        )

    def pgbackrest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.as_postgres("pgbackrest", "--stanza=main", *args, check=check)

    def close(self) -> None:
        self.server.close()


class Replica:
    """A hot standby started by the image's replica entry point, as the containers do."""

    def __init__(self, primary: ArchivingPrimary, slot: str = SLOT) -> None:
        self.primary = primary
        self.slot = slot
        root = primary.server.root
        self.datadir = root / "replica"
        self.sockdir = root / "replica-sock"
        self.sockdir.mkdir()
        primary.server._chown(self.sockdir)
        self.port = free_port()
        self.passfile = root / "replication.pgpass"
        primary._write(
            self.passfile,
            render_replication_passfile("127.0.0.1", primary.server.port, REPLICATION_PASSWORD),
            0o600,
        )
        settings = primary.localise(
            replica_settings(SERVER, "127.0.0.1", primary.server.port, slot, str(self.passfile))
        )
        self.settings = settings
        command = ["postgres", "-D", str(self.datadir)]
        for name, value in {
            **settings,
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockdir),
        }.items():
            command += ["-c", f"{name}={value}"]
        self.log = open(root / "replica.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            primary.server._cmd(
                "env",
                f"PATH={primary.server.bindir}:/usr/bin:/bin",
                f"PGDATA={self.datadir}",
                "bash",
                str(IMAGE / "replica-entrypoint.sh"),
                slot,
                "127.0.0.1",
                str(primary.server.port),
                str(self.passfile),
                *command,
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def psql(self, sql: str) -> str:
        result = subprocess.run(
            self.primary.server._cmd(
                str(self.primary.server.bindir / "psql"),
                *("-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres"),
                *("-d", "postgres", "-XAtqc", sql),
            ),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql on the replica failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def wait_streaming(self, timeout: float = 90.0) -> None:
        """Until the streaming check the image runs (pg_stat_wal_receiver) says 'streaming'."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the replica exited: {self.log_text()}")
            with contextlib.suppress(RuntimeError):
                if self.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming":
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the replica is not streaming: {self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return (self.primary.server.root / "replica.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.datadir / "postmaster.pid")


class PostgresExporter:
    """Debian's prometheus-postgres-exporter on the primary, logged in as the superuser
    (as the stack's exporter is, as dbUser)."""

    def __init__(self, primary: ArchivingPrimary) -> None:
        binary = shutil.which("prometheus-postgres-exporter")
        assert binary, "prometheus-postgres-exporter is not installed: run scripts/bootstrap"
        self.port = free_port()
        dsn = (
            f"postgresql://postgres:postgres-test-password@127.0.0.1:{primary.server.port}"
            "/postgres?sslmode=disable"
        )
        self.process = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{self.port}"],
            env={"DATA_SOURCE_NAME": dsn, "PATH": "/usr/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, value) of every sample of one scrape."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=20) as r:
            text = r.read().decode()
        return [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float | None:
        for sample, found, value in self.samples():
            if sample == name and all(found.get(k) == v for k, v in labels.items()):
                return value
        return None

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def streaming_check(replica: Replica, bindir: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The image's health check against `replica` (as root, like Docker runs it: it drops to
    `postgres` with setpriv, which this machine has too)."""
    return subprocess.run(
        ["bash", str(IMAGE / "streaming-check.sh"), "postgres"],
        env={
            "PATH": f"{tmp}:{bindir}:/usr/sbin:/usr/bin:/bin",
            "PGHOST": str(replica.sockdir),
            "PGPORT": str(replica.port),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
