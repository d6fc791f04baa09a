"""tlsMode acme: lego obtains nginx's certificate over HTTP-01 and renews it (docs/acme.md).

Two services from the lego image. `acme-seed` runs once before nginx: it owns the
certificate volume and the webroot volume, and puts a placeholder self-signed pair in
`live/` when no certificate is there yet, so nginx can start its TLS server. `acme` runs
after nginx, in nginx's PID namespace: it orders and renews through nginx's port 80 and
sends SIGHUP to PID 1 (nginx's master) when a new certificate is in `live/`. The account
key and the certificate are created in the volume by lego: never in stack state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.render.acme_sh import AcmeScript, render_acme_sh
from components.spec import (
    ConfigFile,
    DataVolume,
    HealthProbe,
    Platform,
    ServiceSpec,
    SharedVolume,
)

DATA_DIR = "/var/lib/acme"  # lego's --path, in the `certs` volume
WEBROOT = "/var/www/acme"  # the `webroot` volume
SCRIPT = "/etc/acme/acme.sh"
CA_BUNDLE = "/etc/acme/ca.pem"
PLACEHOLDER_CERT = "/run/acme/placeholder.crt"
PLACEHOLDER_KEY = "/run/acme/placeholder.key"
LEGO = "/lego"  # where goacme/lego's image (buildx.Dockerfile) puts the binary
SEED = "acme-seed"  # the service owning both volumes
CERTS_VOLUME = "certs"
WEBROOT_VOLUME = "webroot"


@dataclass(frozen=True)
class AcmeArgs:
    image: str
    domain: str
    email: str
    directory_url: str
    renew_days: int
    ca_bundle: str  # PEM the client trusts for the directory (tests: Pebble's CA); "" = system
    placeholder_cert: pulumi.Input[str]
    placeholder_key: pulumi.Input[str]


def acme_script(args: AcmeArgs) -> str:
    return render_acme_sh(
        AcmeScript(
            lego=LEGO,
            domain=args.domain,
            email=args.email,
            directory_url=args.directory_url,
            renew_days=args.renew_days,
            data_dir=DATA_DIR,
            webroot=WEBROOT,
            placeholder_cert=PLACEHOLDER_CERT,
            placeholder_key=PLACEHOLDER_KEY,
            reload_command="kill -HUP 1",
        )
    )


def _common(args: AcmeArgs) -> tuple[list[ConfigFile], dict[str, str]]:
    files = [ConfigFile(SCRIPT, acme_script(args), owner="0", mode="0500")]
    env = {}
    if args.ca_bundle:
        files.append(ConfigFile(CA_BUNDLE, args.ca_bundle, owner="0", mode="0444"))
        env["LEGO_CA_CERTIFICATES"] = CA_BUNDLE  # the client's trust only; nginx's is unchanged
    return files, env


def acme_seed_spec(args: AcmeArgs) -> ServiceSpec:
    files, env = _common(args)
    return ServiceSpec(
        name=SEED,
        image=args.image,
        port=0,
        health=None,
        memory_mb=32,
        entrypoint=["/bin/sh"],
        command=[SCRIPT, "seed"],
        env=env,
        files=[
            *files,
            ConfigFile(PLACEHOLDER_CERT, args.placeholder_cert, owner="0", mode="0444"),
            ConfigFile(PLACEHOLDER_KEY, args.placeholder_key, secret=True, owner="0", mode="0400"),
        ],
        volumes=[
            DataVolume(CERTS_VOLUME, DATA_DIR),  # the ACME account lives here: protected
            DataVolume(WEBROOT_VOLUME, WEBROOT, persistent=False),
        ],
        one_shot=True,
    )


def acme_client_spec(args: AcmeArgs, nginx: str, depends_on: pulumi.Resource) -> ServiceSpec:
    files, env = _common(args)
    return ServiceSpec(
        name="acme",
        image=args.image,
        port=0,
        health=HealthProbe(["test", "-s", f"{DATA_DIR}/live/tls.crt"]),
        memory_mb=64,
        entrypoint=["/bin/sh"],
        command=[SCRIPT, "loop"],
        env=env,
        files=files,
        shared_volumes=[
            SharedVolume(SEED, CERTS_VOLUME, DATA_DIR),
            SharedVolume(SEED, WEBROOT_VOLUME, WEBROOT),
        ],
        # egress to the ACME directory; HTTP-01 arrives at nginx, not here
        networks=("edge",),
        pid_namespace_of=nginx,
        depends_on=(depends_on,),
    )


class AcmeSeed(pulumi.ComponentResource):
    """The certificate and webroot volumes, with a placeholder pair until the first issuance."""

    def __init__(
        self,
        name: str,
        args: AcmeArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:acme:AcmeSeed", name, None, opts)
        platform.deploy(acme_seed_spec(args), parent=self)
        self.register_outputs({"domain": args.domain})


class AcmeClient(pulumi.ComponentResource):
    """lego's issue-and-renew loop, reloading nginx (whose PID namespace it joins)."""

    def __init__(
        self,
        name: str,
        args: AcmeArgs,
        nginx: str,
        depends_on: pulumi.Resource,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:acme:AcmeClient", name, None, opts)
        platform.deploy(acme_client_spec(args, nginx, depends_on), parent=self)
        self.register_outputs({"domain": args.domain, "directory_url": args.directory_url})
