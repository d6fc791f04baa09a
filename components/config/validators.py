"""The settings' value rules, and the value syntax other modules compute with.

A rule returns None when the value is fine, else what is allowed (the error message names
the key and the value around it). The vocabularies are the allowed words of string settings.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import re
import urllib.parse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from croniter import croniter

REDIS_EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
RESTART_POLICIES = ("unless-stopped", "always", "on-failure")
TLS_MODES = ("self-signed", "provided", "acme")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PLATFORMS = ("docker", "kubernetes")
PITR_REPO_TYPES = ("posix", "s3")

_SIZE = re.compile(r"^([1-9][0-9]*)(b|kb|mb|gb)$")
_SIZE_FACTORS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
_HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h|d|w|y)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
# a table the restore drill counts: `table` or `schema.table`, unquoted identifiers (the runtime
# checks pitr.drill.tables with the same shape)
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_REGISTRY = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)


# -- rules: each returns None when the value is fine, else what is allowed -------------------


def _at_least(minimum: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= minimum else f"an integer >= {minimum}"


def _between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"an integer from {low} to {high}"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else "one of " + ", ".join(choices)


def _size(v: str) -> str | None:
    return None if _SIZE.match(v) else "a size like 512mb (a positive number then b, kb, mb or gb)"


def _cron(v: str) -> str | None:
    ok = len(v.split()) == 5 and croniter.is_valid(v)
    return None if ok else "a 5-field cron expression such as '0 2 * * *'"


def _pinned_image(v: str) -> str | None:
    if not _IMAGE.match(v) or (":" not in v.rsplit("/", 1)[-1] and "@sha256:" not in v):
        return "an image pinned to a tag or digest, like 'postgres:15.13-alpine'"
    if v.rsplit("/", 1)[-1].split("@")[0].endswith(":latest"):
        return "a pinned tag, not ':latest'"
    return None


def _optional_pinned_image(v: str) -> str | None:
    return None if v == "" else _pinned_image(v)


def _command(v: list[str]) -> str | None:
    ok = all(item.strip() and "\0" not in item for item in v) and len(v) <= 64
    return None if ok else 'a JSON list of non-empty strings like ["alembic", "upgrade", "head"]'


def _host_port(v: str) -> str | None:
    match = _HOST_PORT.match(v)
    ok = match is not None and 1 <= int(match.group(2)) <= 65535
    return None if ok else "host:port, like 'backend:8000'"


def _host_ports(v: list[str]) -> str | None:
    bad = [item for item in v if _host_port(item) is not None]
    return f"a list of host:port like ['orders:9100'] ({bad[0]!r} is not)" if bad else None


def _table_names(v: list[str]) -> str | None:
    bad = [item for item in v if not _TABLE.match(item)]
    example = "a list of table names like ['orders', 'sales.invoices']"
    return f"{example} ({bad[0]!r} is not)" if bad else None


def _domain(v: str) -> str | None:
    return None if _DOMAIN.match(v) else "a DNS name like 'platform.example.com'"


def _duration(v: str) -> str | None:
    return None if _DURATION.match(v) else "a Prometheus duration like 15d"


def _workers(v: str) -> str | None:
    ok = v == "auto" or (v.isdigit() and 1 <= int(v) <= 256)
    return None if ok else "'auto' or an integer from 1 to 256"


def _cidrs(v: list[str]) -> str | None:
    try:
        for item in v:
            ipaddress.ip_network(item)
    except ValueError:
        return "a list of CIDR blocks like ['10.0.0.0/8']"
    return None if v else "a non-empty list of CIDR blocks"


def _optional_cidrs(v: list[str]) -> str | None:
    return None if not v or _cidrs(v) is None else "a list of CIDR blocks like ['10.244.0.0/16']"


def _webhook(v: str) -> str | None:
    ok = v == "" or v.startswith(("https://", "http://"))
    return None if ok else "an http(s):// URL, or empty for no webhook"


def _heartbeat(v: str) -> str | None:
    ok = v == "" or (v.startswith("https://") and len(v) > len("https://"))
    return None if ok else "an https:// URL, or empty for no heartbeat"


def _url(v: str) -> str | None:
    return None if v.startswith(("https://", "http://")) else "an http(s):// URL"


def _pem(marker: str) -> Callable[[str], str | None]:
    return lambda v: None if v == "" or marker in v else f"a PEM block containing '{marker}'"


def _percent(low: int) -> Callable[[str], str | None]:
    """An objective as a percentage string ("99.9"): exact, since thresholds derive from it."""

    def rule(v: str) -> str | None:
        try:
            ok = re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) is not None and low <= Decimal(v) < 100
        except InvalidOperation:
            ok = False
        return None if ok else f"a percentage like '99.9', from {low} up to (not including) 100"

    return rule


def _dns_label(optional: bool) -> Callable[[str], str | None]:
    def rule(v: str) -> str | None:
        ok = (optional and v == "") or bool(_DNS_LABEL.match(v))
        blank = ", or empty" if optional else ""
        return None if ok else f"a lowercase DNS label like 'data-platform'{blank}"

    return rule


def _histogram_bound(bounds: tuple[int, ...]) -> Callable[[int], str | None]:
    return lambda v: (
        None
        if v in bounds
        else "one of the histogram's bucket bounds: " + ", ".join(map(str, bounds))
    )


def _quantity(v: str) -> str | None:
    return None if _QUANTITY.match(v) else "a storage size like 20Gi (Mi, Gi or Ti)"


def _retention(v: str) -> str | None:
    return None if _RETENTION.match(v) else "a retention like 30d (days d, weeks w, months m)"


def _s3_destination(v: str) -> str | None:
    ok = v == "" or (v.startswith("s3://") and len(v) > len("s3://"))
    return None if ok else "an s3://bucket/path URL, or empty"


def _email(v: str) -> str | None:
    ok = v == "" or re.fullmatch(
        r"[^@\s]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}", v
    )
    return None if ok else "an e-mail address like 'ops@example.com', or empty"


def _acme_directory(v: str) -> str | None:
    """RFC 8555 6.1: ACME is HTTPS only; the directory is a URL with a host."""
    parts = urllib.parse.urlsplit(v)
    ok = parts.scheme == "https" and bool(parts.hostname) and not re.search(r"\s", v)
    return None if ok else "an https:// URL of an ACME directory (RFC 8555 speaks HTTPS only)"


def public_domain_problem(domain: str) -> str | None:
    """Why an ACME CA cannot issue for `domain` (an IP address, localhost, one label), or None."""
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        pass
    else:
        return "an IP address"
    if domain.lower() == "localhost" or domain.lower().endswith(".localhost"):
        return "localhost"
    if "." not in domain:
        return "a name of one label"
    return None


def _optional_url(v: str) -> str | None:
    return None if v == "" or _url(v) is None else "an http(s):// URL, or empty"


# The images we build (images/postgres, runtime/) start from Debian bookworm's slim image and
# install Debian's own PostgreSQL 15, pgBackRest 2.45 and Python: a dated tag (or a digest).
DEFAULT_BASE_IMAGE = "debian:bookworm-20250520-slim"
_DEBIAN_BASE = re.compile(
    r"^([a-z0-9][a-z0-9._-]*(:[0-9]+)?/)*debian:bookworm-[0-9]{8}-slim(@sha256:[a-f0-9]{64})?$"
)


def _postgres_base(v: str) -> str | None:
    ok = _DEBIAN_BASE.match(v) is not None
    return (
        None
        if ok
        else (
            f"a dated Debian bookworm slim image like '{DEFAULT_BASE_IMAGE}' (optionally "
            "with @sha256:...; the image installs Debian bookworm's postgresql-15 and "
            "pgBackRest 2.45 on it)"
        )
    )


def _optional_host(v: str) -> str | None:
    return None if v == "" or _DOMAIN.match(v) else "a host name like 's3.eu-west-1.amazonaws.com'"


def _bucket(v: str) -> str | None:
    ok = v == "" or re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v) is not None
    return None if ok else "an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"


def _region(v: str) -> str | None:
    ok = v == "" or re.fullmatch(r"[a-z0-9][a-z0-9-]*", v) is not None
    return None if ok else "an S3 region like 'eu-west-1'"


def _registry(v: str) -> str | None:
    ok = v == "" or _REGISTRY.match(v) is not None
    return None if ok else "a registry host and optional path like 'registry.example.com/platform'"


def _always(_: Any) -> str | None:
    return None


def schedule_max_gap_seconds(*schedules: str) -> int:
    """The longest time between two consecutive runs of the cron `schedules` together, over
    a year of runs (what an alert on a missing scheduled job must allow for)."""
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=366)
    runs: set[datetime.datetime] = set()
    for schedule in schedules:
        times = croniter(schedule, start)
        run = times.get_next(datetime.datetime)
        while run <= end and len(runs) < 100_000:
            runs.add(run)
            run = times.get_next(datetime.datetime)
    ordered = sorted(runs)
    if len(ordered) < 2:
        return int((end - start).total_seconds())
    return int(max((b - a).total_seconds() for a, b in itertools.pairwise(ordered)))


def size_in_bytes(size: str) -> int:
    """`512mb` -> 536870912 (Redis units: k/m/g are powers of 1024)."""
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"not a size: {size!r}")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]
