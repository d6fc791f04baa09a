"""Thin adapters from the raw libraries to the collectors' protocols.

The shared pool and cache modules will report their own stats; until then (and in the
sidecar, which holds a small pool of its own and watches the Redis server) these read
`psycopg_pool` and Redis's `INFO stats` directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import redis

from runtime.contracts import ConnectionPool


class PsycopgPoolStats:
    """A `psycopg_pool.ConnectionPool` as a `PoolStatsSource` (get_stats() omits zeros)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def stats(self) -> ConnectionPool:
        raw = self.pool.get_stats()
        size = int(raw.get("pool_size", 0))
        available = int(raw.get("pool_available", 0))
        return ConnectionPool(
            max_connections=int(self.pool.max_size),
            active_connections=max(0, size - available),
            available_connections=available,
            connection_timeout=max(1, math.ceil(float(self.pool.timeout))),
        )


class RedisServerCacheStats:
    """Server-wide hits and misses from Redis `INFO stats`, as a `CacheStatsSource`.

    For the sidecar, which has no cache client of its own: the Redis server's keyspace hit
    ratio is what the platform's caches achieve together. Raises while Redis is down (the
    collector then reports `runtime_collector_up{collector="cache"} 0`).
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def stats(self) -> Mapping[str, float | str]:
        info = self.client.info("stats")
        return {
            "hits": float(info["keyspace_hits"]),
            "misses": float(info["keyspace_misses"]),
        }
