"""The environment the migration command runs with: where the primary is, and the bounds on
its sessions.

Everything goes in the environment, never in argv (which `ps` shows every user): libpq's own
variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE... one for each keyword
the DSN sets, as libpq names them) so that psql, psycopg, SQLAlchemy-on-psycopg and any
libpq client connect to the primary without being told, `DATABASE_URL` for tools that want
one URL, and `PGOPTIONS` carrying `lock_timeout` and `statement_timeout`, which the server
applies to every session libpq opens.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.settings import DatabaseSettings, MigrateSettings
from runtime.settings_rules import split_dsn

# libpq's environment variable for each connection keyword (libpq's PQconndefaults, "envvar";
# tests/test_migrate.py compares this table with the installed libpq's).
LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "sslmode": "PGSSLMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcertmode": "PGSSLCERTMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "min_protocol_version": "PGMINPROTOCOLVERSION",
    "max_protocol_version": "PGMAXPROTOCOLVERSION",
}

# Inherited variables that could point the command elsewhere than the primary.
DROPPED = ("DATABASE_REPLICA_URLS",)

APPLICATION_NAME = "runtime-migrate"


def _ms(seconds: float) -> int:
    """Milliseconds for a `-c` option; a positive value never rounds to 0, which means off."""
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


def session_options(settings: MigrateSettings) -> str:
    """The `-c` options every session of the command starts with."""
    return (
        f"-c lock_timeout={_ms(settings.lock_timeout_seconds)}"
        f" -c statement_timeout={_ms(settings.statement_timeout_seconds)}"
    )


def child_env(
    database: DatabaseSettings, settings: MigrateSettings, base: Mapping[str, str]
) -> dict[str, str]:
    """`base` (the runner's environment) with the primary's connection and the session bounds.
    A PG* variable of `base` stays unless the DSN sets that keyword (then the DSN's value
    wins): the command connects exactly as the runner's own lock session does."""
    env = {k: v for k, v in base.items() if k not in DROPPED}
    parts = split_dsn(database.dsn.reveal())
    parts.setdefault("dbname", database.name)
    parts.setdefault("user", database.user)
    if "password" not in parts and database.password is not None:
        parts["password"] = database.password.reveal()
    parts.setdefault("application_name", APPLICATION_NAME)
    for keyword, value in parts.items():
        if keyword in LIBPQ_ENV and value:
            env[LIBPQ_ENV[keyword]] = str(value)
    # the DSN's (or inherited) options first, the platform's bounds after them: the last -c wins
    given = env.get("PGOPTIONS", "").strip()
    env["PGOPTIONS"] = f"{given} {session_options(settings)}".strip()
    env["DATABASE_URL"] = database.dsn.reveal()
    return env
