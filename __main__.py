"""Pulumi entry point: read the stack's configuration, build the platform, export outputs."""

import pulumi

from components.config import load_stack_config
from components.stack import DataPlatform

config = load_stack_config()
platform = DataPlatform("platform", config)

pulumi.export("app_config", platform.app_config)
for name, url in platform.endpoints.items():
    pulumi.export(name, url)
pulumi.export("postgres_host", platform.data.postgres.host)
pulumi.export("redis_host", platform.data.redis.host)
