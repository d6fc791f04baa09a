"""The data contracts' invariants, one hypothesis property per contract: every value the
specification allows constructs, and a single field outside its rule raises `ContractError`
naming that field (so deleting any validator fails a test here)."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.contracts import (
    BackupResult,
    ConnectionPool,
    ContractError,
    MetricsData,
    ServiceStatus,
)

NOT_AN_INT = st.one_of(
    st.booleans(), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.just([1])
)
NOT_A_STR = st.one_of(st.integers(), st.floats(), st.booleans(), st.just(b"bytes"), st.just(["x"]))
AWARE = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(timezones=st.just(timezone(timedelta(hours=-5))))
NAIVE_OR_NOT_A_DATETIME = st.one_of(
    st.datetimes(timezones=st.none()), st.text(max_size=5), st.integers(), st.none()
)
PERCENT = st.floats(min_value=0.0, max_value=100.0) | st.integers(min_value=0, max_value=100)
NOT_A_PERCENT = st.one_of(
    st.floats(max_value=-1e-9),
    st.floats(min_value=100.000001),
    st.just(math.nan),
    st.just(math.inf),
    st.integers(min_value=101),
    st.integers(max_value=-1),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


def below(minimum: int) -> st.SearchStrategy[Any]:
    """An int under `minimum`, or anything that is no int at all."""
    return st.integers(max_value=minimum - 1) | NOT_AN_INT


def _broken(
    contract: type, valid: dict[str, Any], field: str, value: Any, *, named: str | None = None
) -> None:
    with pytest.raises(ContractError) as err:
        contract(**{**valid, field: value})
    assert (err.value.contract, err.value.field) == (contract.__name__, named or field)
    assert f"{contract.__name__}.{named or field}: got " in str(err.value)


SERVICE_STATUS = st.fixed_dictionaries(
    {
        "service_name": st.text(min_size=1, max_size=20),
        "status": st.sampled_from(["running", "stopped", "error"]),
        "uptime_seconds": st.integers(min_value=0),
        "health_check_url": st.none() | st.text(max_size=30),
    }
)
SERVICE_STATUS_BAD = {
    "service_name": st.just("") | NOT_A_STR | st.none(),
    "status": st.text(max_size=10).filter(lambda s: s not in ("running", "stopped", "error"))
    | st.none(),
    "uptime_seconds": below(0),
    "health_check_url": NOT_A_STR,
}


@given(valid=SERVICE_STATUS, data=st.data())
def test_service_status_holds_its_invariants(valid: dict[str, Any], data: st.DataObject) -> None:
    assert asdict(ServiceStatus(**valid)) == valid
    field = data.draw(st.sampled_from(sorted(SERVICE_STATUS_BAD)))
    _broken(ServiceStatus, valid, field, data.draw(SERVICE_STATUS_BAD[field]))


@st.composite
def pools(draw: st.DrawFn) -> dict[str, int]:
    maximum = draw(st.integers(min_value=1, max_value=10_000))
    active = draw(st.integers(min_value=0, max_value=maximum))
    available = draw(st.integers(min_value=0, max_value=maximum - active))
    timeout = draw(st.integers(min_value=1, max_value=3600))
    return {
        "max_connections": maximum,
        "active_connections": active,
        "available_connections": available,
        "connection_timeout": timeout,
    }


POOL_BAD = {
    "max_connections": below(1),
    "active_connections": below(0),
    "available_connections": below(0),
    "connection_timeout": below(1),
}


@given(valid=pools(), data=st.data())
def test_connection_pool_holds_its_invariants(valid: dict[str, int], data: st.DataObject) -> None:
    assert asdict(ConnectionPool(**valid)) == valid
    field = data.draw(st.sampled_from(sorted(POOL_BAD)))
    _broken(ConnectionPool, valid, field, data.draw(POOL_BAD[field]))
    # More in use and idle than the pool holds, each count valid on its own.
    over = data.draw(st.integers(min_value=1, max_value=100))
    available = valid["max_connections"] - valid["active_connections"] + over
    _broken(ConnectionPool, valid, "available_connections", available, named="active_connections")


METRICS = st.fixed_dictionaries(
    {
        "timestamp": AWARE,
        "cpu_usage": PERCENT,
        "memory_usage": PERCENT,
        "response_time_ms": st.integers(min_value=0),
    }
)
METRICS_BAD = {
    "timestamp": NAIVE_OR_NOT_A_DATETIME,
    "cpu_usage": NOT_A_PERCENT,
    "memory_usage": NOT_A_PERCENT,
    "response_time_ms": below(0),
}


@given(valid=METRICS, data=st.data())
def test_metrics_data_holds_its_invariants(valid: dict[str, Any], data: st.DataObject) -> None:
    assert asdict(MetricsData(**valid)) == valid
    field = data.draw(st.sampled_from(sorted(METRICS_BAD)))
    _broken(MetricsData, valid, field, data.draw(METRICS_BAD[field]))


BACKUP = st.fixed_dictionaries(
    {
        "backup_id": st.text(min_size=1, max_size=30),
        "timestamp": AWARE,
        "size_bytes": st.integers(min_value=0),
        "status": st.sampled_from(["success", "failed"]),
        "location": st.text(max_size=40),
    }
)
BACKUP_BAD = {
    "backup_id": st.just("") | NOT_A_STR | st.none(),
    "timestamp": NAIVE_OR_NOT_A_DATETIME,
    "size_bytes": below(0),
    "status": st.text(max_size=10).filter(lambda s: s not in ("success", "failed")) | st.none(),
    "location": NOT_A_STR | st.none(),
}


@given(valid=BACKUP, data=st.data())
def test_backup_result_holds_its_invariants(valid: dict[str, Any], data: st.DataObject) -> None:
    assert asdict(BackupResult(**valid)) == valid
    field = data.draw(st.sampled_from(sorted(BACKUP_BAD)))
    _broken(BackupResult, valid, field, data.draw(BACKUP_BAD[field]))
