"""Run real pool, cache and backup operations under an application's span, with the runtime's
telemetry configured from an app_config file (argv[1]). Used by tests/test_telemetry.py in a
subprocess, so the global tracer provider it installs dies with it."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import psycopg
from opentelemetry import trace

from runtime.backup.manager import BackupManager
from runtime.cache import RedisManager
from runtime.database import DatabaseManager
from runtime.settings import load_settings, secrets_of
from runtime.telemetry.tracing import configure


def main(config: str, restore_target: str) -> None:
    settings = load_settings(Path(config), env={})
    provider = configure(settings)
    assert provider is not None, "telemetry.otlp_endpoint must be set"
    app = logging.getLogger("app")
    tracer = trace.get_tracer("app")
    pool = DatabaseManager(settings).create_connection_pool()
    cache = RedisManager(settings).get_cache_client()
    with tracer.start_as_current_span("app.request"):
        app.info("request started", extra={"fields": {"route": "/orders"}})
        pool.execute("SELECT 1")
        try:
            pool.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            app.warning("division failed as planned")
        cache.invalidate("telemetry-key")
        cache.get_or_load("telemetry-key", lambda: {"n": 1})  # miss
        cache.get_or_load("telemetry-key", lambda: {"n": 2})  # hit
    near = RedisManager(settings, namespace="telnear", near_cache_size=10)
    near_cache = near.get_cache_client()
    near_cache.set("telemetry-near", 1)
    with tracer.start_as_current_span("app.near"):
        for _ in range(500):  # until the invalidation connection tracks the namespace
            near_cache.get_or_load("telemetry-near", lambda: 2)
            if near_cache.stats().near_hits:
                break
            time.sleep(0.01)
    near.close()
    manager = BackupManager.from_settings(settings)
    with tracer.start_as_current_span("app.backup"):
        manager.create_backup()
    with tracer.start_as_current_span("app.restore"):
        manager.restore("latest", restore_target)
    pool.close()
    provider.shutdown()  # flushes the batch processor


def sampling(config: str) -> None:
    """At the configured ratio, a root span and a span under a sampled remote parent (an
    application's upstream that decided to sample), each around a pool query."""
    settings = load_settings(Path(config), env={}, require=("database",))
    provider = configure(settings)
    assert provider is not None
    pool = DatabaseManager(settings).create_connection_pool()
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("app.root"):
        pool.execute("SELECT 1")
    parent = trace.SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0xEEE19B7EC3C1B174,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with tracer.start_as_current_span(
        "app.child", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))
    ):
        pool.execute("SELECT 2")
    pool.close()
    provider.shutdown()


def secrets(config: str) -> None:
    """Every secret of the settings as a statement parameter PostgreSQL repeats in its error,
    in an exception escaping a pooled connection, and through a cache whose Redis refuses the
    password and a backup whose pg_dump (the test's stand-in) prints a secret and fails."""
    settings = load_settings(Path(config), env={}, require=("database",))
    provider = configure(settings)
    assert provider is not None
    app = logging.getLogger("app")
    tracer = trace.get_tracer("app")
    pool = DatabaseManager(settings).create_connection_pool()
    cache = RedisManager(settings).get_cache_client()
    with tracer.start_as_current_span("app.request"):
        for secret in secrets_of(settings):
            try:
                pool.execute("SELECT %s::int", (secret,))
            except psycopg.errors.InvalidTextRepresentation as exc:
                app.warning("query failed: %s", exc)
            try:
                with pool.connection():
                    raise RuntimeError(f"the application failed holding {secret}")
            except RuntimeError:
                app.exception("request failed")
            cache.get_or_load("telemetry-secret", lambda: 1)
    with tracer.start_as_current_span("app.backup"):
        outcome = BackupManager.from_settings(settings).create_backup()
    assert outcome.status == "failed", outcome
    pool.close()
    provider.shutdown()


if __name__ == "__main__":
    if sys.argv[2] == "sampling":
        sampling(sys.argv[1])
    elif sys.argv[2] == "secrets":
        secrets(sys.argv[1])
    else:
        main(sys.argv[1], restore_target=sys.argv[2])
