"""`python -m runtime migrate` with real PostgreSQL 15 and real Alembic (examples/alembic).

Every run is the command line as a deploy step runs it: a subprocess with DATABASE_URL and
MIGRATE_* variables, the sample project copied into a temporary directory. The role is the
app user (no superuser), granted the two functions the restore point needs, as
docs/migrations.md tells operators.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from runtime.migrate.session import LIBPQ_ENV
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


@pytest.fixture
def migrator(postgres_server: PostgresServer, empty_db: str, tmp_path: Path) -> Iterator[Migrator]:
    database = empty_db.rsplit("/", 1)[1]
    postgres_server.psql(GRANT.format(user=postgres_server.user), database)
    project = tmp_path / "alembic"
    shutil.copytree(SAMPLE, project)
    yield Migrator(postgres_server, empty_db, project)


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


# -- one at a time ---------------------------------------------------------------------------


def test_three_concurrent_runs_apply_the_revision_exactly_once(migrator: Migrator) -> None:
    m = migrator
    m.ok("upgrade", "0003")
    # a revision that takes a while and cannot be applied twice: CREATE TABLE, no IF NOT EXISTS
    add_revision(
        m.project,
        "0004",
        "    op.execute('SELECT pg_sleep(2)')\n"
        "    op.execute('CREATE TABLE applied (at timestamptz DEFAULT now())')\n"
        "    op.execute('INSERT INTO applied DEFAULT VALUES')",
    )
    runs = [m.start("--", *ALEMBIC, "upgrade", "head") for _ in range(3)]
    outputs = [r.communicate(timeout=120) for r in runs]
    results = [(r.returncode, out, err) for r, (out, err) in zip(runs, outputs, strict=True)]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    applied = [err for _, _, err in results if "Running upgrade 0003 -> 0004" in err]
    assert len(applied) == 1, [err for _, _, err in results]
    assert all("lock held" in err for _, _, err in results)
    assert m.revision() == ("0004",)
    with m.connect() as conn:
        assert conn.execute("SELECT count(*) FROM applied").fetchone() == (1,)


def test_a_second_runner_gives_up_after_the_lock_wait_and_runs_nothing(
    migrator: Migrator, tmp_path: Path
) -> None:
    m = migrator
    first = m.start("--", sys.executable, "-c", "import time; time.sleep(4)")
    deadline = time.monotonic() + 30
    while "running: yes" not in m.run("status").stdout:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    marker = tmp_path / "ran"
    second = m.run(
        "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')", MIGRATE_LOCK_WAIT="0.5"
    )
    assert second.returncode == 1
    assert second.stderr.startswith("error: another migration holds the lock (server pid ")
    assert "waited 0.5 s (MIGRATE_LOCK_WAIT) and ran nothing" in second.stderr
    assert not marker.exists()
    assert first.wait(timeout=60) == 0
    assert "migration running: no" in m.run("status").stdout


# -- bounded blocking ------------------------------------------------------------------------


def test_a_migration_behind_a_long_transaction_gives_up_after_lock_timeout(
    migrator: Migrator,
) -> None:
    m = migrator
    m.ok("upgrade", "0001")
    with m.connect() as conn:
        conn.execute("INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 50) g")
    long_tx = psycopg.connect(m.dsn)  # a report that keeps its transaction open
    long_tx.execute("SELECT count(*) FROM items").fetchone()  # holds ACCESS SHARE on items
    read: list[Any] = []
    try:
        run = m.start("--", *ALEMBIC, "upgrade", "head", MIGRATE_LOCK_TIMEOUT="1")
        waiting_on_a_lock(m)  # the ALTER TABLE queues for its ACCESS EXCLUSIVE lock...

        def reader() -> None:  # ...and a new query queues behind the ALTER, until it gives up
            with m.connect() as conn:
                conn.execute("SET statement_timeout = '60s'")
                read.append(conn.execute("SELECT count(*) FROM items").fetchone())

        thread = threading.Thread(target=reader)
        thread.start()
        _, err = run.communicate(timeout=120)
        thread.join(60)
        assert run.returncode == 1, err
        assert "canceling statement due to lock timeout" in err  # Alembic's own traceback
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: the migration command exited with 1; a statement waited")
        assert "lock_timeout (1 s, MIGRATE_LOCK_TIMEOUT)" in last
        assert "pitr restore --target-name migrate-" in last
        # the long transaction and the queued reader carried on
        assert read == [(50,)]
        assert long_tx.execute("SELECT count(*) FROM items").fetchone() == (50,)
        long_tx.commit()
    finally:
        long_tx.close()
    # nothing half-applied: one transaction for the run, rolled back whole
    assert m.revision() == ("0001",)
    assert m.columns() == {"id", "name"}


def test_the_commands_sessions_get_the_bounds_and_the_primary_only(migrator: Migrator) -> None:
    probe = (
        "import os, psycopg\n"
        "with psycopg.connect() as c:\n"  # libpq's PG* variables only
        "    print(*[c.execute(f'SHOW {s}').fetchone()[0] for s in "
        "('lock_timeout', 'statement_timeout', 'application_name')], c.info.port)\n"
        "print(os.environ.get('DATABASE_REPLICA_URLS'), os.environ['DATABASE_URL'] == "
        f"{migrator.dsn!r})\n"
    )
    done = migrator.run(
        "--", sys.executable, "-c", probe,
        MIGRATE_LOCK_TIMEOUT="2.5", MIGRATE_STATEMENT_TIMEOUT="90",
        DATABASE_REPLICA_URLS="postgresql://app:x@127.0.0.1:1/app",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    port = migrator.server.port
    assert done.stdout.split("\n")[:2] == [f"2500ms 90s runtime-migrate {port}", "None True"]


def test_the_libpq_variable_table_is_libpqs() -> None:
    libpq = {d.keyword.decode(): d.envvar.decode() for d in pq.Conninfo.get_defaults() if d.envvar}
    assert {k: LIBPQ_ENV.get(k) for k in libpq} == libpq


# -- up, down, up ----------------------------------------------------------------------------


def test_every_revision_of_the_sample_goes_up_down_up(migrator: Migrator) -> None:
    m = migrator
    assert m.revision() is None
    previous: tuple[str, ...] = ()
    for revision in REVISIONS:
        m.ok("upgrade", revision)
        assert m.revision() == (revision,)
        up = m.columns()
        m.ok("downgrade", "-1")
        assert m.revision() == previous
        m.ok("upgrade", revision)
        assert m.revision() == (revision,) and m.columns() == up
        previous = (revision,)
    m.ok("downgrade", "base")
    assert m.revision() == () and m.columns() == set()
    m.ok("upgrade", "head")
    assert m.revision() == (REVISIONS[-1],)
    with m.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO items (name, price_cents) VALUES ('x', -1)")


def test_status_reports_the_revision_or_says_it_is_unknown(migrator: Migrator) -> None:
    m = migrator
    before = m.run("status")
    assert before.returncode == 0
    assert before.stdout.splitlines() == [
        "revision: unknown (no alembic_version table: not Alembic, or never migrated)",
        "migration running: no",
    ]
    m.ok("upgrade", "head")
    assert m.run("status").stdout.splitlines()[0] == "revision: 0003"
    assert '"revisions": ["0003"]' in m.run("status", "--json").stdout


# -- the restore point, and refusals ---------------------------------------------------------


def test_the_restore_point_is_made_before_the_command_and_printed(migrator: Migrator) -> None:
    done = migrator.ok("upgrade", "0001")
    line = next(ln for ln in done.stderr.splitlines() if "restore point" in ln)
    assert line.startswith("migrate: restore point migrate-")
    assert "archiving not checked: no pitr section" in line
    assert "to return to it: python -m runtime pitr restore --target-name migrate-" in line
    # before the command: its line precedes Alembic's first one
    assert done.stderr.index(line) < done.stderr.index("Running upgrade")


def test_without_the_right_to_create_a_restore_point_nothing_runs(
    migrator: Migrator, tmp_path: Path
) -> None:
    m = migrator
    m.server.psql(GRANT.format(user=m.server.user).replace("GRANT", "REVOKE").replace(
        " TO ", " FROM "), m.database)  # fmt: skip
    marker = tmp_path / "ran"
    command = ("--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    refused = m.run(*command)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith(
        "error: could not create a restore point: permission denied for function "
        "pg_create_restore_point"
    )
    assert "MIGRATE_RESTORE_POINT=false" in refused.stderr
    assert not marker.exists()
    assert m.run(*command, MIGRATE_RESTORE_POINT="false").returncode == 0
    assert marker.exists()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, "error: migrate: got ''; allowed: `-- COMMAND...`"),
        (("upgrade",), {}, "error: migrate: got 'upgrade'; allowed: `-- COMMAND...`"),
        (("--",), {}, "error: COMMAND: got ''; allowed: a command after `--`"),
        (("--", "no-such-migrate-tool"), {}, "error: COMMAND: got 'no-such-migrate-tool'"),
        (("status",), {"MIGRATE_LOCK_WAIT": "soon"}, "error: MIGRATE_LOCK_WAIT: got 'soon'"),
        (("--", "true"), {"MIGRATE_STATEMENT_TIMEOUT": "-1"}, "error: MIGRATE_STATEMENT_TIMEOUT"),
    ],
)
def test_bad_usage_is_one_line_and_exit_code_2(
    migrator: Migrator, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    done = migrator.run(*args, **env)
    assert done.returncode == 2
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


def test_a_refused_login_is_one_line_without_the_password(migrator: Migrator) -> None:
    wrong = migrator.dsn.replace(PostgresServer.password, "wrong-" + PostgresServer.password)
    done = migrator.run("--", "true", DATABASE_URL=wrong)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to the primary 127.0.0.1:")
    assert "wrong-" not in done.stderr and done.stderr.count("\n") == 1


def test_the_commands_exit_code_and_output_pass_through(migrator: Migrator) -> None:
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(7)"
    done = migrator.run("--", sys.executable, "-c", code)
    assert done.returncode == 7
    assert done.stdout == "to stdout\n"
    assert "to stderr\n" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: the migration command exited with 7")
