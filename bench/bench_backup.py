"""Backup speed as ratios against raw `pg_dump -Fc`, measured in one run on one server.

    .venv/bin/python -m bench.bench_backup [--scale 20] [--repeats 3]

Starts its own PostgreSQL (tests/servers.py), fills it with pgbench, then alternates raw
`pg_dump -Fc -f file` with `BackupManager.create_backup()` (dump, SHA-256, store locally,
fsync) so both see the same cache state and machine load; reports medians and ratios, the
deep-verify time, and the database size up to which a backup finishes in < 5 s. Wall times
on a shared 2-core machine are noise; ratios are the result. Writes bench/results/*.json.

    .venv/bin/python -m bench.bench_backup --process [--scale 20] [--repeats 3]

compares whole processes instead: `python -m runtime backup create` (interpreter start,
imports, settings, dump, checksum, store) against a raw `pg_dump -Fc -f file` process.
`--against DIR` (another checkout, e.g. a `git worktree` of the previous commit) adds that
checkout's `backup create` to every round, so old and new code meet the same machine load.
It also reports how long after launch each checkout's `backup create` spawns `pg_dump`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from runtime.backup import BackupManager, BackupSettings, LocalStorage
from runtime.backup.dump import PgTools, dump_argv
from runtime.settings import Secret
from tests.servers import PostgresServer

KEY = bytes(range(32))


def pgbench_init(server: PostgresServer, scale: int, partitions: int = 0) -> None:
    server.pgbench_init(scale=scale, partitions=partitions)
    server.psql("VACUUM ANALYZE", database=server.database)


def db_size(server: PostgresServer) -> int:
    with psycopg.connect(server.dsn) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


def timed(fn: Callable[..., object], *args: object) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def save_results(prefix: str, results: dict[str, object]) -> Path:
    """bench/results/<prefix>-<local time>.json, the file docs/benchmarks.md quotes."""
    out = Path(__file__).parent / "results" / f"{prefix}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    return out


def raw_pg_dump(server: PostgresServer, out: Path, extra: tuple[str, ...] = ()) -> None:
    argv, password = dump_argv(PgTools.find(), server.dsn, None, None)
    argv = [a for a in argv if a != "--no-sync"]  # raw pg_dump -Fc -f: its default fsync
    subprocess.run(
        [*argv, *extra, f"--file={out}"],
        env={**os.environ, "PGPASSWORD": password or ""},
        check=True,
    )
    out.unlink()


def manager(server: PostgresServer, root: Path, **kw: object) -> BackupManager:
    settings = BackupSettings(**kw)  # type: ignore[arg-type]
    return BackupManager(settings, LocalStorage(root), database_url=server.dsn)


def create(mgr: BackupManager) -> str:
    outcome = mgr.create_backup()
    assert outcome.status == "success", outcome.reason
    return outcome.backup_id


def wipe(root: Path) -> None:
    for p in root.iterdir():
        p.unlink()


ENC: dict[str, object] = {
    "encryption_key": Secret(base64.b64encode(KEY).decode()),
    "encryption_key_id": "bench",
}
MAIN_VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "encrypted": ENC,
    "plain_with_row_counts": {"count_rows": True},
    "fast_z1": {"compress_level": 1},
    "parallel_j2": {"jobs": 2},
    "parallel_j2_z1": {"jobs": 2, "compress_level": 1},
}
PARTITIONED_VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "fast_z1": {"compress_level": 1},
    "parallel_j2": {"jobs": 2},
    "parallel_j2_z1": {"jobs": 2, "compress_level": 1},
    "parallel_j2_z1_encrypted": {"jobs": 2, "compress_level": 1, **ENC},
}


def race(
    server: PostgresServer, work: Path, repeats: int, variants: dict[str, dict[str, object]]
) -> tuple[dict[str, object], dict[str, BackupManager]]:
    """Interleaved rounds: raw pg_dump -Fc, then each variant of create_backup()."""
    managers = {name: manager(server, work / name, **kw) for name, kw in variants.items()}
    times: dict[str, list[float]] = {"raw": [], **{name: [] for name in variants}}
    sizes: dict[str, int] = {}
    for _ in range(repeats):
        times["raw"].append(timed(lambda: raw_pg_dump(server, work / "raw.dump")))
        for name, mgr in managers.items():
            wipe(work / name)
            times[name].append(timed(lambda m=mgr: create(m)))
            sizes[name] = m_size(work / name)
    medians = {k: statistics.median(v) for k, v in times.items()}
    # Paired: each round's variant over the same round's raw run, then the median of those,
    # so load that drifts between rounds (a shared machine) cancels out.
    paired = {
        f"{k}_vs_raw": round(
            statistics.median(x / r for x, r in zip(v, times["raw"], strict=True)), 3
        )
        for k, v in times.items()
    }
    best = {f"{k}_vs_raw": round(min(v) / min(times["raw"]), 3) for k, v in times.items()}
    result = {
        "median_seconds": medians,
        "ratios": paired,
        "ratios_of_best_runs": best,
        "all_seconds": times,
        "stored_bytes": sizes,
    }
    return result, managers


def verify_times(managers: dict[str, BackupManager], repeats: int) -> dict[str, float]:
    plain, enc = managers["plain"], managers["encrypted"]
    backup_id = plain.list_backups()[0].backup_id
    enc_id = enc.list_backups()[0].backup_id
    verify = [timed(lambda: plain.verify(backup_id)) for _ in range(repeats)]
    deep = [timed(lambda: plain.verify(backup_id, deep=True)) for _ in range(max(1, repeats - 1))]
    return {
        "verify_seconds": statistics.median(verify),
        "deep_verify_seconds": statistics.median(deep),
        "deep_verify_encrypted_seconds": timed(lambda: enc.verify(enc_id, deep=True)),
    }


def size_for(curve: list[dict[str, float]], seconds: float) -> int:
    """Database size at which create_backup takes `seconds`: interpolated between the two
    measured points around it, else extrapolated through the origin from the largest."""
    points = sorted((c["db_bytes"], c["create_backup_seconds"]) for c in curve)
    for (s0, t0), (s1, t1) in itertools.pairwise(points):
        if t0 <= seconds < t1:
            return int(s0 + (s1 - s0) * (seconds - t0) / (t1 - t0))
    size, taken = points[-1]
    return int(size * seconds / taken)


def m_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.iterdir() if ".dump" in p.name)


def process_race(
    server: PostgresServer, work: Path, repeats: int, against: Path | None = None
) -> dict[str, object]:
    """Interleaved rounds of processes: raw `pg_dump -Fc -f`, `backup create`, and with
    `against` the same command run from that other checkout."""
    argv, password = dump_argv(PgTools.find(), server.dsn, None, None)
    raw_argv = [a for a in argv if a != "--no-sync"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "DATABASE_"))}
    cli_env = {**clean, "DATABASE_URL": server.dsn, "BACKUP_DIR": str(work / "cli")}
    (work / "cli").mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "runtime", "backup", "create"]
    root = Path(__file__).resolve().parent.parent
    out = work / "raw.dump"
    raw = [*raw_argv, f"--file={out}"]
    raw_env = {**os.environ, "PGPASSWORD": password or ""}
    raw_times: list[float] = []
    cli_times: list[float] = []
    other_times: list[float] = []

    def run_cli(cwd: Path) -> float:
        wipe(work / "cli")
        return timed(
            lambda: subprocess.run(cli, env=cli_env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        )

    for _ in range(repeats):
        raw_times.append(timed(lambda: subprocess.run(raw, env=raw_env, check=True)))
        out.unlink()
        cli_times.append(run_cli(root))
        if against is not None:
            other_times.append(run_cli(against))

    def paired(times: list[float]) -> list[float]:
        return sorted(round(c / r, 3) for c, r in zip(times, raw_times, strict=True))

    result: dict[str, object] = {
        "raw_pg_dump_seconds": raw_times,
        "backup_create_seconds": cli_times,
        "backup_create_vs_raw": round(statistics.median(paired(cli_times)), 3),
        "backup_create_vs_raw_per_round": paired(cli_times),
    }
    if against is not None:
        result["against"] = str(against)
        result["against_backup_create_seconds"] = other_times
        result["against_vs_raw"] = round(statistics.median(paired(other_times)), 3)
        result["against_vs_raw_per_round"] = paired(other_times)
    result["load_average_after"] = os.getloadavg()
    return result


SPAWN_SPY = """
import subprocess, sys, time
began = float(sys.argv[1])
popen = subprocess.Popen.__init__
spawned = []
def spy(self, args, *rest, **kw):
    if args[0].endswith("pg_dump") and "--version" not in args:
        spawned.append(time.time() - began)
    popen(self, args, *rest, **kw)
subprocess.Popen.__init__ = spy
from runtime.cli import main
code = main(["backup", "create"])
print(f"{spawned[0]:.4f}", file=sys.stderr)
sys.exit(code)
"""


def spawn_offsets(server: PostgresServer, work: Path, repeats: int, against: Path | None) -> object:
    """Seconds from launching `backup create` until it spawns pg_dump: the fixed cost on the
    dump's critical path, which machine load inflates far less than a whole dump's time."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "DATABASE_"))}
    env = {**clean, "DATABASE_URL": server.dsn, "BACKUP_DIR": str(work / "cli")}
    roots = {"this": Path(__file__).resolve().parent.parent}
    if against is not None:
        roots["against"] = against
    found: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(repeats):
        for name, root in roots.items():
            wipe(work / "cli")
            proc = subprocess.run(
                [sys.executable, "-c", SPAWN_SPY, repr(time.time())],
                env=env,
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            )
            found[name].append(float(proc.stderr.split()[-1]))
    return {
        name: {"median": round(statistics.median(v), 3), "all": sorted(round(x, 3) for x in v)}
        for name, v in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale of the big run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sweep", default="1,4,8", help="smaller pgbench scales for the '< 5 s' curve"
    )
    parser.add_argument(
        "--beyond", default="40,60", help="larger scales measured last, to find the 5 s size"
    )
    parser.add_argument(
        "--process", action="store_true", help="only `backup create` vs pg_dump, as processes"
    )
    parser.add_argument(
        "--against", type=Path, help="with --process: also time this checkout's backup create"
    )
    args = parser.parse_args()
    if args.process:
        main_process(args.scale, args.repeats, args.against)
        return
    server = PostgresServer()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    results: dict[str, object] = {
        "command": "python -m bench.bench_backup "
        f"--scale {args.scale} --repeats {args.repeats} --sweep {args.sweep} "
        f"--beyond {args.beyond}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "pg_dump": PgTools.find().version(),
    }
    curve: list[dict[str, float]] = []

    def curve_point(scale: int) -> None:
        pgbench_init(server, scale)
        size = db_size(server)
        mgr = manager(server, work / f"sweep{scale}")
        seconds = statistics.median(timed(lambda: create(mgr)) for _ in range(3))
        curve.append({"scale": scale, "db_bytes": size, "create_backup_seconds": seconds})
        print(f"scale {scale}: {size / 1e6:.0f} MB, create_backup {seconds:.2f}s", flush=True)

    try:
        for scale in [int(s) for s in args.sweep.split(",") if s] + [args.scale]:
            curve_point(scale)
        results["size_curve"] = curve
        # The big database is loaded now (last sweep point): the head-to-head measurement.
        results["db_bytes"] = curve[-1]["db_bytes"]
        main_race, managers = race(server, work / "main", args.repeats, MAIN_VARIANTS)
        results["pgbench"] = main_race
        results.update(verify_times(managers, args.repeats))
        print(json.dumps(main_race["ratios"]), json.dumps(main_race["ratios_of_best_runs"]))
        # Many large tables (pgbench_accounts in 4 partitions): where --jobs can help.
        pgbench_init(server, args.scale, partitions=4)
        results["partitioned_db_bytes"] = db_size(server)
        results["pgbench_partitioned_4"] = race(
            server, work / "part", args.repeats, PARTITIONED_VARIANTS
        )[0]
        for scale in [int(s) for s in args.beyond.split(",") if s]:
            curve_point(scale)
        results["db_bytes_for_5s"] = size_for(curve, 5.0)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    save_results("backup", results)
    print(json.dumps(results, indent=2, default=str))


def main_process(scale: int, repeats: int, against: Path | None = None) -> None:
    server = PostgresServer()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-process-"))
    try:
        pgbench_init(server, scale)
        result: dict[str, object] = {
            "command": f"python -m bench.bench_backup --process --scale {scale} "
            f"--repeats {repeats}" + (f" --against {against}" if against else ""),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
            "load_average_before": os.getloadavg(),
            "db_bytes": db_size(server),
            **process_race(server, work, repeats, against),
        }
        result["pg_dump_spawned_after_seconds"] = spawn_offsets(server, work, repeats, against)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    save_results("backup-process", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
