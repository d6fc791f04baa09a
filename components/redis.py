"""Redis: the cache, bounded by maxmemory with an eviction policy, password required."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.passwords import generated_password
from components.render.redis_conf import render_redis_conf
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    Platform,
    PublishedPort,
    ServiceSpec,
)

PORT = 6379
# redis-server runs as `redis` in redis:7.4.2-alpine: uid 999, gid 1000 (docs/secret-files.md).
REDIS_UID, REDIS_GID = "999", "1000"
CONF_FILE = "/usr/local/etc/redis/redis.conf"
CREDENTIAL_FILE = "/run/secrets/redis-password"


@dataclass(frozen=True)
class RedisArgs:
    image: str
    maxmemory: str
    eviction_policy: str
    memory_mb: int
    loopback_port: int | None = None


def redis_spec(args: RedisArgs, password: pulumi.Output[str]) -> ServiceSpec:
    conf = password.apply(lambda pw: render_redis_conf(pw, args.maxmemory, args.eviction_policy))
    return ServiceSpec(
        name="redis",
        image=args.image,
        port=PORT,
        command=["redis-server", CONF_FILE],
        files=[
            # The health check reads the password file as root (DAC_OVERRIDE); the server, as
            # redis, reads redis.conf (its requirepass).
            ConfigFile(CONF_FILE, conf, secret=True, owner=REDIS_UID, group=REDIS_GID, mode="0400"),
            ConfigFile(
                CREDENTIAL_FILE,
                password,
                secret=True,
                owner=REDIS_UID,
                group=REDIS_GID,
                mode="0400",
            ),
        ],
        volumes=[DataVolume("data", "/data")],
        health=HealthProbe(
            [
                "sh",
                "-c",
                f'REDISCLI_AUTH="$(cat {CREDENTIAL_FILE})" redis-cli ping | grep -q PONG',
            ]
        ),
        memory_mb=args.memory_mb,
        published=[PublishedPort(PORT, args.loopback_port, "127.0.0.1")]
        if args.loopback_port
        else [],
        # The entrypoint, as root, chowns /data (its files are 0600/0700, owned by redis),
        # then drops to the redis user with su-exec.
        capabilities=("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"),
    )


class Redis(pulumi.ComponentResource):
    """A Redis server configured as a bounded cache."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    password: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: RedisArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:redis:Redis", name, None, opts)
        self.password = generated_password(f"{name}-password", self)
        spec = redis_spec(args, self.password)
        platform.deploy(spec, parent=self)
        self.host = pulumi.Output.from_input(spec.name)
        self.port = pulumi.Output.from_input(PORT)
        self.url = pulumi.Output.secret(
            pulumi.Output.format("redis://:{0}@{1}:{2}/0", self.password, spec.name, PORT)
        )
        self.register_outputs({"host": self.host, "port": self.port, "url": self.url})
