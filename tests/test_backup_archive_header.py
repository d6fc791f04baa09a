"""The versions read from a `pg_dump -Fc` archive's header, on archives real pg_dump wrote."""

from __future__ import annotations

import subprocess

import pytest

from runtime.backup.archive_header import HEAD_BYTES, read_versions
from runtime.backup.dump import PgTools, dump_argv
from tests.servers import PostgresServer


@pytest.fixture(scope="module")
def archive_head(postgres_server: PostgresServer) -> bytes:
    tools = PgTools.find(None)
    argv, password = dump_argv(tools, postgres_server.dsn, None, None)
    env = {"PGPASSWORD": password} if password else None
    out = subprocess.run(argv, capture_output=True, check=True, env=env).stdout
    return out[:HEAD_BYTES]


@pytest.mark.server
def test_a_real_archive_names_its_server_and_pg_dump(
    archive_head: bytes, postgres_server: PostgresServer
) -> None:
    versions = read_versions(archive_head)
    assert versions is not None
    assert versions.server_version == postgres_server.psql("SHOW server_version").strip()
    assert versions.tool_version == PgTools.find(None).version()


@pytest.mark.server
@pytest.mark.parametrize("cut", [0, 5, 12, 40, 60])
def test_a_truncated_header_gives_none_not_an_error(archive_head: bytes, cut: int) -> None:
    assert read_versions(archive_head[:cut]) is None


@pytest.mark.parametrize(
    "head", [b"", b"not an archive", b"PGDMP\x01\x0e\x00\x04\x08\x03"], ids=str
)
def test_anything_but_a_custom_archive_gives_none(head: bytes) -> None:
    assert read_versions(head) is None
