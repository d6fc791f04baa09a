"""Point-in-time recovery (pgBackRest) against the logical backups, measured in one run.

    .venv/bin/python -m bench.bench_pitr [--scale 65]

Starts its own archiving PostgreSQL 15 (tests/pitr_harness.py: encrypted posix repository,
lz4, process-max 2, archive_timeout 1 s) and fills it with pgbench (scale 65 ≈ 1 GB), then:
- full backup: `python -m runtime pitr backup --type full` vs raw `pg_dump -Fc`;
- restore: `pitr restore --latest --start` into a fresh directory (restore + recovery until
  `pg_is_in_recovery()` is false) vs `BackupManager.restore` of a logical backup of the same
  database into an empty database (`python -m runtime backup restore`'s path);
- RPO: a writer commits every 20 ms, the primary is SIGKILLed and its data directory deleted,
  `pitr restore --latest --start`: the commits missing afterwards are the data lost.
One run each (these are long); the ratios are the result. Writes bench/results/pitr-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from runtime.backup import BackupManager, BackupSettings, LocalStorage
from tests.pitr_harness import ArchivingCluster
from tests.servers import free_port


def timed(fn: Callable[..., object], *args: object) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def db_size(cluster: ArchivingCluster) -> int:
    with cluster.connect() as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


def raw_pg_dump(cluster: ArchivingCluster, out: Path) -> None:
    subprocess.run(
        [str(cluster.server.bindir / "pg_dump"), "-Fc", "-f", str(out), cluster.server.dsn],
        check=True,
        capture_output=True,
    )


def rpo(cluster: ArchivingCluster) -> dict[str, float]:
    committed: list[tuple[int, float]] = []
    stop = threading.Event()

    def writer() -> None:
        with cluster.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS ticks (id int PRIMARY KEY)")
            number = 0
            while not stop.is_set():
                number += 1
                try:
                    conn.execute("INSERT INTO ticks VALUES (%s)", (number,))
                except psycopg.Error:
                    return
                committed.append((number, time.time()))
                time.sleep(0.02)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(5)
    killed = time.time()
    cluster.server.kill9()
    stop.set()
    thread.join(10)
    shutil.rmtree(cluster.server.datadir)
    seconds = timed(cluster.ok, "restore", "--latest", "--start")
    with cluster.connect() as conn:
        present = {int(r[0]) for r in conn.execute("SELECT id FROM ticks").fetchall()}
    lost = [at for n, at in committed if n not in present]
    return {
        "rpo_seconds": killed - min(lost) if lost else 0.0,
        "rows_lost": len(lost),
        "rows_committed": len(committed),
        "last_commit_before_kill_seconds": killed - committed[-1][1],
        "restore_latest_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=65)
    args = parser.parse_args()
    cluster = ArchivingCluster(archive_timeout=1)
    work = cluster.root / "bench"
    work.mkdir()
    try:
        cluster.ok("check")
        began = time.perf_counter()
        cluster.server.pgbench_init(scale=args.scale)
        cluster.server.psql("VACUUM ANALYZE", database=cluster.server.database)
        cluster.switch_and_wait_archived(timeout=600)
        size = db_size(cluster)
        filled = time.perf_counter() - began
        print(f"pgbench scale {args.scale}: {size / 1e6:.0f} MB in {filled:.0f} s")

        full = timed(cluster.ok, "backup", "--type", "full")
        dump = timed(raw_pg_dump, cluster, work / "raw.dump")
        print(f"pgBackRest full backup {full:.2f} s, pg_dump -Fc {dump:.2f} s")

        manager = BackupManager(
            BackupSettings(), LocalStorage(work / "logical"), database_url=cluster.server.dsn
        )
        outcome = manager.create_backup()
        assert outcome.status == "success", outcome.reason
        # PITR first: the logical restore below writes ~1 GB of WAL that --latest would replay
        restored, port = cluster.restored_dir("restored-bench"), free_port()
        pitr = timed(
            cluster.ok, "restore", "--latest", "--pg-data", str(restored), "--start",
            "--port", str(port),
        )  # fmt: skip
        cluster.stop_restored(restored)
        shutil.rmtree(restored)
        empty = cluster.server.create_database()
        logical = timed(manager.restore, outcome.backup_id, empty)
        print(f"PITR restore + recovery {pitr:.2f} s, logical restore {logical:.2f} s")

        loss = rpo(cluster)
        print(f"RPO {loss['rpo_seconds']:.2f} s ({loss['rows_lost']} rows)")
        result = {
            "scale": args.scale,
            "db_bytes": size,
            "pgbackrest_full_seconds": full,
            "pg_dump_fc_seconds": dump,
            "full_vs_pg_dump": full / dump,
            "pitr_restore_seconds": pitr,
            "logical_restore_seconds": logical,
            "pitr_vs_logical_restore": pitr / logical,
            **loss,
            "load_average": os.getloadavg()[0],
            "machine": platform.platform(),
        }
        for key, value in result.items():
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
        out = Path(__file__).parent / "results" / f"pitr-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
