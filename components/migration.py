"""The application's migration step: its migrations, once per change, before its dependents.

What runs is the application's own image (it holds the migration files and the models they
import) with the runtime's `migrate` as the entrypoint, so every migration gets the runtime's
guarantees (one at a time under an advisory lock, bounded lock waits, a named restore point
first; docs/migrations.md): `python -m runtime migrate -- <migrationCommand>`. The image must
therefore contain the runtime package (docs/migrations-stack.md). It reads the stack's
app_config from a secret file, as the runtime sidecar does, so no password is ever in the
container's environment or command line.

It re-runs exactly when its image or command changes (a new one-shot container or Job, which
is harmless); `done` resolves only after it succeeded, and the dependents take it as an
input, so a failed migration fails `pulumi up` before any of them is created or replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.spec import ConfigFile, Platform, TaskSpec

NAME = "migrate"
APP_CONFIG_FILE = "/run/secrets/app_config.json"  # where the runtime sidecar reads it too
ENTRYPOINT = ("python", "-m", "runtime", "migrate", "--")


@dataclass(frozen=True)
class MigrationArgs:
    image: str
    command: Sequence[str]
    app_config: pulumi.Output[dict[str, Any]]
    memory_mb: int
    timeout_seconds: int
    depends_on: Sequence[pulumi.Resource] = ()
    # masked in the output shown when the migration fails (the database's password...)
    secrets: Sequence[pulumi.Input[str]] = ()


def identity(image: str, command: Sequence[str]) -> str:
    """What decides a re-run: the image and the command, nothing else."""
    return hashlib.sha256(json.dumps([image, list(command)]).encode()).hexdigest()[:16]


def migration_spec(args: MigrationArgs) -> TaskSpec:
    return TaskSpec(
        name=NAME,
        image=args.image,
        entrypoint=ENTRYPOINT,
        command=tuple(args.command),
        memory_mb=args.memory_mb,
        timeout_seconds=args.timeout_seconds,
        identity=identity(args.image, args.command),
        env={"APP_CONFIG_FILE": APP_CONFIG_FILE},
        files=[
            ConfigFile(
                APP_CONFIG_FILE,
                args.app_config.apply(lambda c: json.dumps(c, indent=2, sort_keys=True)),
                secret=True,
            )
        ],
        networks=("backend",),  # PostgreSQL only: migrations reach nothing outside
        depends_on=args.depends_on,
        secrets=args.secrets,
    )


class Migration(pulumi.ComponentResource):
    """The one-shot migration step; `done` is what its dependents wait on."""

    done: pulumi.Output[str]
    workload: pulumi.Resource

    def __init__(
        self,
        name: str,
        args: MigrationArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:app:Migration", name, None, opts)
        ran = platform.run_once(migration_spec(args), parent=self)
        self.done = ran.done
        self.workload = ran.workload
        self.register_outputs({"done": self.done})
