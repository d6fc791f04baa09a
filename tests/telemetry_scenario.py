"""Run real pool, cache and backup operations under an application's span, with the runtime's
telemetry configured from an app_config file (argv[1]). Used by tests/test_telemetry.py in a
subprocess, so the global tracer provider it installs dies with it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import psycopg
from opentelemetry import trace

from runtime.backup.manager import BackupManager
from runtime.cache import RedisManager
from runtime.database import DatabaseManager
from runtime.settings import load_settings
from runtime.telemetry.tracing import configure


def main(config: str) -> None:
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
    with tracer.start_as_current_span("app.backup"):
        BackupManager.from_settings(settings).create_backup()
    pool.close()
    provider.shutdown()  # flushes the batch processor


if __name__ == "__main__":
    main(sys.argv[1])
