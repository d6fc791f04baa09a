"""The rules a setting's raw value must follow, and the masked `Secret` it may become.

Each rule is a small callable record: `rule(name, raw, default)` returns the value or raises
`ConfigError(name, raw, allowed)`; `allowed` is also what the generated environment-variable
tables in `docs/` show. `raw` is None when neither app_config nor the environment has the
field. The vocabularies (eviction policies, log levels, the `maxmemory` size syntax) are the
ones the stack validates too: tests/test_app_config_contract.py ties both sides.
No client library is imported here; a DSN is split without psycopg (`split_dsn`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from runtime.errors import MASK, ConfigError

EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PITR_COMPRESS_TYPES = ("lz4", "zst", "gz", "bz2", "none")
MAXMEMORY_RULE = "a size such as '512mb' or '1gb' (a positive number then b, kb, mb or gb)"
MAXMEMORY = re.compile(r"^([1-9][0-9]*)(b|kb|mb|gb)$")  # the stack's syntax, redis.conf's units


class Secret:
    """A string that never shows itself in repr, str, f-strings or logs; `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would be a way to print it
        raise TypeError("Secret values are not picklable")


def mask_url(url: str) -> str:
    """`url` with its password replaced by the mask (for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))


def mask_secret_url(url: str) -> str:
    """Only scheme and host of a URL whose path or query may itself be a token (webhooks)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "") + f"/{MASK}"


# -- DSNs, without psycopg -------------------------------------------------------------------
# libpq's connection keywords (`psycopg.pq.Conninfo.get_defaults()` of the libpq psycopg
# ships, 18.x: tests/test_settings_contract.py keeps the two equal); libpq refuses others.
LIBPQ_KEYWORDS = frozenset(
    (
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
    )
)
_CONNINFO = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)+)\s*")


def split_dsn(dsn: str) -> dict[str, str]:
    """The keywords of a PostgreSQL URL or `key=value` conninfo string, as libpq reads them
    (host, port, dbname, user, password...); ValueError if it is neither."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        found = {
            "host": unquote(parts.hostname or ""),
            "port": str(parts.port or ""),
            "dbname": unquote(parts.path.lstrip("/")),
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
        }
        for item in filter(None, parts.query.split("&")):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError("a query parameter without '='")
            found[unquote(key)] = unquote(value)
        return _known({k: v for k, v in found.items() if v})
    found = {}
    pos = 0
    while pos < len(dsn):
        match = _CONNINFO.match(dsn, pos)
        if match is None:
            if dsn[pos:].strip():
                raise ValueError("not a key=value pair")
            break
        value = match.group(2)
        if value.startswith("'"):
            value = value[1:-1]
        found[match.group(1)] = re.sub(r"\\(.)", r"\1", value)
        pos = match.end()
    if not found:
        raise ValueError("empty")
    return _known(found)


def _known(found: dict[str, str]) -> dict[str, str]:
    unknown = set(found) - LIBPQ_KEYWORDS
    if unknown:
        raise ValueError(f"unknown keywords {sorted(unknown)}")
    return found


# -- rules -----------------------------------------------------------------------------------
class Rule:
    """What a field accepts: `allowed` for messages and docs, `__call__` to read a value."""

    allowed: str = "a value"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Rule):
    minimum: int
    maximum: int | None = None
    optional: bool = False  # None (unset) stays None instead of taking the default

    @property
    def allowed(self) -> str:  # type: ignore[override]
        if self.maximum is None:
            return f"an integer >= {self.minimum}"
        return f"an integer from {self.minimum} to {self.maximum}"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or (self.optional and raw == ""):
            if default is None and not self.optional:
                raise ConfigError(name, raw, "a value (it is required)")
            return default
        value: Any = raw
        if isinstance(raw, str):
            try:
                value = int(raw.strip())
            except ValueError:
                raise ConfigError(name, raw, self.allowed) from None
        if not isinstance(value, int) or isinstance(value, bool) or value < self.minimum:
            raise ConfigError(name, raw, self.allowed)
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(name, raw, self.allowed)
        return value


@dataclass(frozen=True)
class Number(Rule):
    """A finite number >= minimum (> minimum with `above`), at most `maximum`."""

    minimum: float = 0.0
    above: bool = False
    maximum: float | None = None
    message: str | None = None  # the whole `allowed`, where the bounds read better in words

    @property
    def allowed(self) -> str:  # type: ignore[override]
        if self.message:
            return self.message
        return f"a number {'>' if self.above else '>='} {self.minimum:g}"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None:
            return default
        value: Any = raw
        if isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                raise ConfigError(name, raw, self.allowed) from None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < self.minimum
            or (self.above and value == self.minimum)
            or (self.maximum is not None and value > self.maximum)
        ):
            raise ConfigError(name, raw, self.allowed)
        return float(value)


SECONDS = Number(0.0, above=True, message="a number of seconds > 0")
PERCENT = Number(0.0, maximum=100.0, message="a number in [0, 100]")
RATIO = Number(0.0, maximum=1.0, message="a number in [0, 1]")


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string; `optional`: unset or "" is None. `pattern` (a regex the whole text
    must match) and its `wording` add a rule; `then` converts the accepted text (e.g. to a
    Path)."""

    optional: bool = False
    pattern: str | None = None
    wording: str | None = None
    then: Callable[[str], Any] | None = None

    @property
    def allowed(self) -> str:  # type: ignore[override]
        return self.wording or "a non-empty string"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or (self.optional and raw == ""):
            if self.optional:
                return None
            if default is None:
                raise ConfigError(name, raw, "a value (it is required)")
            return default
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(name, raw, "a non-empty string")
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            raise ConfigError(name, raw, self.allowed)
        return self.then(raw) if self.then else raw


@dataclass(frozen=True)
class Choice(Rule):
    options: tuple[str, ...]
    upper: bool = False  # compare upper-cased (log levels)

    @property
    def allowed(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.options)

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return default
        value = raw.upper() if self.upper and isinstance(raw, str) else raw
        if value not in self.options:
            raise ConfigError(name, raw, self.allowed)
        return str(value)


@dataclass(frozen=True)
class Flag(Rule):
    allowed: str = "true/false, yes/no, on/off or 1/0"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return default
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, raw, self.allowed)


@dataclass(frozen=True)
class Url(Rule):
    """A URL with one of `schemes` and a host; errors show it masked (its password, or for a
    webhook whose path is the token (`token=True`), everything after the host). `secret`:
    held in a `Secret`."""

    schemes: tuple[str, ...] = ("http", "https")
    token: bool = False
    secret: bool = False

    @property
    def allowed(self) -> str:  # type: ignore[override]
        return f"a URL with scheme {' or '.join(self.schemes)} and a host"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return None
        text = str(raw)
        shown = mask_secret_url(text) if self.token else mask_url(text)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(name, shown, self.allowed) from None
        if not isinstance(raw, str) or parts.scheme not in self.schemes or not parts.hostname:
            raise ConfigError(name, shown, self.allowed)
        return Secret(text) if self.secret else text


@dataclass(frozen=True)
class Cron(Rule):
    example: str = "0 2 * * *"

    @property
    def allowed(self) -> str:  # type: ignore[override]
        return f"a five-field cron expression such as '{self.example}'"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None:
            return default
        if isinstance(raw, str) and not raw.strip():
            raise ConfigError(name, raw, "a non-empty string")
        # croniter loads only when a schedule is set: `backup create` reads its settings
        # before it starts pg_dump, and this import was a fifth of that time
        from croniter import croniter

        if not isinstance(raw, str) or not croniter.is_valid(raw.strip()):
            raise ConfigError(name, raw, self.allowed)
        return raw.strip()


@dataclass(frozen=True)
class AbsPath(Rule):
    """An absolute path that can go into pgbackrest.conf (no newline, no '=')."""

    optional: bool = False
    as_text: bool = False
    allowed: str = "an absolute path without newlines or '='"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return None if self.optional else default
        if not isinstance(raw, str) or not raw.startswith("/") or any(c in raw for c in "\n\r="):
            raise ConfigError(name, raw, self.allowed)
        return str(Path(raw.strip())) if self.as_text else Path(raw.strip())


@dataclass(frozen=True)
class Port(Rule):
    allowed: str = "an integer port in [0, 65535]"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return default
        text = str(raw).strip()
        if isinstance(raw, bool) or not text.isdigit() or int(text) > 65535:
            raise ConfigError(name, raw, self.allowed)
        return int(text)


@dataclass(frozen=True)
class Probes(Rule):
    """Extra HTTP or TCP services whose status the sidecar reports: `name=url,name=url` in
    the environment, `{"name": "url"}` in JSON."""

    allowed: str = "name=http(s)://... or name=tcp://host:port, comma-separated (an object in JSON)"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return {}
        if isinstance(raw, Mapping):
            items = [(str(k), str(v)) for k, v in raw.items()]
        elif isinstance(raw, str):
            items = []
            for item in filter(None, (part.strip() for part in raw.split(","))):
                service, sep, url = (part.strip() for part in item.partition("="))
                if not sep:
                    raise ConfigError(name, mask_url(item), self.allowed)
                items.append((service, url))
        else:
            raise ConfigError(name, raw, self.allowed)
        probes: dict[str, str] = {}
        for service, url in items:
            shown = f"{service}={mask_url(url)}"
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ConfigError(name, shown, self.allowed) from None
            if not service or parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
                raise ConfigError(name, shown, self.allowed)
            if parts.scheme == "tcp" and parts.port is None:
                raise ConfigError(name, shown, self.allowed)
            probes[service] = url
        return probes


@dataclass(frozen=True)
class Paths(Rule):
    allowed: str = "absolute paths (comma-separated, or a JSON list)"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return default
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(p, str) for p in items):
            raise ConfigError(name, raw, self.allowed)
        paths = tuple(p.strip() for p in items if p.strip())
        if not paths or not all(p.startswith("/") for p in paths):
            raise ConfigError(name, raw, self.allowed)
        return paths


@dataclass(frozen=True)
class EncryptionKey(Rule):
    """A base64 AES-256 key; the error never shows the value (it is a secret)."""

    allowed: str = "base64 of exactly 32 random bytes"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            return None
        try:
            key = base64.b64decode(str(raw).strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not isinstance(raw, str) or len(key) != 32:
            raise ConfigError(name, raw, self.allowed, secret=True)
        return Secret(raw.strip())


@dataclass(frozen=True)
class Mapped(Rule):
    """An object of name -> text, kept whole (e.g. `endpoints`)."""

    allowed: str = "an object of name -> URL"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None:
            return default
        if not isinstance(raw, Mapping):
            raise ConfigError(name, raw, self.allowed)
        return {str(k): str(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Custom(Rule):
    """A field read by hand (a DSN, a secret file, a cross-field check): `allowed` is only
    documentation; the section's reader passes the value in."""

    allowed: str = "see the section's reader"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        raise AssertionError(f"{name} is read by its section's reader")


@dataclass(frozen=True)
class ToolDir(Rule):
    """An optional directory that must hold `tool` (e.g. pg_dump's bindir)."""

    tool: str = "pg_dump"
    allowed: str = "a directory containing pg_dump and pg_restore"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        text = Text(optional=True)(name, raw, None)
        if text is None:
            return None
        if not (Path(text) / self.tool).exists():
            raise ConfigError(name, text, self.allowed)
        return Path(text)


@dataclass(frozen=True)
class ConfWord(Rule):
    """A required pgbackrest.conf value: one word without '/', '=' or spaces."""

    allowed: str = "a value without spaces, '/' or '='"

    def __call__(self, name: str, raw: Any, default: Any) -> Any:
        if raw is None or raw == "":
            raise ConfigError(name, None, "a value (required for s3)")
        if not isinstance(raw, str) or any(c in raw.strip() for c in "\n\r= /"):
            raise ConfigError(name, raw, self.allowed)
        return raw.strip()
