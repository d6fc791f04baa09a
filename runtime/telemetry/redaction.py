"""The one redaction every text leaving the process through telemetry goes through: log lines
(`logs.py`) and exported spans (`tracing.py`: names, attributes, events such as recorded
exceptions, status descriptions, links). Imports neither the SDK nor a client library.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runtime.errors import redact


def ordered(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The non-empty secrets, longest first (a secret inside another is masked with it)."""
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def clean(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` with every secret masked in every string in it (dict keys included); numbers
    become their masked text only when a secret is written in them; sequences become lists,
    anything else its masked text."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        text = str(value)
        masked = redact(text, secrets)
        return value if masked == text else masked
    if isinstance(value, dict):
        return {clean(str(k), secrets): clean(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(v, secrets) for v in value]
    return redact(str(value), secrets)
