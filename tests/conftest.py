"""Shared fixtures: real servers, and the `req` marker's traceability matrix.

`pytest --req-matrix` prints, for each specification ID (UT-INFRA-02.2, ...), the tests that
verify it, then exits without running them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

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


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
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
