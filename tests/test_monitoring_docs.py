"""docs/runtime-monitoring.md lists exactly the metric names the runtime exposes: the stack's
alert rules and dashboards are written against that list."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg_pool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.monitoring import (
    AlertManager,
    MonitoringService,
    PostgresProbe,
    Rule,
    Sample,
    WebhookNotifier,
)
from runtime.monitoring.adapters import PsycopgPoolStats
from runtime.monitoring.scheduler import BackupScheduler
from runtime.pitr import BackupRun, PitrCollector, PitrState
from tests.http_receiver import Receiver
from tests.servers import PostgresServer

DOC = Path(__file__).resolve().parents[1] / "docs" / "runtime-monitoring.md"


class _Cache:
    def stats(self) -> dict[str, Any]:
        return {"hits": 1, "misses": 2, "errors": 0, "fallbacks": 0, "breaker_state": "closed"}


def test_documented_metrics_are_the_exposed_ones(postgres_server: PostgresServer) -> None:
    receiver = Receiver()
    pool = psycopg_pool.ConnectionPool(postgres_server.dsn, min_size=1, max_size=2, open=False)
    pool.open(wait=True, timeout=10)
    alerts = AlertManager([Rule("A", "m", ">", 0, for_seconds=60)], [WebhookNotifier(receiver.url)])
    try:
        scheduler = BackupScheduler(lambda: None, "0 2 * * *")
        scheduler.run_now()
        service = MonitoringService(
            [PostgresProbe("postgres", postgres_server.dsn)],
            health_check_timeout=2,
            pools={"app": PsycopgPoolStats(pool)},
            cache=_Cache(),
            backups=scheduler,
            alert_manager=alerts,
        )
        alerts.evaluate([Sample("m", 1)])  # pending: runtime_alerts has a series
        service.collect_metrics()
        text = generate_latest(service.registry).decode()
    finally:
        pool.close()
        alerts.close()
        receiver.close()
    # the physical backups' collector, which the sidecar registers next to the service's
    pitr = PitrState()
    pitr.record(BackupRun("full", True, 1.0, 2.0, "20261127-010000F"))
    pitr.record(BackupRun("diff", False, 3.0, 1.0, None, "failed"))
    pitr_registry = CollectorRegistry()
    pitr_registry.register(PitrCollector(pitr))
    text += generate_latest(pitr_registry).decode()
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # the size is known only after a backup that returned one
    exposed.add("runtime_backup_last_size_bytes")
    documented = set(re.findall(r"^\| `(runtime_\w+)`", DOC.read_text(), flags=re.M))
    assert documented == exposed
