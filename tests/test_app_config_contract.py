"""The stack's `app_config` output is exactly what the runtime's settings loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.settings import load_settings
from tests.stack_harness import plain_strings, stack_run, unwrap


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
    # the stack's generated key encrypts every logical backup (AES-256-GCM)
    assert settings.backup.encrypted and settings.backup.key_bytes is not None
    assert len(settings.backup.key_bytes) == 32
    assert settings.backup.encryption_key_id == app_config["backup"]["encryption_key_id"]
    assert app_config["backup"]["encryption_key"] not in repr(settings)


def test_dev_apps_on_the_host_use_the_loopback_addresses() -> None:
    app_config = stack_run("dev").outputs["app_config"]
    local = load_settings(app_config, env={}, address="local")
    network = load_settings(app_config, env={})
    assert (network.need_database().host, network.need_redis().host) == ("postgres", "redis")
    assert (local.need_database().host, local.need_redis().host) == ("127.0.0.1", "127.0.0.1")
    assert "@127.0.0.1:5432/app" in local.need_database().dsn.reveal()
    with pytest.raises(Exception, match="local"):  # prod publishes no data port
        load_settings(stack_run("prod").outputs["app_config"], env={}, address="local")


def _options(conf: str) -> dict[str, dict[str, str]]:
    """pgbackrest.conf as {section: {option: value}}."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in conf.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current[key] = value
    return sections


# Options only one side writes, and why (docs/runtime-pitr.md, "The contract with the stack").
STACK_ONLY = {"archive-async", "pg1-user"}  # the server's async archive-push; the superuser role
RUNTIME_ONLY = {
    "archive-timeout",  # pgBackRest's wait for WAL during check/backup (PITR_ARCHIVE_TIMEOUT)
    "log-path",  # the runtime logs to files; the stack's containers log to stderr
    "repo1-s3-uri-style",  # the stack uses the defaults (host, 443, verify)
    "repo1-storage-port",
    "repo1-storage-verify-tls",
}
PER_HOST = {"lock-path", "log-level-console", "log-level-file"}  # where and how it logs


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_runtime_renders_the_pgbackrest_options_the_stack_renders(stack: str) -> None:
    from components.render.pgbackrest_conf import CONF_FILE
    from runtime.pitr.pgbackrest import render_config
    from tests.stack_harness import uploads

    run = stack_run(stack)
    stacks = _options(uploads(run, "runtime")[CONF_FILE])
    # the same app_config on a host without the stack's file: the runtime renders its own
    settings = load_settings(
        run.outputs["app_config"], env={"PITR_CONFIG_PROVIDED": "false"}, require=()
    ).pitr
    assert settings is not None and not settings.config_provided
    runtimes = _options(render_config(settings))
    assert set(stacks) == set(runtimes) == {"global", "main"}
    for section in ("global", "main"):
        ours, theirs = runtimes[section], stacks[section]
        assert set(theirs) - set(ours) <= STACK_ONLY
        assert set(ours) - set(theirs) <= RUNTIME_ONLY
        shared = (set(ours) & set(theirs)) - PER_HOST
        assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert {"repo1-cipher-pass", "repo1-path", "pg1-path", "compress-type"} <= (
        set(runtimes["global"]) | set(runtimes["main"])
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stacks_pitr_section_becomes_the_pitr_settings(stack: str, tmp_path: Path) -> None:
    app_config = stack_run(stack).outputs["app_config"]
    exported = app_config["pitr"]
    settings = load_settings(app_config, env={}, require=()).pitr
    assert settings is not None
    assert (settings.stanza, str(settings.config_file)) == ("main", exported["config_file"])
    assert settings.repo_type == exported["repository"]["type"]
    assert settings.repo_path == exported["repository"]["path"]
    assert settings.cipher_pass is not None
    assert settings.cipher_pass.reveal() == exported["cipher_pass"]
    assert settings.retention_full == exported["retention_full"]
    assert (settings.full_schedule, settings.diff_schedule) == (
        exported["full_schedule"],
        exported["diff_schedule"],
    )
    if stack == "prod":
        repo = exported["repository"]
        assert settings.s3 is not None
        assert (settings.s3.bucket, settings.s3.region, settings.s3.endpoint) == (
            repo["s3_bucket"],
            repo["s3_region"],
            repo["s3_endpoint"],
        )
        assert settings.s3.key.reveal() == repo["s3_access_key"]
        assert settings.s3.key_secret.reveal() == repo["s3_secret_key"]
    assert exported["cipher_pass"] not in repr(settings)
    # the sidecar's case: the stack's file is there, so it is used as it is
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text("[global]\n")
    provided = load_settings(
        {**app_config, "pitr": {**exported, "config_file": str(conf)}}, env={}, require=()
    ).pitr
    assert provided is not None and provided.config_provided


@pytest.mark.parametrize("stack", ["dev", "prod", "k8s"])
def test_the_backup_key_is_generated_secret_and_reaches_the_sidecar_only_in_the_secret_file(
    stack: str,
) -> None:
    run = stack_run(stack)
    key = run.outputs["app_config"]["backup"]["encryption_key"]
    assert key in run.generated_secrets  # a RandomBytes, so every leak check looks for it
    assert "app_config" in run.secret_outputs
    if stack != "k8s":
        sidecar = run.containers()["runtime"].inputs
        assert not any(key in text for text in plain_strings(sidecar))  # only inside secrets
        files = {u["file"]: u["content"] for u in unwrap(sidecar)["uploads"]}
        assert json.loads(files["/run/secrets/app_config.json"])["backup"]["encryption_key"] == key
