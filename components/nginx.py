"""nginx: the only published service; TLS termination and reverse proxy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.acme import CERTS_VOLUME, SEED, WEBROOT_VOLUME
from components.render.nginx_conf import (
    ACME_DIR,
    ACME_WEBROOT,
    STUB_STATUS_PORT,
    TLS_CERT_PATH,
    TLS_KEY_PATH,
    NginxSettings,
    render_nginx_conf,
)
from components.spec import (
    ConfigFile,
    ConfigReload,
    HealthProbe,
    Platform,
    PublishedPort,
    ServiceSpec,
    SharedVolume,
)

CONF_DIR = "/etc/nginx"


@dataclass(frozen=True)
class NginxArgs:
    image: str
    memory_mb: int
    settings: NginxSettings
    http_port: int
    https_port: int
    certificate_pem: pulumi.Input[str]
    private_key_pem: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()


def nginx_spec(args: NginxArgs) -> ServiceSpec:
    tls_files = [
        ConfigFile(f"{CONF_DIR}/{TLS_CERT_PATH}", args.certificate_pem),
        # the master (root) reads the key before it starts the workers
        ConfigFile(
            f"{CONF_DIR}/{TLS_KEY_PATH}",
            args.private_key_pem,
            secret=True,
            owner="0",
            mode="0400",
        ),
    ]
    acme_volumes: list[SharedVolume] = []
    if args.settings.acme:
        # the ACME client's files instead (components/acme.py), read-only here
        tls_files = []
        acme_volumes = [
            SharedVolume(SEED, CERTS_VOLUME, ACME_DIR, read_only=True),
            SharedVolume(SEED, WEBROOT_VOLUME, ACME_WEBROOT, read_only=True),
        ]
    return ServiceSpec(
        name="nginx",
        image=args.image,
        port=443,
        files=[
            ConfigFile(f"{CONF_DIR}/nginx.conf", render_nginx_conf(args.settings)),
            *tls_files,
        ],
        shared_volumes=acme_volumes,
        health=HealthProbe(
            ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{STUB_STATUS_PORT}/healthz"]
        ),
        memory_mb=args.memory_mb,
        networks=("backend", "edge"),
        published=[
            PublishedPort(80, args.http_port),
            PublishedPort(443, args.https_port),
        ],
        depends_on=args.depends_on,
        # The master binds 80/443 and chowns its cache as root; workers run as user nginx.
        capabilities=("CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"),
        # The image's entry point ends in `exec nginx`: the master is PID 1; SIGHUP reloads.
        reload=ConfigReload(directory=CONF_DIR, check=("nginx", "-t", "-q"), process="nginx"),
    )


class Nginx(pulumi.ComponentResource):
    public_url: pulumi.Output[str]
    stub_status_address: str

    def __init__(
        self,
        name: str,
        args: NginxArgs,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:nginx:Nginx", name, None, opts)
        spec = nginx_spec(args)
        platform.deploy(spec, parent=self)
        suffix = "" if args.https_port == 443 else f":{args.https_port}"
        self.public_url = pulumi.Output.from_input(f"https://{args.settings.server_name}{suffix}")
        self.stub_status_address = f"{spec.name}:{STUB_STATUS_PORT}"
        self.register_outputs({"public_url": self.public_url})
