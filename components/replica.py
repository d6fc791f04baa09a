"""PostgreSQL replicas: hot standbys streaming from the primary, read-only endpoints for apps.

Each replica runs the same image as the primary. On its first start the image's
`replica-entrypoint` creates the replica's physical slot on the primary and copies the primary
with pg_basebackup; afterwards the server streams through that slot. The replication password
reaches it as a libpq password file (mode 0600, owned by postgres), never as an environment
variable or a command-line argument. A replica publishes nothing, sits on the backend network
only, keeps its data in its own protected volume, and is created only once the primary is
healthy; its health check fails while it is not streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.postgres import (
    CAPABILITIES,
    DATA_MOUNT,
    PORT,
    POSTGRES_UID,
    PostgresArgs,
    image_spec_fields,
)
from components.render.pgbackrest_conf import PGDATA
from components.render.postgresql_conf import (
    HBA_FILE,
    IDENT_FILE,
    as_arguments,
    render_pg_hba_conf,
    render_pg_ident_conf,
    render_replication_passfile,
    replica_settings,
)
from components.spec import ConfigFile, DataVolume, HealthProbe, Platform, ServiceSpec

PASSFILE = "/run/secrets/replication.pgpass"
PRIMARY_HOST = "postgres"


def replica_name(index: int) -> str:
    """Service name, network alias and slot name stem of replica `index` (from 1)."""
    return f"postgres-replica-{index}"


def slot_name(index: int) -> str:
    return f"postgres_replica_{index}"  # slot names: lower case, digits and underscores


@dataclass(frozen=True)
class PostgresReplicaArgs:
    index: int
    primary: PostgresArgs
    depends_on: Sequence[pulumi.Resource] = ()


def replica_spec(
    args: PostgresReplicaArgs, replication_password: pulumi.Output[str]
) -> ServiceSpec:
    primary = args.primary
    image, build = image_spec_fields(primary.base_image)
    slot = slot_name(args.index)
    settings = replica_settings(primary.server, PRIMARY_HOST, PORT, slot, PASSFILE)
    passfile = replication_password.apply(
        lambda pw: render_replication_passfile(PRIMARY_HOST, PORT, pw)
    )
    return ServiceSpec(
        name=replica_name(args.index),
        image=image,
        build=build,
        port=PORT,
        command=[
            "replica-entrypoint",
            slot,
            PRIMARY_HOST,
            str(PORT),
            PASSFILE,
            *as_arguments(settings),
        ],
        env={"PGDATA": PGDATA},
        files=[
            ConfigFile(PASSFILE, passfile, secret=True, owner=POSTGRES_UID, mode="0600"),
            ConfigFile(HBA_FILE, render_pg_hba_conf()),
            ConfigFile(IDENT_FILE, render_pg_ident_conf(primary.user)),
        ],
        volumes=[DataVolume("data", DATA_MOUNT)],
        networks=("backend",),
        # A copy of a large primary takes a while: the start period covers the base backup.
        health=HealthProbe(["streaming-check", primary.user], start_period_seconds=300),
        memory_mb=primary.memory_mb,
        stop_grace_seconds=60,
        capabilities=CAPABILITIES,
        depends_on=args.depends_on,
    )


class PostgresReplica(pulumi.ComponentResource):
    """One hot standby and its read-only endpoint."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    dsn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PostgresReplicaArgs,
        replication_password: pulumi.Output[str],
        password: pulumi.Output[str],
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:postgres:PostgresReplica", name, None, opts)
        spec = replica_spec(args, replication_password)
        platform.deploy(spec, parent=self)
        primary = args.primary
        self.host = pulumi.Output.from_input(spec.name)
        self.port = pulumi.Output.from_input(PORT)
        # The application role exists on the replica too (it is a copy of the primary).
        self.dsn = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:{3}/{4}?target_session_attrs=read-only",
                primary.user,
                password,
                spec.name,
                PORT,
                primary.database,
            )
        )
        self.register_outputs({"host": self.host, "port": self.port, "dsn": self.dsn})
