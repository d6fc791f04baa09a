"""Pulumi entry point: read the stack's configuration, build the platform, export outputs."""

import pulumi

from components.config import load_stack_config
from components.kubernetes.stack import KubernetesDataPlatform
from components.stack import DataPlatform

config = load_stack_config()
if config.platform == "kubernetes":
    cluster = KubernetesDataPlatform("platform", config)
    app_config, endpoints = cluster.app_config, cluster.endpoints
    hosts = {"postgres_host": cluster.postgres_host, "redis_host": cluster.redis_host}
else:
    platform = DataPlatform("platform", config)
    app_config, endpoints = platform.app_config, platform.endpoints
    hosts = {"postgres_host": platform.data.postgres.host, "redis_host": platform.data.redis.host}

pulumi.export("app_config", app_config)
for name, url in endpoints.items():
    pulumi.export(name, url)
for name, host in hosts.items():
    pulumi.export(name, host)
