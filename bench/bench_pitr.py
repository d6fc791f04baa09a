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
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from bench.bench_backup import db_size, pgbench_init, save_results, timed
from runtime.backup import BackupManager, BackupSettings, LocalStorage
from tests.pitr_harness import ArchivingCluster, TickWriter
from tests.servers import free_port


def raw_pg_dump(cluster: ArchivingCluster, out: Path) -> None:
    subprocess.run(
        [str(cluster.server.bindir / "pg_dump"), "-Fc", "-f", str(out), cluster.server.dsn],
        check=True,
        capture_output=True,
    )


def rpo(cluster: ArchivingCluster) -> dict[str, float]:
    writer = TickWriter(cluster)
    time.sleep(5)
    killed = time.time()
    cluster.server.kill9()
    writer.stop()
    shutil.rmtree(cluster.server.datadir)
    seconds = timed(cluster.ok, "restore", "--latest", "--start")
    present = writer.present()
    committed = writer.committed
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
        pgbench_init(cluster.server, args.scale)
        cluster.switch_and_wait_archived(timeout=600)
        size = db_size(cluster.server)
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
        save_results("pitr", result)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
