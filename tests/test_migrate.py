"""`python -m runtime migrate` with real PostgreSQL 15 and real Alembic (examples/alembic).

Every run is the command line as a deploy step runs it: a subprocess with DATABASE_URL and
MIGRATE_* variables, the sample project copied into a temporary directory. The role is the
app user (no superuser), granted the two functions the restore point needs, as
docs/migrations.md tells operators.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from runtime.errors import ConfigError
from runtime.migrate.lock import LOCK_KEY
from runtime.migrate.session import LIBPQ_ENV, session_options
from runtime.pitr.info import BackupSet, RepoInfo
from runtime.pitr.pgbackrest import PitrError
from runtime.pitr.restore import (
    backup_before_name,
    parse_target_name,
    recovery_outcome,
    restore_point_name,
    restore_point_time,
)
from runtime.settings import MigrateSettings, load_settings
from tests.migrate_harness import (
    ALEMBIC,
    GRANT,
    REVISIONS,
    SAMPLE,
    Migrator,
    add_revision,
    waiting_on_a_lock,
)
from tests.servers import PostgresServer, StandbyServer


@pytest.fixture
def migrator(postgres_server: PostgresServer, empty_db: str, tmp_path: Path) -> Iterator[Migrator]:
    database = empty_db.rsplit("/", 1)[1]
    postgres_server.psql(GRANT.format(user=postgres_server.user), database)
    project = tmp_path / "alembic"
    shutil.copytree(SAMPLE, project)
    yield Migrator(postgres_server, empty_db, project)


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


def test_with_a_pitr_section_an_unarchived_restore_point_stops_the_migration(
    migrator: Migrator, tmp_path: Path
) -> None:
    """The shared server does not archive: the restore point never reaches a repository."""
    marker = tmp_path / "ran"
    done = migrator.run(
        "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')",
        PITR_STANZA="main", MIGRATE_ARCHIVE_WAIT="1",
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert re.fullmatch(
        r"error: restore point migrate-\d{8}T\d{6}Z: WAL segment \w{24} was not archived within "
        r"1 s \(MIGRATE_ARCHIVE_WAIT\); the migration was not run: fix archiving .*",
        last,
    ), last
    assert not marker.exists()


def test_the_migrate_settings_come_from_app_config_too() -> None:
    config = {
        "database": {"dsn": "postgresql://app@db:5432/app"},
        "migrate": {
            "lock_wait_seconds": 30, "lock_timeout_seconds": 0.25,
            "statement_timeout_seconds": 0, "restore_point": False,
            "archive_wait_seconds": 5, "version_table": "ops.schema_version",
        },
    }  # fmt: skip
    got = load_settings(config, env={}, require=("database",)).migrate
    assert got == MigrateSettings(30.0, 0.25, 0.0, False, 5.0, "ops.schema_version")
    assert session_options(got) == "-c lock_timeout=250 -c statement_timeout=0"
    tiny = MigrateSettings(lock_timeout_seconds=0.0001)
    assert session_options(tiny).startswith("-c lock_timeout=1 ")  # 0 would mean "off"
    config["migrate"] = {"version_table": "x; DROP TABLE items"}
    with pytest.raises(ConfigError, match=r"^migrate.version_table: got 'x; DROP TABLE items'"):
        load_settings(config, env={}, require=("database",))


# -- pitr restore --target-name, without a server ----------------------------------------------


def _info(*stops: datetime) -> RepoInfo:
    sets = tuple(
        BackupSet(f"b{i}", "full", s, s, 1, 1, "", "", error=False) for i, s in enumerate(stops)
    )
    return RepoInfo("main", "0 ok", "none", sets, None, None)


def test_the_backup_for_a_named_point_is_the_newest_that_ended_in_an_earlier_second() -> None:
    point = datetime(2026, 12, 5, 1, 0, 0, tzinfo=UTC)
    name = restore_point_name(point + timedelta(microseconds=900_000))
    assert name == "migrate-20261205T010000Z" and restore_point_time(name) == point
    second = timedelta(seconds=1)
    info = _info(point - 2 * second, point - second, point, point + second)
    assert backup_before_name(info, name) == "b1"  # b2 ended in the same second: maybe after
    assert backup_before_name(info, "before-the-upgrade") is None  # pgBackRest's choice
    with pytest.raises(PitrError, match="no backup in the repository ended before"):
        backup_before_name(_info(point), name)


def test_recovery_to_a_name_must_stop_at_that_name() -> None:
    name = "migrate-20261205T010000Z"
    log = f'LOG:  recovery stopping at restore point "{name}", time 2026-12-05 01:00:00.1+00\n'
    assert recovery_outcome(log, None, None, 16 << 20, target_name=name).exact
    other = recovery_outcome(log, None, None, 16 << 20, target_name="migrate-20261205T020000Z")
    assert not other.exact and "without reaching the restore point" in other.detail
    redo = "LOG:  redo done at 0/3000060\n"
    ended = recovery_outcome(redo, None, None, 16 << 20, target_name=name)
    assert not ended.exact


@pytest.mark.parametrize("name", ["", "a'b", 'a"b', "a\\b", "a\nb", "x" * 64])
def test_a_restore_point_name_postgresql_could_not_hold_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^--target-name: got .*; allowed: a restore point"):
        parse_target_name(name)
    assert parse_target_name("x" * 63) == "x" * 63


def test_sigterm_reaches_the_command_and_the_lock_goes_with_the_runner(migrator: Migrator) -> None:
    m = migrator
    child = (
        "import signal, sys, time\n"
        "def stop(*_):\n    print('the command got SIGTERM', flush=True); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\nprint('started', flush=True)\ntime.sleep(60)\n"
    )
    run = m.start("--", sys.executable, "-c", child)
    assert run.stdout is not None and run.stdout.readline() == "started\n"
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 143 and out == "the command got SIGTERM\n"
    assert "migration running: no" in m.run("status").stdout


def test_the_python_api_runs_under_the_same_guarantees(migrator: Migrator) -> None:
    from runtime.migrate import LockBusy, migrate

    settings = load_settings(
        env={"DATABASE_URL": migrator.dsn, "MIGRATE_LOCK_WAIT": "0.3"}, require=("database",)
    )
    probe = "import os; assert 'lock_timeout' in os.environ['PGOPTIONS']"
    run = migrate([sys.executable, "-c", probe], settings)
    assert run.returncode == 0 and run.restore_point is not None
    assert run.restore_point.name.startswith("migrate-") and run.restore_point.archived is None
    with migrator.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        with pytest.raises(LockBusy, match="another migration holds the lock"):
            migrate(["true"], settings)


def test_a_standby_is_refused_before_anything_runs(
    migrator: Migrator, standby: StandbyServer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    command = ("--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    done = migrator.run(*command, DATABASE_URL=standby.dsn, MIGRATE_RESTORE_POINT="false")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: 127.0.0.1:{standby.port} is a standby (pg_is_in_recovery): migrations run on "
        "the primary; DATABASE_URL (database.dsn) must name it\n"
    )
    assert not marker.exists()
