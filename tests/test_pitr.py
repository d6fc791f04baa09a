"""Point-in-time recovery with real PostgreSQL 15 and real pgBackRest 2.45.

Every test drives `python -m runtime pitr ...` as a subprocess, exactly as
docs/runbook-data-tier.md shows; repositories are encrypted (aes-256-cbc), on a local path or
on moto's S3 server behind nginx (pgBackRest speaks only HTTPS to S3).
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.pitr import PitrCollector, PitrState, run_backup
from runtime.settings import load_settings
from tests.pitr_harness import CIPHER_PASS, S3_SECRET, ArchivingCluster, TickWriter
from tests.servers import TlsProxy, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_https(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """moto behind nginx with a self-signed certificate: PITR_S3_* for a fresh bucket."""
    proxy = TlsProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    try:
        yield {"PITR_S3_ENDPOINT": "127.0.0.1", "PITR_S3_PORT": str(proxy.port)}
    finally:
        proxy.close()


def _bucket(endpoint: str) -> str:
    name = f"pitr-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["posix", "s3"])
def cluster(request: pytest.FixtureRequest) -> Iterator[ArchivingCluster]:
    s3 = None
    if request.param == "s3":
        s3 = dict(request.getfixturevalue("s3_https"))
        s3["PITR_S3_BUCKET"] = _bucket(request.getfixturevalue("moto_endpoint"))
        s3["PITR_S3_REGION"] = "us-east-1"
    made = ArchivingCluster(s3=s3)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def posix_cluster() -> Iterator[ArchivingCluster]:
    made = ArchivingCluster(archive_timeout=1)
    try:
        yield made
    finally:
        made.close()


def commit_batches(cluster: ArchivingCluster, batches: int = 3) -> list[datetime]:
    """Insert batches 1..n of 100 rows, one transaction each; the time after each commit."""
    times = []
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS batch (batch int, n int)")
        for number in range(1, batches + 1):
            conn.execute("INSERT INTO batch SELECT %s, g FROM generate_series(1, 100) g", (number,))
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            times.append(row[0])
            time.sleep(1.1)
    return times


def batches(cluster: ArchivingCluster, port: int | None = None) -> dict[int, int]:
    with cluster.connect(port) as conn:
        rows = conn.execute("SELECT batch, count(*) FROM batch GROUP BY 1 ORDER BY 1").fetchall()
    return {int(b): int(n) for b, n in rows}


def test_restore_to_a_time_between_two_batches_keeps_exactly_the_batches_before_it(
    cluster: ArchivingCluster,
) -> None:
    assert "archiving works" in cluster.ok("check")
    cluster.ok("backup", "--type", "full")
    times = commit_batches(cluster)
    cluster.switch_and_wait_archived()
    target = times[1] + (times[2] - times[1]) / 2

    info = json.loads(cluster.ok("info", "--json"))
    assert [b["type"] for b in info["backups"]] == ["full"]
    assert info["cipher"] == "aes-256-cbc"
    assert datetime.fromisoformat(info["earliest_restorable"]) <= times[0]
    assert info["last_archived_wal"] <= info["wal_max"]

    restored, port = cluster.restored_dir("restored-pitr"), free_port()
    out = cluster.ok(
        "restore", "--target-time", target.isoformat(), "--pg-data", str(restored),
        "--start", "--port", str(port),
    )  # fmt: skip
    assert "recovery stopping before commit" in out
    assert batches(cluster, port) == {1: 100, 2: 100}
    # the copy was restored with archiving off: the repository saw no new timeline
    assert not any(name.endswith(".history") for name in cluster.repo_files())


def test_restore_refuses_a_running_or_non_empty_data_directory(
    posix_cluster: ArchivingCluster,
) -> None:
    c = posix_cluster
    running = c.pitr("restore", "--latest", "--pg-data", str(c.server.datadir))
    assert running.returncode == 2
    assert "running PostgreSQL" in running.stderr and str(c.server.datadir) in running.stderr
    busy = c.restored_dir("restored-busy")
    busy.mkdir()
    (busy / "keep.txt").write_text("precious")
    refused = c.pitr("restore", "--latest", "--pg-data", str(busy))
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert (busy / "keep.txt").read_text() == "precious"
    naive = c.pitr("restore", "--target-time", "2026-11-27 10:00:00", "--pg-data", str(busy))
    assert naive.returncode == 2
    assert naive.stderr.startswith("error: --target-time: got '2026-11-27 10:00:00'; allowed:")


@pytest.mark.req("UT-INFRA-04.3")
def test_after_losing_the_data_volume_restore_latest_keeps_what_was_committed_two_seconds_before(
    posix_cluster: ArchivingCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = posix_cluster
    c.ok("check")
    c.ok("backup", "--type", "full")
    writer = TickWriter(c)
    time.sleep(6)
    killed_at = time.time()
    c.server.kill9()  # the volume is gone: the server, its data directory, its WAL
    writer.stop()
    shutil.rmtree(c.server.datadir)

    # the runbook: restore the newest state into the (empty) data directory and start it
    out = c.ok("restore", "--latest", "--start")
    assert "recovered to the end of the archive" in out
    present = writer.present()
    committed = writer.committed
    old_enough = {n for n, at in committed if at < killed_at - 2}
    assert old_enough and old_enough <= present
    lost = [at for n, at in committed if n not in present]
    rpo = killed_at - min(lost) if lost else 0.0
    with capsys.disabled():
        print(f"\nRPO (archive_timeout=1 s): {rpo:.2f} s of commits lost ({len(lost)} rows)")
    # archiving goes on from the restored server (same path, archive-mode preserved)
    assert "archiving works" in c.ok("check")


def test_point_in_time_before_a_bad_change_restores_in_place_with_delta(
    posix_cluster: ArchivingCluster,
) -> None:
    c = posix_cluster
    c.ok("check")
    c.ok("backup", "--type", "full")
    times = commit_batches(c, 2)
    with c.connect() as conn:
        conn.execute("DELETE FROM batch")  # the bad change
    c.switch_and_wait_archived()
    c.server.stop()
    c.ok("restore", "--target-time", times[1].isoformat(), "--delta", "--start")
    assert batches(c) == {1: 100, 2: 100}
    assert "archiving works" in c.ok("check")


def _archive_segments(cluster: ArchivingCluster) -> list[Path]:
    return sorted(
        p
        for p in (cluster.root / "repo" / "archive").rglob("0000*")
        if p.is_file() and len(p.name.split("-")[0]) == 24
    )


def test_a_missing_wal_segment_is_reported_never_a_silent_partial_restore(
    posix_cluster: ArchivingCluster,
) -> None:
    c = posix_cluster
    c.ok("check")
    c.ok("backup", "--type", "full")
    commit_batches(c, 1)
    c.switch_and_wait_archived()
    hole = _archive_segments(c)[-1]  # after the backup, with more WAL archived behind it
    with c.connect() as conn:
        conn.execute("INSERT INTO batch SELECT 2, g FROM generate_series(1, 100) g")
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        after = row[0]
    c.switch_and_wait_archived()
    hole.unlink()

    latest = c.pitr("restore", "--latest", "--pg-data", str(c.restored_dir("restored-a")),
                    "--start", "--port", str(free_port()))  # fmt: skip
    assert latest.returncode == 3, latest.stderr
    assert (
        "missing or unreadable" in latest.stderr
        and "restored to the last consistent" in latest.stderr
    )

    timed = c.pitr("restore", "--target-time", (after + timedelta(seconds=1)).isoformat(),
                   "--pg-data", str(c.restored_dir("restored-b")), "--start",
                   "--port", str(free_port()))  # fmt: skip
    assert timed.returncode == 1, timed.stderr
    assert "recovery ended before configured recovery target was reached" in timed.stderr


def test_a_corrupted_backup_file_fails_the_restore_naming_the_file(
    posix_cluster: ArchivingCluster,
) -> None:
    c = posix_cluster
    c.ok("check")
    c.ok("backup", "--type", "full")
    stored = max(
        (c.root / "repo" / "backup").rglob("pg_data/base/*/*"), key=lambda p: p.stat().st_size
    )
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    target = c.restored_dir("restored-corrupt")
    done = c.pitr("restore", "--latest", "--pg-data", str(target))
    assert done.returncode == 1
    assert done.stderr.startswith("error: pgbackrest restore failed:")
    assert "do not start it" in done.stderr
    relative = stored.relative_to(c.root / "repo" / "backup" / "main")
    assert f"pgbackrest verify found: invalid checksum '{relative}'" in done.stderr
    assert CIPHER_PASS not in done.stderr + done.stdout


def _samples(state: PitrState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(PitrCollector(state))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_run_backup_feeds_the_backup_metrics_success_and_failure(
    posix_cluster: ArchivingCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = posix_cluster
    c.ok("check")
    settings = load_settings({}, env=c.env, require=()).pitr
    assert settings is not None
    state = PitrState()
    before = time.time()
    assert run_backup(settings, "full", state) == 0
    samples = _samples(state)
    stamp = samples[("runtime_pitr_last_backup_timestamp_seconds", (("type", "full"),))]
    assert before < stamp <= time.time()
    assert samples[("runtime_pitr_last_backup_success", ())] == 1
    assert samples[("runtime_pitr_backup_duration_seconds", (("type", "full"),))] > 0
    c.server.stop()
    assert run_backup(settings, "diff", state) == 1
    assert "pgbackrest backup failed" in capsys.readouterr().err
    samples = _samples(state)
    assert samples[("runtime_pitr_last_backup_success", ())] == 0
    assert samples[("runtime_pitr_backup_failures_total", ())] == 1
    assert samples[("runtime_pitr_last_backup_timestamp_seconds", (("type", "full"),))] == stamp


def test_secrets_stay_in_the_config_file(cluster: ArchivingCluster) -> None:
    cluster.ok("check")
    mode = cluster.config.stat().st_mode & 0o777
    assert mode == 0o600
    text = cluster.config.read_text()
    assert f"repo1-cipher-pass={CIPHER_PASS}" in text
    for secret in (CIPHER_PASS, S3_SECRET):
        assert secret not in json.dumps(cluster.env)  # passed as files, not variables
    assert all(
        CIPHER_PASS not in p.read_text(errors="replace") for p in (cluster.root / "log").glob("*")
    )


def test_check_runs_while_archive_push_holds_its_lock(posix_cluster: ArchivingCluster) -> None:
    """archive-push (async, as in the stack) holds `<stanza>-archive.lock` while it pushes;
    stanza-create wants every lock and failed with [050]. Held here for the whole check."""
    c = posix_cluster
    c.ok("check")  # creates the stanza
    lock = c.root / "lock" / "main-archive.lock"
    lock.touch()
    postgres = pwd.getpwnam("postgres")
    os.chown(lock, postgres.pw_uid, postgres.pw_gid)
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = c.pitr("check")
    assert done.returncode == 0, done.stderr
    assert "archiving works" in done.stdout


def test_a_refused_login_is_reported_at_once_never_as_still_in_recovery(
    posix_cluster: ArchivingCluster,
) -> None:
    """Restored and started, the copy is promoted at once, but its pg_hba.conf refuses the
    role the command logs in as: `restore --start` says so instead of waiting out --timeout,
    and `info` says the login was refused, not that the server is down."""
    c = posix_cluster
    c.ok("check")
    c.ok("backup", "--type", "full")
    c.env["PITR_PG_USER"] = "not_a_role"
    restored = c.restored_dir("restored-login")
    done = c.pitr("restore", "--latest", "--pg-data", str(restored), "--start",
                  "--port", str(free_port()), "--timeout", "120")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "refuses the login as 'not_a_role'" in done.stderr, done.stderr
    assert 'role "not_a_role" does not exist' in done.stderr
    assert "still in recovery" not in done.stderr

    info = c.pitr("info")
    assert info.returncode == 0, info.stderr
    assert "refuses the login as 'not_a_role'" in info.stdout and "server down" not in info.stdout
    as_json = json.loads(c.ok("info", "--json"))
    assert as_json["last_archived_wal"] is None
    assert "refuses the login" in as_json["last_archived_unknown_because"]
