"""docs/runtime-monitoring.md lists exactly the metric names the runtime exposes: the stack's
alert rules and dashboards are written against that list."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.backup import BackupScheduler
from runtime.cache import RedisManager
from runtime.database import DatabaseManager
from runtime.monitoring import (
    AlertManager,
    MonitoringService,
    PostgresProbe,
    Rule,
    Sample,
    WebhookNotifier,
)
from runtime.pitr import BackupRun, PitrCollector, PitrState
from runtime.settings import load_settings
from tests.http_receiver import Receiver
from tests.servers import PostgresServer, RedisServer

DOC = Path(__file__).resolve().parents[1] / "docs" / "runtime-monitoring.md"


def test_documented_metrics_are_the_exposed_ones(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    receiver = Receiver()
    env = {"DATABASE_URL": postgres_server.dsn, "REDIS_URL": redis_server.url}
    settings = load_settings({"pool": {"size": 1, "max_overflow": 1}}, env=env)
    pool = DatabaseManager(settings).create_connection_pool()
    redis_manager = RedisManager(settings, namespace="docs")
    alerts = AlertManager([Rule("A", "m", ">", 0, for_seconds=60)], [WebhookNotifier(receiver.url)])
    try:
        scheduler = BackupScheduler("0 2 * * *", lambda: None)
        scheduler.tick()
        service = MonitoringService(
            [PostgresProbe("postgres", postgres_server.dsn)],
            health_check_timeout=2,
            pools={"app": pool},
            cache=redis_manager.get_cache_client(),
            backups=scheduler,
            alert_manager=alerts,
        )
        alerts.evaluate([Sample("m", 1)])  # pending: runtime_alerts has a series
        service.collect_metrics()
        text = generate_latest(service.registry).decode()
    finally:
        pool.close()
        redis_manager.close()
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
