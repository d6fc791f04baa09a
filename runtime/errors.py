"""The runtime's one error family: everything it raises on purpose is a `PlatformError`.

Callers catch `PlatformError` (or one of its subclasses) instead of driver exceptions, so an
application never depends on psycopg or redis-py error classes. Every bad or missing setting
is a `ConfigError` (exit code 2 on every command line); the other families live with their
area (`runtime.backup.errors.BackupError`, `runtime.contracts.ContractError`,
`runtime.monitoring.MonitoringError`); the README's "Errors" section lists them. Messages name what
failed (host, port, field) and never carry a secret: `redact()` scrubs them first.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by the mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class PlatformError(Exception):
    """Base of every error the runtime raises on purpose."""


class ConfigError(PlatformError, ValueError):
    """A setting holds a value that is not allowed; names the field, the value and the rule."""

    def __init__(self, field: str, value: object, allowed: str, *, secret: bool = False) -> None:
        shown = MASK if secret else repr(value)
        super().__init__(f"{field}: got {shown}; allowed: {allowed}")
        self.field = field
        self.value = MASK if secret else value
        self.allowed = allowed


class DatabaseError(PlatformError):
    """Base of the pool's errors."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL cannot be reached (refused, down, restarting); retry later."""

    def __init__(self, host: str, port: int, reason: str, *, attempts: int | None = None) -> None:
        tried = f" after {attempts} attempts" if attempts else ""
        super().__init__(f"PostgreSQL at {host}:{port} is unavailable{tried}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.attempts = attempts


class PoolTimeout(DatabaseError):
    """Every connection stayed busy for the whole wait: the pool is exhausted."""

    def __init__(self, waited: float, max_connections: int) -> None:
        super().__init__(
            f"no PostgreSQL connection became free within {waited:g} s "
            f"(all {max_connections} connections in use; raise DB_POOL_SIZE/DB_MAX_OVERFLOW "
            "or DB_POOL_TIMEOUT, or hold connections for less time)"
        )
        self.waited = waited
        self.max_connections = max_connections


class StatementTimeout(DatabaseError):
    """A statement ran longer than the configured statement timeout and was cancelled."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"statement cancelled after the statement timeout of {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class CacheError(PlatformError):
    """A cache value could not be encoded or decoded (Redis outages never raise)."""
