"""Backup logic that needs no server: settings, encryption, manifests, retention, schedule."""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.backup import (
    BackupManager,
    BackupScheduler,
    BackupSettings,
    CorruptBackupError,
    LocalStorage,
    Manifest,
    RetentionItem,
    crypto,
    plan_retention,
)
from runtime.backup.redaction import mask_dsn, redact, split_dsn
from runtime.backup.results import BackupOutcome
from runtime.errors import ConfigError
from runtime.settings import Settings, load_settings

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()


# -- settings ------------------------------------------------------------------------------
def from_env(env: dict[str, str]) -> Settings:
    """The runtime's settings from environment variables alone (no server required)."""
    return load_settings({}, env=env, require=())


def test_settings_defaults_follow_the_specification() -> None:
    s = from_env({}).backup
    assert (s.schedule, s.retention_days, s.min_keep) == ("0 2 * * *", 30, 3)
    assert not s.encrypted and s.s3_bucket is None
    assert (s.jobs, s.count_rows, s.compress_level) == (1, False, None)


@pytest.mark.parametrize(
    ("env", "variable", "shown"),
    [
        ({"BACKUP_RETENTION_DAYS": "thirty"}, "BACKUP_RETENTION_DAYS", "'thirty'"),
        ({"BACKUP_RETENTION_DAYS": "-1"}, "BACKUP_RETENTION_DAYS", "'-1'"),
        ({"BACKUP_MIN_KEEP": "0"}, "BACKUP_MIN_KEEP", "'0'"),
        ({"BACKUP_SCHEDULE": "every night"}, "BACKUP_SCHEDULE", "'every night'"),
        ({"BACKUP_S3_ENDPOINT": "minio:9000"}, "BACKUP_S3_ENDPOINT", "'minio:9000'"),
        ({"BACKUP_S3_PART_SIZE_MB": "1"}, "BACKUP_S3_PART_SIZE_MB", "'1'"),
        ({"BACKUP_COUNT_ROWS": "maybe"}, "BACKUP_COUNT_ROWS", "'maybe'"),
        ({"BACKUP_JOBS": "0"}, "BACKUP_JOBS", "'0'"),
        ({"BACKUP_ENCRYPTION_KEY": KEY_B64}, "BACKUP_ENCRYPTION_KEY_ID", "''"),
    ],
)
def test_bad_settings_name_variable_value_and_allowed(
    env: dict[str, str], variable: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as err:
        from_env(env)
    message = str(err.value)
    assert message.startswith(f"{variable}: got {shown}; allowed: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "bad_key", ["c2hvcnQ=", "not base64 at all!", base64.b64encode(b"x" * 31).decode()]
)
def test_bad_encryption_key_is_masked_in_the_error(bad_key: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_env({"BACKUP_ENCRYPTION_KEY": bad_key, "BACKUP_ENCRYPTION_KEY_ID": "k"})
    assert bad_key not in str(err.value)
    assert "BACKUP_ENCRYPTION_KEY: got ***; allowed: base64 of exactly 32" in str(err.value)


def test_settings_repr_hides_password_and_key() -> None:
    s = from_env(
        {
            "DATABASE_URL": "postgresql://app:s3cret-pw@db:5432/app",
            "BACKUP_ENCRYPTION_KEY": KEY_B64,
            "BACKUP_ENCRYPTION_KEY_ID": "k1",
        }
    )
    text = repr(s) + str(s)
    assert "s3cret-pw" not in text and KEY_B64 not in text and KEY.hex() not in text
    assert "k1" in text


@pytest.mark.parametrize("url", ["postgresql://u:pw-xyz@h/db?bogus=1", "mysql://u:pw-xyz@h/db"])
def test_bad_database_url_is_masked(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_env({"DATABASE_URL": url})
    assert "pw-xyz" not in str(err.value) and "DATABASE_URL" in str(err.value)


def test_redaction_of_dsns_and_secrets() -> None:
    assert mask_dsn("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"
    assert mask_dsn("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact("key deadbeef here", "deadbeef") == "key *** here"


# -- encryption ----------------------------------------------------------------------------
def _encrypt(data: bytes, chunk: int, pieces: int = 3) -> bytes:
    enc = crypto.Encryptor(KEY, chunk_size=chunk)
    step = max(1, len(data) // pieces)
    out = b"".join(enc.update(data[i : i + step]) for i in range(0, len(data), step))
    return out + enc.finalize()


def _decrypt(blob: bytes, key: bytes = KEY, step: int = 7) -> bytes:
    dec = crypto.Decryptor(key)
    out = b"".join(dec.update(blob[i : i + step]) for i in range(0, len(blob), step))
    return out + dec.finalize()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), chunk=st.integers(1, 64))
def test_encryption_round_trips_any_stream(data: bytes, chunk: int) -> None:
    assert _decrypt(_encrypt(data, chunk)) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), chunk=st.integers(1, 32), where=st.integers(0))
def test_any_flipped_byte_is_detected(data: bytes, chunk: int, where: int) -> None:
    blob = bytearray(_encrypt(data, chunk))
    blob[where % len(blob)] ^= 0x01
    with pytest.raises(crypto.DecryptionError):
        _decrypt(bytes(blob))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), chunk=st.integers(1, 32), cut=st.integers(1))
def test_any_truncation_is_detected(data: bytes, chunk: int, cut: int) -> None:
    blob = _encrypt(data, chunk)
    with pytest.raises(crypto.DecryptionError):
        _decrypt(blob[: len(blob) - 1 - cut % len(blob)])


def test_wrong_key_is_detected_and_key_check_differs() -> None:
    blob = _encrypt(b"payload" * 100, 64)
    other = os.urandom(32)
    with pytest.raises(crypto.DecryptionError):
        _decrypt(blob, key=other)
    assert crypto.key_check(KEY) != crypto.key_check(other)
    assert KEY.hex()[:16] not in crypto.key_check(KEY)


# -- manifest ------------------------------------------------------------------------------
def _manifest() -> Manifest:
    return Manifest(
        backup_id="20260101T020000.000000Z-abcdef",
        data_object="20260101T020000.000000Z-abcdef.dump",
        database="app",
        server_version="15",
        tool_version="pg_dump 15",
        created_at=datetime(2026, 1, 1, 2, tzinfo=UTC),
        duration_seconds=1.0,
        size_bytes=10,
        sha256="0" * 64,
        dump_format="custom",
        compression="gzip",
        encryption=None,
        key_id=None,
        key_check=None,
        table_rows={"public.t": 3},
    )


def test_manifest_round_trips() -> None:
    m = _manifest()
    assert Manifest.from_json(m.backup_id, m.to_json()) == m


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{not json", b'{"format_version": 1}', b'{"format_version": 99}']
)
def test_unreadable_manifest_is_corruption(raw: bytes) -> None:
    with pytest.raises(CorruptBackupError, match="manifest unreadable"):
        Manifest.from_json("20260101T020000.000000Z-abcdef", raw)


def test_manifest_of_another_backup_is_rejected() -> None:
    with pytest.raises(CorruptBackupError, match="do not match"):
        Manifest.from_json("20260101T020000.000000Z-000000", _manifest().to_json())


# -- retention (PT-INFRA-02.1) -------------------------------------------------------------
NOW = datetime(2026, 6, 1, tzinfo=UTC)
items_strategy = st.lists(
    st.tuples(
        st.integers(0, 90 * 24),  # age in hours
        st.sampled_from(["verified", "unverified", "corrupt"]),
    ),
    max_size=25,
)


@pytest.mark.req("PT-INFRA-02.1")
@settings(max_examples=300, deadline=None)
@given(raw=items_strategy, retention_days=st.integers(0, 60), min_keep=st.integers(1, 6))
def test_retention_keeps_young_minimum_and_newest_verified(
    raw: list[tuple[int, str]], retention_days: int, min_keep: int
) -> None:
    items = [
        RetentionItem(f"b{i:03d}", NOW - timedelta(hours=age), state)  # type: ignore[arg-type]
        for i, (age, state) in enumerate(raw)
    ]
    plan = plan_retention(items, NOW, retention_days, min_keep)
    keep, delete = set(plan.keep), set(plan.delete)
    assert keep | delete == {i.backup_id for i in items} and not keep & delete
    cutoff = NOW - timedelta(days=retention_days)
    # every backup younger than the retention period is kept
    assert all(i.backup_id in keep for i in items if i.created_at > cutoff)
    # at least the minimum number of usable backups is kept
    usable = [i for i in items if i.state != "corrupt"]
    assert len([i for i in usable if i.backup_id in keep]) >= min(min_keep, len(usable))
    # the newest verified backup is never deleted
    verified = [i for i in items if i.state == "verified"]
    if verified:
        newest = max(verified, key=lambda i: (i.created_at, i.backup_id))
        assert newest.backup_id in keep
    # and nothing is kept without a reason
    assert set(plan.why_kept) == keep


def test_retention_deletes_old_beyond_the_minimum() -> None:
    items = [RetentionItem(f"b{d}", NOW - timedelta(days=d), "unverified") for d in (1, 40, 50, 60)]
    plan = plan_retention(items, NOW, 30, 2)
    assert plan.keep == ("b1", "b40") and plan.delete == ("b50", "b60")


# -- schedule (UT-INFRA-02.3) --------------------------------------------------------------
class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.req("UT-INFRA-02.3")
def test_schedule_runs_on_slot_and_catches_up_once() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 1, 59, tzinfo=UTC))
    runs: list[datetime] = []
    sched = BackupScheduler(
        "0 2 * * *",
        lambda: runs.append(clock.now),
        clock=clock,
        last_run=datetime(2025, 12, 31, 2, tzinfo=UTC),
    )
    assert sched.tick() == "not_due"
    clock.now = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert sched.tick() == "ran"
    assert sched.tick() == "not_due"
    # the sidecar was down for three nights: one catch-up run, not three
    clock.now = datetime(2026, 1, 4, 9, 30, tzinfo=UTC)
    assert [sched.tick() for _ in range(5)] == ["ran"] + ["not_due"] * 4
    assert sched.last_slot == datetime(2026, 1, 4, 2, tzinfo=UTC)
    assert len(runs) == 2
    assert sched.seconds_until_next() == pytest.approx(16.5 * 3600)


@pytest.mark.req("UT-INFRA-02.3")
def test_schedule_first_start_without_backups_runs_once() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, tzinfo=UTC))
    runs: list[int] = []
    sched = BackupScheduler("*/15 * * * *", lambda: runs.append(1), clock=clock)
    assert [sched.tick(), sched.tick()] == ["ran", "not_due"]
    clock.now += timedelta(minutes=15)
    assert sched.tick() == "ran"
    assert len(runs) == 2


@pytest.mark.req("UT-INFRA-02.3")
def test_schedule_runs_never_overlap() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 2, tzinfo=UTC))
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow_job() -> None:
        runs.append(1)
        started.set()
        release.wait(10)

    sched = BackupScheduler("* * * * *", slow_job, clock=clock)
    worker = threading.Thread(target=sched.tick)
    worker.start()
    assert started.wait(10)
    clock.now += timedelta(minutes=1)  # the next slot arrives while the first run goes on
    assert sched.tick() == "busy"
    release.set()
    worker.join(10)
    assert runs == [1]
    assert sched.tick() == "ran"


@pytest.mark.req("UT-INFRA-02.3")
def test_failing_job_is_not_retried_in_a_burst() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 2, tzinfo=UTC))
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("disk full")

    sched = BackupScheduler("0 2 * * *", broken, clock=clock)
    assert [sched.tick(), sched.tick(), sched.tick()] == ["failed", "not_due", "not_due"]
    assert calls == [1]


def test_bad_schedule_is_rejected() -> None:
    with pytest.raises(ConfigError, match="BACKUP_SCHEDULE: got '61 \\* \\* \\* \\*'"):
        BackupScheduler("61 * * * *", lambda: None)


# -- overlapping runs ----------------------------------------------------------------------
@pytest.mark.req("UT-INFRA-02.3")
def test_backup_runs_never_overlap_across_managers(tmp_path: Path) -> None:
    """The in-process lock and the file lock (another process, same destination) both hold."""
    settings, dsn = BackupSettings(), "postgresql://app:pw-123@127.0.0.1:1/app"
    first = BackupManager(settings, LocalStorage(tmp_path), database_url=dsn)
    other = BackupManager(settings, LocalStorage(tmp_path), database_url=dsn)  # another process
    with first.run_lock():
        same = first.create_backup()
        cross = other.create_backup()
    assert same.status == cross.status == "failed"
    assert "in progress in this process" in same.reason
    assert cross.reason.startswith("another backup run holds")
    assert "pw-123" not in same.reason + cross.reason
    assert os.listdir(tmp_path) == []


@pytest.mark.req("UT-INFRA-02.3")
def test_schedule_stats_count_outcomes_a_failed_result_and_a_raising_job_alike() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 2, tzinfo=UTC))
    results: list[object] = [
        BackupOutcome("b1", clock.now, 1234, "success", "/backups/b1.dump"),
        BackupOutcome("b2", clock.now, 0, "failed", "/backups/b2.dump", "pg_dump exited 1"),
    ]

    def job() -> object:
        if not results:
            raise OSError("disk full")
        return results.pop(0)

    sched = BackupScheduler("* * * * *", job, clock=clock)
    outcomes = []
    for _ in range(3):
        outcomes.append(sched.tick())
        clock.now += timedelta(minutes=1)
    assert outcomes == ["ran", "failed", "failed"]
    stats = sched.stats()
    assert (stats.successes, stats.failures, stats.last_size) == (1, 2, 1234)
    assert stats.last_success == datetime(2026, 1, 1, 2, tzinfo=UTC).timestamp()
    assert stats.next_run == datetime(2026, 1, 1, 2, 4, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:p%40ss@127.0.0.1:5433/db?sslmode=disable&application_name=a%20b",
        "postgres://u@h/d",
        "host=/tmp port=5 dbname=x user=y password='a b\\'c'",
        "dbname='a b' user=o\\'k options='-c x=\\\\y'",
        "postgresql://h1:5432,h2:5433/db",  # multi-host: left to libpq
    ],
)
def test_split_dsn_without_psycopg_means_what_libpq_reads(dsn: str) -> None:
    """pg_dump's conninfo is built without psycopg (so `backup create` can start it first);
    libpq must read it as the same keywords, minus the password."""
    from psycopg.conninfo import conninfo_to_dict

    conninfo, password, _ = split_dsn(dsn)
    expected = conninfo_to_dict(dsn)
    assert password == expected.pop("password", None)
    assert conninfo_to_dict(conninfo) == expected
