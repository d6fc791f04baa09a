"""Cache generations tied to the schema: real Redis, two releases (schema revisions) live at
once, as in a rolling deploy across a migration (docs/cache-generations.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.cache import CacheClient, RedisManager
from runtime.errors import ConfigError
from runtime.schema_revision import alembic_head
from runtime.settings import load_settings
from tests.servers import RedisServer

INTERVAL = 0.05  # the clients' probe interval: how soon they see another revision go live


@pytest.fixture
def clients() -> Iterator[list[CacheClient]]:
    made: list[CacheClient] = []
    yield made
    for client in made:
        client.close()


def new_client(
    server: RedisServer, namespace: str, revision: str | None, made: list[CacheClient]
) -> CacheClient:
    client = CacheClient(
        redis.Redis.from_url(server.url, socket_timeout=0.2, socket_connect_timeout=0.2),
        namespace=namespace,
        default_ttl=60,
        probe_interval=INTERVAL,
        schema_revision=revision,
    )
    made.append(client)
    return client


def loader_of(revision: str, db: dict[str, int], key: str) -> Callable[[], dict[str, Any]]:
    """Each release reads the same rows into its own shape (what a migration changes)."""
    return lambda: {"shape": revision, "v": db[key]}


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["read", "read", "set", "invalidate", "wait"]),
        st.sampled_from(["r1", "r2"]),
        st.sampled_from("ab"),
    ),
    min_size=2,
    max_size=40,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS, migrate=st.floats(0, 1))
def test_two_releases_interleaved_each_reads_only_its_own_shape_and_never_a_stale_value(
    redis_server: RedisServer, ops: list[tuple[str, str, str]], migrate: float
) -> None:
    """Release r1 runs alone; part way (`migrate`) the migration to r2 is done and r2's
    processes start next to r1's (a rolling deploy, Redis never flushed). Readers and writers
    of both interleave: a read returns its own release's shape and the latest value."""
    namespace = f"g{uuid.uuid4().hex[:10]}"
    made: list[CacheClient] = []
    live = {"r1": new_client(redis_server, namespace, "r1", made)}
    db = {"a": 0, "b": 0}
    version = 0
    migrate_at = int(migrate * len(ops))
    try:
        for step, (op, revision, key) in enumerate(ops):
            if step == migrate_at:
                live["r2"] = new_client(redis_server, namespace, "r2", made)
                time.sleep(2 * INTERVAL)  # r1's processes see r2 at their next call
            cache = live.get(revision)
            if cache is None:
                continue  # r2's code is not deployed yet
            if op == "read":
                got = cache.get_or_load(key, loader_of(revision, db, key))
                assert got == {"shape": revision, "v": db[key]}
            elif op in ("set", "invalidate"):
                version += 1
                db[key] = version  # the database write, then the cache call completes it
                if op == "set":
                    cache.set(key, {"shape": revision, "v": version})
                else:
                    cache.invalidate(key)
            else:
                time.sleep(INTERVAL / 5)
    finally:
        for client in made:
            client.close()


def test_after_the_migration_nothing_old_is_served_and_the_hit_ratio_recovers(
    redis_server: RedisServer, clients: list[CacheClient]
) -> None:
    namespace = f"g{uuid.uuid4().hex[:10]}"
    db = {f"k{i}": i for i in range(100)}
    old = new_client(redis_server, namespace, "r1", clients)
    for key in db:
        old.get_or_load(key, loader_of("r1", db, key))
    new = new_client(redis_server, namespace, "r2", clients)
    ratios = []
    for _ in range(3):
        before = new.stats()
        for key in db:
            assert new.get_or_load(key, loader_of("r2", db, key))["shape"] == "r2"
        after = new.stats()
        ratios.append((after.hits - before.hits) / len(db))
    assert ratios == [0.0, 1.0, 1.0]  # cold after the migration, then every entry is r2's
    admin = redis.Redis.from_url(redis_server.url)
    old_keys = list(admin.scan_iter(match=f"{namespace}:*@r1:*"))
    assert len(old_keys) == len(db)  # not flushed: r1's entries expire by their TTL
    assert all(0 < admin.ttl(k) <= 60 for k in old_keys)
    assert old.get_or_load("k1", lambda: None) == {"shape": "r1", "v": 1}  # r1 still hits


def test_writes_and_invalidations_reach_the_other_live_revision(
    redis_server: RedisServer, clients: list[CacheClient]
) -> None:
    namespace = f"g{uuid.uuid4().hex[:10]}"
    db = {"user:1": 1, "user:2": 1, "order:1": 1}
    old = new_client(redis_server, namespace, "r1", clients)
    new = new_client(redis_server, namespace, "r2", clients)
    for key in db:
        old.get_or_load(key, loader_of("r1", db, key))
        new.get_or_load(key, loader_of("r2", db, key))
    db["user:1"] = 2
    new.set("user:1", {"shape": "r2", "v": 2})  # r1's copy is stale now: deleted
    assert old.get_or_load("user:1", loader_of("r1", db, "user:1")) == {"shape": "r1", "v": 2}
    db["user:2"] = db["order:1"] = 3
    time.sleep(2 * INTERVAL)  # r1 has seen r2 go live by its next call
    old.invalidate_prefix("user:")
    old.invalidate("order:1")
    for key in db:
        assert new.get_or_load(key, loader_of("r2", db, key)) == {"shape": "r2", "v": db[key]}


def test_a_client_without_a_revision_and_one_with_never_share_entries(
    redis_server: RedisServer, clients: list[CacheClient]
) -> None:
    """The deploy that first sets a revision: the previous release has none."""
    namespace = f"g{uuid.uuid4().hex[:10]}"
    db = {"k": 1}
    before = new_client(redis_server, namespace, None, clients)
    before.get_or_load("k", loader_of("none", db, "k"))
    after = new_client(redis_server, namespace, "r1", clients)
    assert after.get_or_load("k", loader_of("r1", db, "k")) == {"shape": "r1", "v": 1}
    db["k"] = 2
    after.invalidate("k")  # reaches the unrevisioned entry too
    assert before.get_or_load("k", loader_of("none", db, "k")) == {"shape": "none", "v": 2}
    db["k"] = 3
    time.sleep(2 * INTERVAL)
    before.invalidate("k")  # a new client without a revision reads the registry
    assert after.get_or_load("k", loader_of("r1", db, "k")) == {"shape": "r1", "v": 3}


def test_an_invalidation_queued_during_an_outage_reaches_the_other_revision_when_replayed(
    redis_server: RedisServer, clients: list[CacheClient]
) -> None:
    namespace = f"g{uuid.uuid4().hex[:10]}"
    db = {"k": 1}
    old = new_client(redis_server, namespace, "r1", clients)
    new = new_client(redis_server, namespace, "r2", clients)
    old.get_or_load("k", loader_of("r1", db, "k"))
    admin = redis.Redis.from_url(redis_server.url)
    admin.client_pause(600, all=False)  # WRITE: DEL blocks past the client's timeout
    db["k"] = 2
    new.invalidate("k")
    assert new.stats().pending_invalidations == 1 and new.breaker_state == "open"
    eventually(lambda: new.breaker_state == "closed")  # replayed, then closed
    assert old.get_or_load("k", loader_of("r1", db, "k")) == {"shape": "r1", "v": 2}


def test_the_near_cache_of_one_revision_drops_what_the_other_invalidates(
    redis_server: RedisServer,
) -> None:
    namespace = f"g{uuid.uuid4().hex[:10]}"
    env = {"DATABASE_URL": "postgresql://h/d", "REDIS_URL": redis_server.url}
    managers = [
        RedisManager(
            load_settings(env={**env, "CACHE_SCHEMA_REVISION": revision}),
            namespace=namespace,
            near_cache_size=100,
            probe_interval=INTERVAL,
            timeout=0.2,
        )
        for revision in ("r1", "r2")
    ]
    try:
        old, new = (m.get_cache_client() for m in managers)
        assert (old.schema_revision, new.schema_revision) == ("r1", "r2")
        db = {"k": 1}
        old.get_or_load("k", loader_of("r1", db, "k"))
        near = old._near
        assert near is not None
        eventually(lambda: old.get_or_load("k", lambda: None) is not None and len(near) == 1)
        assert new.get_or_load("k", loader_of("r2", db, "k")) == {"shape": "r2", "v": 1}
        db["k"] = 2
        new.invalidate("k")
        eventually(lambda: len(near) == 0)  # Redis's invalidation message for r1's key
        assert old.get_or_load("k", loader_of("r1", db, "k")) == {"shape": "r1", "v": 2}
    finally:
        for manager in managers:
            manager.close()


# -- where the revision comes from -----------------------------------------------------------


def write_revision(versions: Path, revision: str, down: str | None, annotated: bool) -> None:
    """A revision file as Alembic's templates write it (older plain, newer annotated)."""
    if annotated:
        body = f"""\
            from typing import Sequence, Union
            revision: str = {revision!r}
            down_revision: Union[str, Sequence[str], None] = {down!r}
            def upgrade() -> None: ...
            """
    else:
        body = f"""\
            revision = {revision!r}
            down_revision = {down!r}
            def upgrade(): ...
            """
    (versions / f"{revision}_step.py").write_text(textwrap.dedent(body))


def test_the_head_is_read_from_an_alembic_script_directory(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (tmp_path / "env.py").write_text("# Alembic's env.py\n")
    write_revision(versions, "1a2b", None, annotated=False)
    write_revision(versions, "3c4d", "1a2b", annotated=True)
    assert alembic_head(tmp_path) == "3c4d"
    assert alembic_head(versions) == "3c4d"
    write_revision(versions, "5e6f", "1a2b", annotated=True)  # a branch: two heads
    assert alembic_head(tmp_path) == "3c4d+5e6f"
    (versions / "7a8b_merge.py").write_text("revision = '7a8b'\ndown_revision = ('3c4d', '5e6f')\n")
    assert alembic_head(tmp_path) == "7a8b"


def test_a_bad_script_directory_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cache.alembic_script_dir.*an existing directory"):
        alembic_head(tmp_path / "missing")
    with pytest.raises(ConfigError, match="Alembic revisions"):
        alembic_head(tmp_path)
    (tmp_path / "bad.py").write_text("revision = 'no spaces allowed'\ndown_revision = None\n")
    with pytest.raises(ConfigError, match=r"bad.py: revision.*'no spaces allowed'"):
        alembic_head(tmp_path)


def test_the_revision_comes_from_the_settings_or_the_code_never_from_the_database(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    write_revision(versions, "feed01", None, annotated=True)
    env = {"DATABASE_URL": "postgresql://h/d", "REDIS_URL": redis_server.url}
    from_dir = load_settings(env={**env, "CACHE_ALEMBIC_SCRIPT_DIR": str(tmp_path)})
    assert RedisManager(from_dir).schema_revision == "feed01"
    both = load_settings(
        env={**env, "CACHE_ALEMBIC_SCRIPT_DIR": str(tmp_path), "CACHE_SCHEMA_REVISION": "r9"}
    )
    assert RedisManager(both).schema_revision == "r9"
    assert RedisManager(load_settings(env=env)).schema_revision is None
    with pytest.raises(ConfigError, match=r"CACHE_SCHEMA_REVISION.*'bad rev'.*A-Z a-z 0-9"):
        load_settings(env={**env, "CACHE_SCHEMA_REVISION": "bad rev"})
    with pytest.raises(ConfigError, match=r"cache.schema_revision.*'abc:1'"):  # ':' splits keys
        load_settings({"cache": {"schema_revision": "abc:1"}}, env=env)


def test_reading_the_head_loads_neither_alembic_nor_sqlalchemy(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("revision = 'a1'\ndown_revision = None\n")
    code = (
        "import sys; from pathlib import Path; import runtime.cache; "
        "from runtime.schema_revision import alembic_head; "
        f"assert alembic_head(Path({str(tmp_path)!r})) == 'a1'; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'sqlalchemy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
