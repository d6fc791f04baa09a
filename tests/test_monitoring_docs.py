"""docs/runtime-monitoring.md lists exactly the metric names the runtime exposes: the stack's
alert rules and dashboards are written against that list."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.backup import BackupScheduler
from runtime.cache import RedisManager
from runtime.database import DatabaseManager
from runtime.monitoring import (
    AlertEngine,
    MonitoringService,
    PostgresProbe,
    Rule,
    Sample,
    WebhookNotifier,
)
from runtime.pitr import BackupRun
from runtime.pitr.drill import DrillResult
from runtime.settings import load_settings
from runtime.sidecar import Sidecar
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
    alerts = AlertEngine([Rule("A", "m", ">", 0, for_seconds=60)], [WebhookNotifier(receiver.url)])
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
    text += _sidecar_pitr_exposition()
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # the size is known only after a backup that returned one
    exposed.add("runtime_backup_last_size_bytes")
    documented = set(re.findall(r"^\| `(runtime_\w+)`", DOC.read_text(), flags=re.M))
    assert documented == exposed


def _sidecar_pitr_exposition() -> str:
    """The `runtime_pitr_*` series of a sidecar with a `pitr` section, from its own registry,
    after a successful full and a failed differential run."""
    settings = load_settings({"pitr": {}}, env={}, require=())
    sidecar = Sidecar(settings, host="127.0.0.1", port=0)
    try:
        sidecar.pitr_state.record(BackupRun("full", True, 1.0, 2.0, "20261127-010000F"))
        sidecar.pitr_state.record(BackupRun("diff", False, 3.0, 1.0, None, "failed"))
        assert sidecar.drills is not None
        sidecar.drills.state.file = None  # keep no file on this machine
        sidecar.drills.state.enable()
        sidecar.drills.state.record(
            DrillResult(
                True,
                4.0,
                9.0,
                rto_seconds=8.0,
                rpo_seconds=1.0,
                restored_bytes=1,
                restore_seconds=2.0,
            )
        )
        text = generate_latest(sidecar.monitoring.registry).decode()
    finally:
        sidecar.server.server_close()
        sidecar.alerts.close(1)
    families = text_string_to_metric_families(text)
    return "".join(
        f"{s.name} {s.value}\n"
        for f in families
        for s in f.samples
        if s.name.startswith("runtime_pitr_")
    )
