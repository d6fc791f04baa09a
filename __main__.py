"""Pulumi entry point: read the stack's configuration, build its platform, export outputs."""

from collections.abc import Callable

import pulumi

from components.config import StackConfig, load_stack_config
from components.docker.stack import DataPlatform
from components.kubernetes.stack import KubernetesDataPlatform
from components.stack import PlatformStack

# the `platform` setting -> the component that builds the stack there (same outputs)
PLATFORMS: dict[str, Callable[[str, StackConfig], PlatformStack]] = {
    "docker": DataPlatform,
    "kubernetes": KubernetesDataPlatform,
}

config = load_stack_config()
platform = PLATFORMS[config.platform]("platform", config)
pulumi.export("app_config", platform.app_config)
for name, url in platform.endpoints.items():
    pulumi.export(name, url)
pulumi.export("postgres_host", platform.postgres_host)
pulumi.export("redis_host", platform.redis_host)
