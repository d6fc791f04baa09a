"""The cache applications use: cache-aside on redis-py that never fails its callers.

redis-py already pools connections and times out sockets; this module adds what a cache in
front of a database needs when Redis misbehaves (measured: docs/runtime-pool-cache.md):

- small socket timeouts and `Retry(NoBackoff(), 0)`: redis-py's defaults spend 3.6 s
  retrying a refused connection;
- a circuit breaker: after the first failure calls go straight to the loader (the database)
  without touching Redis, and one background prober tries Redis once per interval, closing
  the breaker by itself;
- out of memory (`maxmemory` + `noeviction` raises `OutOfMemoryError`, a `ResponseError`):
  stop populating for an interval, keep serving hits; a `set` that cannot write deletes the
  old value instead, so it is never left stale;
- lost invalidations: an invalidation that cannot reach Redis is queued and replayed by the
  prober before the breaker closes, so this client never reads a value older than its last
  completed write. Too many queued invalidations bump the key generation (`<ns>:gen`), which
  makes every old entry unreachable at once;
- schema revisions: with `schema_revision`, keys live under `<ns>:<gen>@<revision>:`, so a
  release never reads entries written by code expecting another schema; writes and
  invalidations also reach the other revisions still live (a rolling deploy), found in the
  `<ns>:revisions` registry (docs/cache-generations.md);
- one loader call per key at a time (no stampede) and counters for metrics.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import redis
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, RedisError
from redis.retry import Retry

from runtime.errors import CacheError, redact
from runtime.near_cache import NearCache
from runtime.schema_revision import expected_revision
from runtime.settings import (
    SCHEMA_REVISION,
    SCHEMA_REVISION_RULE,
    CacheSettings,
    RedisSettings,
    Settings,
    mask_url,
)
from runtime.statelog import StateLog
from runtime.telemetry.spans import TRACING, would_record

T = TypeVar("T")
_STRIPES = 64
_log = logging.getLogger("runtime.cache")
_TRACER = trace.get_tracer("runtime.cache")


def _check_ttl(ttl: object) -> None:
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 1:
        raise ValueError(f"ttl: got {ttl!r}; allowed: an int >= 1 (seconds) or None")


class Serializer(Protocol):
    """How values become bytes in Redis and back; JSON unless the application says otherwise."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON: readable with redis-cli, safe to load (unlike pickle)."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


@dataclass
class CacheStats:
    """Counters since the client was created, plus the breaker's state, for metrics.

    Incremented without a lock to keep the hit path cheap: under heavy thread contention a
    rare increment can be lost, which a rate or ratio on a dashboard does not notice."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    fallbacks: int = 0
    loads: int = 0
    writes_skipped: int = 0
    breaker_opened: int = 0
    breaker_state: str = "closed"
    pending_invalidations: int = 0
    near_hits: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


class _Flight:
    """One in-progress load of a key that concurrent callers wait for instead of repeating."""

    __slots__ = ("done", "epoch", "error", "value")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.done = threading.Lock()  # held by the leader until the load ends (cheaper than
        self.done.acquire()  # an Event, which matters on the Redis-down path)
        self.value: Any = None
        self.error: BaseException | None = None


class CacheClient:
    """Cache-aside over Redis with fallback to the loader; thread-safe; never raises for Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "cache",
        default_ttl: int = 300,
        serializer: Serializer | None = None,
        probe_interval: float = 1.0,
        max_pending: int = 10_000,
        near_cache: NearCache | None = None,
        secrets: tuple[str, ...] = (),
        schema_revision: str | None = None,
    ) -> None:
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace: got {namespace!r}; allowed: non-empty, without ':'")
        if default_ttl < 1:
            raise ValueError(f"default_ttl: got {default_ttl!r}; allowed: an int >= 1 (seconds)")
        if probe_interval <= 0:
            raise ValueError(f"probe_interval: got {probe_interval!r}; allowed: > 0 seconds")
        if schema_revision is not None and not re.fullmatch(SCHEMA_REVISION, schema_revision):
            raise ValueError(
                f"schema_revision: got {schema_revision!r}; allowed: {SCHEMA_REVISION_RULE}"
            )
        self._redis = client
        self._get = client.get
        self.namespace = namespace
        self.default_ttl = default_ttl
        self.probe_interval = probe_interval
        self.max_pending = max_pending
        self._serializer = serializer or JsonSerializer()
        self._loads = self._serializer.loads
        self._secrets = secrets
        self._near = near_cache
        self._stats = CacheStats()
        self._gen_key = f"{namespace}:gen"
        self.schema_revision = schema_revision
        # Registry of live revisions: member = revision ("" for none), score = when its last
        # entry expires at the latest. Read with the generation, once per probe interval.
        self._revisions_key = f"{namespace}:revisions"
        self._longest_ttl = default_ttl
        self._gen = 0
        self._others: tuple[str, ...] = ()  # the other live revisions
        self._prefix = self._prefix_of(schema_revision or "")
        self._gen_due = 0.0
        # Breaker: `_closed` is read on every call without a lock (a bool read is atomic).
        self._closed = True
        self._breaker_lock = threading.RLock()  # also guards the pending invalidations
        self._prober: threading.Thread | None = None
        self._stopping = threading.Event()
        self.breaker_log = StateLog("cache.breaker", "closed")
        self.writes_log = StateLog("cache.writes", "enabled")
        self._writes_paused_until = 0.0
        # Invalidations Redis has not seen yet (replayed before the breaker closes).
        self._pending_keys: set[str] = set()
        self._pending_prefixes: set[str] = set()
        self._pending_overflow = False
        # Striped locks and epochs: a fill is written only if no invalidation of its key
        # happened since its load began (checked and written under the same lock).
        self._stripe_locks = [threading.Lock() for _ in range(_STRIPES)]
        self._epochs = [0] * _STRIPES
        self._flights: dict[str, _Flight] = {}
        self._unencodable: builtins.set[str] = builtins.set()
        self._flights_lock = threading.Lock()
        try:
            self._refresh_generation()
        except RedisError as exc:
            self._trip(exc)

    # -- reads -----------------------------------------------------------------------------
    def get_or_load(self, key: str, loader: Callable[[], T], ttl: int | None = None) -> T:
        """The cached value of `key`, or `loader()`'s (stored for `ttl` seconds, default
        CACHE_DEFAULT_TTL). Redis failures never reach the caller: it gets `loader()`.

        A span `cache.get_or_load` says `cache.result`: hit, near_hit, miss or fallback."""
        if ttl is not None:
            _check_ttl(ttl)
        if not TRACING.on:  # no tracer provider seen: a near hit does no span work at all
            found, value = self._near_hit(key)
            if found:
                return value  # type: ignore[no-any-return]
            if not would_record():  # also looks for a newly installed provider
                return self._from_redis(key, loader, ttl, INVALID_SPAN)
        elif not would_record():
            found, value = self._near_hit(key)
            if found:
                return value  # type: ignore[no-any-return]
            return self._from_redis(key, loader, ttl, INVALID_SPAN)
        with _TRACER.start_as_current_span("cache.get_or_load") as span:
            found, value = self._near_hit(key)
            if found:
                span.set_attribute("cache.result", "near_hit")
                return value  # type: ignore[no-any-return]
            return self._from_redis(key, loader, ttl, span)

    def _near_hit(self, key: str) -> tuple[bool, Any]:
        """(True, value) when the near-cache holds `key` under the current generation."""
        if self._closed and time.monotonic() >= self._gen_due:
            self._maybe_refresh_generation()  # may open the breaker: re-checked below
        if self._closed and self._near is not None:
            found, value = self._near.get(self._prefix + key)
            if found:
                self._stats.near_hits += 1
                self._stats.hits += 1
                return True, value
        return False, None

    def _from_redis(
        self, key: str, loader: Callable[[], T], ttl: int | None, span: trace.Span
    ) -> T:
        if self._closed:
            full = self._prefix + key
            token = self._near.begin(full) if self._near is not None else 0
            try:
                raw = self._get(full)
            except RedisError as exc:
                self._trip(exc)
            else:
                if raw is not None:
                    try:
                        value = self._loads(raw)  # type: ignore[arg-type]
                    except Exception:
                        self._stats.errors += 1  # corrupt or foreign value: reload it
                    else:
                        self._stats.hits += 1
                        span.set_attribute("cache.result", "hit")
                        if self._near is not None:
                            self._near.commit(full, token, value)
                        return value  # type: ignore[no-any-return]
                self._stats.misses += 1
                span.set_attribute("cache.result", "miss")
                return self._load(key, loader, ttl, fill=True)
        self._stats.fallbacks += 1
        span.set_attribute("cache.result", "fallback")
        return self._load(key, loader, ttl, fill=False)

    def _load(self, key: str, loader: Callable[[], T], ttl: int | None, *, fill: bool) -> T:
        stripe = hash(key) % _STRIPES
        epoch = self._epochs[stripe]
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None or flight.epoch != epoch
            if leader:
                flight = self._flights[key] = _Flight(epoch)
        assert flight is not None
        if not leader:
            with flight.done:
                pass
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[no-any-return]
        try:
            self._stats.loads += 1
            flight.value = loader()
            if fill:
                self._fill(key, stripe, epoch, flight.value, ttl)
            return flight.value  # type: ignore[no-any-return]
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.release()

    def _encode(self, key: str, value: Any) -> bytes:
        try:
            return self._serializer.dumps(value)
        except Exception as exc:
            raise CacheError(
                f"cache key {key!r}: cannot encode a {type(value).__name__} with "
                f"{type(self._serializer).__name__}: {exc}"
            ) from None

    def _fill(self, key: str, stripe: int, epoch: int, value: Any, ttl: int | None) -> None:
        try:
            data = self._encode(key, value)
        except CacheError as exc:
            # The caller still gets its value (as it would with Redis down); say so once per
            # type, never per request, and never with the value itself.
            self._stats.errors += 1
            if type(value).__name__ not in self._unencodable:
                self._unencodable.add(type(value).__name__)
                _log.warning("%s; values of this type are not cached", exc)
            return
        if not self._closed or time.monotonic() < self._writes_paused_until:
            self._stats.writes_skipped += 1
            return
        with self._stripe_locks[stripe]:
            if self._epochs[stripe] != epoch:  # invalidated while loading: do not store
                self._stats.writes_skipped += 1
                return
            self._write(key, data, ttl)

    def _write(self, key: str, data: bytes, ttl: int | None) -> bool:
        """SET under the stripe lock; on failure make sure no old value survives."""
        full = self._prefix + key
        if ttl is not None and ttl > self._longest_ttl:
            self._longest_ttl = ttl  # entries live longer: say so in the registry now
            self._gen_due = 0.0
        try:
            self._redis.set(full, data, ex=ttl or self.default_ttl)
        except OutOfMemoryError:
            self._pause_writes()
            self._delete_or_queue(key)
            return False
        except RedisError as exc:
            self._queue_invalidation(key=key)  # the SET may or may not have landed
            self._trip(exc)
            return False
        if self.writes_log.state != "enabled":
            self.writes_log.transition("enabled")
        return True

    # -- writes ----------------------------------------------------------------------------
    def set(self, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store `value` (write-through after the database write). True if Redis has it; if
        not, the key is deleted or its deletion queued, so no older value can be read."""
        if ttl is not None:
            _check_ttl(ttl)
        data = self._encode(key, value)
        stripe = hash(key) % _STRIPES
        self._revisions_due()
        with self._stripe_locks[stripe]:
            self._epochs[stripe] += 1
            self._forget_near(key)
            try:
                if not self._closed or time.monotonic() < self._writes_paused_until:
                    self._stats.writes_skipped += 1
                    self._delete_or_queue(key)
                    return False
                if not self._write(key, data, ttl):
                    return False
                if self._others:  # other revisions' copies are now stale: delete them
                    self._delete_or_queue(key, own=False)
                return True
            finally:
                self._forget_near(key)

    def invalidate(self, key: str) -> None:
        """Forget `key` (call after the database write). Never lost: if Redis cannot be
        reached the deletion is replayed before this client reads from Redis again."""
        stripe = hash(key) % _STRIPES
        self._revisions_due()
        with self._stripe_locks[stripe]:
            self._epochs[stripe] += 1
            self._forget_near(key)
            try:
                self._delete_or_queue(key)
            finally:
                self._forget_near(key)

    def _forget_near(self, key: str) -> None:
        """Drop the near copy; done before *and* after the Redis write, so a concurrent read
        that fetched the old value from Redis in between cannot keep it once we return."""
        if self._near is not None:
            self._near.invalidate(self._prefix + key)

    def invalidate_prefix(self, prefix: str) -> None:
        """Forget every key starting with `prefix` (SCAN + UNLINK: O(keys in Redis))."""
        self._revisions_due()
        for lock in self._stripe_locks:
            lock.acquire()
        try:
            for stripe in range(_STRIPES):
                self._epochs[stripe] += 1
            if self._near is not None:
                self._near.invalidate_prefix(self._prefix + prefix)
            with self._breaker_lock:
                if not self._closed:
                    self._queue_invalidation(prefix=prefix)
                    return
            try:
                for revision_prefix in self._all_prefixes():
                    self._unlink_prefix(revision_prefix + prefix)
            except RedisError as exc:
                self._queue_invalidation(prefix=prefix)
                self._trip(exc)
        finally:
            if self._near is not None:
                self._near.invalidate_prefix(self._prefix + prefix)
            for lock in self._stripe_locks:
                lock.release()

    def _delete_or_queue(self, key: str, *, own: bool = True) -> None:
        """Delete `key` under every live revision (`own=False`: all but ours) or queue it."""
        with self._breaker_lock:
            if not self._closed:
                self._queue_invalidation(key=key)
                return
        prefixes = self._all_prefixes() if own else self._all_prefixes()[1:]
        try:
            self._redis.delete(*(p + key for p in prefixes))
        except RedisError as exc:
            self._queue_invalidation(key=key)
            self._trip(exc)

    def _queue_invalidation(self, *, key: str | None = None, prefix: str | None = None) -> None:
        """Remember an invalidation Redis may not have seen. Under the breaker lock, so the
        prober's replay-then-close cannot miss one."""
        with self._breaker_lock:
            if key is not None:
                self._pending_keys.add(key)
            if prefix is not None:
                self._pending_prefixes.add(prefix)
            if len(self._pending_keys) + len(self._pending_prefixes) > self.max_pending:
                self._pending_overflow = True
                self._pending_keys.clear()
                self._pending_prefixes.clear()

    def _unlink_prefix(self, full_prefix: str) -> None:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in full_prefix) + "*"
        batch: list[bytes] = []
        for found in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(found)
            if len(batch) >= 500:
                self._redis.unlink(*batch)
                batch.clear()
        if batch:
            self._redis.unlink(*batch)

    # -- breaker ---------------------------------------------------------------------------
    def _trip(self, exc: BaseException) -> None:
        """First failure: open the breaker, start the prober, log once."""
        self._stats.errors += 1
        with self._breaker_lock:
            if not self._closed:
                return
            self._closed = False
            self._stats.breaker_opened += 1
            self._prober = threading.Thread(target=self._probe_loop, name="cache-probe")
            self._prober.daemon = True
            self._prober.start()
        if self._near is not None:
            self._near.clear()
        reason = redact(f"{type(exc).__name__}: {exc}", self._secrets)
        self.breaker_log.transition("open", logging.WARNING, reason=reason)

    def _probe_loop(self) -> None:
        opened = time.monotonic()
        while not self._stopping.wait(self.probe_interval):
            try:
                replayed = self._recover()
            except Exception:  # whatever went wrong, Redis is not usable yet
                replayed = None
            if replayed is not None:
                self.breaker_log.transition(
                    "closed",
                    down_seconds=round(time.monotonic() - opened, 3),
                    replayed_invalidations=replayed,
                )
                return

    def _recover(self) -> int | None:
        """Ping, replay queued invalidations, re-read the generation, close. None if Redis is
        still unhealthy. Closing happens under the breaker lock with nothing left queued, so an
        invalidation is either replayed here or sent directly after the close."""
        replayed = 0
        try:
            self._redis.ping()
            while True:
                with self._breaker_lock:
                    keys, self._pending_keys = self._pending_keys, set()
                    prefixes, self._pending_prefixes = self._pending_prefixes, set()
                    overflow, self._pending_overflow = self._pending_overflow, False
                    if not (keys or prefixes or overflow):
                        self._refresh_generation()
                        self._closed = True
                        return replayed
                try:
                    self._replay(keys, prefixes, overflow)
                except BaseException:
                    with self._breaker_lock:
                        self._pending_keys |= keys
                        self._pending_prefixes |= prefixes
                        self._pending_overflow |= overflow
                    raise
                replayed += len(keys) + len(prefixes) + int(overflow)
        except RedisError:
            return None

    def _replay(self, keys: builtins.set[str], prefixes: builtins.set[str], overflow: bool) -> None:
        self._refresh_generation()  # the revisions live now
        revision_prefixes = self._all_prefixes()
        if overflow:
            try:
                self._redis.incr(self._gen_key)
            except OutOfMemoryError:  # cannot bump it: delete the generation's keys instead
                for revision_prefix in revision_prefixes:
                    self._unlink_prefix(revision_prefix)
            self._refresh_generation()
            return
        ordered = [p + k for k in keys for p in revision_prefixes]
        for start in range(0, len(ordered), 500):
            self._redis.delete(*ordered[start : start + 500])
        for prefix in prefixes:
            for revision_prefix in revision_prefixes:
                self._unlink_prefix(revision_prefix + prefix)

    def _refresh_generation(self) -> None:
        """Read the key generation; a Redis that lost its data gets a new one (time-based),
        so entries restored from an old snapshot cannot be mistaken for current ones.

        In the same round trip, say that this revision is live (until its longest-lived
        entry may expire) and read which other revisions are."""
        now = time.time()
        own = self.schema_revision or ""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._gen_key)
        if own:  # a client without a revision only reads the registry, as before it wrote none
            pipe.zadd(self._revisions_key, {own: now + self._live_for()}, gt=True)  # GT adds too
            pipe.zremrangebyscore(self._revisions_key, "-inf", now)
        pipe.zrangebyscore(self._revisions_key, now, "+inf")
        gen, *registered, live = pipe.execute(raise_on_error=False)
        for result in (gen, live):
            if isinstance(result, Exception):
                raise result
        for result in registered:
            # Out of memory refuses the ZADD only: the registry keeps the older score.
            if isinstance(result, Exception) and not isinstance(result, OutOfMemoryError):
                raise result
        if gen is None:
            with contextlib.suppress(OutOfMemoryError):  # then generation 0 it is
                self._redis.set(self._gen_key, time.time_ns(), nx=True)
            gen = self._redis.get(self._gen_key)
        self._gen = int(gen or 0)
        members = {m.decode() if isinstance(m, bytes) else str(m) for m in live}
        if own:  # keys of clients without a revision (e.g. the release before the first one
            members.add("")  # that set it) are invalidated too
        self._others = tuple(sorted(members - {own}))
        self._prefix = self._prefix_of(own)
        self._gen_due = time.monotonic() + self.probe_interval

    def _live_for(self) -> float:
        """How long this revision's entries may outlive this refresh: its longest TTL, plus
        the time to the next refresh (and one more interval for clocks a little apart)."""
        return self._longest_ttl + 2 * self.probe_interval

    def _prefix_of(self, revision: str) -> str:
        """Keys' prefix for `revision` ("" = the keys of a client without a revision)."""
        if not revision:
            return f"{self.namespace}:{self._gen}:"
        return f"{self.namespace}:{self._gen}@{revision}:"

    def _all_prefixes(self) -> list[str]:
        """Ours first, then the other live revisions'."""
        return [self._prefix, *(self._prefix_of(r) for r in self._others)]

    def _revisions_due(self) -> None:
        """Before a write or an invalidation: re-read the live revisions if they are due."""
        if self._closed and time.monotonic() >= self._gen_due:
            self._maybe_refresh_generation()

    def _maybe_refresh_generation(self) -> None:
        try:
            self._refresh_generation()
        except OutOfMemoryError:
            self._gen_due = time.monotonic() + self.probe_interval
        except RedisError as exc:
            self._trip(exc)

    def _pause_writes(self) -> None:
        self._writes_paused_until = time.monotonic() + self.probe_interval
        self._stats.writes_skipped += 1
        self.writes_log.transition("paused", logging.WARNING, reason="Redis is out of memory")

    # -- introspection ---------------------------------------------------------------------
    @property
    def breaker_state(self) -> str:
        return "closed" if self._closed else "open"

    def stats(self) -> CacheStats:
        snapshot = CacheStats(**self._stats.as_dict())  # type: ignore[arg-type]
        snapshot.breaker_state = self.breaker_state
        snapshot.pending_invalidations = len(self._pending_keys) + len(self._pending_prefixes)
        return snapshot

    def close(self) -> None:
        self._stopping.set()
        if self._prober is not None:
            self._prober.join(5)
        if self._near is not None:
            self._near.close()
        self._redis.close()

    def __repr__(self) -> str:
        return (
            f"CacheClient(namespace={self.namespace!r}, revision={self.schema_revision!r}, "
            f"breaker={self.breaker_state})"
        )


class RedisManager:
    """Builds the application's cache client from settings (REQ-INFRA-03)."""

    def __init__(
        self,
        redis_settings: RedisSettings | Settings,
        cache: CacheSettings | None = None,
        *,
        timeout: float = 0.25,
        probe_interval: float = 1.0,
        namespace: str = "cache",
        serializer: Serializer | None = None,
        max_connections: int = 64,
        near_cache_size: int = 0,
        max_pending: int = 10_000,
        name: str = "runtime-cache",
        schema_revision: str | None = None,
    ) -> None:
        if isinstance(redis_settings, Settings):
            cache = cache or redis_settings.cache
            redis_settings = redis_settings.need_redis()
        if timeout <= 0:
            raise ValueError(f"timeout: got {timeout!r}; allowed: > 0 seconds")
        if near_cache_size < 0:
            raise ValueError(f"near_cache_size: got {near_cache_size!r}; allowed: >= 0")
        self.redis_settings = redis_settings
        self.cache_settings = cache or CacheSettings()
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.namespace = namespace
        self.serializer = serializer
        self.max_connections = max_connections
        self.near_cache_size = near_cache_size
        self.max_pending = max_pending
        self.name = name
        # The revision this release's code expects (never the database's): the argument, else
        # CACHE_SCHEMA_REVISION, else the head of CACHE_ALEMBIC_SCRIPT_DIR.
        self.schema_revision = schema_revision or expected_revision(self.cache_settings)
        self._client: CacheClient | None = None
        self._lock = threading.Lock()

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [self.redis_settings.url.reveal()]
        if self.redis_settings.password is not None:
            found.append(self.redis_settings.password.reveal())
        return tuple(found)

    def redis_client(self) -> redis.Redis:
        """A redis-py client with the cache path's settings: small timeouts, no retries."""
        return redis.Redis.from_url(
            self.redis_settings.url.reveal(),
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name=self.name,
            max_connections=self.max_connections,
        )

    def get_cache_client(self) -> CacheClient:
        """The manager's one cache client (created on first call; Redis may be down then)."""
        with self._lock:
            if self._client is None:
                near: NearCache | None = None
                if self.near_cache_size:
                    near = NearCache(self, max_entries=self.near_cache_size)
                self._client = CacheClient(
                    self.redis_client(),
                    namespace=self.namespace,
                    default_ttl=self.cache_settings.default_ttl_seconds,
                    serializer=self.serializer,
                    probe_interval=self.probe_interval,
                    max_pending=self.max_pending,
                    near_cache=near,
                    secrets=self.secrets,
                    schema_revision=self.schema_revision,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __repr__(self) -> str:
        return f"RedisManager({mask_url(self.redis_settings.url.reveal())}, ns={self.namespace!r})"


def iter_stats(client: CacheClient) -> Iterator[tuple[str, float]]:
    """(name, value) pairs for a metrics collector; the breaker state as 1 = open."""
    for name, value in client.stats().as_dict().items():
        if isinstance(value, str):
            yield "breaker_open", 1.0 if value == "open" else 0.0
        else:
            yield name, float(value)
