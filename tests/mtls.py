"""Client certificates for the auth-tls tests: CAs, client leaves (valid, expired, wrong CA,
revoked, another CN), CRLs and the auth-tls Secret, all generated at test time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import certs
from certs import Issued


def client_leaf(common_name: str, issuer: Issued, *, expired: bool = False, organization: str | None = None
                ) -> Issued:
    """A client certificate (extendedKeyUsage clientAuth) for ``common_name``, signed by ``issuer``."""
    key = certs.ec_key()
    now = datetime.now(timezone.utc)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    not_before, not_after = ((now - timedelta(days=60), now - timedelta(days=1)) if expired
                             else (now - timedelta(days=1), now + timedelta(days=30)))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(certificate, key)


def crl(issuer: Issued, *revoked: Issued) -> bytes:
    """A PEM CRL of ``issuer`` revoking ``revoked``."""
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - timedelta(days=1))
        .next_update(now + timedelta(days=30))
    )
    for leaf in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(leaf.cert.serial_number)
            .revocation_date(now - timedelta(hours=1)).build())
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass
class World:
    """A CA with a CRL, a second CA, and client certificates of every kind."""

    ca: Issued
    other_ca: Issued
    valid: Issued
    expired: Issued
    wrong_ca: Issued
    revoked: Issued
    other_cn: Issued
    crl: bytes


def make_world() -> World:
    ca = certs.make_ca("mtls test CA")
    other_ca = certs.make_ca("another CA")
    revoked = client_leaf("revoked-client", ca)
    return World(
        ca=ca,
        other_ca=other_ca,
        valid=client_leaf("authtls", ca, organization="Foo, Inc."),
        expired=client_leaf("expired-client", ca, expired=True),
        wrong_ca=client_leaf("authtls", other_ca),
        revoked=revoked,
        other_cn=client_leaf("someone-else", ca),
        crl=crl(ca, revoked),
    )
