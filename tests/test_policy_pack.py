"""The real policy pack, served by the real pulumi-policy SDK, fed our stack's resources.

No Pulumi CLI can run here, so this test plays the engine's part: it starts the pack the way
the CLI's `pulumi-analyzer-policy-python` does (`<venv>/bin/python -u -m pulumi.policy
<engine> .` in the pack's folder; the pack prints its gRPC port) in the pack's own virtualenv
(policy/venv, from policy/requirements.txt, as PulumiPolicy.yaml names it), then sends each
resource the program registers under mocks as an `Analyze` request and reads the
diagnostics. This checks what the unit tests of `rules` cannot: that pack.py builds a valid
PolicyPack, that the enforcement levels reach the engine, and that values not yet known in a
preview are reported as "can't run during preview" rather than crashing or passing.
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

import rules
from tests.policy_cases import breakage_params
from tests.stack_harness import (
    PULLED_IMAGE_KEYS,
    Registration,
    StackRun,
    policy_baseline,
    prod_pinned_to_digests,
    stack_run,
    unwrap,
)

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy"
VENV = PACK / "venv"
MANDATORY, ADVISORY = analyzer_pb2.MANDATORY, analyzer_pb2.ADVISORY
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's "not known yet"


def _pack_venv() -> Path:
    """policy/venv with policy/requirements.txt installed (reused while the file is unchanged)."""
    requirements = PACK / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = VENV / ".requirements.sha256"
    python = VENV / "bin" / "python"
    if not (python.exists() and marker.exists() and marker.read_text() == digest):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            timeout=600,
        )
        marker.write_text(digest)
    return python


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    python = _pack_venv()
    env = {**os.environ, "PULUMI_PROJECT": "data-platform", "PULUMI_STACK": "dev"}
    env["PULUMI_DRY_RUN"] = "true"
    server = subprocess.Popen(
        # as the CLI's script does: <engine address> "." with the pack folder as working dir
        [str(python), "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), server.stderr.read() if server.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.terminate()
        server.communicate(timeout=30)


Diagnostic = tuple[str, int, str]  # policy name, enforcement level, message


def analyze(
    stub: analyzer_pb2_grpc.AnalyzerStub, type_: str, name: str, urn: str, props: dict[str, Any]
) -> list[Diagnostic]:
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(type=type_, properties=properties, urn=urn, name=name)
    response = stub.Analyze(request, timeout=30)
    return [(d.policyName, d.enforcementLevel, d.message) for d in response.diagnostics]


def analyze_stack(stub: analyzer_pb2_grpc.AnalyzerStub, run: StackRun) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for reg in run.registrations:
        if reg.custom:
            found += analyze(stub, reg.type, reg.name, reg.urn, reg.inputs)
    return found


def test_the_pack_type_checks_against_the_real_sdk() -> None:
    """The default mypy run has no pulumi-policy (it lives in policy/venv): check it there."""
    python = _pack_venv()
    # the SDK must be there, or the project's ignore_missing_imports would make this vacuous
    subprocess.run([str(python), "-c", "import pulumi_policy"], check=True, timeout=60)
    files = [str(PACK / "pack.py"), str(PACK / "rules")]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(python), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pack_declares_every_rule_with_its_enforcement_level(pack: Any) -> None:
    info = pack.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "data-platform-guardrails"
    declared = {p.name: p.enforcementLevel for p in info.policies}
    expected = {
        r.name: MANDATORY if r.enforcement == "mandatory" else ADVISORY for r in rules.RULES
    }
    assert declared == expected


def test_dev_prod_with_digests_and_k8s_pass_the_real_pack(pack: Any) -> None:
    assert analyze_stack(pack, stack_run("dev")) == []
    assert analyze_stack(pack, prod_pinned_to_digests()) == []
    assert analyze_stack(pack, stack_run("k8s")) == []


def test_prod_with_tags_only_gets_advisories_that_do_not_block(pack: Any) -> None:
    found = analyze_stack(pack, stack_run("prod"))
    assert len(found) == len(PULLED_IMAGE_KEYS)  # one per pulled image
    assert {(name, level) for name, level, _ in found} == {("image-pinned-digest-prod", ADVISORY)}


@pytest.mark.parametrize(
    ("rule", "which", "type_", "suffix", "mutate", "expected"), breakage_params()
)
def test_the_real_pack_reports_each_broken_copy(
    pack: Any, rule: str, which: str, type_: str, suffix: str, mutate: Any, expected: str
) -> None:
    reg = _registration(policy_baseline(which), type_, suffix)
    props = _unwrapped(copy.deepcopy(reg.inputs))
    mutate(props)
    found = analyze(pack, reg.type, reg.name, reg.urn, props)
    level = MANDATORY if rule != "image-pinned-digest-prod" else ADVISORY
    assert [(name, lvl) for name, lvl, _ in found] == [(rule, level)] * len(found), found
    assert found and any(expected in message for _, _, message in found), found


def test_a_value_unknown_in_preview_is_reported_not_guessed(pack: Any) -> None:
    reg = _registration(stack_run("dev"), rules.CONTAINER, "-postgres")
    props = {**reg.inputs, "healthcheck": UNKNOWN_STRING}
    found = analyze(pack, reg.type, reg.name, reg.urn, props)
    assert [(name, level) for name, level, _ in found] == [("container-healthcheck", ADVISORY)]
    assert "can't be known during preview" in found[0][2]


def test_without_a_urn_the_stack_comes_from_the_engines_environment(pack: Any) -> None:
    """The server runs with PULUMI_STACK=dev: dev's loopback ports pass, prod's rule is off."""
    reg = _registration(stack_run("dev"), rules.CONTAINER, "-postgres")
    assert analyze(pack, reg.type, reg.name, "", reg.inputs) == []
    props = _unwrapped(copy.deepcopy(reg.inputs))
    props["ports"][0]["ip"] = "0.0.0.0"
    found = analyze(pack, reg.type, reg.name, "", props)
    assert [name for name, _, _ in found] == ["ports-loopback-dev"]


def _registration(run: StackRun, type_: str, suffix: str) -> Registration:
    (reg,) = [r for r in run.registrations if r.type == type_ and r.name.endswith(suffix)]
    return reg


def _unwrapped(props: dict[str, Any]) -> dict[str, Any]:
    value = unwrap(props)
    assert isinstance(value, dict)
    return value
