"""What operators run on Kubernetes in place of the services' own specs.

PostgreSQL by CloudNativePG, and Prometheus, Alertmanager and Grafana by the
kube-prometheus-stack chart, each as one component with the same rendered configuration as
the Docker stack (alert rules for the "kubernetes" platform, Alertmanager routes, dashboards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import StackConfig
from components.kubernetes import operators as ops
from components.kubernetes.platform import KubernetesPlatform, secret_data
from components.monitoring.dashboards import dashboard_files
from components.passwords import generated_password
from components.render.alertmanager_yml import render_alertmanager_yml
from components.stack import POSTGRES_PORT, alert_rules, slo_rules


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
        store = custom(f"{name}-object-store", store_obj, platform.child(self, [s3]))
        cluster = custom(
            f"{name}-cluster",
            ops.cnpg_cluster(settings),
            platform.child(self, [credentials, store]),
        )
        custom(
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


def custom(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
    """An operator's object (`ops.*` builds them) as a Pulumi CustomResource."""
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
        custom(
            f"{name}-rules",
            ops.prometheus_rule(ns, c.stack, alert_rules(c, "kubernetes")),
            after_chart,
        )
        custom(
            f"{name}-slo-rules",
            ops.prometheus_rule(ns, c.stack, slo_rules(c), name="platform-slos"),
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
