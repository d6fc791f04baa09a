"""The versions a `pg_dump -Fc` archive records in its own header.

The manifest names the server and the pg_dump that made a backup. Reading both from the first
bytes of the stream we are storing anyway spares `backup create` a database connection (and the
psycopg import it needs) and a `pg_dump --version` process while pg_dump competes for the CPU.

The layout is PostgreSQL's `WriteHead` (src/bin/pg_dump/pg_backup_archiver.c): "PGDMP", three
version bytes, the int and offset sizes, the format; then the compression (an int up to archive
version 1.14, PostgreSQL 15; one byte from 1.15, PostgreSQL 16); seven ints of creation time;
then three strings: the database name, the server's `server_version`, pg_dump's `PG_VERSION`.
An int is a sign byte and `intSize` little-endian bytes; a string is an int length (-1: NULL)
and its bytes. Anything unexpected gives None, and the caller asks the old way.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"PGDMP"
CUSTOM_FORMAT = 1  # archFormat's archCustom
HEAD_BYTES = 4096  # the header is a few hundred bytes; names are capped well below this


@dataclass(frozen=True)
class ArchiveVersions:
    server_version: str  # as `SELECT current_setting('server_version')` gives it
    tool_version: str  # as `pg_dump --version` prints it


class _Truncated(Exception):
    pass


class _Cursor:
    def __init__(self, data: bytes, int_size: int = 4) -> None:
        self.data = data
        self.pos = 0
        self.int_size = int_size

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def integer(self) -> int:
        negative = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if negative else value

    def string(self) -> str | None:
        length = self.integer()
        return None if length < 0 else self.take(length).decode("utf-8", "replace")


def read_versions(head: bytes) -> ArchiveVersions | None:
    """The server and pg_dump versions in a custom-format archive's first bytes, or None."""
    if not head.startswith(MAGIC):
        return None
    cursor = _Cursor(head)
    try:
        cursor.take(len(MAGIC))
        major, minor = cursor.byte(), cursor.byte()
        cursor.byte()  # revision
        cursor.int_size = cursor.byte()
        cursor.byte()  # offset size
        if cursor.byte() != CUSTOM_FORMAT or not 1 <= cursor.int_size <= 8 or major != 1:
            return None
        if minor >= 15:
            cursor.byte()  # compression algorithm
        else:
            cursor.integer()  # compression level
        for _ in range(7):  # tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_isdst
            cursor.integer()
        cursor.string()  # database name
        server, tool = cursor.string(), cursor.string()
    except _Truncated:
        return None
    if not server or not tool:
        return None
    return ArchiveVersions(server_version=server, tool_version=f"pg_dump (PostgreSQL) {tool}")
