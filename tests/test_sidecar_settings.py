"""The sidecar started from an `app_config` in which every field of `Settings` has a
non-default value uses each of them (nothing is lost on the way, as HEALTH_CHECK_TIMEOUT was).

The field list is derived from the dataclasses: a new field fails this test until the table
below says where the sidecar uses it (or, with a reason, that it is the application's).
"""

from __future__ import annotations

import base64
import dataclasses
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from psycopg.conninfo import conninfo_to_dict

from runtime.backup.storage import S3Storage
from runtime.pitr.pgbackrest import Pgbackrest, prepare_config
from runtime.settings import (
    BackupSettings,
    MigrateSettings,
    PitrSettings,
    Settings,
    load_settings,
)
from runtime.sidecar import Sidecar
from tests.servers import PostgresServer, RedisServer, free_port

KEY = base64.b64encode(bytes(range(32))).decode()


def all_fields() -> set[str]:
    """`section.field` for every field of every section, and the top-level plain fields."""
    names = set()
    for name, hint in typing.get_type_hints(Settings).items():
        types = [t for t in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(t)]
        if types:
            names |= {f"{name}.{f.name}" for f in dataclasses.fields(types[0])}
        else:
            names.add(name)
    return names


def app_config(pg: PostgresServer, rd: RedisServer, tmp: Path, s3: str) -> dict[str, Any]:
    """Every value differs from its default."""
    conf = tmp / "pgbackrest.conf"  # the stack's file, mounted read-only into the sidecar
    conf.write_text("[global]\nrepo1-type=s3\n")
    conf.chmod(0o400)
    return {
        "stack": "all-fields",
        "database": {
            "dsn": pg.dsn, "host": "127.0.0.1", "port": pg.port, "name": pg.database,
            "user": pg.user, "password": pg.password,
        },
        "redis": {
            "url": rd.url, "host": "127.0.0.1", "port": rd.port, "password": rd.password,
            "maxmemory": "64mb", "eviction_policy": "allkeys-lfu",
        },
        "pool": {"size": 2, "max_overflow": 1, "timeout_seconds": 7, "statement_timeout_ms": 900},
        "cache": {"default_ttl_seconds": 42},
        "backup": {
            "schedule": "17 3 * * *", "retention_days": 9, "min_keep": 2, "dir": str(tmp),
            "s3_bucket": "all-fields", "s3_endpoint": s3, "s3_prefix": "pg/",
            "s3_region": "eu-west-1", "s3_part_size_mb": 8, "encryption_key": KEY,
            "encryption_key_id": "k-2026", "pg_bindir": "/usr/lib/postgresql/15/bin",
            "compress_level": 1, "count_rows": True, "jobs": 2,
        },
        "monitoring": {
            "interval_seconds": 7, "health_check_timeout_seconds": 11,
            "sidecar_host": "127.0.0.1", "sidecar_port": free_port(),
            "health_probes": {"grafana": "http://127.0.0.1:3000/api/health"},
            "disk_paths": ["/", str(tmp)],
        },
        "alerting": {
            "cooldown_seconds": 120, "evaluation_interval_seconds": 3, "for_seconds": 45,
            "cpu_threshold": 81, "memory_threshold": 82, "disk_threshold": 83,
            "rate_limit_per_minute": 12, "webhook_url": "http://127.0.0.1:9/hook",
            "alertmanager_url": "http://127.0.0.1:9093",
        },
        "pitr": {
            "stanza": "all-fields", "config_file": str(conf), "config_provided": True,
            "repository": {
                "type": "s3", "path": "/pgbackrest/all-fields", "s3_bucket": "pitr-all-fields",
                "s3_region": "eu-west-1", "s3_endpoint": "s3.eu-west-1.amazonaws.com",
                "s3_access_key": "AKIAALLFIELDS", "s3_secret_key": "s3-all-fields-secret",
                "s3_port": 8443, "s3_uri_style": "path", "s3_verify_tls": False,
            },
            "cipher_type": "aes-256-cbc", "cipher_pass": "all-fields-cipher-pass",
            "retention_full": 5, "pgbackrest_archive_timeout_seconds": 90, "process_max": 3,
            "compress_type": "zst", "log_path": str(tmp / "pitr-log"),
            "lock_path": str(tmp / "pitr-lock"), "spool_path": str(tmp / "pitr-spool"),
            "pg_data": str(tmp / "pgdata"), "pg_port": 6543, "pg_socket": str(tmp / "sock"),
            "pg_bin": "/usr/lib/postgresql/15/bin", "os_user": "nobody",
            "pg_user": "all_fields_role",
            "full_schedule": "5 2 * * 6", "diff_schedule": "5 2 * * 0-5",
            "drill": {
                "schedule": "7 3 * * 2", "scratch_path": str(tmp / "drill"),
                "margin_seconds": 33, "port": 54400, "timeout_seconds": 999,
                "tables": "public.orders", "database": "all_fields_db",
                "heartbeat_interval_seconds": 7,
            },
        },
        "endpoints": {"public_url": "https://localhost:8443"},
    }  # fmt: skip


def _rule(sc: Sidecar, name: str) -> Any:
    return next(r for r in sc.alerts.rules if r.name == name)


def _notifier_url(sc: Sidecar, name: str) -> str:
    url: str = next(vars(w.notifier)["_url"] for w in sc.alerts._workers if w.notifier.name == name)
    return url


def _pool(sc: Sidecar) -> dict[str, Any]:
    return conninfo_to_dict(sc._pool.conninfo)


def _redis(sc: Sidecar) -> dict[str, Any]:
    assert sc._redis is not None
    return dict(sc._redis.connection_pool.connection_kwargs)


def _backup(name: str) -> Callable[[Sidecar], object]:
    return lambda sc: getattr(sc.backups.settings if sc.backups else None, name)


def _pitr(sc: Sidecar) -> PitrSettings:
    assert sc.physical_backups is not None
    return sc.physical_backups.settings


def _argv(sc: Sidecar) -> list[str]:
    """How the sidecar's schedulers run pgBackRest (as root here: through runuser)."""
    return Pgbackrest(_pitr(sc), binary="pgbackrest").argv("backup")


def _option(sc: Sidecar, prefix: str) -> str:
    return next(a.removeprefix(prefix) for a in _argv(sc) if a.startswith(prefix))


def _provided_untouched(sc: Sidecar) -> bool:
    conf = _pitr(sc).config_file
    before = conf.read_bytes()
    return prepare_config(_pitr(sc)) == conf and conf.read_bytes() == before


_ADDRESS = ("host", "port", "password", "db")
APP_SIDE = "application-side (DatabaseManager / RedisManager); the sidecar's own pool is fixed"
SERVER_SIDE = "the Redis server's configuration, applied by the stack"
REPLICAS = "read routing (runtime/replicas.py) is application-side; exporters watch replicas"
IN_THE_FILE = (
    "in the stack's pgbackrest.conf, which the sidecar uses as it is (config_provided); "
    "rendered from this field only outside the stack (tests/test_pitr_unit.py)"
)
IN_THE_FILE_FIELDS = (
    "repo_type", "repo_path", "retention_full", "archive_timeout_seconds", "process_max",
    "compress_type", "log_path", "lock_path", "spool_path",
)  # fmt: skip
TELEMETRY = (
    "read by `python -m runtime serve` before the sidecar starts (runtime/telemetry/"
    "tracing.configure): tests/test_runtime_serve.py (log level, JSON lines) and "
    "tests/test_telemetry.py (endpoint, sampling ratio, service name)"
)
DRILL = "used by each restore drill as it runs: tests/test_pitr_drill.py"
DRILL_FIELDS = ("drill_margin_seconds", "drill_port", "drill_timeout_seconds", "drill_tables",
                "drill_database", "drill_memory_mb")  # fmt: skip
OPERATOR = "used by the operator's `pitr info` / `pitr restore`, not by scheduled backups"
MIGRATE = (
    "used by `python -m runtime migrate` (a deploy step), not the sidecar: tests/test_migrate.py"
)

# field -> (what the sidecar did with it, what it should equal), or a reason it is not its
USES: dict[str, Callable[[Sidecar], object] | str] = {
    "database.dsn": lambda sc: sc._pool.conninfo,
    "database.host": lambda sc: _pool(sc)["host"],
    "database.port": lambda sc: int(_pool(sc)["port"]),
    "database.name": lambda sc: _pool(sc)["dbname"],
    "database.user": lambda sc: _pool(sc)["user"],
    "database.password": lambda sc: _pool(sc)["password"],
    "redis.url": lambda sc: {k: _redis(sc)[k] for k in _ADDRESS},
    "redis.host": lambda sc: _redis(sc)["host"],
    "redis.port": lambda sc: _redis(sc)["port"],
    "redis.password": lambda sc: _redis(sc)["password"],
    "redis.maxmemory": SERVER_SIDE,
    "redis.eviction_policy": SERVER_SIDE,
    "pool.size": APP_SIDE,
    "pool.max_overflow": APP_SIDE,
    "pool.timeout_seconds": APP_SIDE,
    "pool.statement_timeout_ms": APP_SIDE,
    "database.replicas": REPLICAS,
    "pool.max_replica_lag_bytes": REPLICAS,
    "pool.replica_check_interval_seconds": REPLICAS,
    "pitr.config_file": lambda sc: _option(sc, "--config="),
    "pitr.config_provided": _provided_untouched,
    "pitr.stanza": lambda sc: _option(sc, "--stanza="),
    "pitr.os_user": lambda sc: _argv(sc)[2],  # runuser -u USER
    "pitr.pg_user": OPERATOR,
    "pitr.full_schedule": lambda sc: (
        sc.physical_backups.full.schedule if sc.physical_backups else None
    ),
    "pitr.diff_schedule": lambda sc: (
        sc.physical_backups.diff.schedule if sc.physical_backups else None
    ),
    # secrets: scrubbed from pgBackRest's output before it is logged
    "pitr.cipher_pass": lambda sc: _pitr(sc).secrets[0],
    "pitr.s3": lambda sc: _pitr(sc).secrets[1:],
    **{f"pitr.{name}": IN_THE_FILE for name in IN_THE_FILE_FIELDS},
    "pitr.pg_data": OPERATOR,
    "pitr.pg_port": OPERATOR,
    "pitr.pg_socket": OPERATOR,
    "pitr.pg_bin": OPERATOR,
    "pitr.drill_schedule": lambda sc: sc.drills.scheduler.schedule if sc.drills else None,
    "pitr.drill_scratch": lambda sc: (
        str(sc.drills.state.file.parent) if sc.drills and sc.drills.state.file else None
    ),
    "pitr.heartbeat_interval_seconds": lambda sc: (
        sc.drills.heartbeat.interval if sc.drills else None
    ),
    **{f"pitr.{name}": DRILL for name in DRILL_FIELDS},
    "cache.default_ttl_seconds": APP_SIDE,
    "cache.schema_revision": APP_SIDE,  # the cache keys of applications: their revision
    "cache.alembic_script_dir": APP_SIDE,
    "monitoring.interval_seconds": lambda sc: sc._loops[0].interval,
    "monitoring.health_check_timeout_seconds": lambda sc: sc.monitoring.prober.timeout,
    "monitoring.sidecar_host": lambda sc: sc.server.server_address[0],
    "monitoring.sidecar_port": lambda sc: sc.server.server_address[1],
    "monitoring.health_probes": lambda sc: [p.name for p in sc.monitoring.prober.probes][2:],
    "monitoring.disk_paths": lambda sc: sc.monitoring.disk_paths,
    "alerting.cooldown_seconds": lambda sc: sc.alerts.cooldown,
    "alerting.evaluation_interval_seconds": lambda sc: sc._loops[1].interval,
    "alerting.for_seconds": lambda sc: _rule(sc, "RuntimeHighCpu").for_seconds,
    "alerting.cpu_threshold": lambda sc: _rule(sc, "RuntimeHighCpu").threshold,
    "alerting.memory_threshold": lambda sc: _rule(sc, "RuntimeHighMemory").threshold,
    "alerting.disk_threshold": lambda sc: _rule(sc, "RuntimeDiskFull").threshold,
    "alerting.rate_limit_per_minute": lambda sc: sc.alerts._bucket.capacity,
    "alerting.webhook_url": lambda sc: _notifier_url(sc, "webhook"),
    "alerting.alertmanager_url": lambda sc: _notifier_url(sc, "alertmanager"),
    "telemetry.otlp_endpoint": TELEMETRY,
    "telemetry.sampling_ratio": TELEMETRY,
    "telemetry.log_level": TELEMETRY,
    "telemetry.service_name": TELEMETRY,
    "endpoints": "links for people and applications (Grafana, the public URL)",
    "stack": "names the stack in logs and dashboards; nothing to run",
    **{f"migrate.{f.name}": MIGRATE for f in dataclasses.fields(MigrateSettings)},
    **{f"backup.{f.name}": _backup(f.name) for f in dataclasses.fields(BackupSettings)},
    "backup.schedule": lambda sc: sc.scheduler.schedule if sc.scheduler else None,
}


def expected(field: str, config: dict[str, Any], settings: Settings) -> object:
    """What the sidecar should hold for `field` (the JSON value, in the form it uses)."""
    section, _, name = field.partition(".")
    if section == "pitr":
        pitr = config["pitr"]
        repo = pitr["repository"]
        drill = pitr["drill"]
        return {
            "config_provided": True,
            "s3": (repo["s3_access_key"], repo["s3_secret_key"]),
            "drill_schedule": drill["schedule"],
            "drill_scratch": drill["scratch_path"],
            "heartbeat_interval_seconds": drill["heartbeat_interval_seconds"],
        }.get(name, pitr.get(name))
    raw = config[section][name]
    if field == "redis.url":
        return _redis_kwargs(settings)
    if field == "monitoring.health_probes":
        return list(raw)
    if field == "monitoring.disk_paths":
        return raw
    if field in ("alerting.webhook_url",):
        return raw
    if field == "alerting.alertmanager_url":
        return raw + "/api/v2/alerts"
    if field == "database.port" or field == "redis.port":
        return int(raw)
    if field.startswith("backup."):
        return getattr(settings.backup, name)
    return raw


_DEFAULTS = {
    name: hint()
    for name, hint in typing.get_type_hints(Settings).items()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint)
} | {"pitr": PitrSettings()}


def _redis_kwargs(settings: Settings) -> dict[str, Any]:
    import redis

    kwargs = redis.Redis.from_url(
        settings.need_redis().url.reveal()
    ).connection_pool.connection_kwargs
    return {k: kwargs[k] for k in _ADDRESS}


@pytest.fixture
def sidecar_from_every_field(
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Sidecar, dict[str, Any], Settings]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket="all-fields")  # fmt: skip
    config = app_config(postgres_server, redis_server, tmp_path, moto_endpoint)
    settings = load_settings(config, env={})
    sidecar = Sidecar(settings)
    try:
        yield sidecar, config, settings
    finally:
        sidecar.server.server_close()
        sidecar.alerts.close(1)
        sidecar._pool.close(timeout=5)
        if sidecar._redis is not None:
            sidecar._redis.close()


def test_the_table_covers_every_field_of_settings() -> None:
    assert set(USES) == all_fields()


@pytest.mark.req("UT-INFRA-04.1")
@pytest.mark.parametrize("field", sorted(f for f, use in USES.items() if callable(use)))
def test_the_sidecar_uses_the_app_config_value_of(
    field: str, sidecar_from_every_field: tuple[Sidecar, dict[str, Any], Settings]
) -> None:
    sidecar, config, settings = sidecar_from_every_field
    section, _, name = field.partition(".")
    default_section = _DEFAULTS.get(section)
    if default_section is not None:  # (database and redis have no defaults: required)
        assert getattr(getattr(settings, section), name) != getattr(default_section, name)
    use = USES[field]
    assert callable(use)
    assert use(sidecar) == expected(field, config, settings)
    if field.startswith("backup."):
        assert isinstance(sidecar.backups.storage if sidecar.backups else None, S3Storage)
