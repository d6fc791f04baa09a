"""Custom resources for the operators the cluster platform relies on: pure functions -> dicts.

CloudNativePG runs PostgreSQL (failover, backups, WAL archiving through the Barman Cloud
plugin), kube-prometheus-stack runs Prometheus, Alertmanager and Grafana, cert-manager signs
the public certificate and a Gateway API implementation routes HTTPS. Versions these objects
are validated against (tests/data/crds/README.md) are the pins below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from components.kubernetes.objects import NETWORK_LABEL, PART_OF, PART_OF_VALUE, Obj, labels

CHART = "kube-prometheus-stack"
CHART_VERSION = "88.3.0"  # prometheus-operator v0.93.0
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
CNPG_VERSION = "1.30.0"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"  # plugin-barman-cloud v0.14.0
CNPG_NAMESPACE = "cnpg-system"  # where CloudNativePG's manifest installs the operator
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:15.13"
# The label the chart's Prometheus selects rules, ServiceMonitors and PodMonitors by (set
# explicitly in the values below instead of the chart's default `release: <name>`).
MONITORING_LABEL = "platform.monitoring"
DASHBOARD_LABEL = "grafana_dashboard"  # the Grafana sidecar's default label
ALERTMANAGER_CONFIG_KEY = "alertmanager.yaml"  # the key prometheus-operator reads
S3_KEY_ID = "ACCESS_KEY_ID"
S3_SECRET_KEY = "ACCESS_SECRET_KEY"  # noqa: S105 - a key name, not a secret


def _meta(name: str, namespace: str, extra: Mapping[str, str] | None = None) -> Obj:
    return {"name": name, "namespace": namespace, "labels": {**labels(name), **(extra or {})}}


# -- PostgreSQL: CloudNativePG ----------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSettings:
    name: str  # the Cluster's name; its pods carry cnpg.io/cluster=<name>
    namespace: str
    database: str
    owner: str
    credentials_secret: str  # kubernetes.io/basic-auth with the generated password
    instances: int
    storage_size: str
    storage_class: str
    memory_mb: int
    max_connections: int
    object_store: str


def cnpg_cluster(s: DatabaseSettings) -> Obj:
    """The PostgreSQL cluster: 1 + replicas instances, WAL archived by the Barman plugin."""
    storage: Obj = {"size": s.storage_size}
    if s.storage_class:
        storage["storageClass"] = s.storage_class
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {
            **_meta(s.name, s.namespace),
            # Pulumi waits until the operator reports the cluster ready, as Docker's `wait`.
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": {
            "instances": s.instances,
            "imageName": POSTGRES_IMAGE,
            "primaryUpdateStrategy": "unsupervised",
            "postgresql": {
                "parameters": {
                    "max_connections": str(s.max_connections),
                    "shared_buffers": f"{max(s.memory_mb // 4, 16)}MB",
                    "log_min_duration_statement": "1000",
                }
            },
            "bootstrap": {
                "initdb": {
                    "database": s.database,
                    "owner": s.owner,
                    "secret": {"name": s.credentials_secret},
                }
            },
            "storage": storage,
            "resources": {
                "requests": {"cpu": "100m", "memory": f"{s.memory_mb}Mi"},
                "limits": {"memory": f"{s.memory_mb}Mi"},
            },
            "plugins": [
                {
                    "name": BARMAN_PLUGIN,
                    "isWALArchiver": True,
                    "parameters": {"barmanObjectName": s.object_store},
                }
            ],
            # Same network labels as the services: replication among instances (backend),
            # S3 and the API server (edge), and the platform's default deny.
            "inheritedMetadata": {
                "labels": {
                    PART_OF: PART_OF_VALUE,
                    NETWORK_LABEL.format("backend"): "true",
                    NETWORK_LABEL.format("edge"): "true",
                }
            },
        },
    }


def primary_service(s: DatabaseSettings, service_name: str, port: int) -> Obj:
    """A Service named like the Docker alias (`postgres`) that follows the primary."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(service_name, s.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": {"cnpg.io/cluster": s.name, "cnpg.io/instanceRole": "primary"},
            "ports": [{"name": "postgres", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def object_store(
    name: str, namespace: str, destination: str, endpoint: str, credentials: str, retention: str
) -> Obj:
    """Where base backups and WAL go (the Barman Cloud plugin's ObjectStore)."""
    configuration: Obj = {
        "destinationPath": destination,
        "s3Credentials": {
            "accessKeyId": {"name": credentials, "key": S3_KEY_ID},
            "secretAccessKey": {"name": credentials, "key": S3_SECRET_KEY},
        },
        "wal": {"compression": "gzip"},
        "data": {"compression": "gzip"},
    }
    if endpoint:
        configuration["endpointURL"] = endpoint
    return {
        "apiVersion": "barmancloud.cnpg.io/v1",
        "kind": "ObjectStore",
        "metadata": _meta(name, namespace),
        "spec": {"retentionPolicy": retention, "configuration": configuration},
    }


def scheduled_backup(name: str, namespace: str, cluster: str, cron: str) -> Obj:
    """Base backups on the stack's backup schedule (CloudNativePG's cron has seconds first)."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": _meta(name, namespace),
        "spec": {
            "schedule": f"0 {cron}",
            "cluster": {"name": cluster},
            "method": "plugin",
            "pluginConfiguration": {"name": BARMAN_PLUGIN},
            "backupOwnerReference": "self",
            "immediate": True,
        },
    }


def cnpg_operator_policy(namespace: str, cluster: str) -> Obj:
    """The operator (status on 8000, the database on 5432) reaches the instances."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "cnpg-operator",
            "namespace": namespace,
            "labels": {PART_OF: PART_OF_VALUE},
        },
        "spec": {
            "podSelector": {"matchLabels": {"cnpg.io/cluster": cluster}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": CNPG_NAMESPACE}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": p} for p in (8000, 5432)],
                }
            ],
        },
    }


# -- monitoring: kube-prometheus-stack ----------------------------------------------------------


def monitoring_labels(stack: str) -> dict[str, str]:
    return {MONITORING_LABEL: stack}


@dataclass(frozen=True)
class Scrape:
    """One Prometheus job: a Service's port, keeping the Docker stack's job and instance."""

    job: str
    service: str
    port: int
    path: str = "/metrics"
    params: Mapping[str, Sequence[str]] | None = None
    instance: str | None = None  # default service:port, the Docker address


def service_monitor(namespace: str, stack: str, scrape: Scrape, interval_seconds: int) -> Obj:
    endpoint: Obj = {
        "port": f"tcp-{scrape.port}",
        "path": scrape.path,
        "interval": f"{interval_seconds}s",
        # The alert rules and their promtool tests use the Docker stack's job and instance.
        "relabelings": [
            {"action": "replace", "targetLabel": "job", "replacement": scrape.job},
            {
                "action": "replace",
                "targetLabel": "instance",
                "replacement": scrape.instance or f"{scrape.service}:{scrape.port}",
            },
        ],
    }
    if scrape.params:
        endpoint["params"] = {k: list(v) for k, v in scrape.params.items()}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(scrape.job, namespace, monitoring_labels(stack)),
        "spec": {
            "selector": {"matchLabels": labels(scrape.service)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [endpoint],
        },
    }


def cnpg_pod_monitor(
    namespace: str, stack: str, cluster: str, job: str, interval_seconds: int
) -> Obj:
    """The CloudNativePG instances' metrics port (9187, named `metrics`), where the Barman
    Cloud plugin's backup series are exported; job `job`, instance the pod's name."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _meta(job, namespace, monitoring_labels(stack)),
        "spec": {
            # instance pods only, not the operator's job pods of the same Cluster
            "selector": {
                "matchLabels": {"cnpg.io/cluster": cluster, "cnpg.io/podRole": "instance"}
            },
            "namespaceSelector": {"matchNames": [namespace]},
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "interval": f"{interval_seconds}s",
                    "relabelings": [
                        {"action": "replace", "targetLabel": "job", "replacement": job},
                        {
                            "action": "replace",
                            "sourceLabels": ["__meta_kubernetes_pod_name"],
                            "targetLabel": "instance",
                        },
                    ],
                }
            ],
        },
    }


def prometheus_rule(
    namespace: str, stack: str, rules_yaml: str, name: str = "platform-alerts"
) -> Obj:
    """Rules from the same YAML promtool tests (components/monitoring/alerts.py, slo.py)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(name, namespace, monitoring_labels(stack)),
        "spec": {"groups": yaml.safe_load(rules_yaml)["groups"]},
    }


def dashboard_config_map(namespace: str, file_name: str, text: str) -> Obj:
    """One dashboard for the Grafana sidecar, which loads ConfigMaps with its label."""
    name = "dashboard-" + file_name.removesuffix(".json").replace("_", "-").lower()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, {DASHBOARD_LABEL: "1"}),
        "data": {file_name: text},
    }


def _network(*networks: str) -> dict[str, str]:
    return {
        PART_OF: PART_OF_VALUE,
        **{NETWORK_LABEL.format(n): "true" for n in networks},
    }


def chart_values(
    stack: str,
    retention: str,
    scrape_interval_seconds: int,
    external_url: str,
    alertmanager_secret: str,
    grafana_secret: str,
    grafana_root_url: str,
    memory_mb: Mapping[str, int],
) -> dict[str, Any]:
    """kube-prometheus-stack's values: our selectors, our rules only, secrets by reference.

    Secrets never pass through the values (they are plain in the Helm release): Alertmanager's
    configuration and Grafana's admin login come from Secrets this stack creates.
    """
    selector = {"matchLabels": monitoring_labels(stack)}

    def limits(key: str) -> dict[str, Any]:
        size = f"{memory_mb[key]}Mi"
        return {"requests": {"cpu": "100m", "memory": size}, "limits": {"memory": size}}

    return {
        "crds": {"enabled": True},
        # One source of alert rules (the PrometheusRule below), tested by promtool.
        "defaultRules": {"create": False},
        "prometheus": {
            "prometheusSpec": {
                "retention": retention,
                "scrapeInterval": f"{scrape_interval_seconds}s",
                "evaluationInterval": f"{scrape_interval_seconds}s",
                "externalLabels": {"stack": stack},
                "externalUrl": f"{external_url}/prometheus/",
                "ruleSelector": selector,
                "serviceMonitorSelector": selector,
                "podMonitorSelector": selector,
                "podMetadata": {"labels": _network("backend")},
                "resources": limits("prometheus"),
            }
        },
        "alertmanager": {
            "alertmanagerSpec": {
                "useExistingSecret": True,
                "configSecret": alertmanager_secret,
                "externalUrl": f"{external_url}/alertmanager/",
                "podMetadata": {"labels": _network("backend", "edge")},
                "resources": limits("alertmanager"),
            }
        },
        "grafana": {
            "admin": {
                "existingSecret": grafana_secret,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "grafana.ini": {
                "server": {"root_url": grafana_root_url},
                "analytics": {"reporting_enabled": False, "check_for_updates": False},
                "users": {"allow_sign_up": False},
            },
            "sidecar": {
                "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1"}
            },
            "podLabels": _network("backend", "edge"),
            "resources": limits("grafana"),
        },
    }


# -- the edge: cert-manager and the Gateway API -------------------------------------------------


def certificate(namespace: str, domain: str, issuer: str, secret_name: str) -> Obj:
    """The public certificate, in the Gateway's namespace where its listener reads it."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _meta(secret_name, namespace),
        "spec": {
            "secretName": secret_name,
            "dnsNames": [domain],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


def http_route(
    namespace: str, gateway: str, gateway_namespace: str, domain: str, service: str, port: int
) -> Obj:
    """Every request for the domain to nginx, which keeps HSTS, headers and the rate limit."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta("platform", namespace),
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": gateway,
                    "namespace": gateway_namespace,
                }
            ],
            "hostnames": [domain],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": service, "port": port}],
                }
            ],
        },
    }


def backend_tls_policy(
    namespace: str, service: str, ca_config_map: str, hostname: str, port: int
) -> Obj:
    """The Gateway speaks TLS to nginx (port 443), trusting nginx's own certificate."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy",
        "metadata": _meta(service, namespace),
        "spec": {
            "targetRefs": [
                {"group": "", "kind": "Service", "name": service, "sectionName": f"tcp-{port}"}
            ],
            "validation": {
                "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": ca_config_map}],
                "hostname": hostname,
            },
        },
    }
