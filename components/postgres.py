"""PostgreSQL: the platform's primary database, archiving its WAL with pgBackRest.

The image is built from images/postgres/Dockerfile (the `postgresImage` base plus Debian's
pgBackRest 2.45). The server archives every WAL segment into the pgBackRest repository (a
protected named volume, or S3), encrypted with a generated passphrase; replicas stream from
it through their own slots (components/replica.py). docs/data-tier.md has the whole picture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.passwords import generated_password
from components.render.pgbackrest_conf import (
    CONF_FILE as PGBACKREST_CONF,
)
from components.render.pgbackrest_conf import (
    PGDATA,
    POSIX_REPO_PATH,
    SOCKET_DIR,
    PgBackRestSettings,
    S3Repository,
    render_pgbackrest_conf,
)
from components.render.postgresql_conf import (
    HBA_FILE,
    IDENT_FILE,
    ServerSettings,
    as_arguments,
    primary_settings,
    render_pg_hba_conf,
    render_pg_ident_conf,
)
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    ImageBuild,
    Network,
    Platform,
    PublishedPort,
    ServiceSpec,
)

PORT = 5432
CREDENTIAL_FILE = "/run/secrets/postgres-password"
REPLICATION_PASSWORD_FILE = "/run/secrets/replication-password"  # noqa: S105 - a path
DATA_MOUNT = "/var/lib/postgresql/data"
POSTGRES_UID = "999"  # `postgres` in the Debian PostgreSQL image (and the runtime's user)
REPOSITORY = Path(__file__).resolve().parent.parent
DOCKERFILE = "images/postgres/Dockerfile"
# Volumes other services mount (components/replica.py, components/runtime_sidecar.py).
DATA_VOLUME = "data"
SOCKET_VOLUME = "socket"
REPO_VOLUME = "pitr-repo"
# Capabilities the entrypoint needs: as root it chowns PGDATA and the socket directory,
# then drops to the postgres user with setpriv.
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")


def image_hash(base_image: str, root: Path = REPOSITORY) -> str:
    """A digest of the image's inputs: its base, the Dockerfile and the scripts it copies."""
    digest = hashlib.sha256(base_image.encode())
    for path in sorted(p for p in (root / "images/postgres").rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_spec_fields(base_image: str) -> tuple[str, ImageBuild]:
    """The local image name (tagged by its inputs) and how to build it."""
    return (
        f"data-platform-postgres:{image_hash(base_image)}",
        ImageBuild(context=".", dockerfile=DOCKERFILE, args={"POSTGRES_IMAGE": base_image}),
    )


@dataclass(frozen=True)
class PitrRepositoryArgs:
    """Where pgBackRest keeps backups and archived WAL: the posix volume or an S3 bucket."""

    retention_full: int
    s3_bucket: str = ""  # empty: the posix repository volume
    s3_region: str = ""
    s3_endpoint: str = ""
    s3_access_key: pulumi.Output[str] | None = None
    s3_secret_key: pulumi.Output[str] | None = None
    s3_path: str = "/pgbackrest"

    @property
    def is_s3(self) -> bool:
        return bool(self.s3_bucket)


@dataclass(frozen=True)
class PostgresArgs:
    base_image: str
    database: str
    user: str
    max_connections: int
    memory_mb: int
    repository: PitrRepositoryArgs
    archive_timeout_seconds: int = 60
    replicas: int = 0
    loopback_port: int | None = None  # publish on 127.0.0.1 (dev) when set

    @property
    def server(self) -> ServerSettings:
        return ServerSettings(
            max_connections=self.max_connections,
            memory_mb=self.memory_mb,
            replicas=self.replicas,
            archive_timeout_seconds=self.archive_timeout_seconds,
        )


def pgbackrest_conf(args: PostgresArgs, cipher_pass: pulumi.Output[str]) -> pulumi.Output[str]:
    """The rendered pgbackrest.conf (secret: it holds the passphrase and the S3 keys)."""
    repo = args.repository
    keys = [
        cipher_pass,
        repo.s3_access_key if repo.s3_access_key is not None else "",
        repo.s3_secret_key if repo.s3_secret_key is not None else "",
    ]

    def render(values: list[str]) -> str:
        passphrase, access_key, secret_key = values
        s3 = None
        if repo.is_s3:
            s3 = S3Repository(
                bucket=repo.s3_bucket,
                region=repo.s3_region,
                endpoint=repo.s3_endpoint,
                access_key=access_key,
                secret_key=secret_key,
                path=repo.s3_path,
            )
        return render_pgbackrest_conf(
            PgBackRestSettings(
                cipher_pass=passphrase,
                retention_full=repo.retention_full,
                superuser=args.user,
                port=PORT,
                s3=s3,
            )
        )

    return pulumi.Output.secret(pulumi.Output.all(*keys).apply(render))


def postgres_spec(
    args: PostgresArgs,
    password: pulumi.Input[str],
    replication_password: pulumi.Input[str],
    pgbackrest: pulumi.Input[str],
) -> ServiceSpec:
    image, build = image_spec_fields(args.base_image)
    volumes = [
        DataVolume(DATA_VOLUME, DATA_MOUNT),
        # the socket directory, shared with the runtime sidecar's pgBackRest
        DataVolume(SOCKET_VOLUME, SOCKET_DIR, persistent=False),
    ]
    if not args.repository.is_s3:
        volumes.append(DataVolume(REPO_VOLUME, POSIX_REPO_PATH))
    # archive-push to S3 needs a route off the host; the backend network has none.
    networks: tuple[Network, ...] = ("backend", "edge") if args.repository.is_s3 else ("backend",)
    return ServiceSpec(
        name="postgres",
        image=image,
        build=build,
        port=PORT,
        command=as_arguments(primary_settings(args.server)),
        env={
            "POSTGRES_DB": args.database,
            "POSTGRES_USER": args.user,
            # The entrypoint reads the password from the file, never from the environment.
            "POSTGRES_PASSWORD_FILE": CREDENTIAL_FILE,
            "PGDATA": PGDATA,
        },
        files=[
            # read by the entrypoint (as root with DAC_OVERRIDE, or as postgres)
            ConfigFile(CREDENTIAL_FILE, password, secret=True, owner=POSTGRES_UID, mode="0400"),
            ConfigFile(
                REPLICATION_PASSWORD_FILE,
                replication_password,
                secret=True,
                owner=POSTGRES_UID,
                mode="0600",
            ),
            ConfigFile(PGBACKREST_CONF, pgbackrest, secret=True, owner=POSTGRES_UID, mode="0600"),
            ConfigFile(HBA_FILE, render_pg_hba_conf()),
            ConfigFile(IDENT_FILE, render_pg_ident_conf(args.user)),
        ],
        volumes=volumes,
        networks=networks,
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
        capabilities=CAPABILITIES,
    )


class Postgres(pulumi.ComponentResource):
    """The primary: generated passwords for the application and replication roles, and the
    pgBackRest repository's passphrase."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    dsn: pulumi.Output[str]
    replication_password: pulumi.Output[str]
    cipher_pass: pulumi.Output[str]
    pgbackrest_conf: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PostgresArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:postgres:Postgres", name, None, opts)
        self.password = generated_password(f"{name}-password", self)
        self.replication_password = generated_password(f"{name}-replication-password", self)
        self.cipher_pass = generated_password(f"{name}-pitr-cipher-pass", self)
        self.pgbackrest_conf = pgbackrest_conf(args, self.cipher_pass)
        spec = postgres_spec(args, self.password, self.replication_password, self.pgbackrest_conf)
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
                "replication_password": self.replication_password,
                "cipher_pass": self.cipher_pass,
            }
        )
