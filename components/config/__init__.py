"""The stack's typed configuration: one table of settings, parsed and validated once.

`SETTINGS` (settings.py) is the single source of truth for every key: its type, default,
description and rule (validators.py). `StackConfig` (stack_config.py) is one stack's values,
typed; rules across keys are in checks.py; Pulumi.yaml's `config:` schema and the README's
reference are generated from the table (docs.py) and checked against it by the tests.
"""

from components.config.docs import markdown_reference, pulumi_yaml_config
from components.config.settings import PROJECT, SETTINGS, SETTINGS_BY_KEY, Kind, Setting, snake
from components.config.stack_config import (
    ConfigError,
    StackConfig,
    load_stack_config,
    parse_config,
)
from components.config.validators import (
    LOG_LEVELS,
    PITR_REPO_TYPES,
    PLATFORMS,
    REDIS_EVICTION_POLICIES,
    RESTART_POLICIES,
    TLS_MODES,
    schedule_max_gap_seconds,
    size_in_bytes,
)

__all__ = [
    "LOG_LEVELS",
    "PITR_REPO_TYPES",
    "PLATFORMS",
    "PROJECT",
    "REDIS_EVICTION_POLICIES",
    "RESTART_POLICIES",
    "SETTINGS",
    "SETTINGS_BY_KEY",
    "TLS_MODES",
    "ConfigError",
    "Kind",
    "Setting",
    "StackConfig",
    "load_stack_config",
    "markdown_reference",
    "parse_config",
    "pulumi_yaml_config",
    "schedule_max_gap_seconds",
    "size_in_bytes",
    "snake",
]
