"""Logging in to the PostgreSQL server a `pitr` command checks: "refuses our login" is told
apart from "not up (yet)".

psycopg raises `OperationalError` for both and gives no SQLSTATE for a failure during the
connection; the server's FATAL line (or libpq's own message) says which it is. Waiting cures a
server that is starting, never a refused login, so callers report that at once.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from runtime.pitr.pgbackrest import PitrError
from runtime.settings import PitrSettings

_REFUSED = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects|"
    r'role "[^"]*" does not exist|is not permitted to log in|no password supplied|'
    r'database "[^"]*" does not exist|permission denied for database',
    re.IGNORECASE,
)
_FATAL = re.compile(r"FATAL:\s*(.+)")


class LoginRefused(PitrError):
    """The server runs but refuses the login: no amount of waiting changes that."""


def refusal(exc: BaseException) -> str | None:
    """The server's reason when `exc` is a refused login; None when the server is not up."""
    text = str(exc)
    if not _REFUSED.search(text):
        return None
    fatal = _FATAL.search(text)
    return (fatal.group(1) if fatal else text.strip().splitlines()[-1]).strip()


def connect(
    settings: PitrSettings, port: int, connect_timeout: int = 5
) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection over the Unix socket as `pitr.pg_user`; `LoginRefused` naming the user,
    the socket and the server's reason when the server refuses it; else psycopg's error."""
    try:
        return psycopg.connect(
            host=str(settings.pg_socket),
            port=port,
            user=settings.pg_user,
            dbname="postgres",
            connect_timeout=connect_timeout,
        )
    except psycopg.OperationalError as exc:
        reason = refusal(exc)
        if reason is None:
            raise
        raise LoginRefused(
            f"the server on port {port} (socket {settings.pg_socket}) is running but refuses "
            f"the login as {settings.pg_user!r}: {reason}; its pg_hba.conf/pg_ident.conf decide "
            "who may log in (run as the data directory's owner, or set PITR_PG_USER to a role "
            "they allow)"
        ) from None
