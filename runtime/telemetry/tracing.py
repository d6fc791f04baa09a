"""OTLP/HTTP trace export, set up from the settings; off when no endpoint is set.

The runtime's modules call `trace.get_tracer(...)` from the OpenTelemetry API: before a
provider is installed (tracing off, or an application that installs its own) they get the
API's proxy / no-op tracer. `configure_tracing` installs the SDK's provider globally with
a parent-based ratio sampler: a trace an application already samples stays sampled.

Every span leaves through `RedactingSpanExporter`: the SDK records an exception escaping a
span as an event with its message and traceback, and PostgreSQL's messages repeat a
statement's parameters, so a password could otherwise reach Tempo verbatim. Redacting at
export covers every span of the process (the runtime's and the application's) with the
log lines' own redaction. An application with its own provider wraps its exporter the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Status

from runtime.settings import Settings, TelemetrySettings, secrets_of
from runtime.telemetry.logs import configure_logging
from runtime.telemetry.redaction import clean, ordered
from runtime.telemetry.spans import provider_installed


class RedactingSpanExporter(SpanExporter):
    """Hands `exporter` copies of the spans with every secret masked in every text."""

    def __init__(self, exporter: SpanExporter, secrets: Iterable[str]) -> None:
        self._exporter = exporter
        self._secrets = ordered(secrets)

    def _redact(self, span: ReadableSpan) -> ReadableSpan:
        secrets = self._secrets
        status = span.status
        if status.description:
            status = Status(status.status_code, clean(status.description, secrets))
        return ReadableSpan(
            name=clean(span.name, secrets),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=clean(dict(span.attributes or {}), secrets),
            events=[
                Event(clean(e.name, secrets), clean(dict(e.attributes or {}), secrets), e.timestamp)
                for e in span.events
            ],
            links=[Link(k.context, clean(dict(k.attributes or {}), secrets)) for k in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._secrets:
            return self._exporter.export(spans)
        return self._exporter.export([self._redact(s) for s in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def configure_tracing(
    settings: TelemetrySettings, secrets: Iterable[str] = ()
) -> TracerProvider | None:
    """Install the global tracer provider exporting to `<otlp_endpoint>/v1/traces`, every
    span redacted of `secrets`; None (nothing installed) when no endpoint is set. Call
    `shutdown()` on it at exit to flush."""
    if not settings.otlp_endpoint:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
    )
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    exporter = RedactingSpanExporter(OTLPSpanExporter(endpoint=endpoint), secrets)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    provider_installed(settings.sampling_ratio)
    return provider


def configure(settings: Settings) -> TracerProvider | None:
    """JSON logs at the settings' level and traces, both redacting every secret of `settings`."""
    secrets = secrets_of(settings)
    configure_logging(settings.telemetry.log_level, secrets)
    return configure_tracing(settings.telemetry, secrets)
