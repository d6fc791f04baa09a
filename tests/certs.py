"""Real self-signed certificates for tests (cryptography), in PEM: one place that builds them."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, as nginx and the tls provider expect it."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def self_signed(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    valid_for: datetime.timedelta,
    valid_since: datetime.timedelta = datetime.timedelta(0),
    alt_names: Sequence[x509.GeneralName] = (),
) -> str:
    """A certificate for `common_name` signed by its own `key`, valid from `valid_since` ago
    until `valid_for` from now, with `alt_names` (if any) as subjectAltName."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - valid_since)
        .not_valid_after(now + valid_for)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
