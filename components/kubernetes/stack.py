"""The platform on a Kubernetes cluster: the same services, operators where HA is needed.

What runs from the service modules' specs (through `KubernetesPlatform`): Redis, nginx, the
runtime sidecar and the exporters. What operators run instead: PostgreSQL (CloudNativePG),
Prometheus, Alertmanager and Grafana (kube-prometheus-stack), with the same rendered
configuration (alert rules, Alertmanager routes, dashboards). The applications' `app_config`
has the Docker stack's shape with in-cluster names (docs/kubernetes.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.app_config import app_config
from components.config import StackConfig
from components.exporters import (
    Exporter,
    blackbox_spec,
    nginx_exporter_spec,
    postgres_exporter_spec,
    redis_exporter_spec,
)
from components.kubernetes import operators as ops
from components.kubernetes.objects import ClusterSettings
from components.kubernetes.platform import ImageRegistry, KubernetesPlatform, secret_data
from components.monitoring.alerts import CNPG_JOB, alerts_for, rules_yaml
from components.monitoring.dashboards import dashboard_files
from components.monitoring.slo import rules_yaml as slo_rules_yaml
from components.nginx import Nginx, NginxArgs
from components.passwords import generated_key, generated_password
from components.postgres import PORT as POSTGRES_PORT
from components.redis import Redis, RedisArgs
from components.render.alertmanager_yml import render_alertmanager_yml
from components.render.blackbox_yml import HTTPS_MODULE
from components.render.nginx_conf import STUB_STATUS_PORT, NginxSettings
from components.runtime_sidecar import PORT as RUNTIME_PORT
from components.runtime_sidecar import RuntimeSidecar, RuntimeSidecarArgs
from components.stack import alert_thresholds, objectives
from components.tls import TlsCertificate

DNS_RESOLVER = "kube-dns.kube-system.svc.cluster.local"
# Image facts the specs do not carry: the uid each image runs as (root images get one), and
# the directories it writes besides /tmp (the root filesystem is read-only).
# The runtime image is `postgres` (999) for Docker's physical backups (runtime/Dockerfile).
USERS = {"redis": 999, "nginx": 101, "runtime": 999}
SCRATCH_DIRS = {"nginx": ("/var/cache/nginx", "/var/run")}


@dataclass(frozen=True)
class ReadOnlyEndpoint:
    """CloudNativePG's `<cluster>-ro` Service: every standby, balanced (app_config's
    `database.replicas` has this one entry however many standbys there are)."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    dsn: pulumi.Output[str]


class CloudNativePostgres(pulumi.ComponentResource):
    """PostgreSQL by CloudNativePG, with the Docker `Postgres` component's outputs."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    password: pulumi.Output[str]
    dsn: pulumi.Output[str]
    replicas: list[ReadOnlyEndpoint]
    cluster_name: str

    def __init__(
        self,
        name: str,
        c: StackConfig,
        platform: KubernetesPlatform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:kubernetes:CloudNativePostgres", name, None, opts)
        ns = c.k8s_namespace
        self.password = generated_password(f"{name}-password", self)
        self.cluster_name = "postgres-db"
        settings = ops.DatabaseSettings(
            name=self.cluster_name,
            namespace=ns,
            database=c.db_name,
            owner=c.db_user,
            credentials_secret="postgres-app",  # noqa: S106 - a Secret's name
            instances=1 + c.postgres_replicas,
            storage_size=c.k8s_postgres_storage,
            storage_class=c.k8s_storage_class,
            memory_mb=c.postgres_memory_mb,
            max_connections=c.postgres_max_connections,
            object_store="postgres-backups",
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": settings.credentials_secret, "namespace": ns},
            type="kubernetes.io/basic-auth",
            string_data=secret_data(
                self.password.apply(lambda pw: {"username": c.db_user, "password": pw})
            ),
            opts=platform.child(self),
        )
        s3 = k8s.core.v1.Secret(
            f"{name}-s3",
            metadata={"name": "postgres-backup-s3", "namespace": ns},
            type="Opaque",
            string_data=secret_data(
                pulumi.Output.all(c.k8s_backup_access_key_id, c.k8s_backup_secret_access_key).apply(
                    lambda keys: {ops.S3_KEY_ID: keys[0], ops.S3_SECRET_KEY: keys[1]}
                )
            ),
            opts=platform.child(self),
        )
        store_obj = ops.object_store(
            settings.object_store,
            ns,
            c.k8s_backup_destination,
            c.k8s_backup_endpoint_url,
            "postgres-backup-s3",
            c.k8s_backup_retention,
        )
        store = _custom(f"{name}-object-store", store_obj, platform.child(self, [s3]))
        cluster = _custom(
            f"{name}-cluster",
            ops.cnpg_cluster(settings),
            platform.child(self, [credentials, store]),
        )
        _custom(
            f"{name}-scheduled-backup",
            ops.scheduled_backup("postgres-daily", ns, settings.name, c.backup_schedule),
            platform.child(self, [cluster]),
        )
        primary = ops.primary_service(settings, "postgres", POSTGRES_PORT)
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=primary["metadata"],
            spec=primary["spec"],
            opts=platform.child(self),
        )
        policy = ops.cnpg_operator_policy(ns, settings.name)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-operator-access",
            metadata=policy["metadata"],
            spec=policy["spec"],
            opts=platform.child(self),
        )
        self.host = pulumi.Output.from_input("postgres")
        self.port = pulumi.Output.from_input(POSTGRES_PORT)
        self.dsn = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@postgres:{2}/{3}",
                c.db_user,
                self.password,
                POSTGRES_PORT,
                c.db_name,
            )
        )
        self.replicas = []
        if c.postgres_replicas > 0:
            read_only = f"{settings.name}-ro"  # created by the operator with the Cluster
            self.replicas.append(
                ReadOnlyEndpoint(
                    host=pulumi.Output.from_input(read_only),
                    port=pulumi.Output.from_input(POSTGRES_PORT),
                    dsn=pulumi.Output.secret(
                        pulumi.Output.format(
                            "postgresql://{0}:{1}@{2}:{3}/{4}?target_session_attrs=read-only",
                            c.db_user,
                            self.password,
                            read_only,
                            POSTGRES_PORT,
                            c.db_name,
                        )
                    ),
                )
            )
        self.register_outputs({"host": self.host, "port": self.port, "dsn": self.dsn})


def _custom(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj["spec"],
        opts=opts,
    )


class KubePrometheusStack(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana by the chart; rules, scrapes and dashboards ours."""

    chart: k8s.helm.v4.Chart

    def __init__(
        self,
        name: str,
        c: StackConfig,
        public: str,
        platform: KubernetesPlatform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:kubernetes:KubePrometheusStack", name, None, opts)
        ns = c.k8s_namespace
        admin_password = generated_password(f"{name}-grafana-admin-password", self)
        grafana = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": "grafana-admin", "namespace": ns},
            type="Opaque",
            string_data=secret_data(
                admin_password.apply(
                    lambda pw: {"admin-user": c.grafana_admin_user, "admin-password": pw}
                )
            ),
            opts=platform.child(self),
        )
        urls = pulumi.Output.all(c.alert_webhook_url, c.watchdog_webhook_url)
        alertmanager = k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata={"name": "alertmanager-platform", "namespace": ns},
            type="Opaque",
            string_data=secret_data(
                urls.apply(
                    lambda u: {ops.ALERTMANAGER_CONFIG_KEY: render_alertmanager_yml(u[0], u[1])}
                )
            ),
            opts=platform.child(self),
        )
        self.values = ops.chart_values(
            stack=c.stack,
            retention=c.prometheus_retention,
            scrape_interval_seconds=c.scrape_interval_seconds,
            external_url=public,
            alertmanager_secret="alertmanager-platform",  # noqa: S106 - a name
            grafana_secret="grafana-admin",  # noqa: S106 - a Secret's name
            grafana_root_url=f"{public}/grafana/",
            memory_mb={
                "prometheus": c.prometheus_memory_mb,
                "alertmanager": c.alertmanager_memory_mb,
                "grafana": c.grafana_memory_mb,
            },
        )
        self.chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            chart=ops.CHART,
            version=ops.CHART_VERSION,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=ops.CHART_REPO),
            namespace=ns,
            values=self.values,
            opts=platform.child(self, [grafana, alertmanager]),
        )
        after_chart = platform.child(self, [self.chart])  # the chart installs the CRDs
        _custom(
            f"{name}-rules",
            ops.prometheus_rule(ns, c.stack, kubernetes_rules(c)),
            after_chart,
        )
        slo_rules = slo_rules_yaml(objectives(c), runbook_url=c.runbook_url)
        _custom(
            f"{name}-slo-rules",
            ops.prometheus_rule(ns, c.stack, slo_rules, name="platform-slos"),
            after_chart,
        )
        for file_name, text in sorted(dashboard_files().items()):
            board = ops.dashboard_config_map(ns, file_name, text)
            k8s.core.v1.ConfigMap(
                f"{name}-{board['metadata']['name']}",
                metadata=board["metadata"],
                data=board["data"],
                opts=platform.child(self),
            )
        self.register_outputs({"chart_version": ops.CHART_VERSION})


def kubernetes_rules(c: StackConfig) -> str:
    """The alert rules and thresholds of the Docker stack, with CloudNativePG's base backups
    in place of the sidecar's pgBackRest ones (`Alert.platforms`)."""
    return rules_yaml(
        alerts_for("kubernetes"), runbook_url=c.runbook_url, thresholds=alert_thresholds(c)
    )


def scrapes() -> list[ops.Scrape]:
    """The Docker stack's scrape jobs (prometheus.yml) as ServiceMonitors."""
    return [
        ops.Scrape("postgres", "postgres-exporter", 9187),
        ops.Scrape("redis", "redis-exporter", 9121),
        ops.Scrape("nginx", "nginx-exporter", 9113),
        ops.Scrape("runtime", "runtime", RUNTIME_PORT),
        ops.Scrape(
            "blackbox",
            "blackbox",
            9115,
            path="/probe",
            params={"module": [HTTPS_MODULE], "target": ["https://nginx/"]},
            instance="https://nginx/",
        ),
    ]


class KubernetesDataPlatform(pulumi.ComponentResource):
    """The Kubernetes counterpart of `components.stack.DataPlatform` (same outputs)."""

    app_config: pulumi.Output[dict[str, Any]]
    endpoints: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("infra:kubernetes:KubernetesDataPlatform", name, None, opts)
        c = config
        child = pulumi.ResourceOptions(parent=self)
        ns = c.k8s_namespace
        gateway_ns = c.k8s_gateway_namespace or ns
        platform = KubernetesPlatform(
            f"{name}-k8s",
            ClusterSettings(
                namespace=ns,
                storage_class=c.k8s_storage_class,
                volume_size=c.k8s_volume_storage,
                health_interval_seconds=c.health_check_interval,
                startup_timeout_seconds=c.health_check_timeout,
                replicas={"nginx": c.k8s_edge_replicas},
                users=USERS,
                scratch_dirs=SCRATCH_DIRS,
                extra_ports={"nginx": (STUB_STATUS_PORT,)},
            ),
            context=c.k8s_context,
            gateway_namespace=gateway_ns,
            entry="nginx",
            entry_ports=(443,),
            registry=ImageRegistry(
                c.k8s_image_registry,
                c.k8s_image_registry_username,
                c.k8s_image_registry_password,
            ),
            opts=child,
        )
        public = f"https://{c.domain}"
        postgres = CloudNativePostgres(f"{name}-postgres", c, platform, opts=child)
        redis = Redis(
            f"{name}-redis",
            RedisArgs(
                image=c.redis_image,
                maxmemory=c.redis_max_memory,
                eviction_policy=c.redis_eviction_policy,
                memory_mb=c.redis_memory_mb,
            ),
            platform,
            opts=child,
        )
        monitoring = KubePrometheusStack(f"{name}-monitoring", c, public, platform, opts=child)
        for scrape in scrapes():
            _custom(
                f"{name}-scrape-{scrape.job}",
                ops.service_monitor(ns, c.stack, scrape, c.scrape_interval_seconds),
                platform.child(monitoring, [monitoring.chart]),
            )
        _custom(
            f"{name}-scrape-{CNPG_JOB}",
            ops.cnpg_pod_monitor(
                ns, c.stack, postgres.cluster_name, CNPG_JOB, c.scrape_interval_seconds
            ),
            platform.child(monitoring, [monitoring.chart]),
        )
        # nginx's certificate towards the Gateway (BackendTLSPolicy trusts it).
        tls = TlsCertificate(f"{name}-tls", domain=c.domain, opts=child)
        svc = f"{ns}.svc.cluster.local"  # nginx's resolver does not use search domains
        nginx = Nginx(
            f"{name}-nginx",
            NginxArgs(
                image=c.nginx_image,
                memory_mb=c.nginx_memory_mb,
                settings=NginxSettings(
                    server_name=c.domain,
                    https_port=443,
                    worker_processes=c.nginx_worker_processes,
                    rate_limit_rps=c.rate_limit_rps,
                    rate_limit_burst=c.rate_limit_burst,
                    backend_upstream=c.backend_upstream,
                    frontend_upstream=c.frontend_upstream,
                    grafana_upstream=f"kube-prometheus-stack-grafana.{svc}:80",
                    prometheus_upstream=f"kube-prometheus-stack-prometheus.{svc}:9090",
                    alertmanager_upstream=f"kube-prometheus-stack-alertmanager.{svc}:9093",
                    admin_allow_cidrs=c.admin_allow_cidrs,
                    resolver=DNS_RESOLVER,
                    real_ip_from=c.k8s_trusted_proxy_cidrs,
                ),
                http_port=80,
                https_port=443,
                certificate_pem=tls.certificate_pem,
                private_key_pem=tls.private_key_pem,
                depends_on=[monitoring.chart],
            ),
            platform,
            opts=child,
        )
        self._edge(name, c, gateway_ns, tls, nginx, platform)
        specs = [
            postgres_exporter_spec(
                c.postgres_exporter_image, c.db_name, c.db_user, postgres.password, postgres
            ),
            redis_exporter_spec(c.redis_exporter_image, redis.password, redis),
            nginx_exporter_spec(c.nginx_exporter_image, f"nginx:{STUB_STATUS_PORT}", nginx),
            blackbox_spec(c.blackbox_image, c.domain, False, nginx),
        ]
        for spec in specs:
            Exporter(f"{name}-{spec.name}", spec, platform, opts=child)
        self.endpoints = {
            "public_url": nginx.public_url,
            "grafana_url": pulumi.Output.from_input(f"{public}/grafana/"),
            "prometheus_url": pulumi.Output.from_input(
                f"http://kube-prometheus-stack-prometheus.{ns}:9090"
            ),
            "alertmanager_url": pulumi.Output.from_input(
                f"http://kube-prometheus-stack-alertmanager.{ns}:9093"
            ),
        }
        # The Docker stack's shape; no `pitr` section: CloudNativePG archives WAL and takes the
        # physical backups, so the runtime sidecar only keeps its logical ones here.
        self.app_config = app_config(
            c,
            postgres,
            postgres.replicas,
            redis,
            self.endpoints,
            backup_key=generated_key(f"{name}-backup-encryption-key", self),
        )
        RuntimeSidecar(
            f"{name}-runtime",
            RuntimeSidecarArgs(
                memory_mb=c.runtime_memory_mb,
                app_config=self.app_config,
                health_check_timeout_seconds=c.health_check_timeout,
                depends_on=[postgres, redis],
            ),
            platform,
            opts=child,
        )
        self.postgres_host = postgres.host
        self.redis_host = redis.host
        self.register_outputs({"app_config": self.app_config, **self.endpoints})

    def _edge(
        self,
        name: str,
        c: StackConfig,
        gateway_ns: str,
        tls: TlsCertificate,
        nginx: Nginx,
        platform: KubernetesPlatform,
    ) -> None:
        """Certificate and route at the Gateway; TLS from the Gateway to nginx."""
        ns = c.k8s_namespace
        cert_name = f"{ns}-tls"
        _custom(
            f"{name}-certificate",
            ops.certificate(gateway_ns, c.domain, c.k8s_cluster_issuer, cert_name),
            platform.child(self),
        )
        _custom(
            f"{name}-route",
            ops.http_route(ns, c.k8s_gateway_name, gateway_ns, c.domain, "nginx", 443),
            platform.child(self, [nginx]),
        )
        k8s.core.v1.ConfigMap(
            f"{name}-nginx-ca",
            metadata={"name": "nginx-ca", "namespace": ns},
            data={"ca.crt": tls.certificate_pem},
            opts=platform.child(self),
        )
        _custom(
            f"{name}-backend-tls",
            ops.backend_tls_policy(ns, "nginx", "nginx-ca", c.domain, 443),
            platform.child(self, [nginx]),
        )
