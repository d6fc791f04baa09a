"""The edge's TLS certificate: self-signed (pulumi-tls) or provided through secret config."""

from __future__ import annotations

import pulumi
import pulumi_tls as tls


class TlsCertificate(pulumi.ComponentResource):
    """A certificate and key for nginx; the key is a secret wherever it flows."""

    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        domain: str,
        provided_certificate: str = "",
        provided_private_key: pulumi.Output[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("infra:tls:TlsCertificate", name, None, opts)
        if provided_certificate and provided_private_key is not None:
            self.certificate_pem = pulumi.Output.from_input(provided_certificate)
            self.private_key_pem = pulumi.Output.secret(provided_private_key)
        else:
            child = pulumi.ResourceOptions(parent=self)
            key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
            cert = tls.SelfSignedCert(
                f"{name}-cert",
                private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=domain, organization="data-platform"
                ),
                dns_names=[domain],
                validity_period_hours=24 * 90,
                early_renewal_hours=24 * 30,  # `pulumi up` renews it in its last 30 days
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
                opts=child,
            )
            self.certificate_pem = cert.cert_pem
            self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certificate_pem": self.certificate_pem})
