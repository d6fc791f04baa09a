"""The server fixtures themselves: faults they inject must be real."""

from __future__ import annotations

import socket

import psycopg
import pytest
import redis

from tests.servers import BlackHole, PostgresServer, RedisServer


def test_postgres_kill9_and_restart_keeps_data(fresh_postgres: PostgresServer) -> None:
    with psycopg.connect(fresh_postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (42)")
    fresh_postgres.kill9()
    assert not fresh_postgres.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(fresh_postgres.dsn, connect_timeout=2)
    fresh_postgres.start()
    with psycopg.connect(fresh_postgres.dsn) as conn:
        assert conn.execute("SELECT v FROM t").fetchone() == (42,)


def test_postgres_requires_password(postgres_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**postgres_server.conninfo(password="wrong"), connect_timeout=5)


def test_redis_kill9_refuses_then_restarts(fresh_redis: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_redis.url, socket_timeout=1)
    client.set("k", "v")
    fresh_redis.kill9()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(fresh_redis.url, socket_timeout=1, retry=None).ping()
    fresh_redis.start()
    assert redis.Redis.from_url(fresh_redis.url).ping()


def test_black_hole_accepts_and_never_answers(black_hole: BlackHole) -> None:
    with socket.create_connection(("127.0.0.1", black_hole.port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
