"""Real PostgreSQL and Redis servers for tests, started in temporary directories.

Each server runs on a free loopback port and can be stopped, killed with SIGKILL and
restarted on the same port and data, so tests inject real faults. `close()` always stops
whatever is running: fixtures call it in teardown even when a test failed.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from psycopg import sql

from runtime.backup.dump import TABLES_SQL
from tests.certs import key_pem, new_key, self_signed

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/bootstrap")
    return Path(found[-1]).parent


def _process_gone(pid: int) -> bool:
    """True once `pid` is gone or a zombie (a zombie still answers kill(pid, 0))."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class PostgresServer:
    """A PostgreSQL cluster owned by the test run, with password (SCRAM) authentication."""

    user = "app"
    password = "app-test-password"  # a throwaway cluster on loopback
    database = "app"

    def __init__(self, root: Path | None = None, extra_conf: str = "") -> None:
        self.bindir = _pg_bindir()
        self.extra_conf = extra_conf  # appended to postgresql.conf before the first start
        self.root = Path(root or tempfile.mkdtemp(prefix="pg-test-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.port = free_port()
        # PostgreSQL refuses to run as root: run it as the `postgres` system user then.
        self._run_as = "postgres" if os.geteuid() == 0 else None
        self._initdb()

    # -- helpers -------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self._run_as, "--"] if self._run_as else []
        return [*prefix, *args]

    def _chown(self, path: Path) -> None:
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _prepare_dirs(self) -> None:
        """The root and socket directories, owned by the user the server runs as."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.sockdir.mkdir(exist_ok=True)
        self._chown(self.root)
        self._chown(self.sockdir)

    def _initdb(self) -> None:
        self._prepare_dirs()
        pwfile = self.root / "superuser.pw"
        pwfile.write_text("postgres-test-password\n")
        self._chown(pwfile)
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "fsync = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
                "logging_collector = off\n"
                f"{self.extra_conf}\n"
            )
        self.start()
        self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}' CREATEDB")
        self.psql(f"CREATE DATABASE {self.database} OWNER {self.user}")

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def conninfo(self, **overrides: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
        }
        info.update(overrides)
        return info

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket; return psql's unaligned output."""
        result = subprocess.run(
            self._cmd(
                str(self.bindir / "psql"),
                "-h",
                str(self.sockdir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-XAtq",
                "-c",
                sql,
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed on {sql!r}: {result.stderr.strip()}")
        return result.stdout

    def create_database(self) -> str:
        """A new empty database owned by the app user; its DSN."""
        name = f"db_{uuid.uuid4().hex[:10]}"
        self.psql(f"CREATE DATABASE {name} OWNER {self.user}")
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pgbench_init(self, database: str = "", scale: int = 1, partitions: int = 0) -> None:
        """Fill `database` (default: the app database) with pgbench's tables, as the app user."""
        partitioned = [f"--partitions={partitions}"] if partitions else []
        target = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        subprocess.run(
            [
                str(self.bindir / "pgbench"),
                *("-i", "-q", "-s", str(scale), *partitioned, *target),
                database or self.database,
            ],
            env={**os.environ, "PGPASSWORD": self.password},
            check=True,
            capture_output=True,
        )

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args),
            check=True,
            capture_output=True,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def postmaster_pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and not _process_gone(pid)

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "30", "-l", str(self.log_file), "start")

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._pg_ctl("-w", "-t", "30", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill9(self) -> None:
        """SIGKILL the postmaster and its children (a crash), and clear what they leave behind."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
        for victim in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not all(_process_gone(p) for p in [pid, *map(int, children)]):
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL processes survived SIGKILL")
            time.sleep(0.02)
        # An unreaped zombie still answers kill(pid, 0): remove the stale pid and lock files.
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.sockdir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        with contextlib.suppress(Exception):
            self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- streaming replication --------------------------------------------------------------
    repl_user = "repl"
    repl_password = "repl-test-password"  # a throwaway cluster on loopback

    def enable_replication(self) -> None:
        """A `REPLICATION LOGIN` role and its pg_hba line (idempotent); standbys log in as it."""
        hba = self.datadir / "pg_hba.conf"
        line = f"host replication {self.repl_user} 127.0.0.1/32 scram-sha-256\n"
        if line not in hba.read_text():
            hba.write_text(line + hba.read_text())
            self._pg_ctl("reload")
        self.psql(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"'{self.repl_user}') THEN CREATE ROLE {self.repl_user} REPLICATION LOGIN "
            f"PASSWORD '{self.repl_password}'; END IF; END $$"
        )

    def current_lsn(self) -> str:
        return self.psql("SELECT pg_current_wal_insert_lsn()").strip()


class StandbyServer(PostgresServer):
    """A hot standby of `primary`: `pg_basebackup -R -X stream -S SLOT -C`, then streaming.

    The replication password is read from a passfile (mode 600, owned by the server's
    user), so `-R` writes `passfile=...` into postgresql.auto.conf instead of the password.
    `rebuild()` is the runbook's "rebuilding a failed replica" (docs/runbook-replica.md).
    """

    def __init__(self, primary: PostgresServer, root: Path | None = None) -> None:
        self.primary = primary
        self.slot = f"standby_{uuid.uuid4().hex[:10]}"
        super().__init__(root or Path(tempfile.mkdtemp(prefix="pg-standby-")))

    @property
    def passfile(self) -> Path:
        return self.root / "repl.pgpass"

    def _initdb(self) -> None:
        self._prepare_dirs()
        p = self.primary
        self.passfile.write_text(f"127.0.0.1:{p.port}:*:{p.repl_user}:{p.repl_password}\n")
        self.passfile.chmod(0o600)
        self._chown(self.passfile)
        p.enable_replication()
        self.basebackup(create_slot=True)
        self.start()

    def basebackup(self, *, create_slot: bool) -> None:
        """Copy the primary into an empty data directory and configure it as its standby."""
        p = self.primary
        conninfo = f"host=127.0.0.1 port={p.port} user={p.repl_user} passfile={self.passfile}"
        subprocess.run(
            self._cmd(
                str(self.bindir / "pg_basebackup"),
                *("-d", conninfo, "-D", str(self.datadir)),
                *("-R", "-X", "stream", "-S", self.slot, "-c", "fast", "--no-sync"),
                *(["-C"] if create_slot else []),
            ),
            check=True,
            capture_output=True,
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:  # the primary's, copied
            conf.write(f"\nport = {self.port}\nunix_socket_directories = '{self.sockdir}'\n")

    def wipe(self) -> None:
        """The data directory is lost (after a crash: stop first)."""
        shutil.rmtree(self.datadir, ignore_errors=True)

    def rebuild(self) -> None:
        """Runbook: stop what is left, wipe, base backup again through the same slot, start."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        self.kill9()
        self.wipe()
        self.basebackup(create_slot=False)
        self.start()

    def in_recovery(self) -> bool:
        return self.psql("SELECT pg_is_in_recovery()").strip() == "t"

    def replay_lsn(self) -> str:
        return self.psql("SELECT pg_last_wal_replay_lsn()").strip()

    def pause_replay(self) -> None:
        self.psql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()")

    def promote(self) -> None:
        self.psql("SELECT pg_promote(true, 30)")

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = self.primary.current_lsn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = self.psql(f"SELECT pg_last_wal_replay_lsn() < '{target}'::pg_lsn").strip()
            if behind == "f":
                return
            time.sleep(0.02)
        raise TimeoutError(f"standby on port {self.port} did not replay {target} in {timeout}s")

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):  # the slot would keep the primary's WAL forever
            self.primary.psql(f"SELECT pg_drop_replication_slot('{self.slot}')")


class RedisServer:
    """A redis-server owned by the test run: no persistence, password required."""

    password = "redis-test-password"  # a throwaway server on loopback

    def __init__(self, root: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/bootstrap")
        self.binary = binary
        self.root = Path(root or tempfile.mkdtemp(prefix="redis-test-"))
        self.port = free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                self.password,
                "--logfile",
                str(self.root / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a", self.password, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)


class BlackHole:
    """A TCP listener that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = int(self._sock.getsockname()[1])
        self._accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._accepted.append(conn)

    @property
    def connections_accepted(self) -> int:
        return len(self._accepted)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        for conn in self._accepted:
            conn.close()
        self._sock.close()


def _http(url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """GET (or POST `body` as JSON) and return the status and the decoded JSON, if any."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


class AlertmanagerServer:
    """Debian's Alertmanager running a given alertmanager.yml with the stack's command line.

    The container's flags are kept (`--web.external-url`, `--web.route-prefix`); only the
    file paths, the listen address and clustering (off) are changed for a local process.
    """

    BINARY = "/usr/bin/prometheus-alertmanager"

    def __init__(self, config: str, command: Sequence[str], root: Path) -> None:
        if not os.path.exists(self.BINARY):
            raise RuntimeError(f"{self.BINARY} not found: run scripts/bootstrap")
        root.mkdir(parents=True, exist_ok=True)
        (root / "alertmanager.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        kept = [f for f in command if not f.startswith(("--config.file=", "--storage.path="))]
        self._log = open(root / "alertmanager.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [
                self.BINARY,
                *kept,
                f"--config.file={root / 'alertmanager.yml'}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((root / "alertmanager.log").read_text())
            with contextlib.suppress(OSError):
                if _http(f"{self.url}/-/ready", timeout=1)[0] == 200:
                    return
            time.sleep(0.05)
        self.close()
        raise TimeoutError("Alertmanager did not become ready in 30 s")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        status, body = _http(f"{self.url}/api/v2/alerts", alerts)
        assert status == 200, (status, body)

    def alerts(self) -> list[dict[str, Any]]:
        status, body = _http(f"{self.url}/api/v2/alerts")
        assert status == 200, (status, body)
        return list(body)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class NginxServer:
    """A real nginx running the generated nginx.conf on loopback ports.

    `upstreams` maps a `set $<name>_upstream` variable's name (backend, grafana, alertmanager,
    ...) to a local port; every other upstream points at 127.0.0.1:9, where nothing listens.
    With `resolver` (host:port of a DNS server), the upstreams keep the name `upstream_host`,
    which nginx resolves through that server per request, as it does through Docker's.
    """

    def __init__(
        self,
        files: dict[str, str],
        root: Path,
        upstreams: dict[str, int],
        resolver: str = "127.0.0.1",
        upstream_host: str = "127.0.0.1",
    ) -> None:
        nginx = shutil.which("nginx")
        if nginx is None:
            raise RuntimeError("nginx is not installed: run scripts/bootstrap")
        self.http, self.https, self.status = free_port(), free_port(), free_port()
        conf = files["/etc/nginx/nginx.conf"]
        conf = conf.replace(
            "listen 80 default_server;", f"listen 127.0.0.1:{self.http} default_server;"
        )
        conf = conf.replace("listen 443 ssl", f"listen 127.0.0.1:{self.https} ssl")
        conf = conf.replace("listen 8081;", f"listen 127.0.0.1:{self.status};")
        conf = conf.replace("pid /var/run/nginx.pid;", f"pid {root}/nginx.pid;")
        # Docker's resolver, or the cluster's by name (nginx resolves that name at start-up)
        conf = re.sub(r"resolver \S+ ", f"resolver {resolver} ", conf)

        def local(match: re.Match[str]) -> str:
            port = upstreams.get(match[1], 9)
            return f"set ${match[1]}_upstream http://{upstream_host}:{port};"

        conf = re.sub(r"set \$(\w+)_upstream http://[^;]+;", local, conf)
        for path, content in {**files, "/etc/nginx/nginx.conf": conf}.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        conf_dir = root / "etc/nginx"
        shutil.copy("/etc/nginx/mime.types", conf_dir / "mime.types")
        self.process = subprocess.Popen(
            [nginx, "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.https)
        except TimeoutError:
            self.close()
            raise

    def curl(
        self, *args: str, host: str = "localhost", source: str = "127.0.0.1"
    ) -> subprocess.CompletedProcess[str]:
        """curl with the site's name resolved to this nginx (-k: the certificate is a test's),
        connecting from `source` (any 127.0.0.0/8 address reaches nginx on 127.0.0.1)."""
        curl = shutil.which("curl")
        assert curl, "curl is not installed: run scripts/bootstrap"
        resolve = f"{host}:{self.https}:127.0.0.1"
        return subprocess.run(
            [curl, "-sk", "--interface", source, "--resolve", resolve, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class TlsProxy:
    """nginx terminating TLS (self-signed, 127.0.0.1) in front of a plain-HTTP server, e.g.
    moto's S3 for pgBackRest, which speaks only HTTPS. Streams bodies both ways unbuffered."""

    def __init__(self, upstream_port: int, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="tls-proxy-"))
        self.port = free_port()
        key = new_key()
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        (self.root / "cert.pem").write_text(
            self_signed(
                key,
                "127.0.0.1",
                valid_for=datetime.timedelta(days=1),
                valid_since=datetime.timedelta(minutes=5),
                alt_names=[loopback],
            )
        )
        (self.root / "key.pem").write_text(key_pem(key))
        conf = self.root / "nginx.conf"
        conf.write_text(
            f"""daemon off;
master_process off;
pid {self.root}/nginx.pid;
error_log {self.root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {self.root}/body;
  proxy_temp_path {self.root}/proxy;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {self.root}/cert.pem;
    ssl_certificate_key {self.root}/key.pem;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    location / {{
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
  }}
}}
"""
        )
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.root), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


# The variables a test run may carry that would configure the sidecar besides the file.
_SETTINGS_PREFIXES = ("DATABASE_", "REDIS_", "BACKUP_", "ALERT", "PITR_")


@contextlib.contextmanager
def runtime_serve(
    app_config: dict[str, Any], tmp: Path
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """`python -m runtime serve` configured by APP_CONFIG_FILE only, as in the stack: yields its
    base URL, process and stderr file; SIGTERM afterwards, SIGKILL if it does not exit.

    stderr goes to a file, not a pipe: an undrained pipe stalls a chatty process, and a
    grandchild that inherits it (pg_dump, pgbackrest) keeps it open after the sidecar exits.
    """
    stamp = time.monotonic_ns()
    path = tmp / f"app_config-{stamp}.json"
    path.write_text(json.dumps(app_config))
    log = tmp / f"serve-{stamp}.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env.update(APP_CONFIG_FILE=str(path), BACKUP_DIR=str(tmp / "backups"))
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# -- what tests compare ----------------------------------------------------------------
def fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    """What a database holds: per table, the row count and an md5 over all rows in a stable
    order (a content checksum to compare a restore with its source)."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn) as conn:
        for schema, table in conn.execute(TABLES_SQL).fetchall():
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                "FROM {}.{} t"
            ).format(sql.Identifier(str(schema)), sql.Identifier(str(table)))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return out


def flip(data: bytes) -> bytes:
    """`data` with one byte in the middle inverted (a corrupted copy)."""
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


class PebbleServer:
    """Pebble, Let's Encrypt's ACME test server, on loopback, with pebble-challtestsrv as its
    DNS server answering 127.0.0.1 for every name: HTTP-01 then really goes to
    `http_port` on loopback (nginx's port 80 in the tests). No always-valid shortcut."""

    def __init__(self, root: Path, http_port: int) -> None:
        for tool in ("pebble", "pebble-challtestsrv"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed: run scripts/bootstrap")
        self.root = root
        self.port, self.management, self.dns = free_port(), free_port(), free_port()
        key = new_key()
        alt = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        certificate = self_signed(
            key, "pebble", valid_for=datetime.timedelta(days=1), alt_names=alt
        )
        # what the ACME client trusts for the directory's HTTPS (acmeCaBundle)
        self.tls_ca = root / "pebble-tls.pem"
        self.tls_ca.write_text(certificate)
        (root / "pebble-tls.key").write_text(key_pem(key))
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management}",
                "certificate": str(self.tls_ca),
                "privateKey": str(root / "pebble-tls.key"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (root / "pebble.json").write_text(json.dumps(config))
        self.dns_server = subprocess.Popen(
            [
                "pebble-challtestsrv",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{self.dns}",
                "-management",
                f"127.0.0.1:{free_port()}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.process: subprocess.Popen[bytes] | None = None
        try:
            wait_for_port(self.dns)
            self.start()
        except Exception:
            self.close()
            raise

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # validate at once instead of after 0-15 s
            "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce (lego retries them anyway)
            "PEBBLE_AUTHZREUSE": "0",  # every order, renewals too, validates HTTP-01 again
        }
        log = (self.root / "pebble.log").open("ab")
        self.process = subprocess.Popen(
            [
                "pebble",
                "-config",
                str(self.root / "pebble.json"),
                "-dnsserver",
                f"127.0.0.1:{self.dns}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for_port(self.port)
        wait_for_port(self.management)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def root_pem(self) -> str:
        """The root of the chain Pebble issues under (a new one each start)."""
        context = ssl.create_default_context(cafile=str(self.tls_ca))
        url = f"https://127.0.0.1:{self.management}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return str(response.read().decode())

    def close(self) -> None:
        self.stop()
        self.dns_server.terminate()
        self.dns_server.wait(10)
