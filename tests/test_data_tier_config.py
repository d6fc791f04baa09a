"""The data tier's generated files, run by the real tools: PostgreSQL 15 and pgBackRest 2.45.

A real primary runs the generated server settings, pg_hba.conf and pg_ident.conf; the image's
init script creates the replication role and the stanza; `pgbackrest check` proves WAL
archiving through the generated archive_command and pgbackrest.conf works; the image's replica
entry point builds a hot standby that streams through its own slot, with its password in a
file only.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.render.pgbackrest_conf import render_pgbackrest_conf
from components.render.postgresql_conf import (
    REPLICATION_ROLE,
    render_pg_hba_conf,
    render_replication_passfile,
)
from tests.data_tier import (
    REPLICATION_PASSWORD,
    SLOT,
    ArchivingPrimary,
    PostgresExporter,
    Replica,
    streaming_check,
)


@pytest.fixture(scope="module")
def primary() -> Iterator[ArchivingPrimary]:
    server = ArchivingPrimary()
    try:
        server.run_init_script()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def replica(primary: ArchivingPrimary) -> Iterator[Replica]:
    standby = Replica(primary)
    try:
        standby.wait_streaming()
        yield standby
    finally:
        standby.close()


def test_postgresql_accepts_the_generated_settings_and_access_files(
    primary: ArchivingPrimary,
) -> None:
    shown = {
        name: primary.server.psql(f"SHOW {name}").strip()
        for name in ("wal_level", "archive_mode", "archive_timeout", "hba_file", "max_wal_senders")
    }
    assert shown["wal_level"] == "replica" and shown["archive_mode"] == "on"
    assert shown["archive_timeout"] == "1s"
    assert shown["hba_file"] == str(primary.hba)
    errors = primary.server.psql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert errors.strip() == "0"


def test_the_init_script_creates_the_replication_role_and_the_stanza(
    primary: ArchivingPrimary,
) -> None:
    roles = primary.server.psql(
        "SELECT rolname, rolreplication, rolcanlogin, rolsuper FROM pg_roles"
    )
    assert f"{REPLICATION_ROLE}|t|t|f" in roles.splitlines()
    info = primary.pgbackrest("info").stdout
    assert "stanza: main" in info and "status: error (no valid backups)" in info


def test_pgbackrest_check_proves_archiving_through_the_generated_archive_command(
    primary: ArchivingPrimary,
) -> None:
    result = primary.pgbackrest("check")
    assert "check command end: completed successfully" in result.stdout + result.stderr
    # the archiver's statistics are flushed at most once a second
    deadline = time.monotonic() + 30
    while int(primary.server.psql("SELECT archived_count FROM pg_stat_archiver")) < 1:
        assert time.monotonic() < deadline, "pg_stat_archiver counts no archived segment"
        time.sleep(0.2)
    # the repository is encrypted: its files are OpenSSL-enveloped (aes-256-cbc), not text
    info = (primary.repo / "archive/main/archive.info").read_bytes()
    assert info.startswith(b"Salted__") and b"[db]" not in info


def test_a_wrong_cipher_passphrase_cannot_read_the_repository(primary: ArchivingPrimary) -> None:
    from dataclasses import replace

    wrong = primary.server.root / "wrong.conf"
    primary._write(
        wrong,
        render_pgbackrest_conf(replace(primary.pgbackrest_settings, cipher_pass="not-the-pass")),
        0o640,
    )
    result = primary.as_postgres(
        "pgbackrest", "--stanza=main", "info", env={"PGBACKREST_CONFIG": str(wrong)}, check=False
    )
    assert "status: error" in result.stdout and "unable to load info file" in result.stdout


def test_a_full_backup_runs_with_the_generated_configuration(primary: ArchivingPrimary) -> None:
    primary.pgbackrest("--type=full", "backup")
    info = primary.pgbackrest("info").stdout
    assert "status: ok" in info and "full backup:" in info


def test_the_replica_streams_through_its_slot_from_a_base_backup(
    primary: ArchivingPrimary, replica: Replica
) -> None:
    assert replica.psql("SELECT pg_is_in_recovery()") == "t"
    slots = primary.server.psql("SELECT slot_name, slot_type, active FROM pg_replication_slots")
    assert slots.splitlines() == [f"{SLOT}|physical|t"]
    senders = primary.server.psql("SELECT application_name, state FROM pg_stat_replication")
    assert f"{SLOT}|streaming" in senders
    primary.server.psql("CREATE TABLE replicated (x int); INSERT INTO replicated VALUES (1)")
    for _ in range(100):
        try:
            if replica.psql("SELECT count(*) FROM replicated") == "1":
                break
        except RuntimeError:
            pass
        time.sleep(0.1)
    assert replica.psql("SELECT count(*) FROM replicated") == "1"


def test_the_replication_password_is_only_in_the_password_file(
    primary: ArchivingPrimary, replica: Replica
) -> None:
    conninfo = replica.psql("SHOW primary_conninfo")
    assert REPLICATION_PASSWORD not in conninfo and f"passfile={replica.passfile}" in conninfo
    for name in ("postgresql.auto.conf", "postgresql.conf"):
        assert REPLICATION_PASSWORD not in (replica.datadir / name).read_text()
    assert replica.passfile.stat().st_mode & 0o077 == 0


def test_replication_is_refused_without_the_password(primary: ArchivingPrimary) -> None:
    result = subprocess.run(
        primary.server._cmd(
            "env",
            "PGPASSWORD=wrong",
            str(primary.server.bindir / "psql"),
            f"host=127.0.0.1 port={primary.server.port} user={REPLICATION_ROLE} "
            "replication=true dbname=postgres",
            "-c",
            "IDENTIFY_SYSTEM",
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "password authentication failed" in result.stderr


def test_the_replication_role_cannot_open_a_database(primary: ArchivingPrimary) -> None:
    result = subprocess.run(
        primary.server._cmd(
            "env",
            f"PGPASSWORD={REPLICATION_PASSWORD}",
            str(primary.server.bindir / "psql"),
            f"host=127.0.0.1 port={primary.server.port} user={REPLICATION_ROLE} dbname=postgres",
            "-c",
            "SELECT 1",
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "pg_hba.conf rejects connection" in result.stderr


def test_the_access_files_have_no_trust_line() -> None:
    lines = [
        line.split()
        for line in render_pg_hba_conf().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("trust" not in fields for fields in lines)
    assert ["host", "replication", REPLICATION_ROLE, "samenet", "scram-sha-256"] in lines


def test_a_password_that_would_break_the_passfile_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        render_replication_passfile("postgres", 5432, "a:b")


# -- real faults: what the alerts and the replica's health check see --------------------------


@pytest.fixture
def pair() -> Iterator[tuple[ArchivingPrimary, Replica]]:
    """A primary and a streaming replica of the test's own, to break."""
    server = ArchivingPrimary()
    standby: Replica | None = None
    try:
        server.run_init_script()
        standby = Replica(server)
        standby.wait_streaming()
        yield server, standby
    finally:
        if standby is not None:
            standby.close()
        server.close()


def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_the_exporter_shows_lag_and_a_slot_whose_replica_is_gone(
    pair: tuple[ArchivingPrimary, Replica],
) -> None:
    """The series ReplicationLagHigh and ReplicaNotStreaming watch react to real faults."""
    primary, replica = pair
    exporter = PostgresExporter(primary)
    try:
        _until(
            lambda: exporter.value("pg_replication_slots_active", slot_name=SLOT) == 1.0,
            "the slot is active while the replica streams",
        )
        replica.psql("SELECT pg_wal_replay_pause()")
        primary.server.psql(
            "CREATE TABLE lag AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 50000) g"
        )
        _until(
            lambda: (
                (
                    exporter.value("pg_stat_replication_pg_wal_lsn_diff", application_name=SLOT)
                    or 0.0
                )
                > 1_000_000
            ),
            "replay paused: the lag in bytes grows past 1 MB",
        )
        replica.psql("SELECT pg_wal_replay_resume()")
        replica.close()  # the replica is gone; its slot stays
        _until(
            lambda: exporter.value("pg_replication_slots_active", slot_name=SLOT) == 0.0,
            "the slot is inactive once its replica is gone",
        )
    finally:
        exporter.close()


def test_the_replica_health_check_fails_once_the_primary_is_gone(
    pair: tuple[ArchivingPrimary, Replica], tmp_path: Path
) -> None:
    primary, replica = pair
    bindir = primary.server.bindir
    healthy = streaming_check(replica, bindir, tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    primary.server.stop()
    _until(
        lambda: streaming_check(replica, bindir, tmp_path).returncode != 0,
        "the health check fails while the replica has no primary to stream from",
    )
