"""The way back from a bad migration, with real PostgreSQL 15, pgBackRest 2.45 and Alembic:
`migrate` makes a restore point and waits until its WAL is archived; after a migration that
commits damage and then fails, `pitr restore --target-name` returns a scratch copy of the
cluster to exactly that point (tests/pitr_harness.py, as the other pitr tests)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migrate_harness import GRANT, SAMPLE, add_revision
from tests.pitr_harness import ArchivingCluster
from tests.servers import PostgresServer, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

BAD = """    with op.get_context().autocommit_block():  # committed at once, as a data fix might be
        op.execute("INSERT INTO items (name) VALUES ('written by the bad migration')")
        op.execute("DELETE FROM items WHERE id % 2 = 0")
    raise RuntimeError("the bad migration fails half-way")"""


@pytest.fixture
def cluster() -> Iterator[ArchivingCluster]:
    made = ArchivingCluster()
    try:
        yield made
    finally:
        made.close()


def migrate(c: ArchivingCluster, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MIGRATE_"))}
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "migrate", "--", sys.executable, "-m", "alembic", *args],
        cwd=project,
        env={**env, **c.env, "DATABASE_URL": c.server.dsn, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert PostgresServer.password not in done.stdout + done.stderr
    return done


def names(c: ArchivingCluster, port: int | None = None) -> list[str]:
    with c.connect(port) as conn:
        return [str(r[0]) for r in conn.execute("SELECT name FROM items ORDER BY id").fetchall()]


def test_restore_to_the_named_point_undoes_a_bad_migration_exactly(
    cluster: ArchivingCluster, tmp_path: Path
) -> None:
    c = cluster
    c.server.psql(GRANT.format(user=c.server.user), c.server.database)
    project = tmp_path / "alembic"
    shutil.copytree(SAMPLE, project)
    c.ok("check")
    c.ok("backup", "--type", "full")
    time.sleep(1.1)  # the restore points come in a later second than the backup's stop

    assert migrate(c, project, "upgrade", "head").returncode == 0
    with c.connect() as conn:
        conn.execute("INSERT INTO items (name) SELECT 'before ' || g FROM generate_series(1, 10) g")
    before = names(c)

    add_revision(project, "0004", BAD)
    bad = migrate(c, project, "upgrade", "head")
    assert bad.returncode == 1 and "the bad migration fails half-way" in bad.stderr
    point = re.search(
        r"restore point (migrate-\d{8}T\d{6}Z) at \S+ \(WAL (\w+), archived\)", bad.stderr
    )
    assert point is not None, bad.stderr
    name = point.group(1)
    assert f"pitr restore --target-name {name} (docs/migrations.md)" in bad.stderr.splitlines()[-1]
    damaged = names(c)
    assert "written by the bad migration" in damaged and len(damaged) < len(before)
    with c.connect() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('written after the migration')")
    # a newer backup, taken after the point: recovery to the name must not start from it
    time.sleep(1.1)
    c.ok("backup", "--type", "full")
    c.switch_and_wait_archived()

    restored, port = c.restored_dir("restored-named"), free_port()
    out = c.ok(
        "restore", "--target-name", name, "--pg-data", str(restored), "--start",
        "--port", str(port),
    )  # fmt: skip
    assert f'recovery stopping at restore point "{name}"' in out
    assert names(c, port) == before  # the rows before the point, none after it
    with c.connect(port) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]


def test_a_target_name_is_checked_before_anything_is_restored(cluster: ArchivingCluster) -> None:
    c = cluster
    quoted = c.pitr("restore", "--target-name", "x'y", "--pg-data", str(c.restored_dir("r1")))
    assert quoted.returncode == 2
    assert quoted.stderr.startswith('error: --target-name: got "x\'y"; allowed: a restore point')
    c.ok("check")
    c.ok("backup", "--type", "full")
    early = "migrate-20000101T000000Z"
    done = c.pitr("restore", "--target-name", early, "--pg-data", str(c.restored_dir("r2")))
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: no backup in the repository ended before restore point {early}"
    )
