"""Pulumi.yaml's config schema and the README's reference say what the code does."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.config import SETTINGS, markdown_reference, parse_config, pulumi_yaml_config

ROOT = Path(__file__).resolve().parent.parent


def test_pulumi_yaml_documents_every_key_as_the_code_defines_it() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["config"] == pulumi_yaml_config(), (
        "Pulumi.yaml is out of date: regenerate its config block with "
        "`.venv/bin/python -m components.config`"
    )


def test_readme_reference_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_reference() in readme, (
        "README's configuration reference is out of date: regenerate it with "
        "`.venv/bin/python -m components.config --markdown`"
    )


def test_stack_files_use_only_known_keys_with_valid_values() -> None:
    known = {s.key for s in SETTINGS}
    for stack in ("dev", "prod", "k8s"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        keys = {k.split(":", 1)[1] for k in config}
        assert keys <= known, keys - known


def test_defaults_alone_are_a_valid_configuration() -> None:
    config = parse_config({}, stack="test")
    assert config.db_pool_size == 10 and config.redis_max_memory == "512mb"
    assert config.backup_schedule == "0 2 * * *" and config.alert_cooldown == 300
