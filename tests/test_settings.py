"""Settings: the stack's app_config JSON and environment variables, validated, secrets masked."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from runtime.cache import RedisManager
from runtime.database import DatabaseManager
from runtime.errors import ConfigError
from runtime.settings import Secret, load_settings, mask_url, secrets_of
from tests.servers import PostgresServer, RedisServer

DB_PASSWORD = "db-Sup3r-s3cret"
REDIS_PASSWORD = "redis-Sup3r-s3cret"

APP_CONFIG: dict[str, Any] = {
    "stack": "dev",
    "database": {
        "host": "postgres",
        "port": 5432,
        "name": "app",
        "user": "app",
        "password": DB_PASSWORD,
        "dsn": f"postgresql://app:{DB_PASSWORD}@postgres:5432/app",
        "local": {
            "host": "127.0.0.1",
            "port": 15432,
            "dsn": f"postgresql://app:{DB_PASSWORD}@127.0.0.1:15432/app",
        },
    },
    "pool": {"size": 10, "max_overflow": 20, "timeout_seconds": 30, "statement_timeout_ms": 5000},
    "redis": {
        "host": "redis",
        "port": 6379,
        "password": REDIS_PASSWORD,
        "url": f"redis://:{REDIS_PASSWORD}@redis:6379/0",
        "local": {
            "host": "127.0.0.1",
            "port": 16379,
            "url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:16379/0",
        },
        "maxmemory": "512mb",
        "eviction_policy": "allkeys-lru",
    },
    "cache": {"default_ttl_seconds": 300},
    "backup": {"schedule": "0 2 * * *", "retention_days": 30, "min_keep": 3},
    "monitoring": {
        "interval_seconds": 60,
        "alert_cooldown_seconds": 300,
        "health_check_timeout_seconds": 60,
        "restart_attempts": 3,
    },
    "endpoints": {"public_url": "https://localhost:8443"},
}


def config(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(APP_CONFIG)
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data


@pytest.mark.req("UT-INFRA-02.1", "UT-INFRA-03.1")
def test_reads_exactly_what_pulumi_stack_output_prints(tmp_path: Path) -> None:
    file = tmp_path / "app_config.json"
    file.write_text(json.dumps(APP_CONFIG, indent=2))
    settings = load_settings(env={"APP_CONFIG_FILE": str(file)})
    assert settings.stack == "dev"
    assert settings.need_database().dsn.reveal() == APP_CONFIG["database"]["dsn"]
    assert (settings.need_database().host, settings.need_database().port) == ("postgres", 5432)
    assert settings.need_database().user == "app" and settings.need_database().name == "app"
    assert settings.pool.size == 10 and settings.pool.max_overflow == 20
    assert settings.pool.max_connections == 30
    assert settings.pool.timeout_seconds == 30.0 and settings.pool.statement_timeout_ms == 5000
    assert (settings.need_redis().host, settings.need_redis().port) == ("redis", 6379)
    assert settings.need_redis().password == Secret(REDIS_PASSWORD)
    assert settings.need_redis().eviction_policy == "allkeys-lru"
    assert settings.cache.default_ttl_seconds == 300
    assert settings.backup.schedule == "0 2 * * *"


def test_a_redis_password_with_url_escapes_is_read_as_redis_py_sends_it() -> None:
    """redis-py %-decodes the URL's password before AUTH; the settings (and so redaction)
    must hold the same text, or a password with ':' or '%' is never masked."""
    doc = config()
    doc["redis"]["url"] = "redis://:p%3Ass%25word@redis:6379/0"
    settings = load_settings(doc, env={})
    assert settings.need_redis().password == Secret("p:ss%word")
    assert "p:ss%word" in secrets_of(settings)


def test_local_addresses_for_the_dev_stack() -> None:
    settings = load_settings(json.dumps(APP_CONFIG), env={}, address="local")
    assert (settings.need_database().host, settings.need_database().port) == ("127.0.0.1", 15432)
    assert (settings.need_redis().host, settings.need_redis().port) == ("127.0.0.1", 16379)
    via_env = load_settings(APP_CONFIG, env={"APP_CONFIG_ADDRESS": "local"})
    assert via_env.need_database().port == 15432


def test_environment_overrides_single_fields() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:pw@db.example:6543/other",
        "REDIS_URL": "redis://cache.example:7000/2",
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "2.5",
        "DB_STATEMENT_TIMEOUT_MS": "100",
        "CACHE_DEFAULT_TTL": "60",
        "BACKUP_SCHEDULE": "*/5 * * * *",
    }
    settings = load_settings(APP_CONFIG, env=env)
    assert (
        settings.need_database().host,
        settings.need_database().port,
        settings.need_database().name,
    ) == (
        "db.example",
        6543,
        "other",
    )
    assert (settings.need_redis().host, settings.need_redis().port) == ("cache.example", 7000)
    assert settings.pool.size == 4 and settings.pool.max_overflow == 0
    assert settings.pool.timeout_seconds == 2.5 and settings.pool.statement_timeout_ms == 100
    assert settings.cache.default_ttl_seconds == 60
    assert settings.backup.schedule == "*/5 * * * *"


def test_environment_alone_with_defaults() -> None:
    settings = load_settings(
        env={"DATABASE_URL": "host=h port=1 user=u dbname=d", "REDIS_URL": "redis://r:1/0"}
    )
    assert settings.pool.size == 10 and settings.pool.max_overflow == 20
    assert settings.pool.timeout_seconds == 30.0
    assert settings.cache.default_ttl_seconds == 300


@pytest.mark.parametrize(
    ("changes", "env", "field", "allowed"),
    [
        ({"pool__size": 0}, {}, "pool.size", "an integer >= 1"),
        ({"pool__size": True}, {}, "pool.size", "an integer >= 1"),
        ({}, {"DB_POOL_SIZE": "ten"}, "DB_POOL_SIZE", "an integer >= 1"),
        ({}, {"DB_MAX_OVERFLOW": "-1"}, "DB_MAX_OVERFLOW", "an integer >= 0"),
        ({}, {"DB_POOL_TIMEOUT": "0"}, "DB_POOL_TIMEOUT", "seconds > 0"),
        ({"pool__timeout_seconds": "nan"}, {}, "pool.timeout_seconds", "seconds > 0"),
        ({"cache__default_ttl_seconds": 0}, {}, "cache.default_ttl_seconds", ">= 1"),
        ({"backup__schedule": "every night"}, {}, "backup.schedule", "cron"),
        ({"redis__url": "http://x"}, {}, "redis.url", "redis://"),
        ({"database__dsn": ""}, {}, "database.dsn", "non-empty"),
        ({"redis__maxmemory": "lots"}, {}, "redis.maxmemory", "'512mb'"),
        ({"redis__eviction_policy": "lru"}, {}, "redis.eviction_policy", "allkeys-lru"),
        ({"database__replicas": "r1"}, {}, "database.replicas", "a list of {host, port, dsn}"),
        ({"database__replicas": [{"host": "r"}]}, {}, "database.replicas[0].dsn", "required"),
        ({}, {"DATABASE_REPLICA_URLS": "postgresql://r/app,"}, "DATABASE_REPLICA_URLS[1]", "non"),
        ({}, {"DATABASE_REPLICA_URLS": "postgresql://:1/app"}, "DATABASE_REPLICA_URLS[0]", "host"),
        ({}, {"DB_MAX_REPLICA_LAG_BYTES": "1MB"}, "DB_MAX_REPLICA_LAG_BYTES", "integer >= 0"),
        (
            {"pool__replica_check_interval_seconds": 0},
            {},
            "pool.replica_check_interval_seconds",
            "> 0",
        ),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_rule(
    changes: dict[str, Any], env: dict[str, str], field: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(**changes), env=env)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: got ")
    assert allowed in str(caught.value)


def test_replicas_come_from_app_config_or_one_environment_variable() -> None:
    replicas = [
        {
            "host": "postgres-replica-1",
            "port": 5432,
            "dsn": f"postgresql://app:{DB_PASSWORD}@postgres-replica-1:5432/app",
            "local": {"dsn": f"postgresql://app:{DB_PASSWORD}@127.0.0.1:15433/app"},
        }
    ]
    data = config(database__replicas=replicas, pool__max_replica_lag_bytes=1024)
    network = load_settings(data, env={})
    assert [(r.host, r.port, r.name) for r in network.need_database().replicas] == [
        ("postgres-replica-1", 5432, "app")
    ]
    assert network.pool.max_replica_lag_bytes == 1024
    assert network.pool.replica_check_interval_seconds == 1.0
    local = load_settings(data, env={}, address="local")
    assert [(r.host, r.port) for r in local.need_database().replicas] == [("127.0.0.1", 15433)]
    env = {"DATABASE_REPLICA_URLS": "postgresql://a:pw@r1/app, postgresql://a:pw@r2:6432/app"}
    overridden = load_settings(data, env=env)
    routed = overridden.need_database().replicas
    assert [(r.host, r.port) for r in routed] == [("r1", 5432), ("r2", 6432)]
    assert load_settings(config(), env={}).need_database().replicas == ()
    assert DB_PASSWORD not in repr(network) and "pw" not in repr(overridden.database)
    assert DB_PASSWORD in network.need_database().secrets  # redacted from the pool's messages


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL|^database\.dsn"):
        load_settings(env={})
    data = config()
    del data["redis"]
    with pytest.raises(ConfigError, match=r"^REDIS_URL \(redis\.url\): .*required"):
        load_settings(data, env={})


def test_invalid_json_reports_position_not_text(tmp_path: Path) -> None:
    text = json.dumps(APP_CONFIG)[:-5]
    with pytest.raises(ConfigError) as caught:
        load_settings(text, env={})
    assert "line 1" in str(caught.value)
    assert DB_PASSWORD not in str(caught.value)


def test_secrets_never_in_repr_str_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(APP_CONFIG, env={})
    for shown in (repr(settings), str(settings), f"{settings}", repr(settings.need_database().dsn)):
        assert DB_PASSWORD not in shown and REDIS_PASSWORD not in shown
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s", settings)
    assert DB_PASSWORD not in caplog.text and REDIS_PASSWORD not in caplog.text
    with pytest.raises(TypeError):
        pickle.dumps(settings.need_database().dsn)
    # A malformed DSN holding a password: the error shows neither the DSN nor the password.
    bad = f"host=h password={DB_PASSWORD} port"
    with pytest.raises(ConfigError) as caught:
        load_settings(config(database__dsn=bad), env={})
    assert DB_PASSWORD not in str(caught.value) and DB_PASSWORD not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert DB_PASSWORD not in repr(caught.value.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config(redis__url=f"http://:{REDIS_PASSWORD}@x"), env={})
    assert REDIS_PASSWORD not in str(caught.value)


def test_mask_url() -> None:
    assert mask_url(f"redis://:{REDIS_PASSWORD}@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("postgresql://app:pw@h:5432/app") == "postgresql://app:***@h:5432/app"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"


@pytest.mark.req("UT-INFRA-02.1", "UT-INFRA-03.1")
def test_one_app_config_file_configures_pool_and_cache_against_real_servers(
    tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    data = config(
        database__local={
            "host": "127.0.0.1",
            "port": postgres_server.port,
            "dsn": postgres_server.dsn,
        },
        redis__local={"host": "127.0.0.1", "port": redis_server.port, "url": redis_server.url},
        pool__size=1,
        pool__max_overflow=1,
        cache__default_ttl_seconds=42,
    )
    file = tmp_path / "app_config.json"
    file.write_text(json.dumps(data))
    settings = load_settings(env={"APP_CONFIG_FILE": str(file), "APP_CONFIG_ADDRESS": "local"})
    pool = DatabaseManager(settings).create_connection_pool()
    manager = RedisManager(settings, namespace=f"s{uuid.uuid4().hex[:8]}")
    try:
        assert pool.stats().max_connections == 2
        cache = manager.get_cache_client()
        assert cache.get_or_load("answer", lambda: pool.execute("SELECT 42")[0][0]) == 42
        assert cache.get_or_load("answer", lambda: -1) == 42
        assert cache.default_ttl == 42
    finally:
        manager.close()
        pool.close()
