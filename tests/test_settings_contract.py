"""The app_config contract, leaf by leaf: what the stack writes is what the runtime reads.

The stack side is `components/app_config.py` (+ `components/stack.py:pitr_section`), run under
the mocks for dev, prod and k8s; the runtime side is the fields `runtime/settings.py` declares
(`runtime.settings.read_paths()`). Both sides' vocabularies and defaults are compared here, and
the docs' environment-variable tables are checked to be the ones the declarations generate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from components.config import LOG_LEVELS as STACK_LOG_LEVELS
from components.config import REDIS_EVICTION_POLICIES, parse_config
from components.config import ConfigError as StackConfigError
from runtime.errors import ConfigError
from runtime.settings import (
    EVICTION_POLICIES,
    LOG_LEVELS,
    declared,
    load_settings,
    read_paths,
)
from runtime.settings_docs import DOC_TABLES, render_docs
from runtime.settings_rules import LIBPQ_KEYWORDS, Custom, split_dsn
from tests.stack_harness import run_stack, stack_run

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "prod", "k8s")

# Leaves the stack writes for others than the runtime, and why (docs/app_config.md).
STACK_ONLY = {
    "database.host": "for applications that take host and port; the runtime parses the DSN",
    "database.port": "as database.host",
    "database.local.host": "as database.host (dev's loopback address)",
    "database.local.port": "as database.host (dev's loopback address)",
    "database.replicas[].host": "as database.host, per replica",
    "database.replicas[].port": "as database.host, per replica",
    "redis.host": "for applications that take host and port; the runtime parses the URL",
    "redis.port": "as redis.host",
    "redis.local.host": "as redis.host (dev's loopback address)",
    "redis.local.port": "as redis.host (dev's loopback address)",
    "monitoring.restart_attempts": "the containers' restart policy, applied by the stack",
    "pitr.archive_timeout_seconds": "PostgreSQL's archive_timeout (the RPO), set on the server",
}


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf; list items as `[]`."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(node, list):
        for item in node:
            yield from leaves(item, f"{prefix}[]")
    else:
        yield prefix, node


def _is_read(path: str, reads: set[str]) -> bool:
    """`path` or one of its parents is read (e.g. all of `endpoints`, read as one object)."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in reads for i in range(1, len(parts) + 1))


@pytest.mark.parametrize("stack", STACKS)
def test_every_leaf_the_stack_writes_is_read_by_the_runtime_or_listed(stack: str) -> None:
    written = {path for path, _ in leaves(stack_run(stack).outputs["app_config"])}
    reads = read_paths()
    unread = {p for p in written if not _is_read(p, reads)}
    assert unread - set(STACK_ONLY) == set(), "read them, or list them in STACK_ONLY with why"


def test_the_stack_only_list_names_only_leaves_some_stack_writes_and_the_runtime_ignores() -> None:
    written = {
        path for stack in STACKS for path, _ in leaves(stack_run(stack).outputs["app_config"])
    }
    assert set(STACK_ONLY) <= written, "stale STACK_ONLY entries"
    assert not {p for p in STACK_ONLY if _is_read(p, read_paths())}


@pytest.mark.parametrize("stack", STACKS)
def test_every_runtime_field_reads_the_value_the_stack_wrote(stack: str) -> None:
    """Not only the paths: each declared field, read from the stack's app_config, holds the
    leaf's value (pool sizes, schedules, thresholds...)."""
    app_config = stack_run(stack).outputs["app_config"]
    written = dict(leaves(app_config))
    settings = load_settings(app_config, env={"PITR_CONFIG_PROVIDED": "false"}, require=())
    sections = {
        type(getattr(settings, f)): getattr(settings, f) for f in settings.__dataclass_fields__
    }
    checked = 0
    for section, name, key, _ in declared():
        if key.path not in written or section not in sections or isinstance(key.rule, Custom):
            continue
        expected = key.rule(key.path, written[key.path], None)
        assert getattr(sections[section], name) == expected, key.path
        checked += 1
    assert checked >= 10


def test_the_vocabularies_both_sides_define_are_the_same() -> None:
    assert tuple(EVICTION_POLICIES) == tuple(REDIS_EVICTION_POLICIES)
    assert tuple(LOG_LEVELS) == tuple(STACK_LOG_LEVELS)


MAXMEMORY_SAMPLES = [
    "512mb",
    "1gb",
    "100kb",
    "64b",
    "1024",
    "1g",
    "512MB",
    "0mb",
    "1.5gb",
    "mb",
]


@pytest.mark.parametrize("value", MAXMEMORY_SAMPLES)
def test_both_sides_accept_the_same_maxmemory_syntax(value: str) -> None:
    try:
        # a container limit above every sample, so only the syntax decides
        parse_config({"redisMaxMemory": value, "redisMemoryMb": 4096}, stack="test")
        stack_accepts = True
    except StackConfigError:
        stack_accepts = False
    config = {"redis": {"url": "redis://r:6379/0", "maxmemory": value}}
    try:
        runtime_accepts = load_settings(config, env={}, require=()).redis is not None
    except ConfigError:
        runtime_accepts = False
    assert runtime_accepts == stack_accepts


def _defaults_only_app_config() -> dict[str, Any]:
    """dev's app_config with none of Pulumi.dev.yaml's values: Pulumi.yaml's defaults only."""
    dev_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    run = run_stack("dev", {k.split(":", 1)[1]: None for k in dev_file})
    app_config: dict[str, Any] = run.outputs["app_config"]
    return app_config


# Defaults that differ on purpose, and why.
DIFFERENT_DEFAULTS = {
    "pitr.pg_user": "the runtime's default is os_user (postgres); the stack exports its dbUser",
    "pitr.config_provided": "derived: the stack's file is used as it is where it is readable",
    "pitr.drill.database": "the counted tables are the application's: the stack exports dbName",
}


def test_the_defaults_both_sides_define_agree() -> None:
    """Run the stack on Pulumi.yaml's defaults alone: every field the runtime gives a default
    reads, from that app_config, the same value it would without it."""
    written = dict(leaves(_defaults_only_app_config()))
    compared = []
    for _, _, key, default in declared():
        if default is None or isinstance(key.rule, Custom):
            continue
        for path in (key.path, *key.also):
            if path in written and path not in DIFFERENT_DEFAULTS:
                assert key.rule(path, written[path], None) == default, path
                compared.append(path)
    assert len(compared) >= 15, compared


def test_settings_load_no_client_library() -> None:
    code = (
        "import sys, runtime.settings; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'psycopg_pool', 'redis', 'boto3', 'botocore')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.replace("'", '"')) == []


def test_the_dsn_keywords_are_libpqs() -> None:
    assert {k.keyword.decode() for k in pq.Conninfo.get_defaults()} == LIBPQ_KEYWORDS


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:pw@postgres:5432/app",
        "postgres://u@h/db?sslmode=require&application_name=x",
        "postgresql://u:p%40ss@h:6432/d%20b",
        "host=h port=5433 dbname=app user=u password=secret",
        "host=h password='a b\\'c' dbname = x",
        "dbname=app",
    ],
)
def test_the_dsn_is_split_as_libpq_splits_it(dsn: str) -> None:
    assert split_dsn(dsn) == {k: str(v) for k, v in conninfo_to_dict(dsn).items()}


@pytest.mark.parametrize(
    "dsn", ["host=h password=x port", "mysql://u:p@h/db", "postgresql://u@h/db?bogus=1"]
)
def test_a_dsn_libpq_refuses_is_refused(dsn: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - psycopg raises its own ProgrammingError
        conninfo_to_dict(dsn)
    with pytest.raises(ValueError):
        split_dsn(dsn)


@pytest.mark.parametrize("doc", sorted(DOC_TABLES))
def test_the_docs_environment_tables_are_generated_from_the_declarations(doc: str) -> None:
    text = (ROOT / doc).read_text()
    assert f"<!-- env-table {DOC_TABLES[doc]} -->" in text
    assert render_docs(text) == text, (
        f"{doc}'s environment-variable table is out of date: "
        "`.venv/bin/python -m runtime.settings_docs`"
    )
