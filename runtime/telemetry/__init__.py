"""Structured logs and traces for the runtime and the applications that use it.

`configure(settings)` once at start-up: JSON log lines (with trace and span ids inside a
span) and, when `telemetry.otlp_endpoint` is set, OTLP/HTTP trace export. The pool, cache
and backups open spans through OpenTelemetry's global API, so an application's own spans
are their parents, and with tracing off the API's no-op tracer costs next to nothing.
"""

from runtime.telemetry.logs import JsonFormatter, configure_logging
from runtime.telemetry.tracing import configure, configure_tracing

__all__ = ["JsonFormatter", "configure", "configure_logging", "configure_tracing"]
