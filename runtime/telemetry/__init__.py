"""Structured logs and traces for the runtime and the applications that use it.

`runtime.telemetry.tracing.configure(settings)` once at start-up: JSON log lines (with trace
and span ids inside a span, `logs.py`) and, when `telemetry.otlp_endpoint` is set, OTLP/HTTP
trace export (`tracing.py`). The pool, cache and backups open spans through OpenTelemetry's
global API (`spans.py`), so an application's own spans are their parents. Submodules are
imported where used: the SDK and exporter load only in processes that configure tracing.
"""
