"""Read routing benchmarks: replica reads, the read-your-writes cost, failover to the primary.

    .venv/bin/python -m bench.bench_read_routing [--rounds 200] [--repeats 3] [--kills 5]

Starts its own PostgreSQL 15 primary and hot standby (tests/servers.py), compares each pair
in short alternating rounds (bench_pool_cache.compare: median of the paired ratios), all
pairs once per repeat (the spread of the repeats is printed: the machine is noisy), then
SIGKILLs the standby under read load several times (`--kills 0`: not at all) and reports how
long reads took to be served by the primary, and how long after the standby's restart they
returned to it. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
import uuid

from bench.bench_pool_cache import compare, print_table
from runtime.database import DatabaseManager, DatabasePool
from runtime.settings import load_settings
from tests.servers import PostgresServer, StandbyServer


def make_pool(primary: PostgresServer, replicas: list[str], interval: float = 0.1) -> DatabasePool:
    settings = load_settings(
        env={
            "DATABASE_URL": primary.dsn,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_REPLICA_URLS": ",".join(replicas),
            "DB_POOL_SIZE": "4",
            "DB_POOL_TIMEOUT": "5",
            "DB_REPLICA_CHECK_INTERVAL": str(interval),
        }
    )
    return DatabaseManager(settings, name=f"bench-{uuid.uuid4().hex[:6]}").create_connection_pool()


def sigkill(server: PostgresServer) -> float:
    """SIGKILL the postmaster and its children at once; the moment it happened."""
    pid = server.postmaster_pid()
    assert pid is not None
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    victims = [pid, *map(int, out.split())]
    killed = time.monotonic()
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    server.kill9()  # waits for them to be gone and clears the stale pid and lock files
    return killed


def failover(primary: PostgresServer, standby: StandbyServer, kills: int) -> list[list[float]]:
    """[moved to primary (s), back on the replica after start (s), errors, worst read (s)]."""
    pool = make_pool(primary, [standby.dsn])
    stop = threading.Event()
    reads: list[tuple[float, float, bool]] = []  # (started, finished, on replica)
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                (row,) = pool.execute("SELECT pg_is_in_recovery()", readonly=True)
                reads.append((started, time.monotonic(), bool(row[0])))
            except BaseException as exc:
                errors.append(exc)

    workers = [threading.Thread(target=reader) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = []
    try:
        for _ in range(kills):
            while not any(r for _, _, r in reads[-20:]):
                time.sleep(0.01)
            time.sleep(0.3)
            before = len(errors)
            killed = sigkill(standby)
            time.sleep(0.5)
            moved = min(done for _, done, r in reads if done > killed and not r) - killed
            worst = max(done - start for start, done, _ in reads if done > killed - 0.5)
            standby.start()
            up = time.monotonic()
            while not any(r for _, done, r in reads if done > up):
                time.sleep(0.005)
            back = min(done for _, done, r in reads if done > up and r) - up
            results.append([moved, back, float(len(errors) - before), worst])
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    primary = PostgresServer()
    primary.enable_replication()
    standby = StandbyServer(primary)
    rows: list[tuple[str, str, str, str, str]] = []
    runs: list[list[float]] = []
    try:
        routed = make_pool(primary, [standby.dsn], interval=1.0)
        plain = make_pool(primary, [])
        for pool in (routed, plain):
            pool.execute("CREATE TABLE IF NOT EXISTS bench (id serial PRIMARY KEY, v int)")
        standby.wait_caught_up()

        def replica_read() -> object:
            return routed.execute("SELECT 1", readonly=True)

        def primary_read() -> object:
            return plain.execute("SELECT 1")

        def replica_block() -> object:
            return routed.run(lambda conn: conn.execute("SELECT 1").fetchall(), readonly=True)

        def primary_block() -> object:
            return plain.run(lambda conn: conn.execute("SELECT 1").fetchall())

        def routed_write() -> object:
            return routed.execute("INSERT INTO bench (v) VALUES (1)")

        def plain_write() -> object:
            return plain.execute("INSERT INTO bench (v) VALUES (1)")

        def routed_write_then_read() -> object:
            routed.execute("INSERT INTO bench (v) VALUES (1)")
            return routed.execute("SELECT 1", readonly=True)

        def plain_write_then_read() -> object:
            plain.execute("INSERT INTO bench (v) VALUES (1)")
            return plain.execute("SELECT 1")

        pairs = [
            (
                "read on the replica: execute(SELECT 1, readonly=True)",
                "primary, pool without replicas: execute(SELECT 1)",
                replica_read,
                primary_read,
                args.rounds,
            ),
            (
                "read block on the replica: run(SELECT 1, readonly=True)",
                "primary, pool without replicas: run(SELECT 1)",
                replica_block,
                primary_block,
                args.rounds,
            ),
            (
                "write, pool with a replica: execute(INSERT)",
                "same INSERT, pool without replicas",
                routed_write,
                plain_write,
                args.rounds,
            ),
            (
                "INSERT then read at once (readonly=True)",
                "INSERT then read, pool without replicas",
                routed_write_then_read,
                plain_write_then_read,
                args.rounds // 4,
            ),
        ]
        results: list[list[tuple[float, float, float]]] = [[] for _ in pairs]
        on_replica = behind = 0
        for _ in range(args.repeats):
            for (_, _, ours, theirs, rounds), out in zip(pairs, results, strict=True):
                before = routed.read_stats()
                out.append(compare(ours, theirs, 10, rounds))
                if ours is routed_write_then_read:
                    after = routed.read_stats()
                    on_replica += after.replica_reads - before.replica_reads
                    behind += after.primary_reads.get("behind_write", 0)
                    behind -= before.primary_reads.get("behind_write", 0)
        for (label, base, _, _, _), out in zip(pairs, results, strict=True):
            mine, baseline, ratio = (statistics.median(r[i] for r in out) for i in range(3))
            each = ", ".join(f"{r[2]:.3f}" for r in out)
            rows.append((label, f"{mine:.1f}", f"{base}: {baseline:.1f}", f"{ratio:.3f}", each))
        routed.close()
        plain.close()
        if args.kills > 0:
            runs = failover(primary, standby, args.kills)
    finally:
        standby.close()
        primary.close()

    header = ("measurement", "runtime (µs/op)", "baseline (µs/op)", "ratio", "each repeat")
    print_table(header, rows)
    share = on_replica / max(1, on_replica + behind)
    print(
        f"\nReads right after a write: {on_replica} on the replica, {behind} on the primary "
        f"(behind_write) — {share:.0%} on the replica."
    )
    if not runs:
        return
    print()
    kill_rows = []
    for i, label in enumerate(
        [
            "reads served by the primary after (ms)",
            "reads back on the replica after its start (ms)",
            "errors seen by callers",
            "slowest read around the kill (ms)",
        ]
    ):
        values = [run[i] * (1 if i == 2 else 1000) for run in runs]
        fmt = "{:.0f}" if i == 2 else "{:.1f}"
        kill_rows.append(
            (
                label,
                ", ".join(fmt.format(v) for v in values),
                fmt.format(statistics.median(values)),
                fmt.format(max(values)),
            )
        )
    print_table(("standby SIGKILL under 4 reading threads", "runs", "median", "max"), kill_rows)


if __name__ == "__main__":
    main()
