"""The cache against a real Redis (and PostgreSQL as the loader), with real faults:
refused, SIGKILL, black hole, out of memory, network cuts that keep Redis's data."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.cache import CacheClient, RedisManager, iter_stats
from runtime.database import DatabaseManager, DatabasePool
from runtime.settings import load_settings
from tests.servers import BlackHole, PostgresServer, RedisServer, free_port


class Proxy:
    """A TCP forwarder to Redis that a test can cut (connections dropped, new ones refused)
    and restore, so Redis keeps its data across the outage (unlike a restart)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(100):  # the old listener may take a moment to go
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.01)
        else:
            raise OSError(f"cannot listen on {self.port} again")
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 1)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def manager_for(port: int, password: str = RedisServer.password, **kwargs: Any) -> RedisManager:
    settings = load_settings(
        env={
            "DATABASE_URL": "postgresql://u@127.0.0.1:1/d",
            "REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0",
            "CACHE_DEFAULT_TTL": "60",
        }
    )
    kwargs.setdefault("namespace", f"t{uuid.uuid4().hex[:10]}")
    return RedisManager(settings, **kwargs)


@pytest.fixture
def managers() -> Iterator[list[RedisManager]]:
    made: list[RedisManager] = []
    yield made
    for manager in made:
        manager.close()


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    forwarder = Proxy(redis_server.port)
    yield forwarder
    forwarder.close()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2)


class Loader:
    """A loader over a dict standing in for the database; counts its calls."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, key: str) -> Callable[[], Any]:
        def load() -> Any:
            with self.lock:
                self.calls += 1
            return self.data.get(key)

        return load


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - started


# -- configuration, cache-aside, round trips -------------------------------------------------


@pytest.mark.req("UT-INFRA-03.1")
def test_cache_client_connects_with_the_cache_settings(
    redis_server: RedisServer, managers: list[RedisManager]
) -> None:
    manager = manager_for(redis_server.port, timeout=0.3, name="app-cache")
    managers.append(manager)
    cache = manager.get_cache_client()
    assert manager.get_cache_client() is cache
    assert cache.get_or_load("k", lambda: {"v": 1}) == {"v": 1}
    names = [c["name"] for c in raw(redis_server).client_list()]
    assert "app-cache" in names
    kwargs = manager.redis_client().connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.3 and kwargs["socket_connect_timeout"] == 0.3
    assert kwargs["retry"].get_retries() == 0
    ttl = raw(redis_server).ttl(f"{manager.namespace}:{cache._prefix.split(':')[1]}:k")
    assert 55 <= ttl <= 60  # CACHE_DEFAULT_TTL


@pytest.mark.req("UT-INFRA-03.2")
def test_miss_loads_from_postgres_and_caches_the_result(
    redis_server: RedisServer, postgres_server: PostgresServer, managers: list[RedisManager]
) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS prices (sym text PRIMARY KEY, px numeric)")
        conn.execute("INSERT INTO prices VALUES ('ACME', 12.5) ON CONFLICT (sym) DO NOTHING")
    db_settings = load_settings(env={"DATABASE_URL": postgres_server.dsn, "REDIS_URL": "redis://h"})
    pool = DatabaseManager(db_settings).create_connection_pool()
    manager = manager_for(redis_server.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    queries = 0

    def load_price() -> float:
        nonlocal queries
        queries += 1
        rows = pool.execute("SELECT px FROM prices WHERE sym = %s", ("ACME",))
        return float(rows[0][0])

    try:
        assert cache.get_or_load("price:ACME", load_price) == 12.5
        assert cache.get_or_load("price:ACME", load_price) == 12.5
        assert cache.get_or_load("price:ACME", load_price) == 12.5
    finally:
        pool.close()
    assert queries == 1
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.loads, stats.fallbacks) == (1, 2, 1, 0)


@pytest.mark.parametrize(
    "value",
    [None, 0, -1.5, "", "héllo ✓", [1, "two", None], {"a": {"b": [True, False]}}, 2**60],
)
def test_json_values_round_trip(
    redis_server: RedisServer, managers: list[RedisManager], value: Any
) -> None:
    manager = manager_for(redis_server.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    assert cache.get_or_load("v", lambda: value) == value
    assert cache.get_or_load("v", lambda: "loader must not run") == value  # a hit, even None
    assert cache.stats().hits == 1


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal


class QuoteSerializer:
    def dumps(self, value: Any) -> bytes:
        return json.dumps({"s": value.symbol, "p": str(value.price)}).encode()

    def loads(self, data: bytes) -> Any:
        obj = json.loads(data)
        return Quote(obj["s"], Decimal(obj["p"]))


def test_pluggable_serializer_round_trips(
    redis_server: RedisServer, managers: list[RedisManager]
) -> None:
    manager = manager_for(redis_server.port, serializer=QuoteSerializer())
    managers.append(manager)
    cache = manager.get_cache_client()
    quote = Quote("ACME", Decimal("12.3400"))
    assert cache.set("q", quote)
    got = cache.get_or_load("q", lambda: None)
    assert got == quote and isinstance(got.price, Decimal)


def test_unencodable_value_is_a_clear_error_on_set_and_not_cached_on_load(
    redis_server: RedisServer, managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    from runtime.errors import CacheError

    manager = manager_for(redis_server.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    with pytest.raises(CacheError, match=r"cache key 'x': cannot encode a set"):
        cache.set("x", {1, 2})
    with caplog.at_level(logging.WARNING, logger="runtime.cache"):
        for _ in range(3):  # the caller gets its value, as it would with Redis down
            assert cache.get_or_load("y", lambda: {3, 4}) == {3, 4}
    assert cache.stats().loads == 3 and cache.stats().errors == 3
    assert len([r for r in caplog.records if r.name == "runtime.cache"]) == 1
    with pytest.raises(ValueError, match="ttl: got 0"):
        cache.get_or_load("z", lambda: 1, ttl=0)
    with pytest.raises(ValueError, match="ttl: got -5"):
        cache.set("z", 1, ttl=-5)


def test_set_invalidate_and_invalidate_prefix(
    redis_server: RedisServer, managers: list[RedisManager]
) -> None:
    manager = manager_for(redis_server.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    db = {"user:1": "a", "user:2": "b", "order:1": "c", "we*ird[1]": "d", "we*ird[2]": "e"}
    loader = Loader(db)
    for key in db:
        cache.get_or_load(key, loader(key))
    assert loader.calls == 5
    db["user:1"] = "a2"
    cache.invalidate("user:1")
    assert cache.get_or_load("user:1", loader("user:1")) == "a2" and loader.calls == 6
    db["user:2"] = "b2"
    assert cache.set("user:2", "b2")
    assert cache.get_or_load("user:2", loader("user:2")) == "b2" and loader.calls == 6
    cache.invalidate_prefix("user:")
    cache.invalidate_prefix("we*ird[1")
    for key in db:
        assert cache.get_or_load(key, loader(key)) == db[key]
    assert loader.calls == 6 + 3  # user:1, user:2, we*ird[1]; order:1 and we*ird[2] kept


# -- Redis failures ----------------------------------------------------------------------------


@pytest.mark.req("UT-INFRA-03.3")
def test_refused_redis_degrades_to_the_database_at_no_cost(
    managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="runtime.cache.breaker"):
        manager = manager_for(free_port(), probe_interval=30)  # nothing listens there
        managers.append(manager)
        cache = manager.get_cache_client()
        loader = Loader({f"k{i}": i for i in range(50)})
        started = time.monotonic()
        results = [cache.get_or_load(f"k{i}", loader(f"k{i}")) for i in range(50)]
        elapsed = time.monotonic() - started
    assert results == list(range(50))
    assert elapsed < 0.5  # redis-py's defaults would spend 3.6 s on the first call alone
    stats = cache.stats()
    assert stats.breaker_state == "open" and stats.fallbacks == 50 and stats.hits == 0
    lines = [r for r in caplog.records if r.name == "runtime.cache.breaker"]
    fields = [getattr(r, "fields", {}) for r in lines]
    assert len(lines) == 1 and fields[0]["to"] == "open"
    assert "ConnectionError" in fields[0]["reason"]


def hammer(
    cache: CacheClient, loader: Loader, stop: threading.Event, errors: list[BaseException]
) -> None:
    while not stop.is_set():
        for i in range(20):
            try:
                assert cache.get_or_load(f"k{i}", loader(f"k{i}")) == i
            except BaseException as exc:
                errors.append(exc)
        time.sleep(0.001)


@pytest.mark.req("UT-INFRA-03.3")
def test_sigkill_under_load_zero_errors_and_hits_again_within_two_probe_intervals(
    fresh_redis: RedisServer, managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    interval = 0.5
    manager = manager_for(fresh_redis.port, probe_interval=interval)
    managers.append(manager)
    cache = manager.get_cache_client()
    loader = Loader({f"k{i}": i for i in range(20)})
    errors: list[BaseException] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=hammer, args=(cache, loader, stop, errors)) for _ in range(4)
    ]
    with caplog.at_level(logging.INFO, logger="runtime.cache.breaker"):
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: cache.stats().hits > 100)
            fresh_redis.kill9()
            wait_until(lambda: cache.breaker_state == "open")
            fallbacks = cache.stats().fallbacks
            wait_until(lambda: cache.stats().fallbacks > fallbacks + 100)
            fresh_redis.start()  # returns once Redis accepts connections
            hits = cache.stats().hits
            recovered = wait_until(lambda: cache.stats().hits > hits, timeout=10)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert errors == []
    assert recovered <= 2 * interval, f"hits again after {recovered:.3f} s"
    moves = [
        getattr(r, "fields", {})["to"] for r in caplog.records if r.name == "runtime.cache.breaker"
    ]
    assert moves == ["open", "closed"]


@pytest.mark.req("ET-INFRA-03.2")
def test_black_hole_every_call_within_the_timeout_and_breaker_stops_touching_redis(
    black_hole: BlackHole, managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 0.2
    with caplog.at_level(logging.INFO, logger="runtime.cache.breaker"):
        started = time.monotonic()
        manager = manager_for(black_hole.port, timeout=timeout, probe_interval=30)
        managers.append(manager)
        cache = manager.get_cache_client()  # its first Redis call times out here
        durations = [time.monotonic() - started]
        accepted = black_hole.connections_accepted
        for i in range(100):
            t0 = time.monotonic()
            assert cache.get_or_load(f"k{i}", lambda i=i: i) == i  # type: ignore[misc]
            cache.invalidate(f"k{i}")
            durations.append(time.monotonic() - t0)
    assert max(durations) <= timeout + 0.5
    assert black_hole.connections_accepted == accepted  # open breaker: Redis untouched
    assert cache.stats().pending_invalidations == 100
    lines = [getattr(r, "fields", {}) for r in caplog.records if r.name == "runtime.cache.breaker"]
    assert len(lines) == 1 and "Timeout" in lines[0]["reason"]  # the error is logged, once


def test_black_hole_is_probed_once_per_interval(
    black_hole: BlackHole, managers: list[RedisManager]
) -> None:
    manager = manager_for(black_hole.port, timeout=0.1, probe_interval=0.2)
    managers.append(manager)
    cache = manager.get_cache_client()
    before = black_hole.connections_accepted
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert cache.get_or_load("k", lambda: 1) == 1
        time.sleep(0.005)
    probes = black_hole.connections_accepted - before
    assert 1 <= probes <= 1.2 / 0.2 + 1  # at most one probe per interval, calls add none


@pytest.mark.req("ET-INFRA-03.1")
def test_out_of_memory_with_noeviction_stops_writes_and_keeps_serving_hits(
    fresh_redis: RedisServer, managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    admin = raw(fresh_redis)
    admin.config_set("maxmemory-policy", "noeviction")
    manager = manager_for(fresh_redis.port, probe_interval=0.3)
    managers.append(manager)
    cache = manager.get_cache_client()
    db = {f"hot{i}": f"value{i}" for i in range(10)}
    loader = Loader(db)
    for key in db:
        cache.get_or_load(key, loader(key))
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + 256 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):  # fill Redis until it refuses
        for i in range(100_000):
            admin.set(f"junk:{i}", "x" * 1024)
    admin.config_set("maxmemory", used // 2)  # stay out of memory whatever gets freed
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        admin.set("junk:probe", "x")
    calls = loader.calls
    with caplog.at_level(logging.INFO, logger="runtime.cache.writes"):
        for key in db:  # hits still served
            assert cache.get_or_load(key, loader(key)) == db[key]
        assert loader.calls == calls
        assert cache.get_or_load("new", lambda: "fresh") == "fresh"  # miss: no error
        db["hot0"] = "changed"
        assert cache.set("hot0", "changed") is False  # cannot write: the old value is deleted
        assert cache.get_or_load("hot0", loader("hot0")) == "changed"
        db["hot1"] = "changed too"
        cache.invalidate("hot1")  # deletes work under OOM
        assert cache.get_or_load("hot1", loader("hot1")) == "changed too"
        stats = cache.stats()
        assert stats.breaker_state == "closed" and stats.writes_skipped >= 1
        admin.config_set("maxmemory", 0)  # memory freed: writes resume after the pause
        time.sleep(0.35)
        assert cache.get_or_load("later", lambda: "stored") == "stored"
        assert cache.get_or_load("later", lambda: "not stored?") == "stored"
    moves = [
        getattr(r, "fields", {})["to"] for r in caplog.records if r.name == "runtime.cache.writes"
    ]
    assert moves == ["paused", "enabled"]


@pytest.mark.req("ET-INFRA-03.1")
def test_allkeys_lru_evicts_and_reads_stay_correct(
    fresh_redis: RedisServer, managers: list[RedisManager]
) -> None:
    admin = raw(fresh_redis)
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 200 * 1024)
    manager = manager_for(fresh_redis.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    db = {f"k{i}": "v" * 500 + str(i) for i in range(2000)}
    loader = Loader(db)
    for _ in range(2):
        for key in db:
            assert cache.get_or_load(key, loader(key)) == db[key]
    assert int(admin.info("stats")["evicted_keys"]) > 0
    stats = cache.stats()
    assert stats.errors == 0 and stats.breaker_state == "closed" and stats.writes_skipped == 0


# -- coherence -------------------------------------------------------------------------------


@pytest.mark.req("PT-INFRA-03.1")
def test_invalidation_during_an_outage_is_replayed_before_reading_redis(
    redis_server: RedisServer, proxy: Proxy, managers: list[RedisManager]
) -> None:
    manager = manager_for(proxy.port, probe_interval=0.1)
    managers.append(manager)
    cache = manager.get_cache_client()
    db = {"k": "v1"}
    loader = Loader(db)
    assert cache.get_or_load("k", loader("k")) == "v1"
    full_key = cache._prefix + "k"
    proxy.cut()
    db["k"] = "v2"
    cache.invalidate("k")  # Redis cannot hear it
    assert raw(redis_server).get(full_key) is not None  # the stale entry is still there
    assert cache.get_or_load("k", loader("k")) == "v2"
    proxy.restore()
    wait_until(lambda: cache.breaker_state == "closed")
    assert raw(redis_server).get(full_key) is None  # replayed before the breaker closed
    assert cache.get_or_load("k", loader("k")) == "v2"
    assert cache.get_or_load("k", loader("k")) == "v2"
    assert cache.stats().hits >= 1


def test_too_many_lost_invalidations_bump_the_generation(
    redis_server: RedisServer, proxy: Proxy, managers: list[RedisManager]
) -> None:
    manager = manager_for(proxy.port, probe_interval=0.1)
    managers.append(manager)
    cache = CacheClient(manager.redis_client(), namespace=manager.namespace, max_pending=2)
    try:
        db = {f"k{i}": 1 for i in range(5)}
        loader = Loader(db)
        for key in db:
            cache.get_or_load(key, loader(key))
        old_prefix = cache._prefix
        proxy.cut()
        for key in ("k0", "k1", "k2"):
            db[key] = 2
            cache.invalidate(key)
        proxy.restore()
        wait_until(lambda: cache.breaker_state == "closed")
        assert cache._prefix != old_prefix
        for key in db:
            assert cache.get_or_load(key, loader(key)) == db[key]
    finally:
        cache.close()


def test_a_load_racing_an_invalidation_is_not_stored(
    redis_server: RedisServer, managers: list[RedisManager]
) -> None:
    manager = manager_for(redis_server.port)
    managers.append(manager)
    cache = manager.get_cache_client()
    db = {"k": "old"}
    loading, release = threading.Event(), threading.Event()

    def slow_load() -> str:
        value = db["k"]  # reads the old row...
        loading.set()
        release.wait(5)
        return value  # ...and returns it after the write below completed

    reader = threading.Thread(target=cache.get_or_load, args=("k", slow_load))
    reader.start()
    loading.wait(5)
    db["k"] = "new"
    cache.invalidate("k")
    release.set()
    reader.join()
    assert cache.get_or_load("k", lambda: db["k"]) == "new"


@pytest.mark.parametrize("redis_up", [True, False])
def test_concurrent_misses_call_the_loader_once(
    redis_server: RedisServer, managers: list[RedisManager], redis_up: bool
) -> None:
    port = redis_server.port if redis_up else free_port()
    manager = manager_for(port, probe_interval=30)
    managers.append(manager)
    cache = manager.get_cache_client()
    calls = 0
    lock = threading.Lock()

    def slow_load() -> str:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.3)
        return "value"

    results: list[str] = []
    barrier = threading.Barrier(16)

    def reader() -> None:
        barrier.wait()
        results.append(cache.get_or_load("hot", slow_load))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["value"] * 16
    assert calls == 1


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.sampled_from("abc")),
        st.tuples(st.just("invalidate"), st.sampled_from("abc")),
        st.tuples(st.just("set"), st.sampled_from("abc")),
        st.tuples(st.just("cut"), st.just("")),
        st.tuples(st.just("restore"), st.just("")),
        st.tuples(st.just("wait"), st.just("")),
    ),
    min_size=1,
    max_size=30,
)


@pytest.mark.req("PT-INFRA-03.1")
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_random_interleavings_never_return_a_value_older_than_the_last_write(
    redis_server: RedisServer, proxy: Proxy, ops: list[tuple[str, str]]
) -> None:
    manager = manager_for(proxy.port, timeout=0.1, probe_interval=0.02)
    cache = manager.get_cache_client()
    db: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    version = 0
    cut = False
    try:
        for op, key in ops:
            if op == "read":
                assert cache.get_or_load(key, lambda key=key: db[key]) == db[key]  # type: ignore[misc]
            elif op in ("invalidate", "set"):
                version += 1
                db[key] = version  # the database write, then the cache call completes it
                if op == "set":
                    cache.set(key, version)
                else:
                    cache.invalidate(key)
            elif op == "cut" and not cut:
                proxy.cut()
                cut = True
            elif op == "restore" and cut:
                proxy.restore()
                cut = False
            elif op == "wait":
                time.sleep(0.05)
    finally:
        if cut:
            proxy.restore()
        manager.close()


def test_reprs_logs_and_stats_hold_no_secrets(
    redis_server: RedisServer, managers: list[RedisManager], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-redis-password-xyz"
    with caplog.at_level(logging.DEBUG):
        manager = manager_for(redis_server.port, password=wrong, probe_interval=30)
        managers.append(manager)
        cache = manager.get_cache_client()
        assert cache.get_or_load("k", lambda: 7) == 7  # AUTH fails: served by the loader
    assert cache.breaker_state == "open"
    for text in (repr(manager), repr(cache), str(cache.stats()), caplog.text):
        assert wrong not in text and redis_server.password not in text
    assert "***" in repr(manager)
    assert dict(iter_stats(cache))["breaker_open"] == 1.0


def test_bad_arguments_are_named(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="timeout: got 0"):
        manager_for(redis_server.port, timeout=0)
    client = redis.Redis.from_url(redis_server.url)
    with pytest.raises(ValueError, match="namespace: got 'a:b'"):
        CacheClient(client, namespace="a:b")
    with pytest.raises(ValueError, match="default_ttl: got 0"):
        CacheClient(client, default_ttl=0)
    client.close()


def test_database_pool_and_cache_together_survive_redis_loss(
    fresh_redis: RedisServer, postgres_server: PostgresServer, managers: list[RedisManager]
) -> None:
    """The application's read path: cache in front of the pool, Redis killed mid-way."""
    db_settings = load_settings(env={"DATABASE_URL": postgres_server.dsn, "REDIS_URL": "redis://h"})
    pool: DatabasePool = DatabaseManager(db_settings).create_connection_pool()
    manager = manager_for(fresh_redis.port, probe_interval=0.2)
    managers.append(manager)
    cache = manager.get_cache_client()
    try:
        values = []
        for i in range(60):
            if i == 20:
                fresh_redis.kill9()
            if i == 40:
                fresh_redis.start()

            def load(n: int = i % 5) -> int:
                return int(pool.execute("SELECT %s::int", (n,))[0][0])

            values.append(cache.get_or_load(f"n{i % 5}", load))
        assert values == [i % 5 for i in range(60)]
    finally:
        pool.close()


@pytest.mark.req("ET-INFRA-03.1")
def test_recovery_and_replay_work_while_redis_is_out_of_memory(
    fresh_redis: RedisServer, managers: list[RedisManager]
) -> None:
    admin = raw(fresh_redis)
    admin.config_set("maxmemory-policy", "noeviction")
    forwarder = Proxy(fresh_redis.port)
    try:
        manager = manager_for(forwarder.port, probe_interval=0.1)
        managers.append(manager)
        cache = manager.get_cache_client()
        db = {"k": "v1"}
        assert cache.get_or_load("k", lambda: db["k"]) == "v1"
        admin.config_set("maxmemory", 1)  # every write is refused from now on
        forwarder.cut()
        db["k"] = "v2"
        cache.invalidate("k")
        forwarder.restore()
        wait_until(lambda: cache.breaker_state == "closed")
        assert cache.get_or_load("k", lambda: db["k"]) == "v2"
    finally:
        forwarder.close()


@pytest.mark.req("PT-INFRA-03.1")
@pytest.mark.parametrize("near_cache_size", [0, 100], ids=["redis", "near-cache"])
def test_concurrent_readers_writers_and_outages_never_see_a_value_older_than_completed_writes(
    redis_server: RedisServer, proxy: Proxy, managers: list[RedisManager], near_cache_size: int
) -> None:
    manager = manager_for(
        proxy.port, timeout=0.1, probe_interval=0.05, near_cache_size=near_cache_size
    )
    managers.append(manager)
    cache = manager.get_cache_client()
    keys = ["a", "b", "c"]
    db = dict.fromkeys(keys, 0)
    completed = dict.fromkeys(keys, 0)  # the newest version whose write+invalidate returned
    stale: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(key: str) -> None:
        version = 0
        while not stop.is_set():
            version += 1
            db[key] = version
            if version % 2:
                cache.invalidate(key)
            else:
                cache.set(key, version)
            completed[key] = version
            time.sleep(0.005)

    def reader() -> None:
        while not stop.is_set():
            for key in keys:
                floor = completed[key]
                try:
                    got = cache.get_or_load(key, lambda key=key: db[key])  # type: ignore[misc]
                except BaseException as exc:
                    errors.append(exc)
                    continue
                if got < floor:
                    stale.append(f"{key}: read {got} after write {floor} completed")
            time.sleep(0.0005)

    def outages() -> None:
        while not stop.is_set():
            time.sleep(0.4)
            proxy.cut()
            time.sleep(0.1)
            proxy.restore()

    threads = [threading.Thread(target=writer, args=(k,)) for k in keys]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=outages))
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == [] and stale == []
    stats = cache.stats()
    assert stats.hits > 0 and stats.fallbacks > 0 and stats.breaker_opened >= 2
    if near_cache_size:
        assert stats.near_hits > 0  # the near-cache really served reads
