"""The k8s stack under Pulumi's mocks, its objects checked offline as strictly as possible.

Built-in objects validate with kubernetes-validate in strict mode (1.29 and 1.33); custom
resources with jsonschema against their CRD's openAPIV3Schema at the pinned operator versions
(tests/data/crds/README.md); pod templates against the restricted Pod Security Standard; the
NetworkPolicies against Docker's network model. Each check is shown to fail on a mutation.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.config import SETTINGS_BY_KEY, ConfigError, StackConfig, parse_config
from components.kubernetes import operators as ops
from components.kubernetes.objects import NETWORK_LABEL, PART_OF, PART_OF_VALUE
from components.kubernetes.platform import PULL_SECRET
from components.monitoring.alerts import ALERTS, CNPG_JOB, alerts_for
from components.monitoring.slo import rules_yaml as slo_rules_yaml
from components.runtime_sidecar import source_hash
from components.stack import alert_thresholds, objectives
from rules import restricted_violations
from tests.stack_harness import (
    K8S_CONFIG,
    StackRun,
    load_cli_config,
    plain_strings,
    run_stack,
    stack_run,
    unwrap,
    uploads,
)

CRDS = Path(__file__).resolve().parent / "data" / "crds"
K8S_SECRETS = K8S_CONFIG
# the values of the secret settings among them (the registry's user name is not one)
SECRET_VALUES = [v for k, v in K8S_CONFIG.items() if SETTINGS_BY_KEY[k].secret]
BUILT_IN_GROUPS = ("core/", "apps/", "policy/", "networking.k8s.io/")
WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")


def k8s_run() -> StackRun:
    return stack_run("k8s")


def k8s_config() -> StackConfig:
    """The k8s stack's settings, as the program parses them."""
    raw = load_cli_config("k8s", K8S_SECRETS)
    return parse_config({k.split(":", 1)[1]: v for k, v in raw.items()}, stack="k8s")


def prometheus_rule(run: StackRun, name: str = "platform-alerts") -> dict[str, Any]:
    (rule,) = [
        o
        for o in objects(run, False)
        if o["kind"] == "PrometheusRule" and o["metadata"]["name"] == name
    ]
    return rule


def as_object(reg: Any) -> dict[str, Any]:
    """The Kubernetes object a registration applies: its inputs, secrets unwrapped."""
    _, group_version, kind = reg.type.split(":")
    api_version = group_version.removeprefix("core/")
    obj = {"apiVersion": api_version, "kind": kind, **unwrap(reg.inputs)}
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj


def objects(run: StackRun, built_in: bool) -> list[dict[str, Any]]:
    found = []
    for r in run.registrations:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm.sh"):
            continue
        if r.type.split(":")[1].startswith(BUILT_IN_GROUPS) == built_in:
            found.append(as_object(r))
    return found


def pod_templates(run: StackRun) -> dict[str, dict[str, Any]]:
    return {
        unwrap(r.inputs)["metadata"]["name"]: unwrap(r.inputs)["spec"]["template"]
        for t in WORKLOADS
        for r in run.of_type(t)
    }


# -- the stack runs, with its edges -------------------------------------------------------------


def test_the_k8s_stack_creates_every_expected_object() -> None:
    run = k8s_run()
    names = {
        (r.type.split(":")[-1], unwrap(r.inputs).get("metadata", {}).get("name"))
        for r in run.registrations
        if r.type.startswith("kubernetes:")
    }
    for expected in [
        ("Deployment", "nginx"),
        ("Deployment", "postgres-exporter"),
        ("Deployment", "redis-exporter"),
        ("Deployment", "nginx-exporter"),
        ("Deployment", "blackbox"),
        ("StatefulSet", "redis"),
        ("StatefulSet", "runtime"),
        ("Cluster", "postgres-db"),
        ("ObjectStore", "postgres-backups"),
        ("ScheduledBackup", "postgres-daily"),
        ("PrometheusRule", "platform-alerts"),
        ("PrometheusRule", "platform-slos"),
        ("HTTPRoute", "platform"),
        ("Certificate", "data-platform-tls"),
        ("BackendTLSPolicy", "nginx"),
        ("Service", "postgres"),
        ("NetworkPolicy", "default-deny"),
    ]:
        assert expected in names, expected
    assert len(run.of_type("kubernetes:helm.sh/v4:Chart")) == 1


def test_every_kubernetes_object_uses_the_explicit_provider_and_has_a_parent() -> None:
    run = k8s_run()
    for r in run.registrations:
        if r.type.startswith("kubernetes:") and r.custom:
            assert r.parent in run.by_urn, r.urn
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    assert unwrap(provider.inputs)["enableServerSideApply"] == "true"
    assert unwrap(provider.inputs)["context"] == "production"


def test_the_database_comes_before_what_needs_it() -> None:
    run = k8s_run()
    (cluster,) = run.of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    by_name = {unwrap(r.inputs)["metadata"]["name"]: r for t in WORKLOADS for r in run.of_type(t)}
    for dependent in ("runtime", "postgres-exporter"):
        assert cluster.urn in by_name[dependent].dependencies, dependent
    (store,) = run.of_type("kubernetes:barmancloud.cnpg.io/v1:ObjectStore")
    assert store.urn in cluster.dependencies
    chart = run.of_type("kubernetes:helm.sh/v4:Chart")[0]
    rules = run.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert len(rules) == 2  # the alerts and the SLOs
    for rule in rules:
        assert chart.urn in rule.dependencies  # the chart installs the CRDs


def test_no_generated_secret_appears_in_plain_text_in_any_input_or_output() -> None:
    run = k8s_run()
    secrets = [*run.generated_secrets, *SECRET_VALUES]
    assert secrets
    for r in run.registrations:
        plain = list(plain_strings(r.inputs))
        for s in secrets:
            assert not any(s in text for text in plain), (r.urn, "leaks a secret")
    for r in run.of_type("kubernetes:core/v1:Secret"):
        assert "stringData" in r.inputs and not list(plain_strings(r.inputs["stringData"]))
    assert "app_config" in run.secret_outputs


def test_app_config_has_the_docker_shape_with_in_cluster_names() -> None:
    docker = stack_run("prod").outputs["app_config"]
    k8s = k8s_run().outputs["app_config"]

    def shape(v: Any) -> Any:
        return {k: shape(x) for k, x in v.items()} if isinstance(v, dict) else type(v).__name__

    # no `pitr` section: CloudNativePG, not the runtime sidecar, archives WAL there
    assert "pitr" in docker and "pitr" not in k8s
    assert shape(k8s) == shape({k: v for k, v in docker.items() if k != "pitr"})
    assert k8s["database"]["host"] == "postgres" and k8s["redis"]["host"] == "redis"


def test_postgres_replicas_are_cnpg_standbys_behind_one_read_only_endpoint() -> None:
    app = k8s_run().outputs["app_config"]
    (cluster,) = k8s_run().of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    assert unwrap(cluster.inputs)["spec"]["instances"] == 3  # Pulumi.k8s.yaml: postgresReplicas 2
    (replica,) = app["database"]["replicas"]
    password = app["database"]["password"]
    assert replica == {
        "host": "postgres-db-ro",  # CloudNativePG's read-only Service of the Cluster
        "port": 5432,
        "dsn": f"postgresql://app:{password}@postgres-db-ro:5432/app"
        "?target_session_attrs=read-only",
    }


def test_without_postgres_replicas_one_instance_and_no_read_only_endpoint() -> None:
    run = run_stack("k8s", {**K8S_SECRETS, "postgresReplicas": "0"})
    (cluster,) = run.of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    assert unwrap(cluster.inputs)["spec"]["instances"] == 1
    assert run.outputs["app_config"]["database"]["replicas"] == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"platform": "swarm"},
            "data-platform:platform: got 'swarm'; allowed: one of docker, kubernetes",
        ),
        ({"k8sGatewayName": None}, "data-platform:k8sGatewayName: not set"),
        ({"k8sClusterIssuer": None}, "data-platform:k8sClusterIssuer: not set"),
        ({"k8sBackupDestination": "bucket"}, "data-platform:k8sBackupDestination: got 'bucket'"),
        ({"k8sBackupAccessKeyId": None}, "data-platform:k8sBackupAccessKeyId: not set"),
        ({"k8sNamespace": "Data_Platform"}, "data-platform:k8sNamespace: got 'Data_Platform'"),
        ({"k8sPostgresStorage": "50G"}, "data-platform:k8sPostgresStorage: got '50G'"),
        ({"k8sEdgeReplicas": "0"}, "data-platform:k8sEdgeReplicas: got 0"),
        ({"k8sBackupRetention": "30"}, "data-platform:k8sBackupRetention: got '30'"),
        ({"k8sImageRegistry": None}, "data-platform:k8sImageRegistry: not set"),
        (
            {"k8sImageRegistry": "https://registry.example.com"},
            "data-platform:k8sImageRegistry: got 'https://registry.example.com'; allowed: a "
            "registry host and optional path",
        ),
        ({"k8sTrustedProxyCidrs": None}, "data-platform:k8sTrustedProxyCidrs: not set"),
        (
            {"k8sTrustedProxyCidrs": '["10.244.0.0/33"]'},
            "data-platform:k8sTrustedProxyCidrs: got ['10.244.0.0/33']; allowed: a list of CIDR",
        ),
        (
            {"k8sTrustedProxyCidrs": '["10.244.0.0/16", "0.0.0.0/0"]'},
            "data-platform:k8sTrustedProxyCidrs: got '0.0.0.0/0'; allowed: the Gateway pods'",
        ),
        (
            {"k8sImageRegistryPassword": None},
            "data-platform:k8sImageRegistryUsername/k8sImageRegistryPassword: only one is set",
        ),
        (
            {"exposeDataPorts": "true"},
            "data-platform:exposeDataPorts: got True; allowed: false on kubernetes",
        ),
        (
            {"appMetricsTargets": '["orders:9100"]'},
            "data-platform:appMetricsTargets: got ['orders:9100']; allowed: [] on kubernetes "
            "(add a ServiceMonitor",
        ),
        (
            {
                "tlsMode": "provided",
                "tlsCertificate": "x BEGIN CERTIFICATE",
                "tlsPrivateKey": "PRIVATE KEY",
            },
            "data-platform:tlsMode: got 'provided'",
        ),
    ],
)
def test_every_bad_k8s_setting_is_rejected_with_one_line(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("k8s", {**K8S_SECRETS, **overrides})
    assert message in str(error.value)
    assert "Traceback" not in str(error.value)


# -- the runtime's image: built here, pushed to the stack's registry ---------------------------


def test_the_runtime_image_is_built_here_and_pushed_to_the_stacks_registry() -> None:
    run = k8s_run()
    (image,) = run.of_type("docker:index/image:Image")
    inputs = image.inputs
    name = f"registry.example.com/data-platform/data-platform-runtime:{source_hash()}"
    assert unwrap(inputs)["imageName"] == name
    assert inputs["skipPush"] is False
    assert unwrap(inputs)["build"] == {"context": ".", "dockerfile": "runtime/Dockerfile"}
    registry = inputs["registry"]
    assert unwrap(registry)["server"] == "registry.example.com"
    assert unwrap(registry)["username"] == "deployer"
    # the password reaches the provider as a secret, never as a plain string
    assert K8S_CONFIG["k8sImageRegistryPassword"] not in plain_strings(inputs)
    assert unwrap(registry)["password"] == K8S_CONFIG["k8sImageRegistryPassword"]
    # the PostgreSQL image is built on Docker only: CloudNativePG runs its own
    assert len(run.of_type("docker:index/image:Image")) == 1


def test_the_runtime_pod_runs_the_pushed_digest_with_the_registry_pull_secret() -> None:
    run = k8s_run()
    templates = pod_templates(run)
    runtime = templates["runtime"]["spec"]
    repository = "registry.example.com/data-platform/data-platform-runtime"
    assert re.fullmatch(rf"{re.escape(repository)}@sha256:[0-9a-f]{{64}}", image_of(runtime))
    assert runtime["imagePullSecrets"] == [{"name": PULL_SECRET}]
    # public images are pulled without it
    assert all("imagePullSecrets" not in t["spec"] for n, t in templates.items() if n != "runtime")
    (secret,) = [
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if unwrap(r.inputs)["metadata"]["name"] == PULL_SECRET
    ]
    assert unwrap(secret.inputs)["type"] == "kubernetes.io/dockerconfigjson"
    assert not list(plain_strings(secret.inputs["stringData"]))
    config = json.loads(unwrap(secret.inputs)["stringData"][".dockerconfigjson"])
    auth = config["auths"]["registry.example.com"]
    password = K8S_CONFIG["k8sImageRegistryPassword"]
    assert base64.b64decode(auth["auth"]).decode() == f"deployer:{password}"
    (runtime_workload,) = [
        r for r in run.of_type(WORKLOADS[1]) if unwrap(r.inputs)["metadata"]["name"] == "runtime"
    ]
    assert secret.urn in runtime_workload.dependencies


def image_of(pod_spec: dict[str, Any]) -> str:
    (container,) = pod_spec["containers"]
    return str(container["image"])


def test_without_registry_credentials_the_nodes_own_credentials_pull() -> None:
    no_login = {**K8S_SECRETS, "k8sImageRegistryUsername": None, "k8sImageRegistryPassword": None}
    run = run_stack("k8s", no_login)
    (image,) = run.of_type("docker:index/image:Image")
    assert "registry" not in image.inputs and image.inputs["skipPush"] is False
    runtime = pod_templates(run)["runtime"]["spec"]
    assert "imagePullSecrets" not in runtime
    assert image_of(runtime).startswith("registry.example.com/data-platform/data-platform-runtime@")
    names = {unwrap(r.inputs)["metadata"]["name"] for r in run.of_type("kubernetes:core/v1:Secret")}
    assert PULL_SECRET not in names


# -- strict validation ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.29", "1.33"])
def test_every_built_in_object_validates_strictly(version: str) -> None:
    found = objects(k8s_run(), built_in=True)
    assert len(found) > 30
    for obj in found:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = next(o for o in objects(k8s_run(), True) if o["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


@functools.cache
def crd_schema(group: str, kind: str) -> dict[str, Any]:
    for path in CRDS.glob(f"{group}_*.json"):
        data = json.loads(path.read_text())
        if data["kind"] == kind:
            return data["openAPIV3Schema"]  # type: ignore[no-any-return]
    raise LookupError(f"no CRD schema for {group}/{kind}")


def validate_custom(obj: dict[str, Any]) -> None:
    group = obj["apiVersion"].split("/")[0]
    schema = crd_schema(group, obj["kind"])
    # Draft 7 without a metaschema check: CRD patterns are Go regexps (`(?i)` mid-pattern)
    # that Python cannot compile; none of those fields is set here.
    jsonschema.Draft7Validator(schema).validate(obj)
    # Unknown fields: the API server prunes them silently; refuse them here.
    _no_unknown_fields(obj.get("spec", {}), schema["properties"]["spec"], obj["kind"] + ".spec")


def _no_unknown_fields(value: Any, schema: dict[str, Any], where: str) -> None:
    if isinstance(value, dict) and "properties" in schema:
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            extra = set(value) - set(schema["properties"])
            assert not extra, f"{where}: unknown fields {sorted(extra)}"
        for k, v in value.items():
            if k in schema["properties"]:
                _no_unknown_fields(v, schema["properties"][k], f"{where}.{k}")
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            _no_unknown_fields(v, schema["items"], f"{where}[{i}]")


def test_every_custom_resource_validates_against_its_crd() -> None:
    found = objects(k8s_run(), built_in=False)
    kinds = {o["kind"] for o in found}
    assert kinds == {
        "Cluster",
        "ScheduledBackup",
        "ObjectStore",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "HTTPRoute",
        "BackendTLSPolicy",
        "Certificate",
    }
    for obj in found:
        validate_custom(obj)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Cluster", ("spec", "instances"), 0),
        ("ScheduledBackup", ("spec", "method"), "barmanObjectStore-typo"),
        ("ServiceMonitor", ("spec", "endpoints"), [{"interval": "often"}]),
        ("PodMonitor", ("spec", "podMetricsEndpoints"), [{"interval": "often"}]),
        ("Certificate", ("spec", "issuerRef"), {"kind": "ClusterIssuer"}),
        ("HTTPRoute", ("spec", "bogus"), True),
    ],
)
def test_the_crd_check_fails_on_a_mutated_resource(
    kind: str, path: tuple[str, ...], value: Any
) -> None:
    obj = copy.deepcopy(next(o for o in objects(k8s_run(), False) if o["kind"] == kind))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate_custom(obj)


# -- the restricted Pod Security Standard ---------------------------------------------------


def test_every_pod_template_meets_the_restricted_pod_security_standard() -> None:
    templates = pod_templates(k8s_run())
    assert set(templates) >= {"nginx", "redis", "runtime", "blackbox"}
    for name, template in templates.items():
        assert restricted_violations(template["spec"]) == [], name


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["CHOWN"]),
        lambda s: s["securityContext"].pop("runAsNonRoot"),
        lambda s: s["securityContext"].pop("seccompProfile"),
        lambda s: s.update(hostNetwork=True),
        lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        lambda s: s["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
    ],
)
def test_the_pod_security_check_fails_on_a_mutated_pod(mutate: Any) -> None:
    spec = copy.deepcopy(pod_templates(k8s_run())["nginx"]["spec"])
    mutate(spec)
    assert restricted_violations(spec) != []


# -- NetworkPolicy: Docker's edges, nothing else ------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def allowed(
    policies: list[dict[str, Any]], src: dict[str, str], dst: dict[str, str], port: int
) -> bool:
    """Pod -> pod in the namespace on `port`, by NetworkPolicy semantics (labels only)."""

    def direction(pod: dict[str, str], peer: dict[str, str], kind: str) -> bool:
        applying = [
            p
            for p in policies
            if kind in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod)
        ]
        if not applying:
            return True
        key, peer_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for p in applying:
            for rule in p["spec"].get(key, []):
                ports = [x["port"] for x in rule.get("ports", [])]
                if ports and port not in ports:
                    continue
                for sel in rule.get(peer_key, []):
                    if (
                        "podSelector" in sel
                        and "namespaceSelector" not in sel
                        and _selects(sel["podSelector"], peer)
                    ):
                        return True
                    if "ipBlock" in sel and kind == "Egress":
                        return True
        return False

    return direction(src, dst, "Egress") and direction(dst, src, "Ingress")


def namespace_policies(run: StackRun) -> list[dict[str, Any]]:
    return [o for o in objects(run, True) if o["kind"] == "NetworkPolicy"]


def test_network_policies_allow_exactly_the_docker_edges() -> None:
    run = k8s_run()
    policies = namespace_policies(run)
    pods = {name: t["metadata"]["labels"] for name, t in pod_templates(run).items()}
    outsider = {"app.kubernetes.io/name": "intruder", PART_OF: PART_OF_VALUE}
    backend = NETWORK_LABEL.format("backend")
    for a, la in pods.items():
        for b, lb in pods.items():
            if a != b:
                expected = la.get(backend) == "true" and lb.get(backend) == "true"
                assert allowed(policies, la, lb, 6379) == expected, (a, b)
        assert not allowed(policies, outsider, la, 6379), a
    edge_pods = {n for n, labels in pods.items() if labels.get(NETWORK_LABEL.format("edge"))}
    assert edge_pods == {"nginx", "runtime"}
    (entry,) = [p for p in policies if p["metadata"]["name"] == "entry"]
    assert entry["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "nginx"
    assert [p["port"] for p in entry["spec"]["ingress"][0]["ports"]] == [443]


def test_the_network_check_fails_when_an_edge_is_opened_or_closed() -> None:
    run = k8s_run()
    pods = {name: t["metadata"]["labels"] for name, t in pod_templates(run).items()}
    outsider = {"app.kubernetes.io/name": "intruder", PART_OF: PART_OF_VALUE}
    opened = copy.deepcopy(namespace_policies(run))
    backend = next(p for p in opened if p["metadata"]["name"] == "backend")
    backend["spec"]["podSelector"] = {}
    backend["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    backend["spec"]["egress"][0]["to"].append({"podSelector": {}})
    assert allowed(opened, outsider, pods["redis"], 6379)
    closed = [p for p in namespace_policies(run) if p["metadata"]["name"] != "backend"]
    assert not allowed(closed, pods["runtime"], pods["redis"], 6379)


# -- monitoring: one source of rules, labels the chart selects ----------------------------------


def test_the_prometheus_rule_holds_exactly_the_rules_promtool_tests() -> None:
    rule = prometheus_rule(k8s_run())
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    # the sidecar's pgBackRest alerts stay out: CloudNativePG takes the physical backups
    kept = [a for a in ALERTS if "kubernetes" in a.platforms]
    assert sorted(exprs) == sorted(a.name for a in kept)
    assert exprs == {a.name: a.rendered_expr(alert_thresholds(k8s_config())) for a in kept}
    assert "WalArchivingFailing" in exprs and "ReplicationLagHigh" in exprs
    assert {"BaseBackupMissing", "BaseBackupFailed"} <= set(exprs)
    assert not {"PhysicalBackupMissing", "PhysicalFullBackupMissing"} & set(exprs)


def test_the_docker_rules_have_no_cloudnativepg_alert() -> None:
    docker = {a.name for a in alerts_for("docker")}
    assert "PhysicalBackupFailed" in docker
    assert not {"BaseBackupMissing", "BaseBackupFailed"} & docker
    rules = uploads(stack_run("prod"), "prometheus")
    assert not any("barman_cloud" in text for text in rules.values())


def test_the_base_backup_threshold_follows_the_backup_schedule() -> None:
    # weekly on Sundays: a week between backups, plus the 4 h margin
    run = run_stack("k8s", {**K8S_SECRETS, "backupSchedule": "0 3 * * 0"})
    rules = [r for g in prometheus_rule(run)["spec"]["groups"] for r in g["rules"]]
    (missing,) = [r for r in rules if r["alert"] == "BaseBackupMissing"]
    assert missing["expr"].endswith(f"> {7 * 86400 + 4 * 3600}")
    (default,) = [
        r
        for g in prometheus_rule(k8s_run())["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "BaseBackupMissing"
    ]
    assert default["expr"].endswith(f"> {86400 + 4 * 3600}")  # daily (backupSchedule's default)


def test_a_pod_monitor_scrapes_the_postgres_instances_under_the_alerts_job() -> None:
    run = k8s_run()
    (monitor,) = [o for o in objects(run, False) if o["kind"] == "PodMonitor"]
    (cluster,) = [o for o in objects(run, False) if o["kind"] == "Cluster"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector == {
        "cnpg.io/cluster": cluster["metadata"]["name"],
        "cnpg.io/podRole": "instance",
    }
    assert monitor["spec"]["namespaceSelector"] == {
        "matchNames": [cluster["metadata"]["namespace"]]
    }
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"  # CloudNativePG's instance port 9187
    job = {"action": "replace", "targetLabel": "job", "replacement": CNPG_JOB}
    assert job in endpoint["relabelings"]
    (reg,) = run.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    (chart,) = run.of_type("kubernetes:helm.sh/v4:Chart")
    assert chart.urn in reg.dependencies  # the chart installs the CRD


def test_the_slo_rule_holds_exactly_the_slo_rules_promtool_tests() -> None:
    rule = prometheus_rule(k8s_run(), "platform-slos")
    generated = slo_rules_yaml(objectives(k8s_config()), runbook_url=k8s_config().runbook_url)
    assert rule["spec"]["groups"] == yaml.safe_load(generated)["groups"]


def test_the_replication_thresholds_come_from_the_settings() -> None:
    run = run_stack("k8s", {**K8S_SECRETS, "replicationLagAlertBytes": "1234567"})
    rules = [r for g in prometheus_rule(run)["spec"]["groups"] for r in g["rules"]]
    (lag,) = [r for r in rules if r["alert"] == "ReplicationLagHigh"]
    assert lag["expr"] == "pg_stat_replication_pg_wal_lsn_diff > 1234567"


def test_each_platforms_own_series_are_read_only_by_its_own_alerts() -> None:
    """runtime_pitr_* exist on Docker only (the sidecar's pgBackRest), as do Loki's, Tempo's and
    Alloy's (not deployed on Kubernetes); barman_cloud_* on Kubernetes only (CloudNativePG's
    plugin): an alert reading them is that platform's."""
    for alert in ALERTS:
        if "runtime_pitr_" in alert.expr or alert.group == "logs-traces":
            assert alert.platforms == {"docker"}, alert.name
        if "barman_cloud_" in alert.expr:
            assert alert.platforms == {"kubernetes"}, alert.name
    assert {a.name for a in ALERTS if a.platforms == {"docker"}} == {
        "PhysicalFullBackupMissing",
        "PhysicalBackupMissing",
        "PhysicalBackupFailed",
        "RestoreDrillMissing",
        "RestoreDrillFailed",
        "RestoreDrillRpoHigh",
        "LogsTracesComponentDown",
        "LogIngestionStopped",
        "ErrorLogRateHigh",
        "AcmeRenewalFailing",  # tlsMode acme is Docker's (cert-manager renews on Kubernetes)
    }


def test_rules_scrapes_and_dashboards_carry_the_labels_the_chart_selects() -> None:
    run = k8s_run()
    (chart,) = run.of_type("kubernetes:helm.sh/v4:Chart")
    inputs = unwrap(chart.inputs)
    assert inputs["version"] == ops.CHART_VERSION and inputs["chart"] == ops.CHART
    values = inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    for obj in objects(run, False):
        if obj["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
            key = {
                "ServiceMonitor": "serviceMonitorSelector",
                "PodMonitor": "podMonitorSelector",
                "PrometheusRule": "ruleSelector",
            }[obj["kind"]]
            assert _selects(spec[key], obj["metadata"]["labels"]), obj["metadata"]["name"]
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    boards = [
        o
        for o in objects(run, True)
        if o["kind"] == "ConfigMap" and sidecar["label"] in o["metadata"].get("labels", {})
    ]
    assert boards and all(
        b["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"] for b in boards
    )
    assert values["defaultRules"]["create"] is False
    assert not any(s in json.dumps(values) for s in [*run.generated_secrets, *SECRET_VALUES])


def test_both_platforms_export_the_same_outputs() -> None:
    """__main__.py picks a wing from a table and exports one shape whichever it picks."""
    assert set(k8s_run().outputs) == set(stack_run("dev").outputs)


def test_service_monitors_scrape_the_jobs_and_instances_docker_scrapes() -> None:
    """One list of scrape targets feeds prometheus.yml and the ServiceMonitors, so each
    exporter's and the runtime's job is on both (host metrics stay Docker-only)."""
    files = uploads(stack_run("prod"), "prometheus")
    (text,) = [t for path, t in files.items() if path.endswith("prometheus.yml")]
    docker = set()
    for job in yaml.safe_load(text)["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            docker.add((job["job_name"], target))
    k8s = set()
    for reg in k8s_run().of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor"):
        (endpoint,) = unwrap(reg.inputs)["spec"]["endpoints"]
        labels = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        k8s.add((labels["job"], labels["instance"]))
    assert {job for job, _ in k8s} == {"postgres", "redis", "nginx", "blackbox", "runtime"}
    assert k8s <= docker, k8s - docker


def test_alertmanager_gets_the_same_routes_as_on_docker() -> None:
    from components.render.alertmanager_yml import render_alertmanager_yml

    run = k8s_run()
    secret = next(
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if unwrap(r.inputs)["metadata"]["name"] == "alertmanager-platform"
    )
    config = unwrap(secret.inputs)["stringData"][ops.ALERTMANAGER_CONFIG_KEY]
    assert yaml.safe_load(config) == yaml.safe_load(
        render_alertmanager_yml(K8S_SECRETS["alertWebhookUrl"], None)
    )


def test_the_runtime_pod_runs_as_the_user_its_dockerfile_declares() -> None:
    dockerfile = (Path(__file__).resolve().parent.parent / "runtime" / "Dockerfile").read_text()
    (declared,) = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    pod = pod_templates(k8s_run())["runtime"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(declared) == 999
