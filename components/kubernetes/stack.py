"""The platform on a Kubernetes cluster: the neutral stack, operators where HA is needed.

What runs from the service modules' specs (through `KubernetesPlatform`, built by the neutral
components/stack.py): Redis, nginx, the runtime sidecar and the exporters. What operators
run instead (`operated.py`): PostgreSQL (CloudNativePG), Prometheus, Alertmanager and
Grafana (kube-prometheus-stack). Kubernetes adds the Gateway route and its certificate, and
ServiceMonitors for the scrape jobs the Docker Prometheus lists. The applications'
`app_config` has the Docker stack's shape with in-cluster names (docs/kubernetes.md).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import stack
from components.config import StackConfig
from components.kubernetes import operators as ops
from components.kubernetes.objects import ClusterSettings
from components.kubernetes.operated import CloudNativePostgres, KubePrometheusStack, custom
from components.kubernetes.platform import ImageRegistry, KubernetesPlatform
from components.monitoring.alerts import CNPG_JOB
from components.passwords import generated_key
from components.render.nginx_conf import STUB_STATUS_PORT
from components.spec import ScrapeTarget
from components.tls import TlsCertificate

DNS_RESOLVER = "kube-dns.kube-system.svc.cluster.local"
# Image facts the specs do not carry: the uid each image runs as (root images get one), and
# the directories it writes besides /tmp (the root filesystem is read-only).
# The runtime image is `postgres` (999) for Docker's physical backups (runtime/Dockerfile).
USERS = {"redis": 999, "nginx": 101, "runtime": 999}
SCRATCH_DIRS = {"nginx": ("/var/cache/nginx", "/var/run")}


def scrapes() -> list[ops.Scrape]:
    """The Docker stack's exporter and runtime scrape jobs (prometheus.yml) as ServiceMonitors;
    no host metrics on a cluster."""
    return [scrape(target) for target in stack.platform_scrape_targets(host_metrics=False)]


def scrape(target: ScrapeTarget) -> ops.Scrape:
    """One scrape job as a ServiceMonitor's: the Service is the address's host."""
    service, port = target.address.rsplit(":", 1)
    if target.probe_module is None:
        return ops.Scrape(target.job, service, int(port), path=target.metrics_path)
    probed = target.probe_target or ""
    return ops.Scrape(
        target.job,
        service,
        int(port),
        path=target.metrics_path,
        params={"module": [target.probe_module], "target": [probed]},
        instance=probed,
    )


class KubernetesDataPlatform(pulumi.ComponentResource):
    """The Kubernetes counterpart of `components.docker.stack.DataPlatform` (same outputs)."""

    app_config: pulumi.Output[dict[str, Any]]
    endpoints: dict[str, pulumi.Output[str]]
    postgres_host: pulumi.Output[str]
    redis_host: pulumi.Output[str]

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
        redis = stack.redis(name, c, platform, child, expose=False)
        monitoring = KubePrometheusStack(f"{name}-monitoring", c, public, platform, opts=child)
        for job in scrapes():
            custom(
                f"{name}-scrape-{job.job}",
                ops.service_monitor(ns, c.stack, job, c.scrape_interval_seconds),
                platform.child(monitoring, [monitoring.chart]),
            )
        custom(
            f"{name}-scrape-{CNPG_JOB}",
            ops.cnpg_pod_monitor(
                ns, c.stack, postgres.cluster_name, CNPG_JOB, c.scrape_interval_seconds
            ),
            platform.child(monitoring, [monitoring.chart]),
        )
        # nginx's certificate towards the Gateway (BackendTLSPolicy trusts it).
        tls = TlsCertificate(f"{name}-tls", domain=c.domain, opts=child)
        svc = f"{ns}.svc.cluster.local"  # nginx's resolver does not use search domains
        nginx = stack.nginx(
            name,
            c,
            stack.Upstreams(
                grafana=f"kube-prometheus-stack-grafana.{svc}:80",
                prometheus=f"kube-prometheus-stack-prometheus.{svc}:9090",
                alertmanager=f"kube-prometheus-stack-alertmanager.{svc}:9093",
                resolver=DNS_RESOLVER,
                real_ip_from=c.k8s_trusted_proxy_cidrs,
            ),
            tls,
            (80, 443),
            [],  # upstreams resolved per request: a 502 until the chart's services exist
            platform,
            child,
        )
        self._edge(name, c, gateway_ns, tls, nginx, platform)
        stack.exporters(
            name,
            c,
            postgres,
            postgres.password,
            redis,
            nginx,
            platform,
            child,
            verify_tls=False,  # the blackbox probes nginx's own self-signed certificate
            host_metrics=False,
        )
        self.endpoints = stack.endpoints(
            nginx.public_url,
            f"{public}/grafana/",
            f"http://kube-prometheus-stack-prometheus.{ns}:9090",
            f"http://kube-prometheus-stack-alertmanager.{ns}:9093",
        )
        # The Docker stack's shape; no `pitr` section: CloudNativePG archives WAL and takes the
        # physical backups, so the runtime sidecar only keeps its logical ones here.
        self.app_config = stack.app_config(
            c,
            postgres,
            postgres.replicas,
            redis,
            self.endpoints,
            backup_key=generated_key(f"{name}-backup-encryption-key", self),
        )
        migration = stack.migration(
            name,
            c,
            self.app_config,
            postgres,
            [postgres.password, redis.password],
            platform,
            child,
        )
        stack.runtime_sidecar(
            name, c, self.app_config, [postgres, redis], platform, child, after=migration
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
        nginx: pulumi.Resource,
        platform: KubernetesPlatform,
    ) -> None:
        """Certificate and route at the Gateway; TLS from the Gateway to nginx."""
        ns = c.k8s_namespace
        cert_name = f"{ns}-tls"
        custom(
            f"{name}-certificate",
            ops.certificate(gateway_ns, c.domain, c.k8s_cluster_issuer, cert_name),
            platform.child(self),
        )
        custom(
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
        custom(
            f"{name}-backend-tls",
            ops.backend_tls_policy(ns, "nginx", "nginx-ca", c.domain, 443),
            platform.child(self, [nginx]),
        )
