"""Shared fixtures: real servers, the `server` mark, and the `req` traceability matrix.

Every test that starts a real server (PostgreSQL, a standby, Redis, nginx, moto's S3, a
pgBackRest cluster, the runtime sidecar over them) is marked `server` here, from what it
uses: its fixtures and the names its code (and its module's helpers it calls) refers to. So
`pytest -m "not server"` is the fast lane (docs/testing.md) without a mark in any test file.

`pytest --req-matrix` prints, for each specification ID (UT-INFRA-02.2, ...), the tests that
verify it, then exits without running them.
"""

from __future__ import annotations

import inspect
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from tests.http_receiver import Receiver
from tests.servers import BlackHole, PostgresServer, RedisServer, StandbyServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--req-matrix",
        action="store_true",
        help="print the specification-ID -> tests traceability matrix and exit",
    )


# What starts a real server (tests/servers.py, tests/data_tier.py, tests/pitr_harness.py,
# moto). Alertmanager, promtool, amtool and the HTTP/OTLP receivers start in well under a
# second and stay in the fast lane.
SERVER_STARTERS = frozenset(
    {
        "PostgresServer",
        "StandbyServer",
        "RedisServer",
        "NginxServer",
        "PebbleServer",
        "TlsProxy",
        "runtime_serve",
        "ArchivingPrimary",
        "Replica",
        "PostgresExporter",
        "ArchivingCluster",
        "ThreadedMotoServer",
        "start_engine",  # the engine tier: a dockerd of its own (tests/engine/)
    }
)


# What takes tens of seconds without a server: promtool's rule tests (`promtool test rules`
# over every alert's cases) and the policy pack's type check in its own virtualenv. A test
# is `slow` when its code (or its module's helpers) holds all the words of one of these.
SLOW_WORDS = (frozenset({"promtool", "test", "rules"}), frozenset({"_pack_venv", "mypy"}))


def _code_names(code: types.CodeType) -> set[str]:
    """The global names and string constants a function's code (and its inner code) holds."""
    names = set(code.co_names) | {c for c in code.co_consts if isinstance(c, str)}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _uses(func: Callable[..., Any], seen: set[int]) -> set[str]:
    """The global names `func` refers to, following the functions and classes of its own
    module that it calls (a test's helpers), not other modules'."""
    func = inspect.unwrap(func)
    if id(func) in seen or not hasattr(func, "__code__"):
        return set()
    seen.add(id(func))
    names = _code_names(func.__code__)
    module = getattr(func, "__module__", None)
    for name in list(names):
        target = func.__globals__.get(name)
        if getattr(target, "__module__", None) != module:
            continue
        if inspect.isfunction(target):
            names |= _uses(target, seen)
        elif inspect.isclass(target):
            for member in vars(target).values():
                if inspect.isfunction(member):
                    names |= _uses(member, seen)
    return names


def _item_uses(item: pytest.Item) -> set[str]:
    """What a test and its fixtures refer to."""
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        funcs += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    seen: set[int] = set()
    return set().union(*(_uses(f, seen) for f in funcs if f is not None))


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        uses = _item_uses(item)
        if SERVER_STARTERS & uses:
            item.add_marker(pytest.mark.server)
        if any(words <= uses for words in SLOW_WORDS):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--req-matrix"):
        return
    matrix: dict[str, list[str]] = defaultdict(list)
    for item in items:
        for marker in item.iter_markers("req"):
            for req_id in marker.args:
                matrix[req_id].append(item.nodeid)
    lines = ["Traceability matrix (specification ID -> tests)"]
    for req_id in sorted(matrix):
        lines.append(f"{req_id}  ({len(matrix[req_id])} tests)")
        lines.extend(f"    {nodeid}" for nodeid in sorted(set(matrix[req_id])))
    print("\n" + "\n".join(lines))
    pytest.exit("traceability matrix printed", returncode=0)


# -- real servers --------------------------------------------------------------------------
# Session-scoped servers are shared by tests that only read and write data; tests that
# stop, kill or fill a server take a function-scoped one of their own.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def replication_primary() -> Iterator[PostgresServer]:
    """A primary that standbys stream from (its own cluster: tests pause and kill those)."""
    server = PostgresServer()
    try:
        server.enable_replication()
        yield server
    finally:
        server.close()


@pytest.fixture
def standby(replication_primary: PostgresServer) -> Iterator[StandbyServer]:
    """A fresh hot standby of `replication_primary` through a slot of its own (dropped after)."""
    server = StandbyServer(replication_primary)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP endpoint that records the notifications it is sent."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    """Another one (e.g. standing in for Alertmanager's v2 API)."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def pgbench_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A pgbench -s 1 database of its own on the shared server (100k accounts); its DSN."""
    dsn = postgres_server.create_database()
    postgres_server.pgbench_init(dsn.rsplit("/", 1)[1])
    yield dsn
    postgres_server.drop_database(dsn)


@pytest.fixture
def empty_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database on the shared server; its DSN."""
    dsn = postgres_server.create_database()
    yield dsn
    postgres_server.drop_database(dsn)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (plain HTTP, one per test module); its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
