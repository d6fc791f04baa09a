"""The platform on one Docker host: every service from its spec, as containers.

What Docker adds to the neutral stack (components/stack.py): the host's ports (nginx's,
and PostgreSQL's and Redis's on 127.0.0.1 with exposeDataPorts), PostgreSQL from its spec
with hot standbys, the monitoring trio and Loki/Tempo/Alloy as containers, host metrics,
and the runtime sidecar taking pgBackRest's physical backups (app_config's `pitr`).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components import stack
from components.config import StackConfig
from components.docker.platform import DockerPlatform
from components.passwords import generated_key
from components.spec import RuntimePolicy


class DataPlatform(pulumi.ComponentResource):
    """PostgreSQL, Redis, Alertmanager, Prometheus, Grafana and nginx for one stack.

    Every service is a direct child of this component, whichever tier builds it, so the
    resources' URNs do not depend on how the code is organised.
    """

    app_config: pulumi.Output[dict[str, Any]]
    endpoints: dict[str, pulumi.Output[str]]
    postgres_host: pulumi.Output[str]
    redis_host: pulumi.Output[str]
    data: stack.DataTier

    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("infra:stack:DataPlatform", name, None, opts)
        c = config
        child = pulumi.ResourceOptions(parent=self)
        platform = DockerPlatform(
            f"{name}-docker",
            RuntimePolicy(
                restart_policy=c.restart_policy,
                restart_attempts=c.restart_attempts,
                startup_timeout_seconds=c.health_check_timeout,
                health_interval_seconds=c.health_check_interval,
                protect_data=c.protect_data_volumes,
            ),
            opts=child,
        )
        public = f"https://{c.domain}" + (
            "" if c.nginx_https_port == 443 else f":{c.nginx_https_port}"
        )
        self.data = stack.data_tier(name, c, platform, child)
        logs = stack.logs_traces_tier(name, c, platform, child)
        observability = stack.observability_tier(name, c, public, logs, platform, child)
        edge = stack.edge_tier(name, c, observability, platform, child)
        postgres, redis = self.data.postgres, self.data.redis
        stack.exporters(
            name,
            c,
            postgres,
            postgres.password,
            redis,
            edge.nginx,
            platform,
            child,
            verify_tls=c.tls_mode in ("provided", "acme"),
            host_metrics=c.host_metrics,
        )
        self.endpoints = stack.endpoints(
            edge.nginx.public_url,
            observability.grafana.url,
            observability.prometheus.url,
            observability.alertmanager.url,
        )
        self.app_config = stack.app_config(
            c,
            postgres,
            self.data.replicas,
            redis,
            self.endpoints,
            pitr=stack.pitr_section(c, postgres.cipher_pass),
            otlp_endpoint=logs.alloy.otlp_endpoint if logs else "",
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
            name,
            c,
            self.app_config,
            [postgres, redis, *([logs.alloy] if logs else [])],
            platform,
            child,
            physical_backups=stack.PhysicalBackupAccess(
                pgbackrest_conf=postgres.pgbackrest_conf,
                posix_repository=c.pitr_repo_type == "posix",
            ),
            after=migration,
        )
        self.postgres_host = postgres.host
        self.redis_host = redis.host
        self.register_outputs({"app_config": self.app_config, **self.endpoints})
