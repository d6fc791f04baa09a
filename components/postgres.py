"""PostgreSQL: the platform's database, its data in a named volume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.passwords import generated_password
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    Platform,
    PublishedPort,
    ServiceSpec,
)

PORT = 5432
CREDENTIAL_FILE = "/run/secrets/postgres-password"


@dataclass(frozen=True)
class PostgresArgs:
    image: str
    database: str
    user: str
    max_connections: int
    memory_mb: int
    loopback_port: int | None = None  # publish on 127.0.0.1 (dev) when set


def postgres_spec(args: PostgresArgs, password: pulumi.Input[str]) -> ServiceSpec:
    return ServiceSpec(
        name="postgres",
        image=args.image,
        port=PORT,
        command=[
            "postgres",
            "-c",
            f"max_connections={args.max_connections}",
            "-c",
            f"shared_buffers={max(args.memory_mb // 4, 16)}MB",
            "-c",
            "log_min_duration_statement=1000",
        ],
        env={
            "POSTGRES_DB": args.database,
            "POSTGRES_USER": args.user,
            # The entrypoint reads the password from the file, never from the environment.
            "POSTGRES_PASSWORD_FILE": CREDENTIAL_FILE,
            "PGDATA": "/var/lib/postgresql/data/pgdata",
        },
        files=[ConfigFile(CREDENTIAL_FILE, password, secret=True)],
        volumes=[DataVolume("data", "/var/lib/postgresql/data")],
        # TCP, not the socket: during first-boot initdb the server listens on the socket only.
        health=HealthProbe(
            ["pg_isready", "-h", "127.0.0.1", "-U", args.user, "-d", args.database],
            start_period_seconds=30,
        ),
        memory_mb=args.memory_mb,
        published=[PublishedPort(PORT, args.loopback_port, "127.0.0.1")]
        if args.loopback_port
        else [],
        stop_grace_seconds=60,  # a fast shutdown checkpoints; never cut it short
        # The entrypoint, as root, walks PGDATA (mode 0700, owned by postgres), chowns and
        # chmods it, then drops to the postgres user with su-exec.
        capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"),
    )


class Postgres(pulumi.ComponentResource):
    """A PostgreSQL server with a generated password for the application role."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    dsn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PostgresArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:postgres:Postgres", name, None, opts)
        self.password = generated_password(f"{name}-password", self)
        spec = postgres_spec(args, self.password)
        platform.deploy(spec, parent=self)
        self.host = pulumi.Output.from_input(spec.name)
        self.port = pulumi.Output.from_input(PORT)
        self.database = pulumi.Output.from_input(args.database)
        self.user = pulumi.Output.from_input(args.user)
        self.dsn = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:{3}/{4}",
                args.user,
                self.password,
                spec.name,
                PORT,
                args.database,
            )
        )
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
                "dsn": self.dsn,
            }
        )
