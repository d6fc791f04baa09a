"""The PostgreSQL side: finding pg_dump/pg_restore, running them, snapshot row counts.

Passwords reach the tools only through `PGPASSWORD` in the child's environment; stderr goes
to a temporary file (a full stderr pipe could deadlock a streaming dump) and only its last
line, redacted, is ever shown. psycopg is imported only by the functions that connect, so
`backup create` can start `pg_dump` (`start_dump`) before loading it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from runtime.backup.redaction import redact, split_dsn
from runtime.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


def _find(name: str, bindir: Path | None) -> str:
    if bindir is not None:
        return str(bindir / name)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        raise ConfigError(
            "BACKUP_PG_BINDIR",
            "",
            f"a directory with {name} (not on PATH nor /usr/lib/postgresql)",
        )
    return found[-1]


@dataclass(frozen=True)
class PgTools:
    """Paths of the PostgreSQL client programs the backups run."""

    pg_dump: str
    pg_restore: str

    @classmethod
    def find(cls, bindir: Path | None = None) -> PgTools:
        return cls(_find("pg_dump", bindir), _find("pg_restore", bindir))

    def version(self) -> str:
        out = subprocess.run(
            [self.pg_dump, "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() or "unknown"


class ToolProcess:
    """A running pg_dump/pg_restore whose stderr is kept (redacted) for the error message."""

    def __init__(
        self,
        argv: list[str],
        password: str | None,
        *,
        stdin: int | None = None,
        stdout: int | None = None,
    ) -> None:
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if password is not None:
            env["PGPASSWORD"] = password
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        self._password = password
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=self._stderr, env=env)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def finish(self) -> tuple[int, str]:
        """Wait; return (exit code, last stderr line, redacted)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln]
        self._stderr.close()
        # The first "error:" line says what went wrong; later lines are details.
        errors = [ln.split("error: ", 1)[1] for ln in lines if "error: " in ln]
        tail = errors[0] if errors else (lines[-1] if lines else "")
        return code, redact(tail, self._password)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.finish()


def toc_tables(tools: PgTools, archive: Path) -> set[str] | None:
    """The tables whose data a local archive holds (its TABLE DATA entries), as
    schema.table; None if pg_restore cannot list it. Names with spaces are left out."""
    listed = subprocess.run(
        [tools.pg_restore, "--list", str(archive)], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        return None
    tables: set[str] = set()
    for line in listed.stdout.splitlines():
        _, found, rest = line.partition(" TABLE DATA ")
        parts = rest.split(" ")
        if found and not line.startswith(";") and len(parts) == 3:
            tables.add(quoted(parts[0], parts[1]))
    return tables


def quoted(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def count_rows(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Exact row counts of every user table (in the connection's current snapshot)."""
    from psycopg import sql

    counts: dict[str, int] = {}
    for schema, table in conn.execute(TABLES_SQL).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(str(schema)), sql.Identifier(str(table))
        )
        row = conn.execute(query).fetchone()
        counts[quoted(str(schema), str(table))] = int(row[0]) if row else 0  # type: ignore[call-overload]
    return counts


@contextlib.contextmanager
def exported_snapshot(
    dsn: str,
) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], str, str]]:
    """(connection, snapshot id, server version): pg_dump imports the snapshot, so the row
    counts taken on this connection describe exactly the data in the dump."""
    import psycopg

    conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        row = snap.fetchone()
        assert row is not None
        yield conn, str(row[0]), str(row[1])
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        conn.close()


def server_version(dsn: str) -> str:
    """The server's version string, for the manifest (asked while pg_dump runs)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
        assert row is not None
        return str(row[0])


def start_dump(
    tools: PgTools, dsn: str, compress_level: int | None, snapshot: str | None = None
) -> ToolProcess:
    """pg_dump -Fc streaming to a pipe; without `snapshot`, in the one consistent (repeatable
    read) snapshot pg_dump takes itself. `backup create` starts it before its slow imports."""
    argv, password = dump_argv(tools, dsn, snapshot, compress_level)
    return ToolProcess(argv, password, stdout=subprocess.PIPE)


def dump_argv(
    tools: PgTools,
    dsn: str,
    snapshot: str | None,
    compress_level: int | None,
    *,
    jobs: int = 1,
    directory: Path | None = None,
) -> tuple[list[str], str | None]:
    """The pg_dump command line (no password in it) and the password for its environment:
    custom format to stdout, or with `directory` the parallel directory format."""
    conninfo, password, _ = split_dsn(dsn)
    argv = [tools.pg_dump, "--no-sync", f"--dbname={conninfo}"]
    if directory is None:
        argv.append("--format=custom")
    else:
        argv += ["--format=directory", f"--jobs={jobs}", f"--file={directory}"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    if compress_level is not None:
        argv.append(f"--compress={compress_level}")
    return argv, password


def restore_argv(tools: PgTools, dsn: str, archive: str) -> tuple[list[str], str | None]:
    """pg_restore into a database, all or nothing (one transaction, stop at first error)."""
    conninfo, password, _ = split_dsn(dsn)
    argv = [
        tools.pg_restore,
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={conninfo}",
        archive,
    ]
    return argv, password


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo("", **params)
