"""OTLP/HTTP trace export, set up from the settings; off when no endpoint is set.

The runtime's modules call `trace.get_tracer(...)` from the OpenTelemetry API: before a
provider is installed (tracing off, or an application that installs its own) they get the
API's proxy / no-op tracer. `configure_tracing` installs the SDK's provider globally with
a parent-based ratio sampler: a trace an application already samples stays sampled.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from runtime.settings import Settings, TelemetrySettings, secrets_of
from runtime.telemetry.logs import configure_logging
from runtime.telemetry.spans import provider_installed


def configure_tracing(settings: TelemetrySettings) -> TracerProvider | None:
    """Install the global tracer provider exporting to `<otlp_endpoint>/v1/traces`; None
    (nothing installed) when no endpoint is set. Call `shutdown()` on it at exit to flush."""
    if not settings.otlp_endpoint:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
    )
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    provider_installed(settings.sampling_ratio)
    return provider


def configure(settings: Settings) -> TracerProvider | None:
    """JSON logs at the settings' level, redacting every secret in them, then tracing."""
    configure_logging(settings.telemetry.log_level, secrets_of(settings))
    return configure_tracing(settings.telemetry)
