"""``backend-protocol`` and ``proxy-ssl-*``: how a route's requests reach its backends.

As ingress-nginx (internal/ingress/annotations/backendprotocol, proxyssl; nginx.tmpl):

- ``backend-protocol``: ``HTTP`` (the default), ``HTTPS`` (TLS to the backend), ``AUTO_HTTP``
  (as the client came: ``proxy_pass $scheme://``), ``GRPC`` (HTTP/2 in clear, prior
  knowledge: ``grpc_pass grpc://``), ``GRPCS`` (HTTP/2 over TLS, ALPN h2, with the
  ``proxy-ssl-*`` settings: ``grpc_pass grpcs://``), ``FCGI`` (FastCGI: ``fastcgi_pass``,
  ``ingressd.proxy.fastcgi_upstream``; ``fastcgi-*`` in ``plugins/fastcgi.py``); any case; a value
  ingress-nginx does not know is ``HTTP``, as there. The route's ``UpstreamSettings.protocol``
  says it (GRPC and GRPCS: ``ingressd.proxy.h2_upstream``); a protocol the server does not
  speak rejects the Ingress when the route table is built, never served another way.
- ``proxy-ssl-*`` take effect only with ``proxy-ssl-secret`` (``namespace/name``; ingress-nginx
  stops reading the others when it is absent): the Secret's ``ca.crt`` is trusted, its
  ``tls.crt``/``tls.key`` (if any) are the client certificate; ``proxy-ssl-verify`` ``on``
  checks the backend's chain (``proxy-ssl-verify-depth``, default 1) and name against
  ``proxy-ssl-name`` — which defaults, as in ingress-nginx, to ``upstream_balancer``: verifying
  needs a ``proxy-ssl-name``; ``proxy-ssl-server-name`` ``on`` sends that name as SNI;
  ``proxy-ssl-protocols`` (default ``TLSv1.2``) and ``proxy-ssl-ciphers`` (default
  ``DEFAULT``). Invalid values fall back to those defaults, as ingress-nginx's parser does.
- Without ``proxy-ssl-secret``: nginx's defaults, no verification, no SNI, TLS 1.2 and 1.3.
- A ``proxy-ssl-secret`` that is missing or has no ``ca.crt``: every request of the route is
  answered 503, as ingress-nginx's denied location (never sent without the asked-for checks).
- A Gateway API route whose Service a BackendTLSPolicy targets carries the policy's
  ``BackendTLS`` as the value ``gateway-backend-tls`` (``config/gateway/backend_tls_policy.py``):
  HTTPS (GRPCS for a GRPCRoute) verified as the policy says; a policy that cannot be honoured
  answers 500 (the Gateway API's answer for a backend it cannot use).
"""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ingressd import Annotation, AnnotationError, BackendTLS, LocalResponse, Phase, UpstreamSettings, hookimpl
from ingressd import same_for_every_path

from ._responses import DeniedLocation, plain

PROTOCOLS = ("AUTO_HTTP", "HTTP", "HTTPS", "GRPC", "GRPCS", "FCGI")
_ON_OFF = re.compile(r"^(on|off)$")
_PROTOCOL_WORD = re.compile(r"^(TLSv1\.2|TLSv1\.3| )*$")
_CIPHERS = re.compile(r"^[A-Za-z0-9+:_\-!]*$")
_SECRET = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$")
_DEFAULT_NAME = "upstream_balancer"  # nginx's $proxy_host for ingress-nginx's upstream


def _parse_protocol(value: str) -> str:
    word = value.strip().upper()
    return word if word in PROTOCOLS else "HTTP"  # ingress-nginx: "validation error … Using HTTP"


def _parse_secret(value: str) -> str:
    ref = value.strip()
    if not _SECRET.match(ref):
        raise AnnotationError(f"{value!r} is not namespace/name of a Secret")
    return ref


def _on_off(default: str):
    def parse(value: str) -> str:
        return value if _ON_OFF.match(value) else default
    return parse


def _parse_depth(value: str) -> int:
    try:
        depth = int(value.strip())
    except ValueError:
        return 1
    return depth if depth > 0 else 1  # 0 or invalid: ingress-nginx's default, 1


def _parse_protocols(value: str) -> tuple[str, ...]:
    """ingress-nginx's sortProtocols: the valid words, sorted; none → TLSv1.2."""
    if not _PROTOCOL_WORD.match(value):
        return ("TLSv1.2",)
    words = sorted({word for word in value.split(" ") if word in ("TLSv1.2", "TLSv1.3")})
    return tuple(words) or ("TLSv1.2",)


def _parse_ciphers(value: str) -> str:
    return value if value and _CIPHERS.match(value) else "DEFAULT"


def _parse_name(value: str) -> str:
    return value if _SERVER_NAME.match(value.strip()) else ""  # invalid: "defaulting to empty"


class Backend:
    """The route's upstream protocol and TLS settings (read when its entry is built)."""

    phase = Phase.PROXY

    def __init__(self, upstream: UpstreamSettings):
        self.upstream = upstream



@hookimpl
def ingressd_annotations():
    return [
        Annotation("backend-protocol", _parse_protocol, "HTTP", "HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, FCGI"),
        Annotation("proxy-ssl-secret", _parse_secret, None, "namespace/name: ca.crt (and tls.crt, tls.key) for HTTPS backends",
                   resolve="secret"),
        Annotation("proxy-ssl-verify", _on_off("off"), "off", "on: verify the HTTPS backend's certificate"),
        Annotation("proxy-ssl-verify-depth", _parse_depth, 1, "verification depth of the backend's chain"),
        Annotation("proxy-ssl-name", _parse_name, "", "the name verified (and sent as SNI)"),
        Annotation("proxy-ssl-server-name", _on_off("off"), "off", "on: send the name as SNI"),
        Annotation("proxy-ssl-protocols", _parse_protocols, ("TLSv1.2",), "TLS versions to HTTPS backends"),
        Annotation("proxy-ssl-ciphers", _parse_ciphers, "DEFAULT", "OpenSSL cipher list to HTTPS backends"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    protocol = values.get("backend-protocol") or "HTTP"
    # A Gateway API BackendTLSPolicy on the route's Service (config/gateway/backend_tls_policy.py):
    # a BackendTLS (verified TLS, gRPC over TLS for a GRPCRoute), or why it cannot be honoured (500).
    policy = values.get("gateway-backend-tls")
    if policy is not None:
        if not isinstance(policy, BackendTLS):
            return _Refused(getattr(policy, "reason", "the BackendTLSPolicy cannot be honoured"), Phase.PROXY)
        return Backend(UpstreamSettings(protocol="GRPCS" if protocol in ("GRPC", "GRPCS") else "HTTPS", tls=policy))
    tls = None
    # The resolved value is None both when the annotation is absent and when its Secret is:
    # the route's raw annotations tell which.
    secret_asked = any(name.rpartition("/")[2] == "proxy-ssl-secret" and value.strip()
                       for name, value in route.annotations)
    if secret_asked:
        secret = values.get("proxy-ssl-secret")
        if secret is None or not hasattr(secret, "get"):
            return _denied("the proxy-ssl-secret does not exist")
        ca = secret.get("ca.crt")
        if not ca:
            return _denied("the proxy-ssl-secret has no ca.crt")
        try:
            x509.load_pem_x509_certificates(ca)
            certificate, key = secret.get("tls.crt"), secret.get("tls.key")
            if certificate and key:
                x509.load_pem_x509_certificates(certificate)
                load_pem_private_key(key, None)
            else:
                certificate = key = None
        except (ValueError, TypeError) as exc:
            raise AnnotationError(f"proxy-ssl-secret: {exc}") from None
        name = values.get("proxy-ssl-name") or _DEFAULT_NAME
        tls = BackendTLS(
            verify=values.get("proxy-ssl-verify") == "on",
            verify_name=name,
            verify_depth=int(values.get("proxy-ssl-verify-depth") or 1),
            server_name=name if values.get("proxy-ssl-server-name") == "on" else None,
            ca=ca,
            certificate=certificate,
            key=key,
            protocols=tuple(values.get("proxy-ssl-protocols") or ("TLSv1.2",)),
            ciphers=values.get("proxy-ssl-ciphers") or "DEFAULT",
        )
    if protocol == "HTTP" and tls is None:
        return None
    return Backend(UpstreamSettings(protocol=protocol, tls=tls))


def _denied(reason: str) -> DeniedLocation:
    return DeniedLocation(reason, Phase.PROXY)


class _Refused(DeniedLocation):
    """A BackendTLSPolicy that cannot be honoured: 500, as the Gateway API answers a backend it
    cannot use (never sent in clear or unverified)."""

    def request(self, exchange) -> LocalResponse:
        return plain(500)
