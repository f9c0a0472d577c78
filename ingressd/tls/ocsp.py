"""OCSP stapling (the ingress-nginx ConfigMap's ``enable-ocsp``): each served certificate's OCSP
response, fetched in the background and handed to handshakes that ask for it.

``OCSPTarget`` is what a certificate needs for it (the responder URL of its Authority Information
Access extension and its issuer, the first certificate after it in ``tls.crt``). ``OCSPStapler``
keeps one response per certificate (by fingerprint): ``track`` says which certificates are served
now; each gets a request POSTed to its responder, never on a handshake's path (the reactor is
never blocked: Twisted's ``Agent``, a timeout, a bounded body). A response is checked
(``check_response``: successful, about this certificate, signed by its issuer or a responder the
issuer delegated to, current) and kept until half its validity has passed, then fetched anew; it
is dropped at its ``nextUpdate``. A failure keeps the response still valid and retries later.
``staple`` is the pyOpenSSL ``set_ocsp_server_callback`` callback: a dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from typing import Any, Callable, Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from twisted.internet import defer, protocol
from twisted.logger import Logger

_log = Logger()

FETCH_TIMEOUT = 10.0  # seconds for one request to a responder
RETRY = 300.0  # seconds before a failed fetch is tried again
NO_NEXT_UPDATE_REFRESH = 3600.0  # a response without nextUpdate is fetched again this often
MIN_REFRESH = 60.0  # never sooner than this after a fetch
MAX_RESPONSE = 64 * 1024  # bytes of a responder's answer read at most


@dataclass(frozen=True, eq=False)
class OCSPTarget:
    """Where a certificate's status is asked and what checks the answer."""

    url: str
    leaf: x509.Certificate
    issuer: x509.Certificate


def ocsp_target(leaf: x509.Certificate, chain: list[x509.Certificate]) -> OCSPTarget | None:
    """The leaf's OCSP responder (an http:// URL in its AIA extension) with its issuer (the next
    certificate in the chain); None without either."""
    try:
        access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    urls = [str(item.access_location.value) for item in access
            if item.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(item.access_location, x509.UniformResourceIdentifier)]
    urls = [url for url in urls if url.lower().startswith("http://")]
    if not urls or not chain or chain[0].subject != leaf.issuer:
        return None
    return OCSPTarget(urls[0], leaf, chain[0])


def ocsp_request(target: OCSPTarget) -> bytes:
    """The DER OCSP request for the target's certificate (SHA-1 CertID, as responders expect)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(target.leaf, target.issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


def check_response(der: bytes, target: OCSPTarget, now: datetime) -> tuple[datetime | None, datetime]:
    """(nextUpdate, when to fetch again) of a responder's answer ``der`` for ``target``; ValueError
    saying why it cannot be stapled."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise ValueError("the answer is not an OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"the responder answered {response.response_status.name}")
    if response.serial_number != target.leaf.serial_number:
        raise ValueError("the response is about another certificate")
    if response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
        raise ValueError("the responder does not know the certificate")
    _check_signature(response, target.issuer)
    this_update = response.this_update_utc
    next_update = response.next_update_utc
    slack = timedelta(minutes=5)  # clocks differ
    if this_update > now + slack:
        raise ValueError(f"the response is not valid before {this_update:%Y-%m-%d %H:%M:%S} UTC")
    if next_update is not None and next_update <= now:
        raise ValueError(f"the response expired on {next_update:%Y-%m-%d %H:%M:%S} UTC")
    if next_update is None:
        refresh = now + timedelta(seconds=NO_NEXT_UPDATE_REFRESH)
    else:
        refresh = max(this_update + (next_update - this_update) / 2, now + timedelta(seconds=MIN_REFRESH))
        refresh = min(refresh, next_update)
    return next_update, refresh


def _check_signature(response: Any, issuer: x509.Certificate) -> None:
    signer = issuer
    delegates = [certificate for certificate in response.certificates if certificate != issuer]
    if delegates:  # a responder the issuer delegated to (RFC 6960 §4.2.2.2); the issuer itself may be included
        delegate = delegates[0]
        try:
            delegate.verify_directly_issued_by(issuer)
            usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            raise ValueError("the response is signed by a responder its issuer did not delegate to") from None
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise ValueError("the response is signed by a responder its issuer did not delegate to")
        signer = delegate
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                       response.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
        else:
            raise ValueError(f"cannot check a signature of a {type(key).__name__} key")
    except InvalidSignature:
        raise ValueError("the response's signature is not its issuer's") from None


class OCSPStapler:
    """Fetched OCSP responses by certificate fingerprint. ``reactor``: for timers and, unless
    ``fetch`` is given (``fetch(url, request_der) -> Deferred[bytes]``), for the HTTP requests."""

    def __init__(self, reactor: Any, fetch: Callable[[str, bytes], Any] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self._reactor = reactor
        self._fetch = fetch or self._post
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._staples: dict[str, bytes] = {}  # what handshakes read
        self._targets: dict[str, OCSPTarget] = {}
        self._timers: dict[str, Any] = {}  # the next fetch of each
        self._expiries: dict[str, Any] = {}  # when each one's response stops being stapled
        self.errors: dict[str, str] = {}  # fingerprint → the last failure, for the log and tests

    def staple(self, connection: Any, fingerprint: str) -> bytes:
        """pyOpenSSL's OCSP server callback: the response to staple, b"" for none."""
        return self._staples.get(fingerprint, b"")

    def track(self, targets: Iterable[tuple[str, OCSPTarget]]) -> None:
        """Serve responses for these (fingerprint, target) from now on; forget the others."""
        wanted = dict(targets)
        for fingerprint in [fp for fp in self._targets if fp not in wanted]:
            self._forget(fingerprint)
        for fingerprint, target in wanted.items():
            if fingerprint not in self._targets:
                self._targets[fingerprint] = target
                self._refresh(fingerprint)

    def stop(self) -> None:
        for fingerprint in list(self._targets):
            self._forget(fingerprint)

    def _forget(self, fingerprint: str) -> None:
        self._targets.pop(fingerprint, None)
        self._staples.pop(fingerprint, None)
        self.errors.pop(fingerprint, None)
        for timers in (self._timers, self._expiries):
            timer = timers.pop(fingerprint, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _refresh(self, fingerprint: str) -> None:
        self._timers.pop(fingerprint, None)
        target = self._targets.get(fingerprint)
        if target is None:
            return
        try:
            request = ocsp_request(target)
            fetched = defer.maybeDeferred(self._fetch, target.url, request)
        except Exception as exc:  # noqa: BLE001 - a certificate ingressd cannot ask about
            fetched = defer.fail(exc)
        fetched.addCallback(self._got, fingerprint, target)
        fetched.addErrback(self._failed, fingerprint, target)

    def _got(self, der: bytes, fingerprint: str, target: OCSPTarget) -> None:
        if self._targets.get(fingerprint) is not target:
            return  # no longer served
        next_update, refresh = check_response(der, target, self._now())
        self._staples[fingerprint] = der
        if self.errors.pop(fingerprint, None) is not None:
            _log.info("TLS OCSP: {url}: stapling again", url=target.url)
        self._expire_at(fingerprint, next_update)
        self._schedule(fingerprint, refresh)

    def _failed(self, failure: Any, fingerprint: str, target: OCSPTarget) -> None:
        if self._targets.get(fingerprint) is not target:
            return
        reason = _reason(failure)
        if self.errors.get(fingerprint) != reason:
            _log.warn("TLS OCSP: {url}: {reason}; retrying in {retry:.0f}s", url=target.url, reason=reason,
                      retry=RETRY)
        self.errors[fingerprint] = reason
        self._schedule(fingerprint, self._now() + timedelta(seconds=RETRY))

    def _schedule(self, fingerprint: str, when: datetime) -> None:
        delay = max((when - self._now()).total_seconds(), 0.0)
        self._timers[fingerprint] = self._reactor.callLater(delay, self._refresh, fingerprint)

    def _expire_at(self, fingerprint: str, next_update: datetime | None) -> None:
        previous = self._expiries.pop(fingerprint, None)
        if previous is not None and previous.active():
            previous.cancel()
        if next_update is None:
            return
        delay = max((next_update - self._now()).total_seconds(), 0.0)
        self._expiries[fingerprint] = self._reactor.callLater(delay, self._expire, fingerprint)

    def _expire(self, fingerprint: str) -> None:
        self._expiries.pop(fingerprint, None)
        self._staples.pop(fingerprint, None)

    def _post(self, url: str, request: bytes) -> Any:
        from twisted.web.client import Agent, FileBodyProducer
        from twisted.web.http_headers import Headers

        agent = Agent(self._reactor, connectTimeout=FETCH_TIMEOUT)
        answered = agent.request(b"POST", url.encode("ascii"),
                                 Headers({b"Content-Type": [b"application/ocsp-request"]}),
                                 FileBodyProducer(BytesIO(request)))

        def body(response: Any) -> Any:
            if response.code != 200:
                response.deliverBody(_Discard())
                raise ValueError(f"the responder answered HTTP {response.code}")
            done: defer.Deferred = defer.Deferred()
            response.deliverBody(_Bounded(done, MAX_RESPONSE))
            return done

        answered.addCallback(body)
        return answered.addTimeout(FETCH_TIMEOUT, self._reactor)


def _reason(failure: Any) -> str:
    """A fetch's failure in a few words."""
    inner = getattr(failure.value, "reasons", None)  # twisted.web's ResponseNeverReceived, ResponseFailed
    if inner:
        failure = inner[0]
    if failure.check(defer.CancelledError, defer.TimeoutError):  # the timeout cancelled the request
        return f"no answer in {FETCH_TIMEOUT:.0f}s"
    return failure.getErrorMessage() or failure.type.__name__


class _Bounded(protocol.Protocol):
    """Collects a response body of at most ``limit`` bytes into ``done``."""

    def __init__(self, done: defer.Deferred, limit: int) -> None:
        self._done, self._limit, self._parts, self._size = done, limit, [], 0

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            if not self._done.called:
                self._done.errback(ValueError(f"the responder's answer is over {self._limit} bytes"))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        if self._done.called:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason)


class _Discard(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        pass

