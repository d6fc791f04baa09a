"""tlsMode acme under Pulumi's mocks: what bad input is refused, and what the stack builds.

The ACME protocol itself runs against Pebble in tests/test_acme_pebble.py.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import yaml

from components.config import ConfigError
from tests.stack_harness import (
    K8S_CONFIG,
    PROD_CONFIG,
    Registration,
    StackRun,
    plain_strings,
    run_stack,
    unwrap,
    uploads,
)

ACME = {"tlsMode": "acme", "acmeEmail": "ops@example.com"}


@functools.cache
def acme_run() -> StackRun:
    """prod (platform.example.com) with tlsMode acme instead of a provided certificate."""
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    return run_stack("prod", {**config, **ACME})


def _inputs(run: StackRun, service: str) -> dict[str, Any]:
    inputs: dict[str, Any] = unwrap(run.workloads()[service].inputs)
    return inputs


@pytest.mark.parametrize(
    ("overrides", "key", "value", "allowed"),
    [
        ({"tlsMode": "letsencrypt"}, "tlsMode", "'letsencrypt'", "one of self-signed, provided"),
        ({"tlsMode": "acme"}, "acmeEmail", "not set", "a contact e-mail"),
        ({**ACME, "acmeEmail": "ops at example"}, "acmeEmail", "'ops at example'", "an e-mail"),
        ({**ACME, "domain": "localhost"}, "domain", "'localhost' (localhost)", "a public DNS name"),
        ({**ACME, "domain": "203.0.113.7"}, "domain", "(an IP address)", "a public DNS name"),
        ({**ACME, "domain": "edge"}, "domain", "(a name of one label)", "a public DNS name"),
        (
            {**ACME, "acmeDirectoryUrl": "http://acme.example.com/dir"},
            "acmeDirectoryUrl",
            "'http://acme.example.com/dir'",
            "an https:// URL of an ACME directory",
        ),
        (
            {**ACME, "acmeDirectoryUrl": "https:///directory"},
            "acmeDirectoryUrl",
            "'https:///directory'",
            "an https:// URL",
        ),
        ({**ACME, "acmeRenewDays": "90"}, "acmeRenewDays", "90", "an integer from 16 to 60"),
        ({**ACME, "acmeCaBundle": "not a pem"}, "acmeCaBundle", "'not a pem'", "a PEM block"),
    ],
)
def test_bad_acme_input_is_refused_with_one_line_and_nothing_is_created(
    overrides: dict[str, str], key: str, value: str, allowed: str
) -> None:
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    registered: list[Registration] = []
    with pytest.raises(ConfigError) as raised:
        run_stack("prod", {**config, **overrides}, registered=registered)
    problems = str(raised.value).splitlines()[1:]
    assert len(problems) == 1, str(raised.value)
    assert f"data-platform:{key}: " in problems[0]
    assert value in problems[0] and allowed in problems[0], problems[0]
    assert registered == [], "a bad setting must stop the program before it creates anything"


def test_acme_on_kubernetes_is_refused_with_one_line_pointing_at_cert_manager() -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("k8s", {**K8S_CONFIG, "tlsMode": "acme"})
    (problem,) = str(raised.value).splitlines()[1:]
    assert "data-platform:tlsMode: got 'acme'" in problem and "cert-manager" in problem


def test_the_seed_runs_once_before_nginx_and_the_client_after_it_in_its_pid_namespace() -> None:
    run = acme_run()
    seed, client = _inputs(run, "acme-seed-run"), _inputs(run, "acme")
    assert (seed["attach"], seed["mustRun"], seed["restart"]) == (True, False, "no")
    assert "acme-seed-run" in run.container_dependencies("nginx")
    # nginx, and with it its configuration's one-shots (the component's children)
    assert run.container_dependencies("acme") == {
        "nginx",
        "nginx-config-apply",
        "nginx-config-reload",
    }
    # the mocks give each resource the id "<name>-id": nginx's container, by id
    assert client["pidMode"] == f"container:{run.containers()['nginx'].name}-id"
    assert client["command"] == ["/etc/acme/acme.sh", "loop"] and seed["command"][-1] == "seed"
    assert client["entrypoints"] == ["/bin/sh"]


def test_nginx_reads_the_acme_volumes_read_only_and_the_client_writes_them() -> None:
    run = acme_run()
    mounts = {v["containerPath"]: v for v in _inputs(run, "nginx")["volumes"]}
    certs, webroot = mounts["/etc/ssl/acme"], mounts["/var/www/acme-webroot"]
    assert certs.get("readOnly") is True and webroot.get("readOnly") is True
    client = {v["containerPath"]: v for v in _inputs(run, "acme")["volumes"]}
    assert client["/var/lib/acme"]["volumeName"] == certs["volumeName"]
    assert client["/var/www/acme"]["volumeName"] == webroot["volumeName"]
    assert not any(v.get("readOnly") for v in client.values())
    conf = uploads(run, "nginx")["/etc/nginx/nginx.conf"]
    assert "ssl_certificate /etc/ssl/acme/live/tls.crt;" in conf
    assert "ssl_certificate_key /etc/ssl/acme/live/tls.key;" in conf
    assert "location ^~ /.well-known/acme-challenge/ {" in conf
    # the provided/self-signed pair is not uploaded into nginx in this mode
    assert "/etc/nginx/tls/tls.key" not in uploads(run, "nginx")


def test_the_certificates_volume_is_protected_and_only_the_placeholder_key_is_in_state() -> None:
    run = acme_run()
    volumes = {r.name: r for r in run.of_type("docker:index/volume:Volume")}
    assert volumes["platform-docker-acme-seed-certs"].protect is True
    files = {u["file"]: u for u in _inputs(run, "acme-seed-run")["uploads"]}
    key = files["/run/acme/placeholder.key"]
    assert key["permissions"] == "0400" and key["content"] in run.generated_secrets
    assert key["content"] not in set(plain_strings(run.workloads()["acme-seed-run"].inputs))
    # nothing the ACME client creates (account key, certificate) is an input or an output
    assert "certificates/" not in str(run.outputs)


def test_the_client_trusts_a_test_ca_only_when_given_one() -> None:
    assert "LEGO_CA_CERTIFICATES" not in str(_inputs(acme_run(), "acme").get("envs"))
    pem = PROD_CONFIG["tlsCertificate"]
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    run = run_stack("prod", {**config, **ACME, "acmeCaBundle": pem})
    assert _inputs(run, "acme")["envs"] == ["LEGO_CA_CERTIFICATES=/etc/acme/ca.pem"]
    assert uploads(run, "acme")["/etc/acme/ca.pem"] == pem
    assert "/etc/acme/ca.pem" not in uploads(run, "nginx")


def _renewal_rule(run: StackRun) -> dict[str, Any]:
    files = uploads(run, "prometheus")
    rules = next(content for path, content in files.items() if path.endswith("platform-alerts.yml"))
    for group in yaml.safe_load(rules)["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "AcmeRenewalFailing":
                return dict(rule)
    raise AssertionError("no AcmeRenewalFailing rule")


def test_the_renewal_alert_is_armed_two_days_into_the_renewal_window_only_with_acme() -> None:
    assert _renewal_rule(acme_run())["expr"].endswith(f"< {28 * 86400}")
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    later = run_stack("prod", {**config, **ACME, "acmeRenewDays": "40"})
    assert _renewal_rule(later)["expr"].endswith(f"< {38 * 86400}")
    assert _renewal_rule(run_stack("prod", PROD_CONFIG))["expr"].endswith("< 0")


def test_the_blackbox_probe_verifies_the_acme_certificate() -> None:
    (config,) = uploads(acme_run(), "blackbox").values()
    assert "insecure_skip_verify: false" in config
