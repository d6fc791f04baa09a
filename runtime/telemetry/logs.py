"""One JSON object per log line, for the runtime and the libraries it drives.

Fields: timestamp (UTC, ISO 8601), level, logger, event (the message), fields (a logger
call's `extra={"fields": {...}}`), exception, and trace_id/span_id when the active span is
sampled: an unsampled span's context is valid too, but it is never exported, so its ids would
link to nothing. Every string is redacted of the settings' secrets (`redaction.py`, as spans
are) before it is encoded, so a secret cannot reach a line even JSON-escaped. On a terminal
the same records print readably.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

from runtime.telemetry.redaction import clean, ordered

# Loggers of the libraries the runtime drives; they propagate to the root's handler.
LIBRARY_LOGGERS = ("psycopg", "psycopg.pool", "redis", "boto3", "botocore", "s3transfer")


class JsonFormatter(logging.Formatter):
    """A record as one JSON line; `secrets` never appear in it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = ordered(secrets)

    def data(self, record: logging.LogRecord) -> dict[str, Any]:
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="microseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            data["fields"] = fields
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        context = trace.get_current_span().get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            data["trace_id"] = format(context.trace_id, "032x")
            data["span_id"] = format(context.span_id, "016x")
        cleaned: dict[str, Any] = clean(data, self.secrets)
        return cleaned

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.data(record), ensure_ascii=False)


class ConsoleFormatter(JsonFormatter):
    """The same record, readable: `12:00:00.123 info runtime.cache: event key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        d = self.data(record)
        extra = {**d.get("fields", {})}
        if "trace_id" in d:
            extra["trace_id"] = d["trace_id"]
        tail = "".join(f" {k}={v}" for k, v in extra.items())
        line = f"{d['timestamp'][11:23]} {d['level']:<7} {d['logger']}: {d['event']}{tail}"
        return line + (f"\n{d['exception']}" if "exception" in d else "")


def configure_logging(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    *,
    console: bool | None = None,
) -> logging.Handler:
    """Route every log record (runtime and libraries) to one handler on `stream` (stderr):
    JSON lines, or readable lines when `console` (default: when `stream` is a terminal).
    Replaces the root logger's handlers, so calling it again reconfigures."""
    stream = sys.stderr if stream is None else stream
    if console is None:
        console = bool(getattr(stream, "isatty", lambda: False)())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ConsoleFormatter(secrets) if console else JsonFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in (*LIBRARY_LOGGERS, "runtime"):
        library = logging.getLogger(name)
        library.setLevel(logging.NOTSET)  # inherit the root's level
        library.propagate = True
        for old in list(library.handlers):
            library.removeHandler(old)
    return handler
