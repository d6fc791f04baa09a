"""The policy pack's rules on what our own stack registers, and on broken copies of it.

Every rule runs on every resource the program registers under mocks, for dev and prod: the
stack passes. Then, for each rule, one real resource is copied and broken in one way, and the
test sees that rule, and only that rule, report it with a message that says what is wrong.
Tests import `rules` only (never the pack: constructing a PolicyPack starts a server).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from typing import Any

import pytest

import rules
from components.config import SETTINGS
from tests.stack_harness import SECRET_SIG, SIG_KEY, StackRun, run_stack, unwrap
from tests.test_stack import _TLS_FOR_PROD, _run

DIGEST = "@sha256:" + "ab" * 32
# every pulled image: RemoteImages, and postgresImage, the base of the locally built
# PostgreSQL image (the runtime's base is pinned in runtime/Dockerfile)
IMAGE_KEYS = tuple(s.key for s in SETTINGS if s.key.endswith("Image"))


@functools.cache
def _prod_pinned_to_digests() -> StackRun:
    """prod with every image also pinned to a digest (what the advisory rule asks for)."""
    from tests.stack_harness import load_cli_config

    config = load_cli_config("prod")
    images = {key: config[f"data-platform:{key}"] + DIGEST for key in IMAGE_KEYS}
    return run_stack("prod", {**_TLS_FOR_PROD, **images})


def resources(run: StackRun) -> list[tuple[rules.Resource, str]]:
    """Each custom resource as a policy sees it, with the stack read from its URN."""
    return [
        (rules.Resource(r.type, r.name, r.inputs), rules.stack_of(r.urn))
        for r in run.registrations
        if r.custom
    ]


def all_violations(run: StackRun) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for resource, stack in resources(run):
        for name, messages in rules.violations(resource, stack).items():
            found.setdefault(name, []).extend(messages)
    return found


def test_the_stack_name_comes_from_the_urn() -> None:
    assert {stack for _, stack in resources(_run("dev"))} == {"dev"}
    assert {stack for _, stack in resources(_run("prod"))} == {"prod"}
    assert rules.stack_of("not-a-urn") == ""
    assert not rules.is_dev("")  # no stack name: the production rules apply


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_rule_runs_on_our_stack(stack: str) -> None:
    """No rule is vacuous: each applies to at least one resource of the stacks it covers."""
    applied = {
        rule.name
        for resource, name in resources(_run(stack))
        for rule in rules.RULES
        if rule.applies(resource, name)
    }
    expected = {r.name for r in rules.RULES if r.stacks in ("all", stack)}
    assert applied == expected


def test_dev_passes_every_rule() -> None:
    assert all_violations(_run("dev")) == {}


def test_prod_passes_every_mandatory_rule_and_is_told_to_pin_digests() -> None:
    found = all_violations(_run("prod"))
    assert set(found) == {"image-pinned-digest-prod"}
    assert len(found["image-pinned-digest-prod"]) == len(IMAGE_KEYS)
    assert all("pin it to a digest" in m for m in found["image-pinned-digest-prod"])


def test_prod_with_digests_passes_every_rule() -> None:
    assert all_violations(_prod_pinned_to_digests()) == {}


def test_enforcement_levels() -> None:
    levels = {rule.name: rule.enforcement for rule in rules.RULES}
    assert levels.pop("image-pinned-digest-prod") == "advisory"
    assert set(levels.values()) == {"mandatory"}
    assert all(rule.why for rule in rules.RULES)


# -- each rule, broken on a copy of a real resource -------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _find(run: StackRun, type_: str, name_suffix: str) -> rules.Resource:
    (reg,) = [r for r in run.registrations if r.type == type_ and r.name.endswith(name_suffix)]
    return rules.Resource(reg.type, reg.name, copy.deepcopy(unwrap(reg.inputs)))


def _set(key: str, value: Any) -> Mutation:
    return lambda props: props.__setitem__(key, value)


def _drop(key: str) -> Mutation:
    return lambda props: props.pop(key)


def _edit_nginx_conf(old: str, new: str) -> Mutation:
    def edit(props: dict[str, Any]) -> None:
        (upload,) = [u for u in props["uploads"] if u["file"].endswith("/nginx.conf")]
        assert old in upload["content"]
        upload["content"] = upload["content"].replace(old, new)

    return edit


def _publish_on_all_interfaces(props: dict[str, Any]) -> None:
    for port in props["ports"]:
        port["ip"] = "0.0.0.0"


def _drop_nginx_conf(props: dict[str, Any]) -> None:
    props["uploads"] = [u for u in props["uploads"] if not u["file"].endswith("/nginx.conf")]


CTR, IMG, NET = rules.CONTAINER, rules.IMAGE, rules.NETWORK
# (rule, stack, resource type, name suffix, mutation, expected words in the message)
BREAKAGES: list[tuple[str, str, str, str, Mutation, str]] = [
    (
        "image-pinned-tag",
        "dev",
        IMG,
        "alertmanager-image",
        _set("name", "prom/alertmanager:latest"),
        "':latest'",
    ),
    (
        "image-pinned-tag",
        "dev",
        rules.BUILT_IMAGE,
        "postgres-image",
        _set("imageName", "data-platform-postgres:latest"),
        "':latest'",
    ),
    (
        "image-pinned-digest-prod",
        "prod",
        rules.BUILT_IMAGE,
        "postgres-image",
        lambda props: props["build"]["args"].__setitem__(
            "POSTGRES_IMAGE", "postgres:15.13-bookworm"
        ),
        "'postgres:15.13-bookworm' is pinned to a tag only",
    ),
    ("image-pinned-tag", "dev", IMG, "redis-image", _set("name", "redis"), "has no tag"),
    (
        "image-pinned-tag",
        "prod",
        rules.BUILT_IMAGE,
        "runtime-image",
        _set("imageName", "data-platform-runtime:latest"),
        "':latest'",
    ),
    (
        "image-pinned-tag",
        "prod",
        IMG,
        "grafana-image",
        _set("name", "grafana/grafana:latest" + DIGEST),
        "':latest'",
    ),
    (
        "image-pinned-digest-prod",
        "prod",
        IMG,
        "nginx-image",
        _set("name", "nginx:1.27.4-alpine"),
        "pinned to a tag only",
    ),
    ("container-healthcheck", "dev", CTR, "-grafana", _drop("healthcheck"), "no healthcheck"),
    (
        "container-healthcheck",
        "prod",
        CTR,
        "-redis",
        _set("healthcheck", {"tests": ["NONE"]}),
        "no healthcheck",
    ),
    ("container-restart-policy", "dev", CTR, "-postgres", _drop("restart"), "restart policy 'no'"),
    ("container-restart-policy", "prod", CTR, "-nginx", _set("restart", "no"), "restart policy"),
    ("container-memory-limit", "prod", CTR, "-prometheus", _drop("memory"), "no memory limit"),
    ("container-memory-limit", "dev", CTR, "-redis", _set("memory", 0), "no memory limit"),
    (
        "ports-edge-only-prod",
        "prod",
        CTR,
        "-postgres",
        _set("ports", [{"internal": 5432, "external": 5432, "ip": "127.0.0.1"}]),
        "only nginx may publish",
    ),
    (
        "ports-edge-only-prod",
        "prod",
        CTR,
        "-grafana",
        _set("ports", [{"internal": 3000, "external": 3000}]),
        "publishes 0.0.0.0:3000->3000",
    ),
    ("ports-loopback-dev", "dev", CTR, "-postgres", _publish_on_all_interfaces, "127.0.0.1 only"),
    ("ports-loopback-dev", "dev", CTR, "-redis", _publish_on_all_interfaces, "0.0.0.0:6379->6379"),
    ("backend-network-internal", "prod", NET, "-backend", _set("internal", False), "not internal"),
    ("backend-network-internal", "dev", NET, "-backend", _drop("internal"), "not internal"),
    ("no-new-privileges", "prod", CTR, "-alertmanager", _set("securityOpts", []), "no-new-priv"),
    (
        "capabilities-dropped",
        "prod",
        CTR,
        "-prometheus",
        _set("capabilities", {"drops": ["NET_RAW"]}),
        "drop ALL",
    ),
    (
        "capabilities-dropped",
        "dev",
        CTR,
        "-nginx",
        _set("capabilities", {"drops": ["ALL"], "adds": ["CHOWN", "SYS_ADMIN"]}),
        "adds SYS_ADMIN",
    ),
    ("capabilities-dropped", "prod", CTR, "-grafana", _set("privileged", True), "is privileged"),
    (
        "nginx-tls-modern",
        "prod",
        CTR,
        "-nginx",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.1 TLSv1.2;"),
        "enables TLSv1.1",
    ),
    (
        "nginx-tls-modern",
        "dev",
        CTR,
        "-nginx",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1 TLSv1.2 TLSv1.3;"),
        "enables TLSv1",
    ),
    (
        "nginx-tls-modern",
        "prod",
        CTR,
        "-nginx",
        _edit_nginx_conf("ssl_protocols TLSv1.2 TLSv1.3;", "# ssl_protocols TLSv1.2 TLSv1.3;"),
        "sets no ssl_protocols",
    ),
    ("nginx-tls-modern", "dev", CTR, "-nginx", _drop_nginx_conf, "no uploaded nginx.conf"),
]


# Rules that keep the services isolated on the network (the specification's ET-INFRA-01.2).
ISOLATION_RULES = {"ports-edge-only-prod", "ports-loopback-dev", "backend-network-internal"}


def breakage_params() -> list[Any]:
    """BREAKAGES as pytest parameters, the isolation cases tagged with their spec ID."""
    return [
        pytest.param(
            *b,
            id=f"{b[0]}-{b[1]}-{b[3].strip('-')}",
            marks=[pytest.mark.req("ET-INFRA-01.2")] if b[0] in ISOLATION_RULES else [],
        )
        for b in BREAKAGES
    ]


def _stack_run(stack: str) -> StackRun:
    """dev as configured; prod with digests, so that prod's baseline breaks no rule at all."""
    return _prod_pinned_to_digests() if stack == "prod" else _run(stack)


@pytest.mark.parametrize(
    ("rule", "which", "type_", "suffix", "mutate", "expected"), breakage_params()
)
def test_a_broken_copy_breaks_exactly_that_rule(
    rule: str, which: str, type_: str, suffix: str, mutate: Mutation, expected: str
) -> None:
    run = _stack_run(which)
    stack = run.stack
    original = _find(run, type_, suffix)
    assert rules.violations(original, stack) == {}
    props = copy.deepcopy(dict(original.props))
    mutate(props)
    found = rules.violations(rules.Resource(original.type, original.name, props), stack)
    assert list(found) == [rule], found
    assert any(expected in message for message in found[rule]), found[rule]


def test_every_rule_has_a_breakage() -> None:
    assert {b[0] for b in BREAKAGES} == {r.name for r in rules.RULES}


def test_rules_read_values_through_secret_markers() -> None:
    """nginx's whole uploads list is a secret (it holds the private key): read through it."""
    nginx = _find_raw(_run("prod"), "platform-docker-nginx")
    assert nginx.props["uploads"][SIG_KEY] == SECRET_SIG
    assert rules.check_nginx_tls(nginx, "prod") == []
    old, new = "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1 TLSv1.2;"
    weak = rules.Resource(nginx.type, nginx.name, _replace_strings(nginx.props, old, new))
    assert weak.props["uploads"][SIG_KEY] == SECRET_SIG
    assert rules.check_nginx_tls(weak, "prod") == [
        "nginx.conf of 'nginx' enables TLSv1; allow only TLSv1.2 and TLSv1.3"
    ]


def _find_raw(run: StackRun, name: str) -> rules.Resource:
    (reg,) = [r for r in run.registrations if r.name == name]
    return rules.Resource(reg.type, reg.name, reg.inputs)


def _replace_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace_strings(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def test_docs_list_every_rule_with_its_level() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "ci.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| (mandatory|advisory) \|", text, re.MULTILINE)
    assert dict(rows) == {rule.name: rule.enforcement for rule in rules.RULES}
    assert len(rows) == len(rules.RULES)
