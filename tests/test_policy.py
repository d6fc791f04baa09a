"""The policy pack's rules on what our own stack registers, and on broken copies of it.

Every rule runs on every resource the program registers under mocks, for dev and prod: the
stack passes. Then, for each rule, one real resource is copied and broken in one way, and the
test sees that rule, and only that rule, report it with a message that says what is wrong.
Tests import `rules` only (never the pack: constructing a PolicyPack starts a server).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

import rules
import rules.table
from tests.policy_cases import BREAKAGES, Mutation, breakage_params
from tests.stack_harness import (
    PULLED_IMAGE_KEYS,
    SECRET_SIG,
    SIG_KEY,
    StackRun,
    policy_baseline,
    prod_pinned_to_digests,
    stack_run,
    unwrap,
)


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
    assert {stack for _, stack in resources(stack_run("dev"))} == {"dev"}
    assert {stack for _, stack in resources(stack_run("prod"))} == {"prod"}
    assert {stack for _, stack in resources(stack_run("k8s"))} == {"k8s"}
    assert rules.stack_of("not-a-urn") == ""
    assert not rules.is_dev("")  # no stack name: the production rules apply


@pytest.mark.parametrize(
    ("stack", "types"),
    [
        ("dev", ("docker:",)),
        ("prod", ("docker:",)),
        # the k8s stack also builds (and pushes) the runtime's image with pulumi-docker
        ("k8s", ("kubernetes:", rules.BUILT_IMAGE)),
    ],
)
def test_every_rule_runs_on_our_stack(stack: str, types: tuple[str, ...]) -> None:
    """No rule is vacuous: each applies to at least one resource of the stacks it covers
    (the k8s stack gets the production rules: only `dev` is a dev stack)."""
    applied = {
        rule.name
        for resource, name in resources(stack_run(stack))
        for rule in rules.RULES
        if rule.applies(resource, name)
    }
    kind = "dev" if rules.is_dev(stack) else "prod"
    expected = {
        r.name
        for r in rules.RULES
        if r.stacks in ("all", kind) and any(t.startswith(types) for t in r.types)
    }
    assert applied == expected


def test_dev_passes_every_rule() -> None:
    assert all_violations(stack_run("dev")) == {}


def test_prod_passes_every_mandatory_rule_and_is_told_to_pin_digests() -> None:
    found = all_violations(stack_run("prod"))
    assert set(found) == {"image-pinned-digest-prod"}
    assert len(found["image-pinned-digest-prod"]) == len(PULLED_IMAGE_KEYS)
    assert all("pin it to a digest" in m for m in found["image-pinned-digest-prod"])


def test_prod_with_digests_passes_every_rule() -> None:
    assert all_violations(prod_pinned_to_digests()) == {}


def test_the_k8s_stack_passes_every_rule() -> None:
    assert all_violations(stack_run("k8s")) == {}


def test_the_edge_alone_may_have_a_service_reachable_from_outside() -> None:
    run = stack_run("k8s")
    (nginx,) = [r for r in run.registrations if r.name.endswith("-nginx-service")]
    props = copy.deepcopy(unwrap(nginx.inputs))
    props["spec"]["type"] = "LoadBalancer"
    assert rules.check_service_exposure(rules.Resource(nginx.type, nginx.name, props), "k8s") == []


def test_enforcement_levels() -> None:
    levels = {rule.name: rule.enforcement for rule in rules.RULES}
    assert levels.pop("image-pinned-digest-prod") == "advisory"
    assert set(levels.values()) == {"mandatory"}
    assert all(rule.why for rule in rules.RULES)


# -- each rule, broken on a copy of a real resource -------------------------------------------


def _find(run: StackRun, type_: str, name_suffix: str) -> rules.Resource:
    (reg,) = [r for r in run.registrations if r.type == type_ and r.name.endswith(name_suffix)]
    return rules.Resource(reg.type, reg.name, copy.deepcopy(unwrap(reg.inputs)))


@pytest.mark.parametrize(
    ("rule", "which", "type_", "suffix", "mutate", "expected"), breakage_params()
)
def test_a_broken_copy_breaks_exactly_that_rule(
    rule: str, which: str, type_: str, suffix: str, mutate: Mutation, expected: str
) -> None:
    run = policy_baseline(which)
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
    nginx = _find_raw(stack_run("prod"), "platform-docker-nginx-config-apply")
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


def test_docs_give_each_rules_reason() -> None:
    """docs/ci.md's "why" column is the rule's own reason (up to its safety note)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "ci.md").read_text()
    rows = re.findall(
        r"^\| `([a-z-]+)` \| (?:mandatory|advisory) \| .*? \| (.*) \|$", text, re.MULTILINE
    )
    documented = {name: why.replace("`", "") for name, why in rows}
    assert documented == {
        rule.name: rule.why.removesuffix("; " + rules.table.BREAKS_SAFETY) for rule in rules.RULES
    }


def test_the_healthcheck_rule_promises_no_restarts() -> None:
    """Docker restarts a container whose process exits, never one that is unhealthy: the
    health check gates start order (wait) and nothing else on Docker."""
    (rule,) = [r for r in rules.RULES if r.name == "container-healthcheck"]
    assert "wait=True" in rule.why
    assert "restarts depend" not in rule.why and "never unhealthy ones" in rule.why
