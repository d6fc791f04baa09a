"""The k8s stack under Pulumi's mocks, its objects checked offline as strictly as possible.

Built-in objects validate with kubernetes-validate in strict mode (1.29 and 1.33); custom
resources with jsonschema against their CRD's openAPIV3Schema at the pinned operator versions
(tests/data/crds/README.md); pod templates against the restricted Pod Security Standard; the
NetworkPolicies against Docker's network model. Each check is shown to fail on a mutation.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.config import ConfigError, StackConfig, parse_config
from components.kubernetes import operators as ops
from components.kubernetes.objects import NETWORK_LABEL, PART_OF, PART_OF_VALUE
from components.monitoring.alerts import ALERTS, SIDECAR_PHYSICAL_BACKUP_ALERTS
from components.stack import alert_thresholds
from rules import restricted_violations
from tests.stack_harness import (
    K8S_CONFIG,
    StackRun,
    load_cli_config,
    plain_strings,
    run_stack,
    stack_run,
    unwrap,
)

CRDS = Path(__file__).resolve().parent / "data" / "crds"
K8S_SECRETS = K8S_CONFIG
BUILT_IN_GROUPS = ("core/", "apps/", "policy/", "networking.k8s.io/")
WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")


def k8s_run() -> StackRun:
    return stack_run("k8s")


def k8s_config() -> StackConfig:
    """The k8s stack's settings, as the program parses them."""
    raw = load_cli_config("k8s", K8S_SECRETS)
    return parse_config({k.split(":", 1)[1]: v for k, v in raw.items()}, stack="k8s")


def prometheus_rule(run: StackRun) -> dict[str, Any]:
    (rule,) = [o for o in objects(run, False) if o["kind"] == "PrometheusRule"]
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
    (rule,) = run.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert chart.urn in rule.dependencies  # the chart installs the CRDs


def test_no_generated_secret_appears_in_plain_text_in_any_input_or_output() -> None:
    run = k8s_run()
    secrets = [*run.generated_secrets, *K8S_SECRETS.values()]
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
        (
            {"exposeDataPorts": "true"},
            "data-platform:exposeDataPorts: got True; allowed: false on kubernetes",
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
    kept = [a for a in ALERTS if a.name not in SIDECAR_PHYSICAL_BACKUP_ALERTS]
    assert sorted(exprs) == sorted(a.name for a in kept)
    assert exprs == {a.name: a.rendered_expr(alert_thresholds(k8s_config())) for a in kept}
    assert "WalArchivingFailing" in exprs and "ReplicationLagHigh" in exprs


def test_the_replication_thresholds_come_from_the_settings() -> None:
    run = run_stack("k8s", {**K8S_SECRETS, "replicationLagAlertBytes": "1234567"})
    rules = [r for g in prometheus_rule(run)["spec"]["groups"] for r in g["rules"]]
    (lag,) = [r for r in rules if r["alert"] == "ReplicationLagHigh"]
    assert lag["expr"] == "pg_stat_replication_pg_wal_lsn_diff > 1234567"


def test_only_the_sidecars_pgbackrest_alerts_read_its_physical_backup_series() -> None:
    reading = {a.name for a in ALERTS if "runtime_pitr_" in a.expr}
    assert reading == SIDECAR_PHYSICAL_BACKUP_ALERTS


def test_rules_scrapes_and_dashboards_carry_the_labels_the_chart_selects() -> None:
    run = k8s_run()
    (chart,) = run.of_type("kubernetes:helm.sh/v4:Chart")
    inputs = unwrap(chart.inputs)
    assert inputs["version"] == ops.CHART_VERSION and inputs["chart"] == ops.CHART
    values = inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    for obj in objects(run, False):
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule"):
            key = "serviceMonitorSelector" if obj["kind"] == "ServiceMonitor" else "ruleSelector"
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
    assert not any(s in json.dumps(values) for s in [*run.generated_secrets, *K8S_SECRETS.values()])


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
