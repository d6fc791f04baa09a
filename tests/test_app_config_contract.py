"""The stack's `app_config` output is exactly what the runtime's settings loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.settings import load_settings
from tests.stack_harness import stack_run


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_runtime_loads_the_stacks_app_config(stack: str, tmp_path: Path) -> None:
    app_config = stack_run(stack).outputs["app_config"]
    # what `pulumi stack output app_config --json --show-secrets > app_config.json` writes
    path = tmp_path / "app_config.json"
    path.write_text(json.dumps(app_config, indent=2))
    settings = load_settings(env={"APP_CONFIG_FILE": str(path)})
    assert settings.stack == stack
    assert settings.pool.size == app_config["pool"]["size"]
    assert settings.pool.max_overflow == app_config["pool"]["max_overflow"]
    assert settings.cache.default_ttl_seconds == app_config["cache"]["default_ttl_seconds"]
    assert settings.endpoints["public_url"] == app_config["endpoints"]["public_url"]
    password = app_config["database"]["password"]
    assert password not in repr(settings), "secrets stay masked in the settings' repr"


def test_dev_apps_on_the_host_use_the_loopback_addresses() -> None:
    app_config = stack_run("dev").outputs["app_config"]
    local = load_settings(app_config, env={}, address="local")
    network = load_settings(app_config, env={})
    assert (network.need_database().host, network.need_redis().host) == ("postgres", "redis")
    assert (local.need_database().host, local.need_redis().host) == ("127.0.0.1", "127.0.0.1")
    assert "@127.0.0.1:5432/app" in local.need_database().dsn.reveal()
    with pytest.raises(Exception, match="local"):  # prod publishes no data port
        load_settings(stack_run("prod").outputs["app_config"], env={}, address="local")
