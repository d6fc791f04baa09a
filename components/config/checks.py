"""Rules across settings: values that are fine alone but not together, and what a
Kubernetes cluster needs that a Docker host does not."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from components.config.settings import PROJECT, snake
from components.config.validators import public_domain_problem, size_in_bytes
from components.monitoring.slo import availability_probe_interval_limit


def cross_field_problems(v: Mapping[str, Any]) -> list[str]:
    """Problems between settings, `v` keyed by attribute name (each value valid alone)."""
    problems = []
    pooled = v["db_pool_size"] + v["db_max_overflow"]
    if v["postgres_max_connections"] <= pooled:
        problems.append(
            f"{PROJECT}:postgresMaxConnections: got {v['postgres_max_connections']}; allowed: "
            f"more than dbPoolSize + dbMaxOverflow ({pooled}) so admin and exporter "
            "connections still fit"
        )
    limit = v["redis_memory_mb"] * 1024**2
    if size_in_bytes(v["redis_max_memory"]) >= limit:
        problems.append(
            f"{PROJECT}:redisMaxMemory: got {v['redis_max_memory']!r}; allowed: less than the "
            f"container limit redisMemoryMb ({v['redis_memory_mb']} MB), leaving room for "
            "Redis's own overhead (about 75% of it is a good value)"
        )
    if v["tls_mode"] == "provided" and not (v["tls_certificate"] and v["tls_private_key"]):
        problems.append(
            f"{PROJECT}:tlsCertificate/tlsPrivateKey: not set; allowed: with tlsMode "
            "'provided' both are required (pulumi config set tlsCertificate < cert.pem; "
            "pulumi config set --secret tlsPrivateKey < key.pem)"
        )
    if v["tls_mode"] == "acme" and v["platform"] != "kubernetes":  # kubernetes: one line below
        problems.extend(acme_problems(v))
    if v["pitr_repo_type"] == "s3":
        missing = [
            key
            for key in ("pitrS3Bucket", "pitrS3Region", "pitrS3AccessKey", "pitrS3SecretKey")
            if not v[snake(key)]
        ]
        if missing:
            problems.append(
                f"{PROJECT}:{'/'.join(missing)}: not set; allowed: with pitrRepoType 's3' "
                "the bucket, region and credentials are required (pulumi config set "
                "pitrS3Bucket NAME; pulumi config set pitrS3Region REGION; pulumi config set "
                "--secret pitrS3AccessKey ...; pulumi config set --secret pitrS3SecretKey ...)"
            )
    most = availability_probe_interval_limit(v["slo_availability"])
    if v["scrape_interval_seconds"] > most:
        problems.append(
            f"{PROJECT}:scrapeIntervalSeconds: got {v['scrape_interval_seconds']}; allowed: at "
            f"most {most} with sloAvailability {v['slo_availability']!r}, or one failed probe "
            "of the public endpoint pages (docs/slo.md)"
        )
    if v["nginx_http_port"] == v["nginx_https_port"]:
        problems.append(
            f"{PROJECT}:nginxHttpsPort: got {v['nginx_https_port']}; allowed: a port "
            "different from nginxHttpPort"
        )
    if bool(v["migration_image"]) != bool(v["migration_command"]):
        problems.append(
            f"{PROJECT}:migrationImage/migrationCommand: got {v['migration_image']!r} and "
            f"{list(v['migration_command'])!r}; allowed: both set (the migration step) or "
            "both empty (none)"
        )
    if v["pitr_drill_memory_mb"] > v["runtime_memory_mb"] // 2:
        problems.append(
            f"{PROJECT}:pitrDrillMemoryMb: got {v['pitr_drill_memory_mb']}; allowed: at most "
            f"half of runtimeMemoryMb ({v['runtime_memory_mb']} MB): the drill's copy runs "
            "inside the runtime sidecar's container, next to the runtime itself"
        )
    if v["platform"] == "kubernetes":
        problems.extend(kubernetes_problems(v))
    return problems


def acme_problems(v: Mapping[str, Any]) -> list[str]:
    """What an ACME CA needs: a contact for the account, and a public name it can validate."""
    problems = []
    if not v["acme_email"]:
        problems.append(
            f"{PROJECT}:acmeEmail: not set; allowed: with tlsMode 'acme' a contact e-mail for "
            "the ACME account (pulumi config set acmeEmail ops@example.com)"
        )
    not_public = public_domain_problem(v["domain"])
    if not_public:
        problems.append(
            f"{PROJECT}:domain: got {v['domain']!r} ({not_public}); allowed: with tlsMode "
            "'acme' a public DNS name whose port 80 reaches this host, like "
            "'platform.example.com'"
        )
    return problems


def kubernetes_problems(v: Mapping[str, Any]) -> list[str]:
    """What a cluster needs that a Docker host does not, and Docker-only choices it refuses."""
    problems = [
        f"{PROJECT}:{key}: not set; allowed: {what} (required when platform is 'kubernetes')"
        for key, what in (
            ("k8sGatewayName", "the name of an existing Gateway"),
            ("k8sClusterIssuer", "the name of a cert-manager ClusterIssuer"),
            ("k8sBackupDestination", "an s3://bucket/path URL"),
            ("k8sBackupAccessKeyId", "an access key id (pulumi config set --secret ...)"),
            ("k8sBackupSecretAccessKey", "a secret access key (pulumi config set --secret ...)"),
            ("k8sImageRegistry", "a registry the cluster pulls from, like 'ghcr.io/example'"),
            ("k8sTrustedProxyCidrs", "the Gateway pods' CIDR blocks, like ['10.244.0.0/16']"),
        )
        if not v[snake(key)]
    ]
    everyone = [c for c in v["k8s_trusted_proxy_cidrs"] if ipaddress.ip_network(c).prefixlen == 0]
    if everyone:
        problems.append(
            f"{PROJECT}:k8sTrustedProxyCidrs: got {everyone[0]!r}; allowed: the Gateway pods' "
            "networks, not every address (any client could then set its own address)"
        )
    if bool(v["k8s_image_registry_username"]) != bool(v["k8s_image_registry_password"]):
        problems.append(
            f"{PROJECT}:k8sImageRegistryUsername/k8sImageRegistryPassword: only one is set; "
            "allowed: both (pulumi config set k8sImageRegistryUsername USER; pulumi config set "
            "--secret k8sImageRegistryPassword ...) or neither (docker login and the nodes' "
            "credentials)"
        )
    if v["expose_data_ports"]:
        problems.append(
            f"{PROJECT}:exposeDataPorts: got True; allowed: false on kubernetes (reach the "
            "data services with kubectl port-forward)"
        )
    if v["pitr_drill_tables"]:
        problems.append(
            f"{PROJECT}:pitrDrillTables: got {list(v['pitr_drill_tables'])!r}; allowed: [] on "
            "kubernetes (restore drills are Docker-only, docs/runtime-pitr-drill.md)"
        )
    if v["app_metrics_targets"]:
        problems.append(
            f"{PROJECT}:appMetricsTargets: got {list(v['app_metrics_targets'])!r}; allowed: [] "
            "on kubernetes (add a ServiceMonitor labelled platform.monitoring: <stack> with job "
            "'app', docs/kubernetes.md)"
        )
    if v["tls_mode"] != "self-signed":
        problems.append(
            f"{PROJECT}:tlsMode: got {v['tls_mode']!r}; allowed: 'self-signed' on kubernetes "
            "(the public certificate, ACME included, comes from cert-manager: k8sClusterIssuer)"
        )
    return problems
