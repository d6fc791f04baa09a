"""An optional near-cache: in-process copies of hot entries, coherent through Redis
server-assisted client-side caching.

redis-py's own `cache_config` needs Redis >= 7.4 (it refuses older servers); Redis 6+ already
has the mechanism it uses, so this module drives it directly: one RESP3 connection runs
`CLIENT TRACKING ON BCAST PREFIX <ns>:`, after which Redis pushes an `invalidate` message for
every change to a key under the namespace, by any client. A listener thread applies them.

Coherence rules: an entry read from Redis is kept only if no invalidation arrived between the
read and the store (`begin`/`commit` tokens); while the invalidation connection is down the
near-cache is emptied and bypassed, then re-enabled once tracking is back; entries also age out
after `max_age` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

import redis
from redis.exceptions import RedisError

from runtime.settings import RedisSettings

_STRIPES = 64


class TrackingSettings(Protocol):
    """What the invalidation connection needs from its owner (`runtime.cache.RedisManager`);
    a protocol, so this module does not import the cache module that imports it."""

    @property
    def redis_settings(self) -> RedisSettings: ...
    @property
    def timeout(self) -> float: ...
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def probe_interval(self) -> float: ...


class NearCache:
    """A bounded LRU of decoded values, invalidated by Redis push messages."""

    def __init__(self, manager: TrackingSettings, max_entries: int, max_age: float = 30.0) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries: got {max_entries!r}; allowed: >= 1")
        self._manager = manager
        self.max_entries = max_entries
        self.max_age = max_age
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by invalidations (per stripe of keys; all stripes on a flush): a value read
        # from Redis before an invalidation of its stripe is not stored.
        self._seqs = [0] * _STRIPES
        self._enabled = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.invalidations = 0
        self._thread = threading.Thread(target=self._listen, name="near-cache", daemon=True)
        self._thread.start()
        self._ready.wait(max(1.0, manager.timeout * 4))

    # -- used by CacheClient ---------------------------------------------------------------
    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or not self._enabled:
                return False, None
            if entry[0] < time.monotonic():
                del self._data[key]
                return False, None
            self._data.move_to_end(key)
            return True, entry[1]

    def begin(self, key: str) -> int:
        return self._seqs[hash(key) % _STRIPES]

    def commit(self, key: str, token: int, value: Any) -> None:
        with self._lock:
            if not self._enabled or token != self._seqs[hash(key) % _STRIPES]:
                return
            self._data[key] = (time.monotonic() + self.max_age, value)
            self._data.move_to_end(key)
            if len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def _bump_all(self) -> None:
        for stripe in range(_STRIPES):
            self._seqs[stripe] += 1

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._seqs[hash(key) % _STRIPES] += 1
            self._data.pop(key, None)

    def invalidate_prefix(self, prefix: str) -> None:
        with self._lock:
            self._bump_all()
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._bump_all()
            self._data.clear()

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the invalidation listener ---------------------------------------------------------
    def _on_invalidate(self, message: list[Any]) -> None:
        keys = message[1] if len(message) > 1 else None
        with self._lock:
            self.invalidations += 1
            if keys is None:  # FLUSHDB / FLUSHALL
                self._bump_all()
                self._data.clear()
                return
            for raw in keys:
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                self._seqs[hash(key) % _STRIPES] += 1
                self._data.pop(key, None)

    def _set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._bump_all()
            self._data.clear()
            self._enabled = enabled

    def _connect(self) -> Any:
        """A dedicated RESP3 connection with tracking on (redis-py's Connection is untyped)."""
        pool = redis.ConnectionPool.from_url(
            self._manager.redis_settings.url.reveal(),
            protocol=3,
            socket_timeout=self._manager.timeout,
            socket_connect_timeout=self._manager.timeout,
            client_name=f"{self._manager.name}-near",
        )
        conn: Any = pool.make_connection()
        conn.connect()
        conn._parser.set_invalidation_push_handler(self._on_invalidate)
        conn.send_command(
            "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", f"{self._manager.namespace}:"
        )
        if conn.read_response() not in (b"OK", "OK"):
            raise RedisError("CLIENT TRACKING was refused")
        return conn

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except (RedisError, OSError):
                self._ready.set()
                self._stop.wait(self._manager.probe_interval)
                continue
            self._set_enabled(True)
            self._ready.set()
            try:
                while not self._stop.is_set():
                    if conn.can_read(timeout=0.1):
                        conn.read_response(push_request=True)
            except (RedisError, OSError):
                pass  # lost: nothing tells us about changes any more
            finally:
                self._set_enabled(False)
                conn.disconnect()
