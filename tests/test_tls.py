"""CertificateStore: validation and selection without sockets, handshakes in memory, then real
TLS handshakes.

The in-memory handshakes pump bytes between the store's server connection and an ``ssl``
``SSLObject`` (no reactor, no socket). The real handshake tests listen on 127.0.0.1 with the
real reactor (trial ``TestCase``s that return Deferreds) and connect with Python's ``ssl``
module and ``openssl s_client``, both run in threads so the reactor keeps serving; each is
bounded by a socket or process timeout.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.threads import deferToThread
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from zope.interface import implementer

from ingressd.tls import certificates as tls
from ingressd.config.model import Config, ObjectRef, Rejection, TLSHost
from ingressd.tls.certificates import DEFAULT_CERTIFICATE_CN, Certificate, CertificateError, CertificateStore
from ingressd.tls.client_hello import server_name as read_server_name
from ingressd.tls.facts import ObservedTLSFactory
import certs

INGRESS = ObjectRef("Ingress", "web", "shop")
OTHER_INGRESS = ObjectRef("Ingress", "web", "blog")
CLIENT_TIMEOUT = 5.0


def secret_ref(name: str, namespace: str = "web") -> ObjectRef:
    return ObjectRef("Secret", namespace, name)


def tls_host(host: str, secret: str, ingress: ObjectRef = INGRESS) -> TLSHost:
    return TLSHost(host, secret_ref(secret), ingress)


def config(hosts: list[TLSHost], secrets: list[Any]) -> Config:
    return Config(tls_hosts=tuple(hosts), secrets=tuple(secrets))


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = certs.make_ca()
    intermediate = certs.make_ca("ingressd test intermediate", issuer=ca)
    return {
        "ca": ca,
        "intermediate": intermediate,
        "a": certs.make_leaf("a.example", issuer=intermediate, kind="rsa"),
        "b": certs.make_leaf("b.example", issuer=ca),
        "wild": certs.make_leaf("*.w.example", issuer=ca),
    }


# -- without sockets ------------------------------------------------------------------------


def test_default_is_self_signed_ecdsa_for_localhost() -> None:
    store = CertificateStore()
    default = store.default
    assert default.source == "self-signed"
    assert DEFAULT_CERTIFICATE_CN in default.subject
    assert default.names == ("localhost",)
    assert store.certificate_for(None) is default
    assert store.certificate_for(b"anything.example") is default


def test_selection_exact_wildcard_default(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    rejections = store.update(
        config(
            [tls_host("a.example", "a"), tls_host("*.w.example", "wild"), tls_host("x.w.example", "b")],
            [
                certs.issued_secret("web", "a", pki["a"], pki["intermediate"]),
                certs.issued_secret("web", "wild", pki["wild"]),
                certs.issued_secret("web", "b", pki["b"]),
            ],
        )
    )
    assert rejections == []
    source = lambda name: store.certificate_for(name).source  # noqa: E731
    assert source(b"a.example") == "Secret web/a"
    assert source("A.Example.") == "Secret web/a"  # case-insensitive, trailing dot
    assert source(b"y.w.example") == "Secret web/wild"
    assert source(b"x.w.example") == "Secret web/b"  # exact beats wildcard
    assert source(b"deep.y.w.example") == "self-signed"  # a wildcard covers one label
    assert source(b"w.example") == "self-signed"
    assert source(b"unknown.example") == "self-signed"
    assert source(None) == "self-signed"
    # b.example's certificate does not name x.w.example: served, with a warning
    assert any("does not cover x.w.example" in w.reason for w in store.warnings)


@pytest.mark.parametrize(
    "kind,form", [("rsa", "pkcs1"), ("rsa", "pkcs8"), ("ec", "sec1"), ("ec", "pkcs8")]
)
def test_key_types_and_formats(kind: str, form: str) -> None:
    leaf = certs.make_leaf("k.example", kind=kind)
    pem = leaf.key_pem(form)
    assert (b"BEGIN PRIVATE KEY" in pem) == (form == "pkcs8")
    store = CertificateStore()
    secret = certs.secret_data("web", "k", leaf.cert_pem, pem)
    assert store.update(config([tls_host("k.example", "k")], [secret])) == []
    assert store.certificate_for("k.example").fingerprint == leaf.fingerprint


def _rejected(store: CertificateStore, secret: Any, host: str = "bad.example") -> str:
    rejections = store.update(config([tls_host(host, "bad")], [secret] if secret else []))
    assert len(rejections) == 1, rejections
    assert rejections[0].ref == INGRESS
    assert store.certificate_for(host) is store.default
    return rejections[0].reason


def test_unusable_secrets_are_rejected_naming_ingress_secret_and_problem(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    good = certs.make_leaf("bad.example")
    cases = {
        "the Secret does not exist": None,
        "has no tls.crt": certs.secret_data("web", "bad", None, good.key_pem()),
        "has no tls.key": certs.secret_data("web", "bad", good.cert_pem, None),
        "tls.crt holds no readable PEM certificate": certs.secret_data(
            "web", "bad", b"-----BEGIN CERTIFICATE-----\nnot base64\n", good.key_pem()
        ),
        "tls.key holds no readable PEM private key": certs.secret_data(
            "web", "bad", good.cert_pem, b"garbage"
        ),
        "tls.key is encrypted": certs.secret_data(
            "web", "bad", good.cert_pem, good.encrypted_key_pem()
        ),
        "tls.key does not match the certificate": certs.secret_data(
            "web", "bad", *certs.make_mismatched("bad.example")
        ),
        "expired on": certs.issued_secret("web", "bad", certs.make_expired("bad.example")),
        "must start with the certificate of tls.key (found at position 2)": certs.secret_data(
            "web", "bad", certs.chain_pem(pki["intermediate"], good), good.key_pem()
        ),
    }
    for problem, secret in cases.items():
        reason = _rejected(store, secret)
        assert "Secret web/bad" in reason and "bad.example" in reason, reason
        assert problem in reason, (problem, reason)
        assert "serving the default certificate" in reason


def test_chain_out_of_order_is_a_warning(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    leaf = certs.make_leaf("c.example", issuer=pki["intermediate"])
    secret = certs.secret_data("web", "c", certs.chain_pem(leaf, pki["ca"], pki["intermediate"]), leaf.key_pem())
    assert store.update(config([tls_host("c.example", "c")], [secret])) == []
    assert store.certificate_for("c.example").secret == secret_ref("c")
    assert store.warnings == (
        Rejection(
            INGRESS,
            "Secret web/c: the certificates in tls.crt are not a chain in order (each should be issued by the next)",
        ),
    )


def test_unchanged_secret_is_reused_and_changed_one_rebuilt(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    secret_a = certs.issued_secret("web", "a", pki["a"], pki["intermediate"])
    secret_b = certs.issued_secret("web", "b", pki["b"])
    store.update(config([tls_host("a.example", "a"), tls_host("b.example", "b")], [secret_a, secret_b]))
    first_a, first_b = store.certificate_for("a.example"), store.certificate_for("b.example")
    new_b = certs.make_leaf("b.example", issuer=pki["ca"])
    store.update(
        config(
            [tls_host("a.example", "a"), tls_host("b.example", "b")],
            [secret_a, certs.issued_secret("web", "b", new_b)],
        )
    )
    assert store.certificate_for("a.example") is first_a  # same object, same SSL context
    assert store.certificate_for("a.example").context is first_a.context
    assert store.certificate_for("b.example") is not first_b
    assert store.certificate_for("b.example").fingerprint == new_b.fingerprint


def test_one_secret_for_several_hosts_is_built_once(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    leaf = certs.make_leaf("one.example", "two.example")
    store.update(
        config(
            [tls_host("one.example", "s"), tls_host("two.example", "s", OTHER_INGRESS)],
            [certs.issued_secret("web", "s", leaf)],
        )
    )
    assert store.certificate_for("one.example") is store.certificate_for("two.example")


def test_host_claimed_by_two_secrets_first_wins_with_warning(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    store.update(
        config(
            [tls_host("b.example", "b"), tls_host("b.example", "a", OTHER_INGRESS)],
            [
                certs.issued_secret("web", "a", pki["a"], pki["intermediate"]),
                certs.issued_secret("web", "b", pki["b"]),
            ],
        )
    )
    assert store.certificate_for("b.example").secret == secret_ref("b")
    [warning] = [w for w in store.warnings if w.ref == OTHER_INGRESS]
    assert "already served with Secret web/b" in warning.reason


def test_expiry_uses_the_clock_and_expiries_reports_not_after(pki: dict[str, Any]) -> None:
    now = [datetime.now(timezone.utc)]
    store = CertificateStore(now=lambda: now[0])
    hosts = [tls_host("b.example", "b")]
    secrets = [certs.issued_secret("web", "b", pki["b"])]
    assert store.update(config(hosts, secrets)) == []
    facts = store.expiries()
    assert facts[("web/b", "b.example")] == pki["b"].cert.not_valid_after_utc
    assert ("self-signed", "") in facts
    now[0] = pki["b"].cert.not_valid_after_utc + timedelta(seconds=1)
    [rejection] = store.update(config(hosts, secrets))
    assert "expired" in rejection.reason
    assert store.certificate_for("b.example") is store.default
    assert ("web/b", "b.example") not in store.expiries()


def test_default_certificate_from_secret(pki: dict[str, Any]) -> None:
    leaf = certs.make_leaf("default.example", issuer=pki["ca"])
    secret = certs.issued_secret("ingress", "default-cert", leaf)
    store = CertificateStore(secret)
    assert store.default.secret == secret.ref
    assert store.certificate_for(None).fingerprint == leaf.fingerprint
    # the default Secret changes: the default follows; a broken change keeps the old one
    rotated = certs.make_leaf("default.example", issuer=pki["ca"])
    assert store.update(Config(secrets=(certs.issued_secret("ingress", "default-cert", rotated),))) == []
    assert store.default.fingerprint == rotated.fingerprint
    broken = certs.secret_data("ingress", "default-cert", rotated.cert_pem, b"nope")
    [rejection] = store.update(Config(secrets=(broken,)))
    assert rejection.ref == secret.ref and "previous one is still served" in rejection.reason
    assert store.default.fingerprint == rotated.fingerprint


def test_unusable_default_certificate_fails_at_start() -> None:
    expired = certs.make_expired("default.example")
    with pytest.raises(CertificateError, match="default certificate Secret ingress/d: .*expired"):
        CertificateStore(certs.issued_secret("ingress", "d", expired))


def test_update_never_raises() -> None:
    store = CertificateStore()
    odd = Config(tls_hosts=(tls_host("*.*.example", "x"), tls_host("", "y")))
    [rejection] = store.update(odd)
    assert "leading '*.'" in rejection.reason
    assert store.update(None) and store.certificate_for(None) is store.default  # type: ignore[arg-type]


def test_update_with_a_bug_keeps_the_previous_certificates(pki: dict[str, Any]) -> None:
    store = CertificateStore()
    assert store.update(config([tls_host("b.example", "b")], [certs.issued_secret("web", "b", pki["b"])])) == []
    before = store.certificate_for("b.example")
    assert store.update(None) == [  # type: ignore[arg-type]
        Rejection(
            ObjectRef("Config", "", "tls"),
            "internal error while building the certificate map; the previous certificates are still served",
        )
    ]
    assert store.certificate_for("b.example") is before


def test_an_unexpected_error_with_one_secret_rejects_that_secret_only(
    pki: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = certs.make_leaf("odd.example")
    parse = tls.parse_key_pair

    def surprising(crt: bytes, key: bytes) -> Any:
        if crt == odd.cert_pem:
            raise RuntimeError("surprise")
        return parse(crt, key)

    monkeypatch.setattr(tls, "parse_key_pair", surprising)
    store = CertificateStore()
    rejections = store.update(
        config(
            [tls_host("odd.example", "odd"), tls_host("b.example", "b")],
            [certs.issued_secret("web", "odd", odd), certs.issued_secret("web", "b", pki["b"])],
        )
    )
    assert rejections == [
        Rejection(
            INGRESS,
            "TLS Secret web/odd for odd.example: cannot be used (RuntimeError('surprise')); "
            "serving the default certificate",
        )
    ]
    assert store.certificate_for("odd.example") is store.default
    assert store.certificate_for("b.example").fingerprint == pki["b"].fingerprint


# -- which names a certificate covers, and how TLS hosts are read ---------------------------


def _covering(*names: str) -> Certificate:
    now = datetime.now(timezone.utc)
    return Certificate("test", None, "", names, now, now, "")


@pytest.mark.parametrize(
    "names, host, covered",
    [
        (("a.example",), "a.example", True),
        (("a.example",), "A.Example", True),
        (("a.example",), "b.example", False),
        (("a.example",), "x.a.example", False),
        (("*.w.example",), "x.w.example", True),
        (("*.w.example",), "X.W.Example", True),
        (("*.w.example",), "w.example", False),  # the wildcard stands for one label, not none
        (("*.w.example",), "y.x.w.example", False),  # nor for two
        (("*.w.example",), "x.other.example", False),
        (("*.w.example",), "xw.example", False),
        (("*.w.example",), "localhost", False),
        (("*.w.example",), "*.w.example", True),  # a wildcard TLS host needs the same wildcard
        (("*.example",), "*.w.example", False),
        (("x.w.example",), "*.w.example", False),
        (("b.example", "*.w.example"), "x.w.example", True),  # any of its names
        ((), "a.example", False),
    ],
)
def test_which_hosts_a_certificate_covers(names: tuple[str, ...], host: str, covered: bool) -> None:
    assert _covering(*names).covers(host) is covered


def _nameless_leaf() -> certs.Issued:
    """A certificate without subjectAltName or common name: it names no host."""
    key = certs.ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ingressd tests")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certs.Issued(cert, key)


def test_names_come_from_subject_alt_names_or_else_the_common_name() -> None:
    san = certs.make_leaf("Dot.Example.", "other.example")  # a fully qualified name, in capitals
    cn_only = certs.make_leaf(common_name="cn.example", san=False)
    store = CertificateStore()
    rejections = store.update(
        config(
            [tls_host("dot.example", "san"), tls_host("cn.example", "cn")],
            [certs.issued_secret("web", "san", san), certs.issued_secret("web", "cn", cn_only)],
        )
    )
    assert rejections == [] and store.warnings == ()
    assert store.certificate_for("dot.example").names == ("dot.example", "other.example")
    assert store.certificate_for("cn.example").names == ("cn.example",)
    assert store.certificate_for("cn.example").fingerprint == cn_only.fingerprint


def test_tls_hosts_are_read_whatever_their_case_spaces_and_trailing_dot() -> None:
    leaf = certs.make_leaf("a.example")
    store = CertificateStore()
    assert store.update(config([tls_host(" A.Example. ", "a")], [certs.issued_secret("web", "a", leaf)])) == []
    assert store.warnings == ()
    assert store.certificate_for("a.example").fingerprint == leaf.fingerprint
    assert sorted(store.expiries()) == [("self-signed", ""), ("web/a", "a.example")]


def test_a_tls_host_that_cannot_be_served_does_not_stop_the_next(pki: dict[str, Any]) -> None:
    c = certs.make_leaf("c.example")
    store = CertificateStore()
    rejections = store.update(
        config(
            [
                tls_host("", "c"),
                tls_host("*.*.example", "c"),
                tls_host("b.example", "b"),
                tls_host("b.example", "c", OTHER_INGRESS),
                tls_host("c.example", "c"),
            ],
            [certs.issued_secret("web", "b", pki["b"]), certs.issued_secret("web", "c", c)],
        )
    )
    assert rejections == [
        Rejection(
            INGRESS,
            "TLS Secret web/c for *.*.example: only a leading '*.' wildcard is allowed; "
            "serving the default certificate",
        )
    ]
    assert store.warnings == (
        Rejection(
            OTHER_INGRESS, "TLS host b.example is already served with Secret web/b; Secret web/c is not used for it"
        ),
    )
    assert store.certificate_for("b.example").fingerprint == pki["b"].fingerprint
    assert store.certificate_for("c.example").fingerprint == c.fingerprint


def test_warnings_and_rejections_name_the_ingress_the_secret_and_the_hosts() -> None:
    two = certs.make_leaf("one.example", "two.example")
    store = CertificateStore()
    rejections = store.update(
        config(
            [
                tls_host("three.example", "two"),
                tls_host("n.example", "nameless"),
                tls_host("m1.example", "missing"),
                tls_host("m2.example", "missing"),
            ],
            [certs.issued_secret("web", "two", two), certs.issued_secret("web", "nameless", _nameless_leaf())],
        )
    )
    assert rejections == [
        Rejection(
            INGRESS,
            "TLS Secret web/missing for m1.example, m2.example: the Secret does not exist; "
            "serving the default certificate",
        )
    ]
    # served all the same: the client decides whether it accepts the certificate
    assert store.warnings == (
        Rejection(
            INGRESS,
            "Secret web/two: the certificate does not cover three.example (it names one.example, two.example)",
        ),
        Rejection(INGRESS, "Secret web/nameless: the certificate does not cover n.example (it names nothing)"),
    )
    assert store.certificate_for("three.example").fingerprint == two.fingerprint


# -- validity in time, keys, chains ---------------------------------------------------------


def test_a_certificate_expires_at_its_not_after(pki: dict[str, Any]) -> None:
    not_after = pki["b"].cert.not_valid_after_utc
    now = [not_after - timedelta(seconds=1)]
    store = CertificateStore(now=lambda: now[0])
    hosts, secrets = [tls_host("b.example", "b")], [certs.issued_secret("web", "b", pki["b"])]
    assert store.update(config(hosts, secrets)) == []
    certificate = store.certificate_for("b.example")
    assert (certificate.not_before, certificate.not_after) == (pki["b"].cert.not_valid_before_utc, not_after)
    now[0] = not_after
    [rejection] = store.update(config(hosts, secrets))
    assert rejection.reason == (
        f"TLS Secret web/b for b.example: the certificate expired on {not_after:%Y-%m-%d %H:%M:%S} UTC; "
        "serving the default certificate"
    )
    assert store.certificate_for("b.example") is store.default


def test_a_certificate_not_yet_valid_is_served_with_a_warning() -> None:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    leaf = certs.make_leaf("f.example", not_before=start)
    hosts, secrets = [tls_host("f.example", "f")], [certs.issued_secret("web", "f", leaf)]
    early = CertificateStore(now=lambda: start - timedelta(seconds=1))
    assert early.update(config(hosts, secrets)) == []
    assert early.certificate_for("f.example").fingerprint == leaf.fingerprint
    assert early.warnings == (
        Rejection(INGRESS, f"Secret web/f: the certificate is not valid before {start:%Y-%m-%d %H:%M:%S} UTC"),
    )
    on_time = CertificateStore(now=lambda: start)
    assert on_time.update(config(hosts, secrets)) == [] and on_time.warnings == ()


# A certificate whose PEM did not change is reused: whether it is valid yet is asked anew.
def test_the_not_yet_valid_warning_ends_when_the_certificate_becomes_valid() -> None:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    leaf = certs.make_leaf("f.example", not_before=start)
    hosts, secrets = [tls_host("f.example", "f")], [certs.issued_secret("web", "f", leaf)]
    now = [start - timedelta(seconds=1)]
    store = CertificateStore(now=lambda: now[0])
    assert store.update(config(hosts, secrets)) == [] and store.warnings
    now[0] = start + timedelta(hours=1)
    assert store.update(config(hosts, secrets)) == []
    assert store.warnings == ()


def test_a_host_served_with_the_default_secret_gets_the_warnings_of_now() -> None:
    """The default Secret may also be a host's: that host's certificate is judged at each update,
    not when the default was loaded."""
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    leaf = certs.make_leaf("shared.example", not_before=start)
    secret = certs.issued_secret("ingress", "shared", leaf)
    now = [start - timedelta(minutes=1)]
    store = CertificateStore(secret, now=lambda: now[0])  # loaded before its notBefore
    now[0] = start + timedelta(minutes=1)
    shared = Config(tls_hosts=(TLSHost("shared.example", secret.ref, INGRESS),), secrets=(secret,))
    for _ in range(2):  # built, then reused
        assert store.update(shared) == []
        assert store.warnings == ()
        assert store.certificate_for("shared.example").fingerprint == leaf.fingerprint


@pytest.mark.parametrize("curve, bits, accepted", [(ec.SECP224R1(), 224, True), (ec.SECP192R1(), 192, False)])
def test_ecdsa_keys_need_224_bits(curve: ec.EllipticCurve, bits: int, accepted: bool) -> None:
    leaf = certs.make_leaf("bad.example", key=ec.generate_private_key(curve))
    secret = certs.issued_secret("web", "bad", leaf)
    if accepted:
        store = CertificateStore()
        assert store.update(config([tls_host("bad.example", "bad")], [secret])) == []
        assert store.certificate_for("bad.example").fingerprint == leaf.fingerprint
    else:
        reason = _rejected(CertificateStore(), secret)
        assert f"the ECDSA key has {bits} bits; at least 224 are needed" in reason


@pytest.mark.parametrize(
    "private_key", [ed25519.Ed25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()],
    ids=lambda key: type(key).__name__,  # the same in every xdist worker (a repr names an address)
)
def test_keys_other_than_rsa_and_ecdsa_are_rejected(private_key: Any) -> None:
    leaf = certs.make_leaf("bad.example")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    reason = _rejected(CertificateStore(), certs.secret_data("web", "bad", leaf.cert_pem, pem))
    assert f"tls.key is a {type(private_key).__name__}; RSA or ECDSA expected" in reason


def test_a_chain_in_order_has_no_warning(pki: dict[str, Any]) -> None:
    leaf = certs.make_leaf("c.example", issuer=pki["intermediate"])
    store = CertificateStore()
    secret = certs.issued_secret("web", "c", leaf, pki["intermediate"], pki["ca"])
    assert store.update(config([tls_host("c.example", "c")], [secret])) == []
    assert store.warnings == () and store.certificate_for("c.example").notes == ()


# -- the default certificate ----------------------------------------------------------------


def test_a_new_store_serves_its_generated_default_only() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    store = CertificateStore(now=lambda: now)
    assert store.alpn_protocols == (b"http/1.1",)
    assert CertificateStore(alpn=True).alpn_protocols == (b"h2", b"http/1.1")
    assert store.warnings == ()
    default = store.default
    assert (default.not_before, default.not_after) == (now - timedelta(hours=1), now + timedelta(days=365, hours=-1))
    assert store.expiries() == {("self-signed", ""): default.not_after}
    # a leaf for localhost, never a CA
    leaf = SSL.Connection(default.context, None).get_certificate().to_cryptography()
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    alt_names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not alt_names.critical and alt_names.value.get_values_for_type(x509.DNSName) == ["localhost"]


def test_the_default_context_is_made_once_when_the_store_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made at start (an unusable default fails there, not in a handshake), then shared by
    every connection."""
    made = []

    class Recording(CertificateOptions):
        def getContext(self) -> SSL.Context:
            context = super().getContext()
            made.append(context)
            return context

    monkeypatch.setattr(tls, "CertificateOptions", Recording)
    store = CertificateStore()
    assert len(made) == 1
    first = store.server_options().serverConnectionForTLS(None)
    second = store.server_options().serverConnectionForTLS(None)
    assert first.get_context() is second.get_context() is made[0]
    assert len(made) == 1


def test_alpn_with_a_protocol_that_has_no_wrapped_factory_is_http11() -> None:
    store = CertificateStore(alpn=True)

    @dataclass
    class Connection:
        app_data: Any

        def get_app_data(self) -> Any:
            return self.app_data

    for app_data in (None, object(), SimpleNamespace(factory=object())):
        assert store._select_alpn(Connection(app_data), [b"h2", b"http/1.1"]) == b"http/1.1"


# -- handshakes in memory (no sockets) ------------------------------------------------------


def memory_client(*, tickets: bool = True) -> ssl.SSLContext:
    """A TLS 1.2 client that accepts any certificate; without tickets it resumes by session id."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if not tickets:
        context.options |= ssl.OP_NO_TICKET
    return context


def memory_handshake(
    store: CertificateStore, server_name: str | None, context: ssl.SSLContext | None = None, session: Any = None
) -> ssl.SSLObject:
    """A handshake with the store's server side over memory buffers; the client's end.

    As on a listener: the server's connection is created once the client's ClientHello is
    there, on the context its SNI name picks (``client_hello.server_name``)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = (context or memory_client()).wrap_bio(incoming, outgoing, server_hostname=server_name, session=session)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    hint = SimpleNamespace(server_name_hint=read_server_name(hello))
    server = store.server_options().serverConnectionForTLS(hint)
    server.set_accept_state()
    server.bio_write(hello)
    for _ in range(4):  # a TLS 1.2 handshake takes two round trips
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sent = outgoing.read()
        if sent:
            server.bio_write(sent)
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            incoming.write(server.bio_read(65536))
        except SSL.WantReadError:
            pass
    client.do_handshake()  # raises unless done
    try:  # TLS 1.3: the session tickets come after the handshake
        client.read(1)
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
        pass
    server.shutdown()  # a clean close: OpenSSL drops the session of a connection freed without one
    return client


def served(store: CertificateStore, server_name: str | None) -> str:
    der = memory_handshake(store, server_name).getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


def test_with_a_default_secret_sni_still_picks_each_hosts_certificate(pki: dict[str, Any]) -> None:
    first = certs.make_leaf("default.example", issuer=pki["ca"])
    default_secret = certs.issued_secret("ingress", "default-cert", first)
    store = CertificateStore(default_secret)
    loaded = store.default
    hosts, b = [tls_host("b.example", "b")], certs.issued_secret("web", "b", pki["b"])
    assert store.update(config(hosts, [b, default_secret])) == []
    assert store.default is loaded  # the default Secret, unchanged: the same certificate and context stay
    assert served(store, "b.example") == pki["b"].fingerprint
    assert served(store, "unknown.example") == served(store, None) == first.fingerprint
    # changed: its replacement is served, and SNI still switches away from it
    rotated = certs.make_leaf("default.example", issuer=pki["ca"])
    assert store.update(config(hosts, [b, certs.issued_secret("ingress", "default-cert", rotated)])) == []
    assert served(store, None) == rotated.fingerprint
    assert served(store, "b.example") == pki["b"].fingerprint


def test_sessions_resume_by_session_id_too(pki: dict[str, Any]) -> None:
    """Clients without session tickets resume from the server's session cache (the host's own)."""
    store = CertificateStore()
    assert store.update(config([tls_host("b.example", "b")], [certs.issued_secret("web", "b", pki["b"])])) == []
    context = memory_client(tickets=False)
    first = memory_handshake(store, "b.example", context)
    assert memory_handshake(store, "b.example", context, first.session).session_reused
    first = memory_handshake(store, None, context)  # no SNI: the default context resumes nothing
    assert not memory_handshake(store, None, context, first.session).session_reused


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("tickets", [True, False])
def test_a_session_resumes_for_its_own_tls_host_only(pki: dict[str, Any], version, tickets) -> None:
    """RFC 6066 §3: a session is not resumed for another name (ids and tickets, TLS 1.2 and 1.3)."""
    store = CertificateStore()
    secrets = [certs.issued_secret("web", "a", pki["a"]), certs.issued_secret("web", "b", pki["b"]),
               certs.issued_secret("web", "w", pki["wild"])]
    hosts = [tls_host("a.example", "a"), tls_host("b.example", "b"), tls_host("*.w.example", "w"),
             tls_host("also-b.example", "b")]
    assert store.update(config(hosts, secrets)) == []
    context = memory_client(tickets=tickets)
    context.minimum_version = context.maximum_version = version
    first = memory_handshake(store, "a.example", context)
    assert memory_handshake(store, "a.example", context, first.session).session_reused
    for other in ("b.example", "unknown.example", "A.example.evil", None):
        assert not memory_handshake(store, other, context, first.session).session_reused, other
    # a host with its own TLS entry does not share sessions with another host of the same certificate
    first = memory_handshake(store, "b.example", context)
    assert not memory_handshake(store, "also-b.example", context, first.session).session_reused
    # the names of one wildcard host are that one host
    first = memory_handshake(store, "x.w.example", context)
    assert memory_handshake(store, "y.w.example", context, first.session).session_reused


# -- real handshakes ------------------------------------------------------------------------


class Echo(Protocol):
    def connectionMade(self) -> None:
        self.factory.connections[self] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Any) -> None:
        self.factory.connections.pop(self).callback(None)


class EchoFactory(Factory):
    protocol = Echo

    def __init__(self) -> None:
        self.connections: dict[Echo, defer.Deferred] = {}


@implementer(IProtocolNegotiationFactory)
class NegotiatingEchoFactory(EchoFactory):
    def __init__(self, protocols: tuple[bytes, ...] = (b"h2", b"http/1.1")) -> None:
        super().__init__()
        self.protocols = protocols

    def acceptableProtocols(self) -> list[bytes]:
        return list(self.protocols)


@dataclass
class Handshake:
    der: bytes
    version: str
    alpn: str | None
    session: Any
    reused: bool
    sock: Any = None

    @property
    def fingerprint(self) -> str:
        return x509.load_der_x509_certificate(self.der).fingerprint(hashes.SHA256()).hex()


def client_context(
    *, version: ssl.TLSVersion | None = None, alpn: list[str] | None = None, cadata: str | None = None
) -> ssl.SSLContext:
    if cadata is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=cadata)
    if version is not None:
        with warnings.catch_warnings():  # TLSVersion.TLSv1_1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client try; the server refuses
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def connect(
    port: int,
    server_name: str | None,
    context: ssl.SSLContext | None = None,
    session: Any = None,
    keep: bool = False,
) -> Handshake:
    """A blocking client (run in a thread): handshake, echo a line, report what it saw."""
    context = context or client_context()
    raw = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    try:
        sock = context.wrap_socket(raw, server_hostname=server_name, session=session)
        assert echo(sock, b"ping\n")
    except BaseException:
        raw.close()
        raise
    result = Handshake(
        sock.getpeercert(binary_form=True),
        sock.version(),
        sock.selected_alpn_protocol(),
        sock.session,
        sock.session_reused,
    )
    if keep:
        result.sock = sock
    else:
        sock.close()
    return result


def echo(sock: Any, line: bytes) -> bool:
    sock.sendall(line)
    received = b""
    for _ in range(100):  # bounded; each recv is bounded by the socket timeout
        chunk = sock.recv(1024)
        if not chunk:
            break
        received += chunk
        if received.endswith(b"\n"):
            break
    return received == line


@dataclass
class SClient:
    fingerprint: str | None
    alpn: str | None
    protocol: str | None
    output: str


def s_client(port: int, server_name: str | None, *args: str) -> SClient:
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", *args]
    command += ["-servername", server_name] if server_name else ["-noservername"]
    done = subprocess.run(command, input=b"", capture_output=True, timeout=10)
    output = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    fingerprint = None
    if pem:
        fingerprint = x509.load_pem_x509_certificate(pem.group(0).encode()).fingerprint(
            hashes.SHA256()
        ).hex()
    alpn = re.search(r"ALPN protocol: (\S+)", output)
    protocol = re.search(r"^New, (TLSv[0-9.]+), Cipher", output, re.M)
    return SClient(
        fingerprint, alpn and alpn.group(1), protocol and protocol.group(1), output
    )


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")


class _TLSServerCase(unittest.TestCase):
    """Listens on 127.0.0.1 with a CertificateStore; closes every connection at the end."""

    timeout = 20
    alpn = False

    def setUp(self) -> None:
        self.pki = {
            "ca": certs.make_ca(),
        }
        self.pki["intermediate"] = certs.make_ca("intermediate", issuer=self.pki["ca"])
        self.pki["a"] = certs.make_leaf("a.example", issuer=self.pki["intermediate"], kind="rsa")
        self.pki["b"] = certs.make_leaf("b.example", issuer=self.pki["ca"])
        self.pki["wild"] = certs.make_leaf("*.w.example", issuer=self.pki["ca"])
        self.store = CertificateStore(alpn=self.alpn)
        self.secrets = {
            "a": certs.issued_secret("web", "a", self.pki["a"], self.pki["intermediate"], form="pkcs1"),
            "b": certs.issued_secret("web", "b", self.pki["b"]),
            "wild": certs.issued_secret("web", "wild", self.pki["wild"]),
        }
        self.hosts = [tls_host("a.example", "a"), tls_host("b.example", "b"), tls_host("*.w.example", "wild")]
        assert self.store.update(config(self.hosts, list(self.secrets.values()))) == []
        self.factory = self.make_factory()
        self.port = self.listen(self.factory)

    def make_factory(self) -> EchoFactory:
        return NegotiatingEchoFactory()

    def listen(self, factory: EchoFactory) -> int:
        listening = reactor.listenTCP(
            0, ObservedTLSFactory(self.store.server_options(), False, factory, clock=reactor, hello_timeout=10),
            interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        self.addCleanup(self._close_all, factory)
        return listening.getHost().port

    def _close_all(self, factory: EchoFactory) -> defer.Deferred:
        waiting = list(factory.connections.values())
        for protocol in list(factory.connections):
            protocol.transport.abortConnection()
        return defer.gatherResults(waiting)

    def handshake(self, server_name: str | None, **kwargs: Any) -> defer.Deferred:
        return deferToThread(connect, self.port, server_name, **kwargs)

    def fingerprint(self, name: str) -> str:
        return self.pki[name].fingerprint


class SNISelection(_TLSServerCase):
    @defer.inlineCallbacks
    def test_ssl_module_gets_the_certificate_for_each_name(self):
        default = self.store.default.fingerprint
        expected = {
            "a.example": self.fingerprint("a"),
            "B.EXAMPLE": self.fingerprint("b"),  # two TLS hosts, two Secrets, one port
            "shop.w.example": self.fingerprint("wild"),
            "x.shop.w.example": default,
            "unknown.example": default,
            None: default,
        }
        for name, fingerprint in expected.items():
            result = yield self.handshake(name)
            self.assertEqual(result.fingerprint, fingerprint, name)

    @needs_openssl
    @defer.inlineCallbacks
    def test_openssl_s_client_gets_the_certificate_for_each_name(self):
        default = self.store.default.fingerprint
        expected = {
            "a.example": self.fingerprint("a"),
            "b.example": self.fingerprint("b"),
            "x.w.example": self.fingerprint("wild"),
            "unknown.example": default,
            None: default,
        }
        for name, fingerprint in expected.items():
            result = yield deferToThread(s_client, self.port, name)
            self.assertEqual(result.fingerprint, fingerprint, result.output)

    @defer.inlineCallbacks
    def test_chain_is_sent_and_verifies_against_the_ca(self):
        cadata = self.pki["ca"].cert_pem.decode()
        result = yield self.handshake("a.example", context=client_context(cadata=cadata))
        self.assertEqual(result.fingerprint, self.fingerprint("a"))

    @defer.inlineCallbacks
    def test_broken_secrets_fall_back_to_the_default_with_rejections(self):
        expired = certs.make_expired("b.example", issuer=self.pki["ca"])
        secrets = dict(self.secrets)
        secrets["b"] = certs.issued_secret("web", "b", expired)  # expired
        secrets["wild"] = certs.secret_data("web", "wild", *certs.make_mismatched("*.w.example"))
        del secrets["a"]  # missing
        hosts = self.hosts + [tls_host("c.example", "c", OTHER_INGRESS)]
        secrets["c"] = certs.secret_data("web", "c", b"-----BEGIN CERTIFICATE-----\nAAAA\n", b"x")
        rejections = self.store.update(config(hosts, list(secrets.values())))
        reasons = sorted(str(r) for r in rejections)
        self.assertEqual(len(reasons), 4, reasons)
        for text in ("Secret web/a for a.example: the Secret does not exist",
                     "Secret web/b for b.example: the certificate expired",
                     "Secret web/wild for *.w.example: tls.key does not match",
                     "Ingress web/blog: TLS Secret web/c for c.example: tls.crt holds no"):
            self.assertTrue(any(text in r for r in reasons), (text, reasons))
        default = self.store.default.fingerprint
        for name in ("a.example", "b.example", "x.w.example", "c.example"):
            result = yield self.handshake(name)
            self.assertEqual(result.fingerprint, default, name)


class Rotation(_TLSServerCase):
    @defer.inlineCallbacks
    def test_new_secret_serves_new_handshakes_and_open_connections_keep_working(self):
        old = yield self.handshake("b.example", keep=True)
        self.addCleanup(old.sock.close)
        self.assertEqual(old.fingerprint, self.fingerprint("b"))
        replacement = certs.make_leaf("b.example", issuer=self.pki["ca"], kind="rsa")
        secrets = dict(self.secrets, b=certs.issued_secret("web", "b", replacement, form="pkcs8"))
        self.assertEqual(self.store.update(config(self.hosts, list(secrets.values()))), [])
        new = yield self.handshake("b.example")
        self.assertEqual(new.fingerprint, replacement.fingerprint)
        # the Secret of a.example did not change: still served, from the reused context
        a = yield self.handshake("a.example")
        self.assertEqual(a.fingerprint, self.fingerprint("a"))
        still = yield deferToThread(echo, old.sock, b"still there\n")
        self.assertTrue(still)

    @defer.inlineCallbacks
    def test_removed_tls_host_falls_back_to_default(self):
        self.store.update(config(self.hosts[1:], list(self.secrets.values())))
        result = yield self.handshake("a.example")
        self.assertEqual(result.fingerprint, self.store.default.fingerprint)


class Versions(_TLSServerCase):
    @defer.inlineCallbacks
    def test_tls12_and_tls13_accepted(self):
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            for server_name in ("a.example", None):
                result = yield self.handshake(server_name, context=client_context(version=version))
                self.assertEqual(result.version, name)

    @defer.inlineCallbacks
    def test_tls11_refused_by_the_server(self):
        context = client_context(version=ssl.TLSVersion.TLSv1_1)
        with self.assertRaises(ssl.SSLError) as caught:
            yield self.handshake("a.example", context=context)
        # the server's alert, not the client refusing to try
        self.assertIn("PROTOCOL_VERSION", caught.exception.reason or str(caught.exception))

    @needs_openssl
    @defer.inlineCallbacks
    def test_openssl_tls11_refused_tls12_tls13_accepted(self):
        refused = yield deferToThread(s_client, self.port, "a.example", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertIsNone(refused.fingerprint, refused.output)
        self.assertIn("protocol version", refused.output)
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            accepted = yield deferToThread(s_client, self.port, "a.example", flag)
            self.assertEqual(accepted.protocol, name, accepted.output)
            self.assertEqual(accepted.fingerprint, self.fingerprint("a"))

    @defer.inlineCallbacks
    def test_tls12_uses_an_intermediate_cipher(self):
        context = client_context(version=ssl.TLSVersion.TLSv1_2)
        context.set_ciphers("AES128-SHA")  # not in Mozilla intermediate (no forward secrecy)
        with self.assertRaises(ssl.SSLError):
            yield self.handshake("a.example", context=context)


class Resumption(_TLSServerCase):
    @defer.inlineCallbacks
    def test_session_resumed_on_a_second_connection(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            for server_name in ("a.example", "x.w.example", None):
                context = client_context(version=version)
                first = yield self.handshake(server_name, context=context)
                self.assertFalse(first.reused)
                second = yield self.handshake(server_name, context=context, session=first.session)
                # no SNI: the default context, which resumes nothing (no name to bind a session to)
                self.assertEqual(second.reused, server_name is not None, (version, server_name))
                self.assertEqual(second.fingerprint, first.fingerprint)


class ALPNDisabled(_TLSServerCase):
    alpn = False

    @defer.inlineCallbacks
    def test_http11_only_even_if_the_factory_speaks_h2(self):
        for name in ("a.example", "x.w.example", None):
            result = yield self.handshake(name, context=client_context(alpn=["h2", "http/1.1"]))
            self.assertEqual(result.alpn, "http/1.1", name)

    @defer.inlineCallbacks
    def test_no_overlap_completes_without_alpn(self):
        result = yield self.handshake("a.example", context=client_context(alpn=["h2"]))
        self.assertIsNone(result.alpn)


class ALPNEnabled(_TLSServerCase):
    alpn = True

    @defer.inlineCallbacks
    def test_h2_offered_through_default_and_sni_contexts(self):
        for name in ("a.example", "x.w.example", "unknown.example", None):
            result = yield self.handshake(name, context=client_context(alpn=["http/1.1", "h2"]))
            self.assertEqual(result.alpn, "h2", name)
        result = yield self.handshake("a.example", context=client_context(alpn=["http/1.1"]))
        self.assertEqual(result.alpn, "http/1.1")
        result = yield self.handshake("a.example")  # client without ALPN
        self.assertIsNone(result.alpn)

    @needs_openssl
    @defer.inlineCallbacks
    def test_openssl_sees_h2(self):
        result = yield deferToThread(s_client, self.port, "b.example", "-alpn", "h2,http/1.1")
        self.assertEqual(result.alpn, "h2", result.output)

    @defer.inlineCallbacks
    def test_factory_decides_too(self):
        port = self.listen(NegotiatingEchoFactory((b"http/1.1",)))
        result = yield deferToThread(connect, port, "a.example", client_context(alpn=["h2", "http/1.1"]))
        self.assertEqual(result.alpn, "http/1.1")
        port = self.listen(EchoFactory())  # no acceptableProtocols(): HTTP/1.1 only
        result = yield deferToThread(connect, port, "a.example", client_context(alpn=["h2", "http/1.1"]))
        self.assertEqual(result.alpn, "http/1.1")


def test_contexts_are_made_on_first_use_and_kept() -> None:
    """A rebuild validates every Secret but makes no OpenSSL context: the context of a
    host's certificate is made when a handshake first names it, then reused."""
    leaves = {f"h{i}.example": certs.make_leaf(f"h{i}.example") for i in range(3)}
    store = CertificateStore()
    secrets = [certs.issued_secret("web", host, leaf) for host, leaf in leaves.items()]
    assert store.update(config([tls_host(host, host) for host in leaves], secrets)) == []
    served = {host: store.certificate_for(host) for host in leaves}
    assert all(not certificate._made for certificate in served.values())
    context = store._context_for_server_name(b"h1.example")  # what the SNI callback does
    assert context is not None and context is served["h1.example"].context
    assert [host for host, certificate in served.items() if certificate._made] == ["h1.example"]
    # The next rebuild with the same Secrets keeps the certificates and the made context.
    assert store.update(config([tls_host(host, host) for host in leaves], secrets)) == []
    assert store.certificate_for("h1.example") is served["h1.example"]
    assert store._context_for_server_name(b"h1.example") is context


def test_a_context_that_cannot_be_made_falls_back_to_the_default() -> None:
    store = CertificateStore()
    leaf = certs.make_leaf("late.example")
    assert store.update(config([tls_host("late.example", "late")], [certs.issued_secret("web", "late", leaf)])) == []
    certificate = store.certificate_for("late.example")

    def refuse():
        raise CertificateError("OpenSSL refused the certificate or key (test)")

    object.__setattr__(certificate, "make_context", refuse)
    assert store._context_for_server_name(b"late.example") is None  # the handshake stays on the default
    assert certificate.context is None  # decided once, not retried per handshake


def test_keys_openssl_will_not_serve_are_rejected_with_the_secret() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = certs.make_leaf("weak.example", key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    reason = _rejected(CertificateStore(), certs.issued_secret("web", "bad", weak), host="weak.example")
    assert "the RSA key has 1024 bits; at least 2048 are needed" in reason
