"""The optional near-cache: local hits, kept coherent by Redis's invalidation messages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from runtime.cache import RedisManager
from runtime.settings import load_settings
from tests.servers import RedisServer


def near_manager(server: RedisServer, namespace: str, size: int = 100) -> RedisManager:
    settings = load_settings(env={"DATABASE_URL": "postgresql://h/d", "REDIS_URL": server.url})
    return RedisManager(
        settings, namespace=namespace, near_cache_size=size, probe_interval=0.2, timeout=0.2
    )


@pytest.fixture
def namespace() -> str:
    return f"n{uuid.uuid4().hex[:10]}"


@pytest.fixture
def managers() -> Iterator[list[RedisManager]]:
    made: list[RedisManager] = []
    yield made
    for manager in made:
        manager.close()


def get_calls(server: RedisServer) -> int:
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.005)


def test_hot_keys_are_served_without_a_round_trip(
    redis_server: RedisServer, managers: list[RedisManager], namespace: str
) -> None:
    manager = near_manager(redis_server, namespace)
    managers.append(manager)
    cache = manager.get_cache_client()
    assert cache.get_or_load("hot", lambda: {"px": 1}) == {"px": 1}  # miss, stored in Redis
    near = cache._near
    assert near is not None
    # A Redis hit is kept locally (retried: our own SET's invalidation message may race it).
    eventually(lambda: cache.get_or_load("hot", lambda: None) == {"px": 1} and len(near) == 1)
    before = get_calls(redis_server)
    for _ in range(100):
        assert cache.get_or_load("hot", lambda: None) == {"px": 1}
    assert get_calls(redis_server) - before <= 1  # (INFO itself is not a GET)
    assert cache.stats().near_hits >= 99


@pytest.mark.req("PT-INFRA-03.1")
def test_a_write_by_another_process_invalidates_the_near_copy(
    redis_server: RedisServer, managers: list[RedisManager], namespace: str
) -> None:
    reader = near_manager(redis_server, namespace)
    writer = near_manager(redis_server, namespace)
    managers += [reader, writer]
    near_reader, other = reader.get_cache_client(), writer.get_cache_client()
    db = {"k": "v1"}
    near = near_reader._near
    assert near is not None
    eventually(lambda: near_reader.get_or_load("k", lambda: db["k"]) == "v1" and len(near) == 1)
    db["k"] = "v2"
    other.set("k", "v2")  # another process writes through Redis
    eventually(lambda: near_reader.get_or_load("k", lambda: db["k"]) == "v2")
    db["k"] = "v3"
    other.invalidate("k")
    eventually(lambda: near_reader.get_or_load("k", lambda: db["k"]) == "v3")
    # This client's own writes are visible at once, without waiting for the message.
    db["k"] = "v4"
    near_reader.invalidate("k")
    assert near_reader.get_or_load("k", lambda: db["k"]) == "v4"


def test_losing_redis_empties_and_bypasses_the_near_cache(
    fresh_redis: RedisServer, managers: list[RedisManager], namespace: str
) -> None:
    manager = near_manager(fresh_redis, namespace)
    managers.append(manager)
    cache = manager.get_cache_client()
    near = cache._near
    assert near is not None and near.enabled
    db = {"k": "v1"}
    # Our own SET's invalidation message may race the first read back: retry until kept.
    eventually(lambda: cache.get_or_load("k", lambda: db["k"]) == "v1" and len(near) == 1)
    fresh_redis.kill9()
    eventually(lambda: not near.enabled)  # no more invalidation messages: stop trusting it
    assert len(near) == 0
    db["k"] = "v2"  # changed while nothing could tell us
    assert cache.get_or_load("k", lambda: db["k"]) == "v2"
    fresh_redis.start()
    eventually(lambda: near.enabled and cache.breaker_state == "closed", timeout=5)
    assert cache.get_or_load("k", lambda: db["k"]) == "v2"
    assert cache.get_or_load("k", lambda: db["k"]) == "v2"
