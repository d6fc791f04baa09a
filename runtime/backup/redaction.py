"""Keep secrets out of logs, reprs, manifests and exception text.

A DSN's password is passed to PostgreSQL tools through `PGPASSWORD`, never on a command line
(visible in `ps`), and every message that could echo a DSN goes through `redact()`.
Importing this module loads no psycopg: `backup create` starts `pg_dump` before it (~0.1 s).
"""

from __future__ import annotations

import re

from runtime.errors import redact as redact_secrets
from runtime.settings_rules import split_dsn as dsn_keywords

_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by `***` (for messages and reprs)."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", dsn))


def redact(text: str, *secrets: str | None) -> str:
    """`text` with DSN passwords and each given secret replaced by `***`."""
    return redact_secrets(mask_dsn(text), secrets)


def split_dsn(dsn: str) -> tuple[str, str | None, str]:
    """(conninfo without password, password, database name) for a URL or key=value DSN.

    Parsed without psycopg (the settings' own libpq-keyword parser); only what that parser
    rejects (e.g. a multi-host URL) goes to libpq through psycopg."""
    params: dict[str, object]
    try:
        params = dict(dsn_keywords(dsn))
    except ValueError:
        from psycopg.conninfo import conninfo_to_dict

        params = dict(conninfo_to_dict(dsn))
    password = params.pop("password", None)
    dbname = str(params.get("dbname") or params.get("user") or "")
    conninfo = " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in params.items())
    return conninfo, (str(password) if password is not None else None), dbname


def _conninfo_value(value: str) -> str:
    """A conninfo value quoted as libpq reads it (psycopg's `make_conninfo` rule)."""
    if not value:
        return "''"
    value = re.sub(r"([\\'])", r"\\\1", value)
    return f"'{value}'" if re.search(r"\s", value) else value
