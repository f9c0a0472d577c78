"""``ssl-ciphers`` and ``ssl-prefer-server-ciphers``: a host's own TLS cipher list and cipher preference.

As ingress-nginx (``internal/ingress/annotations/sslcipher``; nginx's ``ssl_ciphers`` and
``ssl_prefer_server_ciphers`` in the host's ``server`` block): the settings apply to every TLS
handshake naming the host (per SNI name), over the server's (``--ssl-ciphers``,
``--ssl-prefer-server-ciphers``); when several Ingresses of a host set one, the oldest Ingress's
value wins, each setting on its own. The cipher list is OpenSSL's and governs TLS 1.2; TLS 1.3
suites stay OpenSSL's defaults, as nginx leaves them.

ingress-nginx drops a cipher list its validator refuses (and a list OpenSSL finds no cipher in
makes nginx refuse the whole configuration); ingressd rejects the Ingress instead, saying why.
A value of ``ssl-prefer-server-ciphers`` other than Go's booleans rejects it too.
"""

from __future__ import annotations

from ingressd import Annotation, AnnotationError, HostTLS, Phase, hookimpl, parse_bool, parse_ciphers
from ingressd import same_for_every_path


def _ciphers(text: str) -> str:
    try:
        return parse_ciphers(text)
    except ValueError as exc:
        raise AnnotationError(str(exc)) from None


class HostCiphers:
    """Says which TLS settings the route's host wants (no request work of its own)."""

    phase = Phase.REWRITE

    def __init__(self, host_tls: HostTLS):
        self.host_tls = host_tls


@hookimpl
def ingressd_annotations():
    return [
        Annotation("ssl-ciphers", _ciphers, None, "OpenSSL cipher list (TLS 1.2) for the host's TLS handshakes"),
        Annotation("ssl-prefer-server-ciphers", parse_bool, None,
                   "true: the server's cipher order decides; false: the client's"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    ciphers = values.get("ssl-ciphers")
    prefer = values.get("ssl-prefer-server-ciphers")
    if ciphers is None and prefer is None:
        return None
    return HostCiphers(HostTLS(ciphers, prefer))
