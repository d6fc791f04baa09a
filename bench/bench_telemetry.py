"""What tracing costs the hot paths: cache and near-cache hits and pool queries, tracing off /
sampling 0 / 1.0.

    .venv/bin/python -m bench.bench_telemetry [--rounds 300]

Starts its own PostgreSQL and Redis (tests/servers.py) and an OTLP/HTTP receiver
(tests/otlp_receiver.py), then runs one child process per mode (a process installs its
tracer provider once): `off` (no endpoint: the API's no-op tracer), `ratio0` (the SDK
installed, sampling 0) and `ratio1` (every span recorded and exported). In each child, each
operation is compared with the same operation without its spans (the code as it was before
tracing: `span_free_get_or_load` below, `_connection`, `run`), alternating round by round;
the ratio of the medians is the spans' cost. Prints a Markdown section for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import INVALID_SPAN

from bench.bench_pool_cache import compare
from runtime.cache import CacheClient, _check_ttl

MODES = {"off": None, "ratio0": 0.0, "ratio1": 1.0}


def span_free_get_or_load(
    client: CacheClient, key: str, loader: Callable[[], object], ttl: int | None = None
) -> object:
    """`CacheClient.get_or_load` with its span lines taken out: the same calls, same depth."""
    if ttl is not None:
        _check_ttl(ttl)
    found, value = client._near_hit(key)
    if found:
        return value
    return client._from_redis(key, loader, ttl, INVALID_SPAN)


def child(mode: str, dsn: str, url: str, otlp: str, rounds: int) -> dict[str, Any]:
    from runtime.cache import RedisManager
    from runtime.database import DatabaseManager
    from runtime.settings import load_settings
    from runtime.telemetry.spans import would_record
    from runtime.telemetry.tracing import configure_tracing

    ratio = MODES[mode]
    config: dict[str, Any] = {"database": {"dsn": dsn}, "redis": {"url": url}}
    if ratio is not None:
        config["telemetry"] = {"otlp_endpoint": otlp, "sampling_ratio": ratio}
    settings = load_settings(config, env={"DB_POOL_SIZE": "2"})
    provider = configure_tracing(settings.telemetry)
    pool = DatabaseManager(settings).create_connection_pool()
    cache = RedisManager(settings, namespace="benchtel").get_cache_client()
    value = {"symbol": "ACME", "price": 12.34, "volume": 1000}
    cache.set("hot", value)

    def loader() -> object:
        return value

    def hit() -> object:
        return cache.get_or_load("hot", loader)

    def hit_untraced() -> object:
        return span_free_get_or_load(cache, "hot", loader)

    near_manager = RedisManager(settings, namespace="benchtelnear", near_cache_size=1000)
    near = near_manager.get_cache_client()
    near.set("hot", value)
    deadline = time.monotonic() + 10
    while near.stats().near_hits == 0:  # until the invalidation connection tracks the key
        assert time.monotonic() < deadline, "the near-cache never served a hit"
        near.get_or_load("hot", loader)
        time.sleep(0.01)

    def near_hit() -> object:
        return near.get_or_load("hot", loader)

    def near_hit_untraced() -> object:
        return span_free_get_or_load(near, "hot", loader)

    def checkout() -> object:
        with pool.connection() as conn:
            return conn.execute("SELECT 1").fetchall()

    def checkout_untraced() -> object:
        with pool._connection(None, False) as conn:
            return conn.execute("SELECT 1").fetchall()

    def execute() -> object:
        return pool.execute("SELECT 1")

    def run_untraced() -> object:  # execute() as it was before tracing: run() and its work
        def work(conn: Any) -> list[tuple[Any, ...]]:
            cur = conn.execute("SELECT 1", None)
            return cur.fetchall() if cur.description is not None else []

        return pool.run(work)

    results = {
        # the noise floor: the same operation against itself
        "A/A: cache hit without spans, twice": compare(hit_untraced, hit_untraced, 50, rounds),
        "cache hit (get_or_load)": compare(hit, hit_untraced, 50, rounds),
        "A/A: near-cache hit without spans, twice": compare(
            near_hit_untraced, near_hit_untraced, 500, rounds
        ),
        "near-cache hit (get_or_load)": compare(near_hit, near_hit_untraced, 500, rounds),
        "pool.connection() + SELECT 1 (the db.pool.connection span)": compare(
            checkout, checkout_untraced, 20, rounds
        ),
        "pool.execute('SELECT 1') vs pool.run (the db.query span)": compare(
            execute, run_untraced, 20, rounds
        ),
    }
    started = time.perf_counter()
    for _ in range(100_000):
        would_record()
    results["would_record() alone (µs)"] = ((time.perf_counter() - started) * 10, 0.0, 0.0)
    pool.close()
    near_manager.close()
    if provider is not None:
        provider.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "DSN", "URL", "OTLP"))
    args = parser.parse_args()
    if args.child:
        mode, dsn, url, otlp = args.child
        print(json.dumps(child(mode, dsn, url, otlp, args.rounds)))
        return

    from tests.otlp_receiver import OtlpReceiver
    from tests.servers import PostgresServer, RedisServer

    pg, rs, receiver = PostgresServer(), RedisServer(), OtlpReceiver()
    try:
        found: dict[str, dict[str, list[float]]] = {}
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, "-m", "bench.bench_telemetry", "--rounds", str(args.rounds),
                 "--child", mode, pg.dsn, rs.url, receiver.endpoint],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        receiver.close()
        rs.stop()
        pg.stop()
    targets = {"off": "≤ 1.02", "ratio0": "≤ 1.05", "ratio1": "recorded"}
    print("| measurement | tracing | with spans (µs/op) | without (µs/op) | ratio | target |")
    print("|---|---|---|---|---|---|")
    for mode, rows in found.items():
        for name, (ours, theirs, ratio) in rows.items():
            if not theirs:
                print(f"| {name} | {mode} | {ours:.3f} | — | — | — |")
                continue
            print(
                f"| {name} | {mode} | {ours:.1f} | {theirs:.1f} | {ratio:.3f} | {targets[mode]} |"
            )
    print(f"\nspans received by the OTLP receiver (ratio1 run): {len(receiver.spans)}")


if __name__ == "__main__":
    main()
