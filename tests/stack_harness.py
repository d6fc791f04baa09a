"""Run the Pulumi program under Pulumi's mocks and record what it registers.

The one harness every stack test uses (docs/testing.md explains each pitfall it avoids): the
CLI merges Pulumi.yaml's defaults with Pulumi.<stack>.yaml and the mocks do not, so
`load_cli_config` does that here; `RecordingMonitor` keeps what `MockResourceArgs` drops
(parent, dependencies, protect); the program runs with `runpy.run_path("__main__.py")` and
`preview=False`, so every `apply` really runs. `stack_run` caches one run per stack for the
many tests that only read it.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.config import SETTINGS
from components.docker.platform import ONE_SHOT_LABEL, TITLE_LABEL
from tests.certs import key_pem, new_key, self_signed

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key


def load_cli_config(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The config map `pulumi up --stack <stack>` hands the program, as strings."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"]
        for key, spec in project.get("config", {}).items()
        if "default" in spec
    }
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config", {}))
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    return {k: _as_cli_string(v) for k, v in values.items()}


def _as_cli_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    dependencies: list[str]
    protect: bool
    inputs: dict[str, Any]  # secrets stay wrapped: {SIG_KEY: SECRET_SIG, "value": ...}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=request.custom,
                    dependencies=list(request.dependencies),
                    protect=request.protect,
                    inputs=rpc.deserialize_properties(request.object),
                )
            )
        return response


def mock_digest(typ: str, name: str) -> str:
    """The digest `PlatformMocks` derives a resource's outputs from (also read by the
    real-engine applier, tests/engine/applier.py, to name what it creates)."""
    return hashlib.sha256(f"{typ}/{name}".encode()).hexdigest()


def mock_image_id(typ: str, name: str) -> str:
    """The `imageId` the mocks return for an image resource."""
    return f"sha256:{mock_digest(typ, name)}"


def mock_name(typ: str, name: str) -> str:
    """The `name` the mocks return for a volume or network."""
    return f"{name}-{mock_digest(typ, name)[:7]}"


class PlatformMocks(pulumi_mocks.Mocks):
    """Return what the providers would: image ids, names, passwords, a real key and cert."""

    def __init__(self, exits: Mapping[str, tuple[int, str]] | None = None) -> None:
        # resource name -> (exit code, output) of a one-shot container; default (0, "")
        self.exits = dict(exits or {})
        self.generated_secrets: list[str] = []
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        digest = mock_digest(args.typ, args.name)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = mock_image_id(args.typ, args.name)
            outputs["repoDigest"] = f"{args.inputs['name'].split(':')[0]}@sha256:{digest}"
        elif args.typ == "docker:index/image:Image" and not args.inputs.get("skipPush"):
            # pushed: the registry's manifest digest (repository@sha256:...)
            outputs["repoDigest"] = f"{args.inputs['imageName'].rsplit(':', 1)[0]}@sha256:{digest}"
        elif args.typ in ("docker:index/volume:Volume", "docker:index/network:Network"):
            outputs["name"] = mock_name(args.typ, args.name)
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"Pw{digest[:30]}"
            self.generated_secrets.append(outputs["result"])
        elif args.typ == "random:index/randomBytes:RandomBytes":
            outputs["base64"] = base64.b64encode(bytes.fromhex(digest)).decode()  # 32 bytes
            self.generated_secrets.append(outputs["base64"])
        elif args.typ == "tls:index/privateKey:PrivateKey":
            key = new_key()
            pem = key_pem(key)
            self._keys[pem] = key
            outputs["privateKeyPem"] = pem
            self.generated_secrets.append(pem)
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            outputs["certPem"] = self._self_signed(args.inputs)
        elif args.typ == "docker:index/container:Container":
            # the provider's auto-name; the real-engine applier names containers the same way
            outputs["name"] = args.name
            if args.inputs.get("attach"):  # a one-shot container that ran to its end
                code, logs = self.exits.get(args.name, (0, ""))
                outputs["exitCode"] = code
                outputs["containerLogs"] = logs
        return f"{args.name}-id", outputs

    def _self_signed(self, wrapped: Mapping[str, Any]) -> str:
        inputs = unwrap(wrapped)
        key = self._keys[inputs["privateKeyPem"]]
        return self_signed(
            key,
            inputs["subject"]["commonName"],
            valid_for=datetime.timedelta(hours=inputs["validityPeriodHours"]),
            alt_names=[x509.DNSName(n) for n in inputs["dnsNames"]],
        )

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


@dataclass
class StackRun:
    """What one run of the program registered and exported."""

    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    generated_secrets: list[str]
    # the values of settings marked `secret` that this run was given (PROD_CONFIG's, ...)
    secret_config: list[str] = field(default_factory=list)
    by_urn: dict[str, Registration] = field(init=False)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.registrations}

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def containers(self) -> dict[str, Registration]:
        """Containers by service name (the network alias a service is known by); one-shot
        containers (`one_shots`) are not services and are left out."""
        found = {}
        for r in self.of_type("docker:index/container:Container"):
            if r.inputs.get("attach"):
                continue
            aliases = {a for n in r.inputs["networksAdvanced"] for a in n["aliases"]}
            (service,) = aliases
            found[service] = r
        return found

    def one_shots(self) -> dict[str, Registration]:
        """Containers that run once to the end (`attach`), as `<service>-<kind>` from their
        labels: nginx-config-apply, nginx-config-reload, ..."""
        found = {}
        for r in self.of_type("docker:index/container:Container"):
            if r.inputs.get("attach"):
                labels = {lb["label"]: lb["value"] for lb in unwrap(r.inputs)["labels"]}
                found[f"{labels[TITLE_LABEL]}-{labels[ONE_SHOT_LABEL]}"] = r
        return found

    def workloads(self) -> dict[str, Registration]:
        """Every container: the services' and the one-shots'."""
        return {**self.containers(), **self.one_shots()}

    def component_of(self, reg: Registration) -> str:
        return self.by_urn[reg.parent].type if reg.parent in self.by_urn else ""

    def container_dependencies(self, service: str) -> set[str]:
        """Workloads (`workloads`) whose containers this one's container directly waits on."""
        containers = self.workloads()
        urn_to_service = {r.urn: s for s, r in containers.items()}
        deps = containers[service].dependencies
        return {urn_to_service[d] for d in deps if d in urn_to_service}


def unwrap(value: Any) -> Any:
    """Inputs with secret markers removed (for reading values, not for secrecy checks)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in `value` that is NOT inside a secret."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return
        for k, v in value.items():
            yield k
            yield from plain_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from plain_strings(v)
    elif isinstance(value, str):
        yield value


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    registered: list[Registration] | None = None,
    exits: Mapping[str, tuple[int, str]] | None = None,
) -> StackRun:
    """Run __main__.py for `stack` under mocks; raises what the program raises.

    `registered`, when given, receives every registration as it happens, so a test can see
    what a failing program created before it failed. `exits` sets one-shot containers'
    exit codes and output (resource name -> (code, output)).
    """
    mocks = PlatformMocks(exits)
    monitor = RecordingMonitor(mocks)
    if registered is not None:
        monitor.registrations = registered
    pulumi_settings.ROOT.set(None)
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    config = load_cli_config(stack, overrides)
    secret = {s.key for s in SETTINGS if s.secret}
    secret_keys = [k for k in config if k.split(":", 1)[1] in secret]
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    try:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
    finally:
        _sync_await(wait_for_rpcs())
    root = pulumi_settings.get_root_resource()
    exported: dict[str, pulumi.Output[Any]] = root.outputs  # type: ignore[union-attr]
    outputs = {k: _sync_await(pulumi.Output.from_input(v).future()) for k, v in exported.items()}
    secret = {
        k for k, v in exported.items() if _sync_await(pulumi.Output.from_input(v).is_secret())
    }
    given = [v for k, v in config.items() if k in secret_keys]
    return StackRun(stack, monitor.registrations, outputs, secret, mocks.generated_secrets, given)


# -- the runs most tests read ----------------------------------------------------------------


def _self_signed_pair() -> tuple[str, str]:
    """A real certificate and key, standing in for what an operator sets on prod."""
    key = new_key()
    cert = self_signed(key, "platform.example.com", valid_for=datetime.timedelta(days=2))
    return cert, key_pem(key)


PROD_CERTIFICATE, PROD_PRIVATE_KEY = _self_signed_pair()
# What an operator sets on prod besides Pulumi.prod.yaml (secrets with `--secret`).
PROD_CONFIG = {
    "tlsCertificate": PROD_CERTIFICATE,
    "tlsPrivateKey": PROD_PRIVATE_KEY,
    "alertWebhookUrl": "https://hooks.example.com/services/T000/B000/s3cr3t-token",
    "watchdogWebhookUrl": "https://hc-ping.example.com/0f6c3a1e-heartbeat-s3cr3t",
    # the S3 credentials of the pgBackRest repository
    "pitrS3AccessKey": "AKIAEXAMPLEACCESSKEY",
    "pitrS3SecretKey": "s3-secret-key-example/0123456789abcdefghij",
}
# What an operator sets on k8s besides Pulumi.k8s.yaml (its header lists them).
K8S_CONFIG = {
    "k8sBackupAccessKeyId": "AKIAEXAMPLEKEY000001",
    "k8sBackupSecretAccessKey": "s3cr3t-backup-access-key-value",
    "alertWebhookUrl": "https://hooks.example.com/services/T000/B000/s3cr3t-token",
    # a registry that needs a login (optional: without one, the nodes' own credentials)
    "k8sImageRegistryUsername": "deployer",
    "k8sImageRegistryPassword": "registry-t0ken-s3cr3t-value",
}
DIGEST = "@sha256:" + "ab" * 32
# every pulled image: RemoteImages, and postgresImage, the base of the locally built
# PostgreSQL image (the runtime's base is pinned in runtime/Dockerfile)
# (optional images, empty by default, like migrationImage, are not pulled unless set)
IMAGE_KEYS = tuple(s.key for s in SETTINGS if s.key.endswith("Image") and s.default)
# The images dev and prod pull as configured: acmeImage runs only with tlsMode acme.
PULLED_IMAGE_KEYS = tuple(key for key in IMAGE_KEYS if key != "acmeImage")


@functools.cache
def stack_run(stack: str) -> StackRun:
    """dev as configured, prod with PROD_CONFIG, k8s with K8S_CONFIG; one run per stack,
    shared by the tests."""
    return run_stack(stack, {"prod": PROD_CONFIG, "k8s": K8S_CONFIG}.get(stack))


@functools.cache
def prod_pinned_to_digests() -> StackRun:
    """prod with every image also pinned to a digest (what the advisory rule asks for)."""
    config = load_cli_config("prod")
    images = {key: config[f"{PROJECT}:{key}"] + DIGEST for key in IMAGE_KEYS}
    return run_stack("prod", {**PROD_CONFIG, **images})


def policy_baseline(stack: str) -> StackRun:
    """dev and k8s as configured; prod with digests, so that prod's baseline breaks no policy
    rule."""
    return prod_pinned_to_digests() if stack == "prod" else stack_run(stack)


def uploads(run: StackRun, service: str) -> dict[str, str]:
    """The files a service's program reads: path -> content (secrets unwrapped). Uploaded
    into its container, and, for a reloaded service, into its config-apply container, which
    writes them into the volume the service reads (components/docker/platform.py)."""
    apply = run.one_shots().get(f"{service}-config-apply")
    holders = [run.containers()[service], *([apply] if apply else [])]
    return {u["file"]: u["content"] for c in holders for u in unwrap(c.inputs).get("uploads", [])}


def secret_uploads(run: StackRun) -> list[tuple[str, dict[str, Any]]]:
    """(service, upload) for every uploaded file whose content holds a secret: a generated
    password or key, or a secret setting's value. Found by content, not by Pulumi's secret
    marker: the provider marks a whole `uploads` list secret when one file in it is."""
    secrets = [s for s in (*run.generated_secrets, *run.secret_config) if len(s) >= 8]
    found = []
    holders = list(run.containers().items())
    for name, one_shot in run.one_shots().items():  # a reloaded service's files are here
        if name.endswith("-config-apply"):
            holders.append((name.removesuffix("-config-apply"), one_shot))
    for service, container in holders:
        for upload in unwrap(container.inputs).get("uploads", []):
            if any(s.strip() in str(upload["content"]) for s in secrets):
                found.append((service, upload))
    return found
