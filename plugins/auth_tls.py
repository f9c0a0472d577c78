"""Client-certificate authentication (``auth-tls-*``), as ingress-nginx's ``ssl_verify_client`` server.

Annotations: ``auth-tls-secret`` (``name`` or ``namespace/name``: ``ca.crt``, optionally ``ca.crl``),
``auth-tls-verify-client`` (``on``, the default; ``optional``, ``optional_no_ca``, ``off``),
``auth-tls-verify-depth`` (1), ``auth-tls-error-page`` (a URL redirected to instead of the 400),
``auth-tls-pass-certificate-to-upstream`` (the PEM, URL-encoded, in ``ssl-client-cert``) and
``auth-tls-match-cn`` (``CN=<regex>`` searched in the subject DN).

Host-wide, as ingress-nginx's server block: the oldest Ingress of a host with ``auth-tls-secret``
decides for every route of that host (later Ingresses' auth-tls annotations are not used for
it, as ingress-nginx logs "already configured for mutual authentication"). The TLS handshake of
that host asks for a certificate with the CA names (``ingressd.tls``: chosen by SNI, so HTTP/2
works as HTTP/1.1 does) and never fails for it; each request then gets what nginx answers:

- a certificate that fails verification (wrong CA, expired, revoked, too deep) → 400 "The SSL
  certificate error" (``optional_no_ca`` forgives an unknown CA only; nginx's 495);
- ``on`` and no certificate → 400 "No required SSL certificate was sent" (nginx's 496);
- with ``auth-tls-error-page``, those two are a 302 to it instead;
- ``auth-tls-match-cn`` not found in the subject DN → 403 "client certificate unauthorized";
- a request whose Host wants a certificate policy other than the one its connection's SNI
  name was verified under → 421 (nginx's "client attempted to request the server name
  different from the one that was negotiated").

Every request of the host sends the backend ``ssl-client-verify`` (``SUCCESS``, ``FAILED:reason``,
``NONE``), ``ssl-client-subject-dn`` and ``ssl-client-issuer-dn`` (and ``ssl-client-cert``),
replacing whatever the client sent under those names (an empty value is not sent, as nginx's
``proxy_set_header``). Failing closed where ingress-nginx would not: a Secret that is missing,
has no ``ca.crt`` or an unreadable CA or CRL answers 403 for every request of the host (ingress-nginx
answers 403 for a missing Secret but serves without verification when ``ca.crt`` is absent);
a plain-HTTP request to a ``verify-client: on`` host (after ssl-redirect had its say) is answered
as one without certificate, where nginx would proxy it unverified.
"""

from __future__ import annotations

import re

import re2
from twisted.logger import Logger

from ingressd import (
    INGRESSD_PREFIX,
    NGINX_PREFIX,
    Annotation,
    AnnotationError,
    ClientAuthError,
    ClientCertificate,
    LocalResponse,
    Phase,
    hookimpl,
    load_client_auth,
    parse_bool,
    parse_int,
)
from ingressd import same_for_every_path

from ._responses import plain

_log = Logger()

_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_SECRET_REF = re.compile(rf"(?:[a-z0-9]([-a-z0-9]{{0,61}}[a-z0-9])?/)?{_NAME}")
# ingress-nginx's redirectRegex for auth-tls-error-page.
_REDIRECT = re.compile(r"(@[A-Za-z0-9_-]+|((https?://)?[A-Za-z0-9\-.]+(:\d+)?)?(/[A-Za-z0-9\-_.]+)*/?)")
_MODES = ("on", "off", "optional", "optional_no_ca")
_RE2 = re2.Options()
_RE2.log_errors = False

_SECRET_KEYS = (NGINX_PREFIX + "auth-tls-secret", INGRESSD_PREFIX + "auth-tls-secret")
HOST_WIDE = "auth-tls"  # the host_wide kind: one per host (config.entries)

_HTML = (b"content-type", b"text/html")
_HEADERS = (b"ssl-client-cert", b"ssl-client-verify", b"ssl-client-subject-dn", b"ssl-client-issuer-dn")
# Client copies under either spelling are removed (a backend or a framework may fold _ into -).
_STRIPPED = frozenset(_HEADERS) | frozenset(name.replace(b"-", b"_") for name in _HEADERS)


def _parse_secret_ref(value: str) -> str:
    ref = value.strip()
    if not _SECRET_REF.fullmatch(ref):
        raise AnnotationError(f"{value!r} is not a Secret name or namespace/name")
    return ref


def _parse_verify(value: str) -> str:
    mode = value.strip()
    if mode not in _MODES:
        raise AnnotationError(f"expected on, off, optional or optional_no_ca, got {value!r}")
    return mode


def _parse_depth(value: str) -> int:
    depth = parse_int(0)(value)
    return depth or 1  # ingress-nginx reads 0 as the default


def _parse_error_page(value: str) -> str:
    page = value.strip()
    if not _REDIRECT.fullmatch(page):
        raise AnnotationError(f"{value!r} is not a URL ingress-nginx accepts as an error page")
    if page.startswith("@") or page.startswith("/"):
        raise AnnotationError(
            f"{value!r}: an nginx location or a local path (an internal redirect) is not supported; "
            "give an absolute http:// or https:// URL")
    return page


def _parse_match_cn(value: str) -> str:
    if not value.startswith("CN="):
        raise AnnotationError(f"value {value} is not a valid Common Name annotation: missing prefix 'CN='")
    try:
        re2.compile(value, _RE2)
    except re2.error:
        raise AnnotationError(f"{value!r} is not a regular expression ingressd can match in linear time") from None
    return value


def _answer(status: int, text: str) -> LocalResponse:
    """nginx's 400 pages for its 495 and 496 (the status line says 400)."""
    return LocalResponse(status, [(b"content-type", b"text/plain; charset=utf-8")], f"{status} {text}\n".encode())


class ClientCertificateCheck:
    """The per-request side of a host's auth-tls (see the module): first of all features, as
    nginx checks the certificate when it reads the request; ``client_auth`` is the policy the
    host's TLS handshakes ask under (None for ``off``)."""

    host_wide = HOST_WIDE
    phase = Phase.REWRITE - 10

    def __init__(self, client_auth, mode: str, error_page: str = "", pass_certificate: bool = False,
                 match_cn: str = ""):
        self.mode = mode
        self.client_auth = client_auth if mode != "off" else None
        self._error_page = error_page.encode("ascii")
        self._pass_certificate = pass_certificate
        self._match_cn = re2.compile(match_cn, _RE2) if match_cn else None

    def proved(self, exchange):
        """The exchange's certificate as this host may use it: None when the connection was
        verified under another policy (or asked for nothing) yet names a server (→ 421);
        one without certificate when ``off``, or when the connection sent no SNI."""
        certificate = exchange.client_certificate
        if self.client_auth is None or certificate.policy == self.client_auth:
            return certificate if self.client_auth is not None else _NONE
        return None if certificate.server_name else _NONE

    def request(self, exchange) -> LocalResponse | None:
        if not exchange.https:
            return None  # plain HTTP: PlainHTTPGuard, after ssl-redirect
        certificate = self.proved(exchange)
        if certificate is None:
            return plain(421)
        mode = self.mode
        if mode != "off":
            if certificate.verify.startswith("FAILED") and not (
                    mode == "optional_no_ca" and certificate.issuer_unknown):
                return self._failed("The SSL certificate error")
            if mode == "on" and certificate.verify == "NONE":
                return self._failed("No required SSL certificate was sent")
        return self._match(certificate.subject)

    def _failed(self, text: str) -> LocalResponse:
        if self._error_page:
            return LocalResponse(302, [(b"location", self._error_page)])
        return _answer(400, text)

    def _match(self, subject: str) -> LocalResponse | None:
        if self._match_cn is not None and self._match_cn.search(subject) is None:
            return LocalResponse(403, [_HTML], b"client certificate unauthorized")
        return None

    def upstream_request(self, exchange, headers: list) -> None:
        headers[:] = [pair for pair in headers if pair[0].lower() not in _STRIPPED]
        if not exchange.https:
            return  # nginx's variables are empty on plain HTTP: nothing is sent
        certificate = self.proved(exchange) or _NONE
        if self._pass_certificate and certificate.pem:
            headers.append((b"ssl-client-cert", certificate.escaped_pem.encode("ascii")))
        headers.append((b"ssl-client-verify", certificate.verify.encode("ascii", "replace")))
        if certificate.subject:
            headers.append((b"ssl-client-subject-dn", certificate.subject.encode("ascii", "replace")))
        if certificate.issuer:
            headers.append((b"ssl-client-issuer-dn", certificate.issuer.encode("ascii", "replace")))


class PlainHTTPGuard:
    """Plain-HTTP requests of an auth-tls host, once ssl-redirect had its say: no certificate
    can have been verified, so ``on`` answers as without certificate and match-cn as nginx's
    empty subject."""

    host_wide = HOST_WIDE
    phase = Phase.AUTH

    def __init__(self, check: ClientCertificateCheck):
        self._check = check

    def request(self, exchange) -> LocalResponse | None:
        if exchange.https:
            return None
        if self._check.mode == "on":
            return self._check._failed("No required SSL certificate was sent")
        return self._check._match("")


class HostDenied:
    """Every request of the host gets 403: its auth-tls configuration cannot be used (as
    ingress-nginx's server with an AuthTLSError) — never served without the check."""

    host_wide = HOST_WIDE
    phase = Phase.REWRITE - 10

    def __init__(self, reason: str):
        self.reason = reason

    def request(self, exchange) -> LocalResponse:
        return plain(403)


class ListenerValidation:
    """A Gateway listener's frontend client certificate validation (the filter
    ``ClientCertificateValidation``, applied by ``gateway_filters``): ``client_auth`` is what the
    host's TLS handshakes ask under. AllowValidOnly: the handshake itself fails without a valid
    certificate; a request whose connection was not verified under this policy (no SNI, or another
    name's) is answered as auth-tls ``on`` answers it (400; 421 for another name), never served.
    AllowInsecureFallback: every client is served. Plain HTTP is not this feature's (the route is
    served on HTTP only through an HTTP listener, which validates nothing)."""

    host_wide = HOST_WIDE
    phase = Phase.REWRITE - 10

    def __init__(self, client_auth, insecure_fallback: bool = False):
        self.client_auth = client_auth
        self._check = None if insecure_fallback else ClientCertificateCheck(client_auth, "on")

    def request(self, exchange) -> LocalResponse | None:
        if self._check is None or not exchange.https:
            return None
        certificate = self._check.proved(exchange)
        if certificate is None:
            return plain(421)
        if certificate.verify != "SUCCESS":
            return _answer(400, "No required SSL certificate was sent" if certificate.verify == "NONE"
                           else "The SSL certificate error")
        return None


_NONE = ClientCertificate(tls=True)  # what a connection without (usable) certificate proved


@hookimpl
def ingressd_annotations():
    return [
        Annotation("auth-tls-secret", _parse_secret_ref, None,
                   "the Secret with ca.crt (and optionally ca.crl): name or namespace/name", resolve="secret"),
        Annotation("auth-tls-verify-client", _parse_verify, "on", "on, off, optional or optional_no_ca"),
        Annotation("auth-tls-verify-depth", _parse_depth, 1, "how deep the client's chain may be (ssl_verify_depth)"),
        Annotation("auth-tls-error-page", _parse_error_page, "", "a URL to redirect to instead of the 400"),
        Annotation("auth-tls-pass-certificate-to-upstream", parse_bool, False,
                   "send the certificate (PEM, URL-encoded) to the backend in ssl-client-cert"),
        Annotation("auth-tls-match-cn", _parse_match_cn, "", "CN=<regex> the subject DN must contain"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    # Asked for, even when the Secret is missing (values then hold None, as for no annotation).
    asked = any(name in _SECRET_KEYS and value.strip() for name, value in route.annotations)
    if not asked:
        return None
    secret = values.get("auth-tls-secret")
    if secret is None:
        return _denied(route, "the auth-tls-secret does not exist")
    mode = values.get("auth-tls-verify-client", "on")
    try:
        client_auth = load_client_auth(secret.get("ca.crt"), secret.get("ca.crl"), mode if mode != "off" else "on",
                                       values.get("auth-tls-verify-depth", 1),
                                       f"Secret {secret.ref.namespace}/{secret.ref.name}")
    except ClientAuthError as exc:
        return _denied(route, f"the auth-tls-secret cannot be used: {exc}")
    check = ClientCertificateCheck(client_auth, mode, values.get("auth-tls-error-page", ""),
                                   values.get("auth-tls-pass-certificate-to-upstream", False),
                                   values.get("auth-tls-match-cn", ""))
    return [check, PlainHTTPGuard(check)]


def _denied(route, reason: str) -> HostDenied:
    _log.warn("{ingress}: {reason}; answering 403 for host {host}", ingress=str(route.ingress), reason=reason,
              host=route.host or "*")
    return HostDenied(reason)
