"""Schema migrations run the way a deploy step runs them: `python -m runtime migrate` as a
subprocess with DATABASE_URL and MIGRATE_* variables, on a copy of the sample Alembic project
(examples/alembic). Used by tests/test_migrate.py and tests/test_migrate_pitr.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from runtime.settings import load_settings
from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "alembic"
REVISIONS = ("0001", "0002", "0003")
ALEMBIC = (sys.executable, "-m", "alembic")
GRANT = "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO {user}"


class Migrator:
    """One database and a copy of the sample project; runs `python -m runtime migrate`."""

    def __init__(self, server: PostgresServer, dsn: str, project: Path) -> None:
        self.server = server
        self.dsn = dsn
        self.database = dsn.rsplit("/", 1)[1]
        self.project = project
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "MIGRATE_"))},
            "DATABASE_URL": dsn,
            "PYTHONPATH": str(ROOT),
        }

    def start(self, *command: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "runtime", "migrate", *command],
            cwd=self.project,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        child = self.start(*command, **env)
        out, err = child.communicate(timeout=120)
        assert PostgresServer.password not in out + err  # never in the runtime's lines
        return subprocess.CompletedProcess(child.args, child.returncode, out, err)

    def alembic(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("--", *ALEMBIC, *args, **env)

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = self.alembic(*args, **env)
        assert done.returncode == 0, done.stderr
        return done

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn, autocommit=True)

    def revision(self) -> tuple[str, ...] | None:
        from runtime.migrate import migration_status

        settings = load_settings(env={"DATABASE_URL": self.dsn}, require=("database",))
        return migration_status(settings).revisions

    def columns(self, table: str = "items") -> set[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
            ).fetchall()
        return {str(r[0]) for r in rows}


def add_revision(project: Path, name: str, body: str, down: str = "0003") -> None:
    """A revision of the test's own after the sample's head."""
    (project / "versions" / f"{name}.py").write_text(
        f'"""test revision {name}"""\n'
        "from alembic import op\n\n"
        f"revision = {name!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\n\n"
        "def downgrade() -> None:\n    pass\n"
    )


def waiting_on_a_lock(m: Migrator, timeout: float = 30) -> None:
    """Until a session of the migration command waits for a table lock."""
    deadline = time.monotonic() + timeout
    with m.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND application_name = 'runtime-migrate' AND wait_event_type = 'Lock'",
                (m.database,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise TimeoutError("the migration never waited for a lock")
