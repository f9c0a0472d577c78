"""``ssl-passthrough``: TLS for the Ingress's hosts goes to its backend unterminated.

As ingress-nginx, only with the controller flag ``--enable-ssl-passthrough``: a TLS connection
whose ClientHello names one of the Ingress's hosts is spliced, still encrypted, to the
Service of that host's ``/`` path (``ingressd.tls.passthrough``, which reads the
``tls_passthrough`` this plugin's feature declares); the backend presents its own
certificate. Being layer 4, that traffic runs none of the Ingress's other annotations.

Plain-HTTP requests for the host (port 80, or a TLS client without SNI) are still routed as
HTTP, and, as ingress-nginx marks the upstream ``SSLPassthrough`` and proxies to it with
``https://``, sent to the backend over TLS (``upstream.protocol = "HTTPS"``; ingress-nginx does
that for the Service of the ``/`` path, ingressd for every path of the Ingress).

Where ingressd differs: without ``--enable-ssl-passthrough`` ingress-nginx ignores the
annotation's TLS meaning and terminates the host's TLS itself (with its own or the default
certificate), re-encrypting to the backend. A backend that was meant to see the client's TLS
(its own certificate, its own client-certificate check) would then be served terminated,
wider than intended; ingressd does not serve such an Ingress and says why (``ingressd check``
shows it).
"""

from __future__ import annotations

from ingressd import Annotation, AnnotationError, Phase, UpstreamSettings, hookimpl, parse_bool
from ingressd import same_for_every_path

FLAG = "enable_ssl_passthrough"


class TLSPassthrough:
    """The route's host passes TLS through (``tls_passthrough``); its HTTP goes to the backend
    over TLS."""

    phase = Phase.PROXY + 1  # after backend-protocol: the backend speaks TLS, whatever it says
    tls_passthrough = True
    upstream = UpstreamSettings(protocol="HTTPS")


_FEATURE = TLSPassthrough()


@hookimpl
def ingressd_annotations():
    return [
        Annotation("ssl-passthrough", parse_bool, False,
                   "true: TLS for the Ingress's hosts goes to the backend unterminated (needs --enable-ssl-passthrough)"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    if not values.get("ssl-passthrough"):
        return None
    if not context.settings.get(FLAG):
        raise AnnotationError(
            "ssl-passthrough is true but ingressd runs without --enable-ssl-passthrough: ingress-nginx would "
            "then terminate this host's TLS itself, which the backend did not ask for; not served "
            "(start ingressd with --enable-ssl-passthrough, or remove the annotation)")
    return _FEATURE
