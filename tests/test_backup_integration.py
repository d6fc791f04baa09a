"""Backups against a real PostgreSQL 15 and moto's real S3 server.

Nothing here stands in for pg_dump, pg_restore or PostgreSQL: every backup is a real dump of a
pgbench-populated database, every restore lands in a real database, and every corruption is
done to the stored bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import psycopg
import pytest

from runtime.backup import (
    BackupManager,
    BackupScheduler,
    BackupSettings,
    LocalStorage,
    NoRestorableBackupError,
    RestoreError,
    S3Storage,
    Storage,
    StorageError,
)
from runtime.settings import Secret
from tests.servers import PostgresServer, fingerprint, flip

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
AWS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# -- helpers -------------------------------------------------------------------------------


def corrupt(storage: Storage, name: str, how: Callable[[bytes], bytes]) -> None:
    data = storage.get_bytes(name)
    storage.delete(name)
    storage.put_bytes(name, how(data))


# -- fixtures ------------------------------------------------------------------------------


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, **AWS)


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    name = f"backups-{uuid.uuid4().hex[:8]}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


def make_storage(
    kind: str, tmp_path: Path, endpoint: str, bucket: str, part_mb: int = 5
) -> Storage:
    if kind == "local":
        return LocalStorage(tmp_path / "backups")
    return S3Storage(bucket, "pg/", part_size=part_mb << 20, client=s3_client(endpoint))


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "backups")
    endpoint = request.getfixturevalue("moto_endpoint")
    return make_storage("s3", tmp_path, endpoint, request.getfixturevalue("bucket"))


def manager_for(
    dsn: str, storage: Storage, key: bytes | None = None, key_id: str = "key-a", **kw: Any
) -> BackupManager:
    settings = BackupSettings(
        encryption_key=Secret(b64(key).decode()) if key else None,
        encryption_key_id=key_id if key else None,
        **kw,
    )
    return BackupManager(settings, storage, database_url=dsn)


def s3_leftovers(endpoint: str, bucket: str) -> tuple[list[str], list[str]]:
    client = s3_client(endpoint)
    objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.req("UT-INFRA-02.3", "PT-INFRA-02.1")
@pytest.mark.parametrize("key", [None, KEY_A], ids=["plain", "encrypted"])
def test_create_list_verify_deep_verify_restore_round_trips(
    pgbench_db: str, empty_db: str, storage: Storage, key: bytes | None
) -> None:
    before = fingerprint(pgbench_db)
    manager = manager_for(pgbench_db, storage, key, count_rows=True)

    result = manager.create_backup()
    assert result.status == "success", result.reason
    assert result.size_bytes > 0 and result.location.endswith(".dump.enc" if key else ".dump")
    assert result.location == storage.location(result.manifest.data_object)  # type: ignore[union-attr]

    listed = manager.list_backups()
    assert [(b.backup_id, b.state, b.encrypted) for b in listed] == [
        (result.backup_id, "unverified", key is not None)
    ]
    manifest = manager.load_manifest(result.backup_id)
    assert manifest.table_rows["public.pgbench_accounts"] == 100_000
    assert manifest.key_id == ("key-a" if key else None)
    raw_manifest = storage.get_bytes(result.backup_id + ".manifest.json")
    for secret in (PostgresServer.password.encode(), KEY_A.hex().encode(), b64(KEY_A)):
        assert secret not in raw_manifest and secret.decode() not in repr(result)

    assert manager.verify(result.backup_id).ok
    deep = manager.verify(result.backup_id, deep=True)
    assert deep.ok, deep.reason
    assert manager.list_backups()[0].state == "verified"

    report = manager.restore("latest", empty_db)
    assert (report.restored, report.skipped) == (result.backup_id, ())
    assert fingerprint(empty_db) == before
    assert before["public.pgbench_accounts"][0] == 100_000


@pytest.mark.req("UT-INFRA-02.3", "PT-INFRA-02.1")
@pytest.mark.parametrize("key", [None, KEY_A], ids=["plain", "encrypted"])
def test_parallel_directory_dump_round_trips(
    pgbench_db: str, empty_db: str, storage: Storage, key: bytes | None
) -> None:
    before = fingerprint(pgbench_db)
    manager = manager_for(pgbench_db, storage, key, jobs=2)
    result = manager.create_backup()
    assert result.status == "success", result.reason
    manifest = manager.load_manifest(result.backup_id)
    assert manifest.dump_format == "directory-tar"
    assert manager.verify(result.backup_id).ok
    assert manager.verify(result.backup_id, deep=True).ok
    assert manager.restore("latest", empty_db).restored == result.backup_id
    assert fingerprint(empty_db) == before


@pytest.mark.req("ET-INFRA-02.2")
def test_parallel_dump_corruption_falls_back(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    manager = manager_for(pgbench_db, storage, jobs=2)
    good, bad = manager.create_backup(), manager.create_backup()
    _flip(storage, bad.manifest.data_object)  # type: ignore[union-attr]
    report = manager.verify(bad.backup_id)
    assert not report.ok and "checksum mismatch" in report.reason
    assert manager.restore("latest", empty_db).restored == good.backup_id
    assert fingerprint(empty_db) == fingerprint(pgbench_db)


@pytest.mark.req("UT-INFRA-02.3")
def test_run_backup_creates_and_verifies(pgbench_db: str, tmp_path: Path) -> None:
    manager = manager_for(pgbench_db, LocalStorage(tmp_path))
    outcome = manager.run_backup()
    assert outcome.status == "success"
    assert [b.state for b in manager.list_backups()] == ["verified"]


@pytest.mark.req("UT-INFRA-02.3")
def test_schedule_drives_verified_backups_with_a_fake_clock(
    pgbench_db: str, tmp_path: Path
) -> None:
    """Given BACKUP_SCHEDULE, each due slot gives one consistent, verified backup; a sidecar
    restarted after missed nights catches up once, remembering the newest backup's time."""
    now = [datetime(2026, 3, 1, 1, 59, tzinfo=UTC)]
    manager = BackupManager(
        BackupSettings(schedule="0 2 * * *"),
        LocalStorage(tmp_path),
        database_url=pgbench_db,
        clock=lambda: now[0],
    )
    sched = BackupScheduler(manager.settings.schedule, manager.run_backup, clock=lambda: now[0])
    sched.last_slot = datetime(2026, 2, 28, 2, tzinfo=UTC)
    assert sched.tick() == "not_due" and manager.list_backups() == []
    now[0] = datetime(2026, 3, 1, 2, 0, 5, tzinfo=UTC)
    assert sched.tick() == "ran"
    assert [b.state for b in manager.list_backups()] == ["verified"]
    # the sidecar restarts three nights later: its memory is the newest backup
    now[0] = datetime(2026, 3, 4, 7, 0, tzinfo=UTC)
    restarted = BackupScheduler(
        "0 2 * * *", manager.run_backup, clock=lambda: now[0], last_run=manager.newest_backup_time()
    )
    assert [restarted.tick(), restarted.tick()] == ["ran", "not_due"]
    assert [b.state for b in manager.list_backups()] == ["verified", "verified"]


def test_encrypted_backup_holds_no_plaintext(pgbench_db: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    plain = manager_for(pgbench_db, storage).create_backup()
    enc = manager_for(pgbench_db, storage, KEY_A).create_backup()
    plain_bytes = storage.get_bytes(plain.manifest.data_object)  # type: ignore[union-attr]
    enc_bytes = storage.get_bytes(enc.manifest.data_object)  # type: ignore[union-attr]
    assert plain_bytes.startswith(b"PGDMP") and b"pgbench_accounts" in plain_bytes
    assert b"PGDMP" not in enc_bytes and b"pgbench_accounts" not in enc_bytes


# -- corruption and fallback (ET-INFRA-02.2) -----------------------------------------------
def _truncate(storage: Storage, name: str) -> None:
    corrupt(storage, name, lambda d: d[: len(d) - 1000])


def _flip(storage: Storage, name: str) -> None:
    corrupt(storage, name, flip)


def _drop_manifest(storage: Storage, name: str) -> None:
    storage.delete(name.split(".dump")[0] + ".manifest.json")


CORRUPTIONS: dict[str, tuple[Callable[[Storage, str], None] | None, str]] = {
    "truncated": (_truncate, "truncated"),
    "flipped-bytes": (_flip, "checksum mismatch"),
    "missing-manifest": (_drop_manifest, "missing manifest"),
    "wrong-key": (None, "wrong encryption key"),
}


@pytest.mark.req("ET-INFRA-02.2")
@pytest.mark.parametrize(
    ("corruption", "key"),
    [(c, k) for c in CORRUPTIONS for k in (None, KEY_A) if k or c != "wrong-key"],
    ids=lambda v: "encrypted" if v == KEY_A else "plain" if v is None else str(v),
)
def test_corruption_fails_verify_and_restore_falls_back(
    postgres_server: PostgresServer,
    tmp_path: Path,
    empty_db: str,
    corruption: str,
    key: bytes | None,
) -> None:
    damage, expected = CORRUPTIONS[corruption]
    pgbench_db = postgres_server.create_database()
    try:
        with psycopg.connect(pgbench_db, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
            conn.execute(
                "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g"
            )
        storage = LocalStorage(tmp_path / "b")
        manager = manager_for(pgbench_db, storage, key)
        good = manager.create_backup()
        good_state = fingerprint(pgbench_db)
        with psycopg.connect(pgbench_db, autocommit=True) as conn:
            conn.execute("INSERT INTO orders VALUES (999999, 'after the good backup')")
        # the newer backup: made with another key in the wrong-key case
        newer_maker = (
            manager_for(pgbench_db, storage, KEY_B, "key-b") if damage is None else manager
        )
        bad = newer_maker.create_backup()
        assert good.status == bad.status == "success"
        if damage is not None:
            damage(storage, bad.manifest.data_object)  # type: ignore[union-attr]

        report = manager.verify(bad.backup_id)
        assert not report.ok and expected in report.reason
        assert manager.verify(good.backup_id).ok

        restored = manager.restore("latest", empty_db)
        assert restored.restored == good.backup_id
        assert restored.skipped[0][0] == bad.backup_id and expected in restored.skipped[0][1]
        assert fingerprint(empty_db) == good_state
        states = {b.backup_id: b.state for b in manager.list_backups()}
        assert states == {good.backup_id: "verified", bad.backup_id: "corrupt"}
    finally:
        postgres_server.drop_database(pgbench_db)


@pytest.mark.req("ET-INFRA-02.2")
def test_corrupted_s3_object_falls_back(
    pgbench_db: str, empty_db: str, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    manager = manager_for(pgbench_db, storage, KEY_A)
    good, bad = manager.create_backup(), manager.create_backup()
    _flip(storage, bad.manifest.data_object)  # type: ignore[union-attr]
    report = manager.restore(bad.backup_id, empty_db)
    assert report.restored == good.backup_id and "checksum mismatch" in report.skipped[0][1]
    assert fingerprint(empty_db) == fingerprint(pgbench_db)


@pytest.mark.req("ET-INFRA-02.2")
def test_read_through_catches_an_archive_whose_manifest_matches(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    """A checksum only proves the bytes are the ones written: if they were garbage from the
    start (a broken dump tool, a forged manifest), pg_restore's read-through still says no."""
    storage = LocalStorage(tmp_path)
    manager = manager_for(pgbench_db, storage)
    good, bad = manager.create_backup(), manager.create_backup()
    manifest = manager.load_manifest(bad.backup_id)
    data = storage.get_bytes(manifest.data_object)
    garbage = data[:4096] + os.urandom(len(data) - 4096)  # a valid header, then noise
    storage.delete(manifest.data_object)
    storage.put_bytes(manifest.data_object, garbage)
    storage.delete(bad.backup_id + ".manifest.json")
    forged = dataclasses.replace(manifest, sha256=hashlib.sha256(garbage).hexdigest())
    storage.put_bytes(bad.backup_id + ".manifest.json", forged.to_json())

    report = manager.verify(bad.backup_id)
    assert not report.ok and report.reason.startswith("pg_restore cannot read the archive")
    restored = manager.restore("latest", empty_db)
    assert restored.restored == good.backup_id
    [(skipped_id, why)] = restored.skipped
    assert skipped_id == bad.backup_id and why.startswith("pg_restore cannot read the archive")
    assert fingerprint(empty_db) == fingerprint(pgbench_db)


def test_deep_verify_compares_row_counts_with_the_manifest(pgbench_db: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    manager = manager_for(pgbench_db, storage, count_rows=True)
    made = manager.create_backup()
    manifest = manager.load_manifest(made.backup_id)
    rows = dict(manifest.table_rows, **{"public.pgbench_tellers": 11})  # the dump has 10
    storage.delete(made.backup_id + ".manifest.json")
    storage.put_bytes(
        made.backup_id + ".manifest.json",
        dataclasses.replace(manifest, table_rows=rows).to_json(),
    )
    assert manager.verify(made.backup_id).ok  # the archive itself is intact
    deep = manager.verify(made.backup_id, deep=True)
    assert (
        not deep.ok
        and deep.reason == "row counts differ after restore in ['public.pgbench_tellers']"
    )


@pytest.mark.req("ET-INFRA-02.2")
def test_no_restorable_backup_names_every_reason(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    manager = manager_for(pgbench_db, storage)
    first, second = manager.create_backup(), manager.create_backup()
    _truncate(storage, first.manifest.data_object)  # type: ignore[union-attr]
    _flip(storage, second.manifest.data_object)  # type: ignore[union-attr]
    with pytest.raises(NoRestorableBackupError) as err:
        manager.restore("latest", empty_db)
    assert [bid for bid, _ in err.value.skipped] == [second.backup_id, first.backup_id]
    assert "checksum mismatch" in str(err.value) and "truncated" in str(err.value)
    assert fingerprint(empty_db) == {}  # nothing was applied


def test_restore_without_fallback_refuses(pgbench_db: str, empty_db: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    manager = manager_for(pgbench_db, storage)
    manager.create_backup()
    bad = manager.create_backup()
    _flip(storage, bad.manifest.data_object)  # type: ignore[union-attr]
    with pytest.raises(Exception, match="checksum mismatch"):
        manager.restore("latest", empty_db, fallback=False)


def test_missing_key_is_a_clear_reason(pgbench_db: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    made = manager_for(pgbench_db, storage, KEY_A).create_backup()
    report = manager_for(pgbench_db, storage).verify(made.backup_id)
    assert not report.ok and report.reason.startswith("missing encryption key")
    assert "key-a" in report.reason


def test_restore_into_a_non_empty_target_applies_nothing(
    pgbench_db: str, empty_db: str, tmp_path: Path
) -> None:
    manager = manager_for(pgbench_db, LocalStorage(tmp_path))
    manager.create_backup()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE pgbench_branches (x int)")
    with pytest.raises(RestoreError, match="nothing was applied"):
        manager.restore("latest", empty_db)
    assert fingerprint(empty_db) == {"public.pgbench_branches": (0, "")}


# -- pg_dump failing -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_server_down_gives_failed_and_leaves_nothing(
    fresh_postgres: PostgresServer, tmp_path: Path, moto_endpoint: str, bucket: str, kind: str
) -> None:
    storage = make_storage(kind, tmp_path, moto_endpoint, bucket)
    fresh_postgres.stop()
    manager = manager_for(fresh_postgres.dsn, storage, KEY_A)
    result = manager.create_backup()
    assert result.status == "failed" and result.size_bytes == 0
    assert "connection" in result.reason.lower() or "refused" in result.reason.lower()
    assert manager.list_backups() == []
    assert storage.names() == []
    if kind == "s3":
        assert s3_leftovers(moto_endpoint, bucket) == ([], [])


def test_bad_credentials_fail_without_leaking_the_password(
    postgres_server: PostgresServer,
    tmp_path: Path,
    moto_endpoint: str,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wr0ng-pw-" + secrets.token_hex(4)
    dsn = postgres_server.dsn.replace(postgres_server.password, wrong)
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    manager = manager_for(dsn, storage, KEY_A)
    with caplog.at_level(logging.DEBUG, logger="runtime"):
        result = manager.create_backup()
    assert result.status == "failed"
    assert "password authentication failed" in result.reason
    assert s3_leftovers(moto_endpoint, bucket) == ([], [])
    shown = result.reason + repr(result) + caplog.text + repr(manager) + repr(manager.settings)
    assert wrong not in shown and KEY_A.hex() not in shown


def test_pg_dump_refusing_a_table_gives_failed(
    postgres_server: PostgresServer, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    """pg_dump itself fails (a table the backup role may not read): its error is the reason."""
    pgbench_db = postgres_server.create_database()
    name = psycopg.conninfo.conninfo_to_dict(pgbench_db)["dbname"]
    try:
        postgres_server.psql("CREATE TABLE secret_stuff (x int)", database=str(name))
        storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
        manager = manager_for(pgbench_db, storage)
        result = manager.create_backup()
        assert result.status == "failed"
        assert "pg_dump exited" in result.reason and "permission denied" in result.reason
        assert s3_leftovers(moto_endpoint, bucket) == ([], [])
        assert manager.list_backups() == []
    finally:
        postgres_server.drop_database(pgbench_db)


def test_server_killed_mid_dump_aborts_the_multipart_upload(
    fresh_postgres: PostgresServer, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    with psycopg.connect(fresh_postgres.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g + 1)::text) AS v "
            "FROM generate_series(1, 250000) g"
        )
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    manager = manager_for(fresh_postgres.dsn, storage, compress_level=0)
    seen = [0]

    def crash_after_first_part(n: int) -> None:
        seen[0] += n
        if seen[0] >= 6 << 20 and fresh_postgres.is_running():
            assert s3_leftovers(moto_endpoint, bucket)[1], "a part should be uploaded by now"
            fresh_postgres.kill9()

    result = manager.create_backup(progress=crash_after_first_part)
    assert seen[0] >= 6 << 20
    assert result.status == "failed" and "pg_dump exited" in result.reason
    assert s3_leftovers(moto_endpoint, bucket) == ([], [])
    assert manager.list_backups() == []


# -- storage -------------------------------------------------------------------------------
def test_s3_multipart_upload_round_trips(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    payload = os.urandom(12 << 20)  # three 5 MiB parts (the last one short)
    writer = storage.writer("20260101T000000.000000Z-000000.dump")
    for i in range(0, len(payload), 1 << 20):
        writer.write(payload[i : i + (1 << 20)])
    assert storage.names() == []  # not visible before commit
    writer.commit()
    head = s3_client(moto_endpoint).head_object(
        Bucket=bucket, Key="pg/20260101T000000.000000Z-000000.dump"
    )
    assert head["ETag"].strip('"').endswith("-3")  # really multipart
    assert b"".join(storage.read_chunks("20260101T000000.000000Z-000000.dump")) == payload


def test_s3_aborted_upload_leaves_nothing(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    writer = storage.writer("x.dump")
    writer.write(os.urandom(11 << 20))
    assert s3_leftovers(moto_endpoint, bucket)[1] == ["pg/x.dump"]  # parts were uploaded
    writer.abort()
    assert s3_leftovers(moto_endpoint, bucket) == ([], [])


def test_s3_storage_never_overwrites_a_manifest(
    moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    storage = make_storage("s3", tmp_path, moto_endpoint, bucket)
    storage.put_bytes("a.manifest.json", b"first")
    with pytest.raises(StorageError, match="PreconditionFailed"):
        storage.put_bytes("a.manifest.json", b"second")
    assert storage.get_bytes("a.manifest.json") == b"first"
    storage.put_bytes("a.verify.json", b"1")
    storage.put_bytes("a.verify.json", b"2", overwrite=True)  # verify records are replaced
    assert storage.get_bytes("a.verify.json") == b"2"


def test_local_storage_never_overwrites(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("a.manifest.json", b"first")
    with pytest.raises(Exception, match="refusing to overwrite"):
        storage.put_bytes("a.manifest.json", b"second")
    assert storage.get_bytes("a.manifest.json") == b"first"
    writer = storage.writer("b.dump")
    writer.write(b"partial")
    assert storage.names() == ["a.manifest.json"]  # a partial file is never listed
    writer.abort()
    assert sorted(os.listdir(tmp_path)) == ["a.manifest.json"]


# -- retention on real storage -------------------------------------------------------------
def test_prune_applies_retention_and_keeps_newest_verified(pgbench_db: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    storage = LocalStorage(tmp_path)
    made = []
    for days_ago in (50, 40, 35, 1):
        clock_value = now - timedelta(days=days_ago)
        settings = BackupSettings(retention_days=30, min_keep=1)
        manager = BackupManager(
            settings,
            storage,
            database_url=pgbench_db,
            clock=functools.partial(lambda v: v, clock_value),
        )
        made.append(manager.create_backup())
        if days_ago == 40:
            assert manager.verify(made[-1].backup_id).ok
    manager = BackupManager(
        BackupSettings(retention_days=30, min_keep=1), storage, database_url=pgbench_db
    )
    plan = manager.prune(dry_run=True)
    assert set(plan.delete) == {made[0].backup_id, made[2].backup_id}
    assert len(storage.names()) == 9  # dry run deleted nothing (4 dumps, 4 manifests, 1 verify)
    manager.prune()
    assert [b.backup_id for b in manager.list_backups()] == [made[3].backup_id, made[1].backup_id]
    assert sorted(storage.names())[0].startswith(made[1].backup_id)


@pytest.mark.parametrize(
    "kw",
    [{}, {"count_rows": True}, {"jobs": 2}],
    ids=["archive-header", "snapshot-connection", "directory-format"],
)
def test_the_manifest_names_the_server_and_pg_dump_as_they_report_themselves(
    pgbench_db: str, tmp_path: Path, kw: dict[str, Any]
) -> None:
    """The custom format's versions come from the archive header (no connection, no
    `pg_dump --version`); they must read exactly as the server and pg_dump say them."""
    manager = manager_for(pgbench_db, LocalStorage(tmp_path / "backups"), **kw)
    result = manager.create_backup()
    assert result.status == "success", result.reason
    manifest = manager.load_manifest(result.backup_id)
    with psycopg.connect(pgbench_db) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    assert row is not None
    assert manifest.server_version == row[0]
    assert manifest.tool_version == manager.tools.version()
