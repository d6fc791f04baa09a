"""The runtime sidecar: this repository's `runtime` package running inside the stack.

It serves /metrics (pool, cache, backup and host series) and /healthz, runs the scheduled
logical (pg_dump) and physical (pgBackRest) backups and the in-process alert loop. Its image
is built from `runtime/Dockerfile` on the Docker host; the tag is a hash of everything that
goes into the image, so `pulumi up` rebuilds and replaces it exactly when the runtime's code
or requirements change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.postgres import (
    DATA_MOUNT,
    DATA_VOLUME,
    POSTGRES_UID,
    REPO_VOLUME,
    SOCKET_VOLUME,
)
from components.render.pgbackrest_conf import CONF_FILE as PGBACKREST_CONF
from components.render.pgbackrest_conf import POSIX_REPO_PATH, SOCKET_DIR
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    ImageBuild,
    Platform,
    ServiceSpec,
    SharedVolume,
)

PORT = 9180  # the sidecar's default (SIDECAR_PORT)
REPOSITORY = Path(__file__).resolve().parent.parent
DOCKERFILE = "runtime/Dockerfile"
APP_CONFIG_FILE = "/run/secrets/app_config.json"
BACKUP_DIR = "/backups"
MIGRATION_ENV = "PLATFORM_MIGRATION"  # the migration step it started after (its identity)
# Restore drills (docs/runtime-pitr-drill.md): their throwaway copies and the last drill's result
# (`last-drill.json`) live on a volume of their own, owned by uid 999 (the image's directory seeds
# it). Docker only: it comes with the physical backups.
DRILL_SCRATCH_PATH = "/var/lib/pgbackrest-drill"
# the runtime's default wait for the archive (pitr.drill.margin_seconds): the shortest exported
DRILL_MIN_MARGIN_SECONDS = 120


def source_hash(root: Path = REPOSITORY) -> str:
    """A digest of the image's inputs: the Dockerfile, requirements and the runtime's code."""
    digest = hashlib.sha256()
    files = [root / DOCKERFILE, root / "runtime/requirements.txt"]
    files += sorted(p for p in (root / "runtime").rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PhysicalBackupAccess:
    """What the sidecar's pgBackRest needs to back up the primary (docs/data-tier.md).

    pgBackRest backs up from where the data directory is readable and the server answers on
    its Unix socket: the sidecar mounts the primary's data volume read-only at the same path,
    shares its socket directory, runs as the same uid (999), and mounts the posix repository.
    """

    pgbackrest_conf: pulumi.Output[str]
    posix_repository: bool


@dataclass(frozen=True)
class RuntimeSidecarArgs:
    memory_mb: int
    app_config: pulumi.Output[dict[str, Any]]
    # app_config's monitoring.health_check_timeout_seconds: how long each of its probes may take
    health_check_timeout_seconds: int
    depends_on: Sequence[pulumi.Resource] = ()
    physical_backups: PhysicalBackupAccess | None = None
    # the migration step's `done`: resolves only after it succeeded, so a failed migration
    # leaves the running sidecar as it is (components/migration.py)
    migration_done: pulumi.Output[str] | None = None


def _physical_backup_mounts(
    access: PhysicalBackupAccess | None,
) -> tuple[list[ConfigFile], list[DataVolume], list[SharedVolume]]:
    if access is None:
        return [], [], []
    files = [
        ConfigFile(
            PGBACKREST_CONF, access.pgbackrest_conf, secret=True, owner=POSTGRES_UID, mode="0600"
        )
    ]
    shared = [
        SharedVolume("postgres", DATA_VOLUME, DATA_MOUNT, read_only=True),
        SharedVolume("postgres", SOCKET_VOLUME, SOCKET_DIR),
    ]
    if access.posix_repository:
        shared.append(SharedVolume("postgres", REPO_VOLUME, POSIX_REPO_PATH))
    # scratch: emptied after every drill, so not protected from `pulumi destroy`
    own = [DataVolume("drill", DRILL_SCRATCH_PATH, persistent=False)]
    return files, own, shared


# /healthz probes PostgreSQL, then Redis (runtime/sidecar.py REQUIRED), one after the other,
# each allowed the health-check timeout: that is how long a healthy sidecar may take to answer.
HEALTHZ_PROBES = 2


def healthz_probe(health_check_timeout_seconds: int) -> HealthProbe:
    """Docker's probe of /healthz, given as long as the sidecar's own probes may take (plus
    slack), so a slow but healthy answer is never cut off and counted as a failure."""
    answer_within = HEALTHZ_PROBES * health_check_timeout_seconds + 2
    return HealthProbe(
        [
            "python",
            "-c",
            "import urllib.request; "
            f"urllib.request.urlopen('http://127.0.0.1:{PORT}/healthz', timeout={answer_within})",
        ],
        timeout_seconds=answer_within + 3,  # the client gives up (and reports) first
    )


def runtime_sidecar_spec(args: RuntimeSidecarArgs) -> ServiceSpec:
    pitr_files, pitr_own, pitr_volumes = _physical_backup_mounts(args.physical_backups)
    return ServiceSpec(
        name="runtime",
        image=f"data-platform-runtime:{source_hash()}",
        # relative to the project directory, where `pulumi up` runs the program
        build=ImageBuild(context=".", dockerfile=DOCKERFILE),
        port=PORT,
        command=["serve", "--port", str(PORT)],
        # The same settings applications read: the stack's app_config, as a secret file.
        env={
            "APP_CONFIG_FILE": APP_CONFIG_FILE,
            "BACKUP_DIR": BACKUP_DIR,
            **({MIGRATION_ENV: args.migration_done} if args.migration_done is not None else {}),
        },
        files=[
            ConfigFile(
                APP_CONFIG_FILE,
                args.app_config.apply(lambda c: json.dumps(c, indent=2, sort_keys=True)),
                secret=True,
                owner=POSTGRES_UID,  # runtime/Dockerfile's user shares postgres's uid 999
                mode="0400",
            ),
            *pitr_files,
        ],
        volumes=[DataVolume("backups", BACKUP_DIR), *pitr_own],
        shared_volumes=pitr_volumes,
        health=healthz_probe(args.health_check_timeout_seconds),
        memory_mb=args.memory_mb,
        # edge: egress to S3-compatible backup storage and alert webhooks; nothing published
        networks=("backend", "edge"),
        depends_on=args.depends_on,
        stop_grace_seconds=60,  # let a running backup finish or abort cleanly on SIGTERM
    )


class RuntimeSidecar(pulumi.ComponentResource):
    """Backups, metrics and alert evaluation next to the database and the cache."""

    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: RuntimeSidecarArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:runtime:RuntimeSidecar", name, None, opts)
        spec = runtime_sidecar_spec(args)
        platform.deploy(spec, parent=self)
        self.url = pulumi.Output.from_input(f"http://{spec.address}")
        self.register_outputs({"url": self.url})
