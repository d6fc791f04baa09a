"""The specification's data contracts, validated on construction.

Every contract is a frozen dataclass: a value that exists is a value that satisfies the
specification's invariants, so callers never re-check them. A violation raises
`ContractError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from runtime.errors import PlatformError

ServiceState = Literal["running", "stopped", "error"]
BackupStatus = Literal["success", "failed"]


class ContractError(PlatformError, ValueError):
    """A contract field holds a value the specification does not allow."""

    def __init__(self, contract: str, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{contract}.{field}: got {value!r}; allowed: {allowed}")
        self.contract = contract
        self.field = field
        self.value = value
        self.allowed = allowed


def _int(contract: str, field: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ContractError(contract, field, value, f"an int >= {minimum}")


def _percent(contract: str, field: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0.0 <= value <= 100.0
    ):
        raise ContractError(contract, field, value, "a float in [0, 100]")


def _aware_datetime(contract: str, field: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ContractError(contract, field, value, "a timezone-aware datetime")


def _nonempty_str(contract: str, field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ContractError(contract, field, value, "a non-empty string")


@dataclass(frozen=True)
class ServiceStatus:
    """The observed state of one platform service."""

    service_name: str
    status: ServiceState
    uptime_seconds: int
    health_check_url: str | None

    def __post_init__(self) -> None:
        _nonempty_str("ServiceStatus", "service_name", self.service_name)
        if self.status not in ("running", "stopped", "error"):
            raise ContractError(
                "ServiceStatus", "status", self.status, "'running', 'stopped' or 'error'"
            )
        _int("ServiceStatus", "uptime_seconds", self.uptime_seconds, 0)
        if self.health_check_url is not None and not isinstance(self.health_check_url, str):
            raise ContractError(
                "ServiceStatus", "health_check_url", self.health_check_url, "a string or None"
            )


@dataclass(frozen=True)
class ConnectionPool:
    """A snapshot of a connection pool's occupancy (not the pool itself)."""

    max_connections: int
    active_connections: int
    available_connections: int
    connection_timeout: int

    def __post_init__(self) -> None:
        _int("ConnectionPool", "max_connections", self.max_connections, 1)
        _int("ConnectionPool", "active_connections", self.active_connections, 0)
        _int("ConnectionPool", "available_connections", self.available_connections, 0)
        _int("ConnectionPool", "connection_timeout", self.connection_timeout, 1)
        if self.active_connections + self.available_connections > self.max_connections:
            raise ContractError(
                "ConnectionPool",
                "active_connections",
                self.active_connections,
                f"active + available <= max_connections ({self.max_connections}); "
                f"available is {self.available_connections}",
            )


@dataclass(frozen=True)
class MetricsData:
    """One sample of the platform's health metrics."""

    timestamp: datetime
    cpu_usage: float
    memory_usage: float
    response_time_ms: int

    def __post_init__(self) -> None:
        _aware_datetime("MetricsData", "timestamp", self.timestamp)
        _percent("MetricsData", "cpu_usage", self.cpu_usage)
        _percent("MetricsData", "memory_usage", self.memory_usage)
        _int("MetricsData", "response_time_ms", self.response_time_ms, 0)


@dataclass(frozen=True)
class BackupResult:
    """The outcome of one backup run; `location` says where the artefact is (or would be)."""

    backup_id: str
    timestamp: datetime
    size_bytes: int
    status: BackupStatus
    location: str

    def __post_init__(self) -> None:
        _nonempty_str("BackupResult", "backup_id", self.backup_id)
        _aware_datetime("BackupResult", "timestamp", self.timestamp)
        _int("BackupResult", "size_bytes", self.size_bytes, 0)
        if self.status not in ("success", "failed"):
            raise ContractError("BackupResult", "status", self.status, "'success' or 'failed'")
        if not isinstance(self.location, str):
            raise ContractError("BackupResult", "location", self.location, "a string")
