"""OCSP stapling (the ConfigMap's ``enable-ocsp``, ``ingressd.tls.ocsp``): the responder URL and
issuer of a certificate, the checks a response must pass, the stapler's fetch / refresh / expiry
timers on a fake clock, and the store's contexts stapling the response to a handshake (pyOpenSSL
client, in memory). A real ``openssl ocsp`` responder: test_e2e_configmap_tls.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.task import Clock

import certs
from ingressd.compat.catalogue import IMPLEMENTED
from ingressd.compat.configmap_catalogue import lookup
from ingressd.config.model import Config
from ingressd.tls import ocsp as ocsp_module
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.ocsp import (
    MIN_REFRESH,
    NO_NEXT_UPDATE_REFRESH,
    RETRY,
    OCSPStapler,
    OCSPTarget,
    check_response,
    ocsp_request,
    ocsp_target,
)
from ingressd.tls.settings import TLSSettings, tls_settings
from test_tls import tls_host

URL = "http://127.0.0.1:9/ocsp"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def leaf_with_aia(issuer: certs.Issued, url: str | None = URL, host: str = "o.example") -> certs.Issued:
    """A server certificate naming ``url`` as its OCSP responder (AIA), issued by ``issuer``."""
    key = certs.new_key("ec")
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, host)]))
               .issuer_name(issuer.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), True))
    if url is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]), False)
    return certs.Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def responder(issuer: certs.Issued, ocsp_signing: bool = True) -> certs.Issued:
    """A responder certificate ``issuer`` delegates to (with the OCSP signing usage, or not)."""
    key = certs.new_key("ec")
    usage = [ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "responder")]))
            .issuer_name(issuer.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(START - timedelta(days=1)).not_valid_after(START + timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage(usage), False)
            .sign(issuer.key, hashes.SHA256()))
    return certs.Issued(cert, key)


def response(target: OCSPTarget, signer: certs.Issued, *, status=ocsp.OCSPCertStatus.GOOD,
             this_update: datetime = START, next_update: datetime | None = START + timedelta(days=4),
             leaf: x509.Certificate | None = None, delegate: certs.Issued | None = None) -> bytes:
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf or target.leaf, issuer=target.issuer, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update,
        revocation_time=START - timedelta(days=1) if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, (delegate or signer).cert)
    if delegate is not None:
        builder = builder.certificates([delegate.cert])
    return builder.sign((delegate or signer).key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = certs.make_ca("ocsp CA")
    leaf = leaf_with_aia(ca)
    return {"ca": ca, "leaf": leaf, "other": certs.make_ca("another CA"),
            "target": OCSPTarget(URL, leaf.cert, ca.cert)}


# -- the target -------------------------------------------------------------------------------


def test_the_target_is_the_aia_http_url_and_the_next_certificate(pki):
    ca, leaf = pki["ca"], pki["leaf"]
    target = ocsp_target(leaf.cert, [ca.cert])
    assert (target.url, target.leaf, target.issuer) == (URL, leaf.cert, ca.cert)
    assert ocsp_target(leaf.cert, []) is None  # no issuer in tls.crt
    assert ocsp_target(leaf.cert, [pki["other"].cert]) is None  # not its issuer
    assert ocsp_target(leaf_with_aia(ca, None).cert, [ca.cert]) is None  # no AIA
    assert ocsp_target(leaf_with_aia(ca, "https://ocsp.example/").cert, [ca.cert]) is None  # http only
    assert ocsp_target(leaf_with_aia(ca, "HTTP://Ocsp.Example/x").cert, [ca.cert]).url == "HTTP://Ocsp.Example/x"


def test_the_request_asks_about_the_certificate(pki):
    request = ocsp.load_der_ocsp_request(ocsp_request(pki["target"]))
    assert request.serial_number == pki["leaf"].cert.serial_number
    assert isinstance(request.hash_algorithm, hashes.SHA1)


# -- checking a response --------------------------------------------------------------------------


def test_a_good_response_is_kept_until_half_its_validity(pki):
    target, ca = pki["target"], pki["ca"]
    now = START + timedelta(hours=1)
    assert check_response(response(target, ca), target, now) == (START + timedelta(days=4), START + timedelta(days=2))
    # a revoked certificate's answer is stapled too (the client decides)
    revoked = response(target, ca, status=ocsp.OCSPCertStatus.REVOKED)
    assert check_response(revoked, target, now)[0] == START + timedelta(days=4)
    # no nextUpdate: fetched again every hour, never expired
    assert check_response(response(target, ca, next_update=None), target, now) == \
        (None, now + timedelta(seconds=NO_NEXT_UPDATE_REFRESH))
    # half the validity already passed: not sooner than a minute, never after nextUpdate
    short = response(target, ca, next_update=START + timedelta(hours=2))
    assert check_response(short, target, now + timedelta(minutes=30)) == \
        (START + timedelta(hours=2), now + timedelta(minutes=30, seconds=MIN_REFRESH))
    nearly = START + timedelta(hours=2) - timedelta(seconds=10)
    assert check_response(short, target, nearly) == (START + timedelta(hours=2), START + timedelta(hours=2))
    # a clock a few minutes behind the responder's
    assert check_response(response(target, ca), target, START - timedelta(minutes=4))[0] is not None


def test_a_delegated_responder(pki):
    target, ca = pki["target"], pki["ca"]
    der = response(target, ca, delegate=responder(ca))
    assert check_response(der, target, START)[0] == START + timedelta(days=4)
    # the issuer itself included (as openssl ocsp does): signed by the issuer
    def including_the_issuer(signer):
        return ocsp.OCSPResponseBuilder().add_response(
            cert=target.leaf, issuer=target.issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=START, next_update=None, revocation_time=None, revocation_reason=None,
        ).responder_id(ocsp.OCSPResponderEncoding.NAME, signer.cert).certificates([ca.cert]).sign(
            signer.key, hashes.SHA256()).public_bytes(Encoding.DER)

    assert check_response(including_the_issuer(ca), target, START)[0] is None
    forged = including_the_issuer(pki["other"])
    with pytest.raises(ValueError, match="signature is not its issuer's"):
        check_response(forged, target, START)
    with pytest.raises(ValueError, match="responder its issuer did not delegate to"):
        check_response(response(target, ca, delegate=responder(ca, ocsp_signing=False)), target, START)
    with pytest.raises(ValueError, match="responder its issuer did not delegate to"):
        check_response(response(target, ca, delegate=responder(pki["other"])), target, START)


@pytest.mark.parametrize("case, reason", [
    ("garbage", "the answer is not an OCSP response"),
    ("unsuccessful", "the responder answered UNAUTHORIZED"),
    ("unknown", "the responder does not know the certificate"),
    ("other serial", "the response is about another certificate"),
    ("other signer", "the response's signature is not its issuer's"),
    ("expired", "the response expired on 2026-01-01 00:00:00 UTC"),
    ("future", "the response is not valid before 2026-01-01 01:00:00 UTC"),
])
def test_responses_that_are_not_stapled(pki, case, reason):
    target, ca = pki["target"], pki["ca"]
    der = {
        "garbage": lambda: b"\x30\x03\x0a\x01",
        "unsuccessful": lambda: ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(Encoding.DER),
        "unknown": lambda: response(target, ca, status=ocsp.OCSPCertStatus.UNKNOWN),
        "other serial": lambda: response(target, ca, leaf=leaf_with_aia(ca).cert),
        "other signer": lambda: _signed_by_another(target, ca, pki["other"]),
        "expired": lambda: response(target, ca, this_update=START - timedelta(days=1), next_update=START),
        "future": lambda: response(target, ca, this_update=START + timedelta(hours=1)),
    }[case]()
    now = START if case != "future" else START - timedelta(minutes=1)
    with pytest.raises(ValueError, match=f"^{reason}$"):
        check_response(der, target, now)


def _signed_by_another(target, ca, other) -> bytes:
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=target.leaf, issuer=target.issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=START, next_update=START + timedelta(days=1), revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, other.cert)
    return builder.sign(other.key, hashes.SHA256()).public_bytes(Encoding.DER)


# -- the stapler's timers ----------------------------------------------------------------------------


class Responder:
    """A fake fetch: records the requests, answers with what the test queued."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, bytes]] = []
        self.answers: list[Any] = []

    def __call__(self, url: str, request: bytes):
        self.asked.append((url, request))
        answer = self.answers.pop(0)
        return defer.fail(answer) if isinstance(answer, Exception) else defer.succeed(answer)


def stapler_with(clock: Clock) -> tuple[OCSPStapler, Responder]:
    fetch = Responder()
    stapler = OCSPStapler(clock, fetch, now=lambda: START + timedelta(seconds=clock.seconds()))
    return stapler, fetch


def test_fetched_stapled_refreshed_at_half_life_and_expired(pki):
    clock = Clock()
    stapler, fetch = stapler_with(clock)
    target, ca = pki["target"], pki["ca"]
    first = response(target, ca, next_update=START + timedelta(hours=4))
    fetch.answers.append(first)
    stapler.track([("fp", target)])
    assert fetch.asked == [(URL, ocsp_request(target))]
    assert stapler.staple(None, "fp") == first
    assert stapler.staple(None, "other") == b""
    clock.advance(2 * 3600 - 1)
    assert len(fetch.asked) == 1
    second = response(target, ca, this_update=START + timedelta(hours=2), next_update=START + timedelta(hours=6))
    fetch.answers.append(second)
    clock.advance(1)  # half of the first's validity
    assert len(fetch.asked) == 2 and stapler.staple(None, "fp") == second
    # the responder now fails: the second is kept until its own nextUpdate, retried every RETRY
    fetch.answers += [ValueError("the responder answered HTTP 500")] * 10
    clock.advance(2 * 3600)  # the first's nextUpdate (the second is still served) and the second's half-life
    assert len(fetch.asked) == 3
    assert stapler.errors == {"fp": "the responder answered HTTP 500"}
    assert stapler.staple(None, "fp") == second
    asked = len(fetch.asked)
    clock.advance(RETRY)
    assert len(fetch.asked) == asked + 1
    clock.advance(2 * 3600)  # past the second's nextUpdate
    assert stapler.staple(None, "fp") == b""


def test_an_invalid_answer_is_a_failure_and_a_good_one_later_recovers(pki):
    clock = Clock()
    stapler, fetch = stapler_with(clock)
    target, ca = pki["target"], pki["ca"]
    fetch.answers += [b"garbage", response(target, ca)]
    stapler.track([("fp", target)])
    assert stapler.staple(None, "fp") == b"" and stapler.errors == {"fp": "the answer is not an OCSP response"}
    clock.advance(RETRY)
    assert stapler.staple(None, "fp") != b"" and stapler.errors == {}


def test_untracked_certificates_are_forgotten_and_their_timers_cancelled(pki):
    clock = Clock()
    stapler, fetch = stapler_with(clock)
    target, ca = pki["target"], pki["ca"]
    fetch.answers.append(response(target, ca))
    stapler.track([("fp", target)])
    stapler.track([("fp", target)])  # already tracked: no new fetch
    assert len(fetch.asked) == 1
    assert [call for call in clock.getDelayedCalls() if call.active()]
    stapler.track([])
    assert stapler.staple(None, "fp") == b""
    assert not [call for call in clock.getDelayedCalls() if call.active() and call.func.__name__ == "_refresh"]
    fetch.answers.append(response(target, ca))
    stapler.track([("fp", target)])
    assert len(fetch.asked) == 2
    stapler.stop()
    assert stapler.staple(None, "fp") == b""


def test_an_answer_arriving_after_the_certificate_is_gone_is_dropped(pki):
    clock = Clock()
    pending: defer.Deferred = defer.Deferred()
    stapler = OCSPStapler(clock, lambda url, request: pending, now=lambda: START)
    stapler.track([("fp", pki["target"])])
    stapler.track([])
    pending.callback(response(pki["target"], pki["ca"]))
    assert stapler.staple(None, "fp") == b"" and not clock.getDelayedCalls()


# -- the store: contexts staple while enable-ocsp is on --------------------------------------------


def handshake_status(store: CertificateStore, name: str) -> bytes | None:
    """The OCSP response a pyOpenSSL client asking for one receives (b"" for none)."""
    seen: list[bytes] = []
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_ocsp_client_callback(lambda conn, data, extra: seen.append(data) or True)
    client = SSL.Connection(context, None)
    client.set_tlsext_host_name(name.encode("ascii"))
    client.request_ocsp()
    client.set_connect_state()
    server = SSL.Connection(store.context_for_name(name), None)
    server.set_accept_state()
    for _ in range(6):
        for one, other in ((client, server), (server, client)):
            try:
                one.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                data = one.bio_read(65536)
            except SSL.WantReadError:
                data = b""
            if data:
                other.bio_write(data)
    return seen[0] if seen else None


def test_the_store_staples_while_enable_ocsp_is_on(pki):
    clock = Clock()
    stapler, fetch = stapler_with(clock)
    ca, leaf = pki["ca"], pki["leaf"]
    target = pki["target"]
    good = response(target, ca, next_update=None)
    store = CertificateStore(ocsp=stapler)
    secret = certs.issued_secret("web", "o", leaf, ca)
    config = Config(tls_hosts=(tls_host("o.example", "o"),), secrets=(secret,))
    assert store.update(config) == []
    assert fetch.asked == []  # off: nothing fetched
    assert handshake_status(store, "o.example") == b""
    fetch.answers.append(good)
    store.use_tls(TLSSettings(ocsp=True))
    assert [url for url, _ in fetch.asked] == [URL]  # only the certificate with a responder
    assert handshake_status(store, "o.example") == good
    assert handshake_status(store, "other.example") == b""  # the default certificate: no responder
    store.update(config)  # the same certificates: no new fetch
    assert len(fetch.asked) == 1
    store.use_tls(TLSSettings())  # off again: forgotten
    assert handshake_status(store, "o.example") == b""
    assert stapler.staple(None, store.certificate_for("o.example").fingerprint) == b""


def test_the_enable_ocsp_key():
    from test_configmap_tls import _read

    assert dict(_read({"enable-ocsp": "true"}).settings) == {"enable-ocsp": True}
    assert dict(_read({"enable-ocsp": "false"}).settings) == {}
    assert _read({"enable-ocsp": "yes"}).refusals
    assert tls_settings({"enable_ocsp": True}).ocsp is True and tls_settings({}).ocsp is False
    entry = lookup("enable-ocsp")
    assert entry.status == IMPLEMENTED and entry.default == "false" and entry.target == ("setting", "enable-ocsp")
    assert (ocsp_module.FETCH_TIMEOUT, ocsp_module.RETRY, ocsp_module.MIN_REFRESH, ocsp_module.MAX_RESPONSE) == \
        (10.0, 300.0, 60.0, 65536)


# -- the HTTP fetch's pieces -------------------------------------------------------------------------


def test_failures_said_in_a_few_words():
    from twisted.internet.error import ConnectionRefusedError
    from twisted.python.failure import Failure
    from twisted.web._newclient import ResponseNeverReceived

    assert ocsp_module._reason(Failure(defer.TimeoutError())) == "no answer in 10s"
    assert ocsp_module._reason(Failure(ResponseNeverReceived([Failure(defer.CancelledError())]))) == "no answer in 10s"
    refused = ocsp_module._reason(Failure(ResponseNeverReceived([Failure(ConnectionRefusedError())])))
    assert refused.startswith("Connection was refused")
    assert ocsp_module._reason(Failure(ValueError("the responder answered HTTP 500"))) == \
        "the responder answered HTTP 500"
    assert ocsp_module._reason(Failure(ValueError())) == "ValueError"


def test_the_body_is_read_up_to_its_limit():
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure
    from twisted.web.client import ResponseDone
    from twisted.web.http import PotentialDataLoss

    results = []
    for parts, end, expected in (([b"ab", b"cd"], ResponseDone(), b"abcd"),
                                 ([b"abcd"], PotentialDataLoss(), b"abcd"),
                                 ([b"abcd", b"e"], ResponseDone(), "over 4 bytes"),
                                 ([b"ab"], ConnectionError("reset"), "reset")):
        done: defer.Deferred = defer.Deferred()
        reader = ocsp_module._Bounded(done, 4)
        reader.makeConnection(StringTransport())
        for part in parts:
            reader.dataReceived(part)
        reader.connectionLost(Failure(end))
        done.addBoth(results.append)
        outcome = results[-1]
        if isinstance(expected, bytes):
            assert outcome == expected
        else:
            assert expected in outcome.getErrorMessage()
