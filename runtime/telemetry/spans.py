"""The runtime's spans, at next to no cost when nothing would record them.

The OpenTelemetry API's no-op path still builds a span and attaches a context (about 6 µs
a span here), and even asking the API whether a provider is installed costs 0.85 µs (an
environment lookup each time): together 10-20 % of a cache hit (docs/benchmarks.md). So:
- whether any tracer provider is installed (`configure_tracing`'s, or an application's own
  via `trace.set_tracer_provider`) is asked at most once a second until one is; providers
  cannot be replaced, so once seen it stays. An application's provider is picked up within
  a second of being installed.
- with the provider `configure_tracing` installed at sampling ratio 0, a span is only made
  when it has a recording parent (an application's sampled span) it would join; otherwise
  the sampler would drop it anyway.
- `TRACING.on` says whether a provider has been seen; the near-cache hit (about 1-2 µs) reads
  it inline instead of calling `would_record()`, whose call alone would cost it 10-20 %.
Imports only the API, never the SDK.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, ProxyTracerProvider, Span
from opentelemetry.util.types import AttributeValue

_NOOP: contextlib.nullcontext[Span] = contextlib.nullcontext(INVALID_SPAN)
RECHECK_SECONDS = 1.0
_next_check = 0.0


class _Switch:
    """`on` turns True once a tracer provider is seen, and stays (providers are set once)."""

    on = False


TRACING = _Switch()
# The root sampling ratio of the provider `configure_tracing` installed (None: not ours).
_root_ratio: float | None = None


def provider_installed(ratio: float | None) -> None:
    """Called by `configure_tracing` right after it installs the SDK's provider."""
    global _root_ratio
    TRACING.on, _root_ratio = True, ratio


def _provider_installed() -> bool:
    global _next_check
    if TRACING.on:
        return True
    now = time.monotonic()
    if now < _next_check:
        return False
    _next_check = now + RECHECK_SECONDS
    TRACING.on = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    return TRACING.on


def would_record() -> bool:
    """False when a span opened now would certainly be dropped."""
    if not _provider_installed():
        return False
    return _root_ratio != 0.0 or trace.get_current_span().is_recording()


def start_span(
    tracer: trace.Tracer, name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span]:
    """`tracer.start_as_current_span(name)`, or a shared no-op when it would record nothing."""
    if not would_record():
        return _NOOP
    return tracer.start_as_current_span(name, attributes=attributes)
