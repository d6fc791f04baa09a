"""Keep secrets out of logs, reprs, manifests and exception text.

A DSN's password is passed to PostgreSQL tools through `PGPASSWORD`, never on a command line
(visible in `ps`), and every message that could echo a DSN goes through `redact()`.
"""

from __future__ import annotations

import re

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runtime.errors import redact as redact_secrets

_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by `***` (for messages and reprs)."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", dsn))


def redact(text: str, *secrets: str | None) -> str:
    """`text` with DSN passwords and each given secret replaced by `***`."""
    return redact_secrets(mask_dsn(text), secrets)


def split_dsn(dsn: str) -> tuple[str, str | None, str]:
    """(conninfo without password, password, database name) for a URL or key=value DSN."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    dbname = str(params.get("dbname") or params.get("user") or "")
    return make_conninfo("", **params), (str(password) if password is not None else None), dbname
