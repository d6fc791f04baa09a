"""A restore drill's RTO for a ~1 GB database, and the primary's write rate during it.

    .venv/bin/python -m bench.bench_pitr_drill [--scale 65]

Starts its own archiving PostgreSQL 15 (tests/pitr_harness.py, archive_timeout 1 s), fills it
with pgbench (scale 65 ≈ 1 GB), takes a full backup, starts the heartbeat and a writer that
commits one row every 20 ms, measures the writer's rate for 20 s, then runs
`python -m runtime pitr drill --json` once and measures the rate during it. One run (it is
long); the RTO, the restore throughput and the ratio of the two write rates are the result.
Writes bench/results/pitr-drill-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from bench.bench_backup import db_size, pgbench_init, save_results
from runtime.pitr.heartbeat import Heartbeat
from runtime.settings import load_settings
from tests.pitr_harness import ArchivingCluster, TickWriter
from tests.servers import free_port


def _rate(writer: TickWriter, start: float, end: float) -> float:
    return sum(1 for _, at in writer.committed if start <= at < end) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=65)
    args = parser.parse_args()
    cluster = ArchivingCluster(archive_timeout=1)
    cluster.env.update(
        PITR_DRILL_SCRATCH=str(cluster.root / "scratch"),
        PITR_DRILL_PORT=str(free_port()),
        PITR_DRILL_MARGIN="60",
    )
    settings = load_settings({}, env=cluster.env, require=()).pitr
    assert settings is not None
    heartbeat = Heartbeat(settings, interval=1)
    try:
        cluster.ok("check")
        pgbench_init(cluster.server, args.scale)
        cluster.switch_and_wait_archived(timeout=600)
        size = db_size(cluster.server)
        cluster.ok("backup", "--type", "full")
        heartbeat.start()
        writer = TickWriter(cluster)
        time.sleep(2)
        quiet = time.time()
        time.sleep(20)
        base = _rate(writer, quiet, time.time())
        began = time.time()
        done = cluster.pitr("drill", "--json", timeout=3600)
        during = _rate(writer, began, time.time())
        writer.stop()
        assert done.returncode == 0, done.stderr
        drill = json.loads(done.stdout)
        result = {
            "scale": args.scale,
            "db_bytes": size,
            "rto_seconds": drill["rto_seconds"],
            "rpo_seconds": drill["rpo_seconds"],
            "restore_seconds": drill["restore_seconds"],
            "restored_bytes": drill["restored_bytes"],
            "throughput_bytes_per_second": drill["throughput_bytes_per_second"],
            "drill_seconds": drill["duration_seconds"],
            "commits_per_second_without_drill": base,
            "commits_per_second_during_drill": during,
            "write_rate_during_vs_without": during / base,
            "load_average": os.getloadavg()[0],
            "machine": platform.platform(),
        }
        for key, value in result.items():
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
        save_results("pitr-drill", result)
    finally:
        heartbeat.stop()
        cluster.close()


if __name__ == "__main__":
    main()
