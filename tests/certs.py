"""Throw-away certificates for tests: CAs, leaves, wildcards, expired and mismatched pairs.

Everything is generated with ``cryptography`` at test time; nothing is committed. RSA keys
are slow to make, so a few are generated once per process and reused.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingressd.config.model import ObjectRef, SecretData

TLS_SECRET_TYPE = "kubernetes.io/tls"


@functools.lru_cache(maxsize=None)
def rsa_key(slot: int = 0) -> rsa.RSAPrivateKey:
    """An RSA-2048 key; the same one for the same ``slot`` within a test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_key(kind: str = "ec", slot: int | None = None) -> Any:
    if kind == "rsa":
        return rsa_key(slot if slot is not None else 0)
    if kind == "ec":
        return ec_key()
    raise ValueError(kind)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, with the PEM forms a Secret may hold."""

    cert: x509.Certificate
    key: Any

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def key_pem(self, form: str = "pkcs8") -> bytes:
        """``pkcs8`` (BEGIN PRIVATE KEY), or the traditional form: ``pkcs1`` for RSA
        (BEGIN RSA PRIVATE KEY), ``sec1`` for EC (BEGIN EC PRIVATE KEY)."""
        private_format = {
            "pkcs8": serialization.PrivateFormat.PKCS8,
            "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
            "sec1": serialization.PrivateFormat.TraditionalOpenSSL,
        }[form]
        return self.key.private_bytes(
            serialization.Encoding.PEM, private_format, serialization.NoEncryption()
        )

    def encrypted_key_pem(self, password: bytes = b"secret") -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "ingressd test CA", issuer: Issued | None = None) -> Issued:
    """A root CA, or an intermediate when ``issuer`` is given."""
    key = ec_key()
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    signer = issuer.key if issuer else key
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_leaf(
    *names: str,
    issuer: Issued | None = None,
    key: Any = None,
    kind: str = "ec",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    common_name: str | None = None,
    san: bool = True,
) -> Issued:
    """A server certificate for ``names`` (DNS SANs), signed by ``issuer`` (self-signed
    when None). ``kind`` is ``ec`` (P-256) or ``rsa`` (2048) unless ``key`` is given."""
    key = key if key is not None else new_key(kind)
    now = datetime.now(timezone.utc)
    not_before = not_before or now - timedelta(days=1)
    not_after = not_after or now + timedelta(days=30)
    subject = _name(common_name or (names[0] if names else "ingressd test leaf"))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    )
    if san and names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), False
        )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def make_expired(*names: str, issuer: Issued | None = None, kind: str = "ec") -> Issued:
    now = datetime.now(timezone.utc)
    return make_leaf(
        *names,
        issuer=issuer,
        kind=kind,
        not_before=now - timedelta(days=60),
        not_after=now - timedelta(days=1),
    )


def make_mismatched(*names: str, issuer: Issued | None = None) -> tuple[bytes, bytes]:
    """A (tls.crt, tls.key) pair whose key belongs to another certificate."""
    cert = make_leaf(*names, issuer=issuer)
    other = make_leaf(*names, issuer=issuer)
    return cert.cert_pem, other.key_pem()


def chain_pem(leaf: Issued, *intermediates: Issued) -> bytes:
    return leaf.cert_pem + b"".join(i.cert_pem for i in intermediates)


def secret_data(
    namespace: str,
    name: str,
    crt: bytes | None,
    key: bytes | None,
    type: str = TLS_SECRET_TYPE,
    **extra: bytes,
) -> SecretData:
    """The model's SecretData (decoded bytes) for a TLS Secret; None leaves a key out."""
    data = []
    if crt is not None:
        data.append(("tls.crt", crt))
    if key is not None:
        data.append(("tls.key", key))
    data.extend(extra.items())
    return SecretData(ObjectRef("Secret", namespace, name), type, tuple(sorted(data)))


def issued_secret(namespace: str, name: str, issued: Issued, *chain: Issued, form: str = "pkcs8") -> SecretData:
    return secret_data(namespace, name, chain_pem(issued, *chain), issued.key_pem(form))


def secret_manifest(
    namespace: str, name: str, crt: bytes, key: bytes, type: str = TLS_SECRET_TYPE
) -> dict[str, Any]:
    """A Kubernetes Secret object (base64 data), as the API server would return it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": namespace, "name": name},
        "type": type,
        "data": {
            "tls.crt": base64.b64encode(crt).decode("ascii"),
            "tls.key": base64.b64encode(key).decode("ascii"),
        },
    }
