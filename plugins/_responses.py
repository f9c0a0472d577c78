"""The short local answers built-in plugins give (401, 403, 429, 503…), worded as nginx words them.

ingress-nginx answers these with nginx's stock pages, whose titles are nginx's own and not
always the RFC reason phrases: "401 Authorization Required" (the status line still says
Unauthorized), "503 Service Temporarily Unavailable", "504 Gateway Time-out"… (the
``ngx_http_error_*_page`` strings of nginx's src/http/ngx_http_special_response.c). We send
the same title as a one-line text/plain body: clients, and ingress-nginx's own e2e tests
(test/e2e/annotations/auth.go: ``Body().Contains("401 Authorization Required")``), look
for the text, not the markup. For a code nginx has no page for (418, 422…) nginx sends no
body, and neither do we: the core then answers it as it answers its own errors.

A new LocalResponse per answer, because ``response`` hooks mutate the header list they get.
"""

from __future__ import annotations

import re

from typing import Iterable

from ingressd import LocalResponse

_TEXT = (b"content-type", b"text/plain; charset=utf-8")

# nginx's page titles, by status (every code nginx has a built-in page for).
TITLES = {
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Authorization Required",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Not Allowed",
    406: "Not Acceptable",
    408: "Request Time-out",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    421: "Misdirected Request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
    505: "HTTP Version Not Supported",
    507: "Insufficient Storage",
}


def plain(status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> LocalResponse:
    """``<status> <nginx's title>`` as a text/plain body, with ``headers`` added."""
    title = TITLES.get(status)
    if title is None:
        return LocalResponse(status, list(headers))
    return LocalResponse(status, [_TEXT, *headers], f"{status} {title}\n".encode("ascii"))


class DeniedLocation:
    """Every request of the route gets 503: an annotation's configuration cannot be used (a
    missing Secret or ConfigMap…), as ingress-nginx's denied location (``return 503``) — never
    served without what the annotation asks. ``reason`` is kept for logs and tests."""

    def __init__(self, reason: str, phase: int):
        self.reason = reason
        self.phase = phase

    def request(self, exchange) -> LocalResponse:
        return plain(503)


# What may stand for the host in a Location nginx makes absolute: a DNS name or an IP literal
# (the client's Host header must not be able to change the URL's structure).
_LOCATION_HOST = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+")


def absolute_location(exchange, location: bytes, relative: bool = False, with_port: bool = False) -> bytes | None:
    """A redirect's Location as nginx sends it with ``absolute_redirect on`` (its default, and
    ingress-nginx's unless ``relative-redirects``), ``server_name_in_redirect`` off and
    ``port_in_redirect`` off (ingress-nginx's unless ``use-port-in-redirects``): a path gets
    ``$scheme://`` and the request's host, and with ``with_port`` the server port unless it is
    the scheme's default; an absolute URL stays, and so does a path when ``relative``. None:
    the host cannot be put in a URL (answer 400)."""
    if relative or not location.startswith(b"/"):
        return location
    host = exchange.host
    if not host:
        return location
    port = None
    if with_port:
        number = getattr(exchange, "server_port", 0)
        if number and number != (443 if exchange.scheme == "https" else 80):
            port = number
    return redirect_location(exchange.scheme, host, port, location)


def redirect_location(scheme: str, host: str, port: int | None, uri: bytes) -> bytes | None:
    """``scheme://host[:port]uri`` for a Location, or None when ``host`` cannot be put in a URL
    (answer 400): a DNS name or an IP literal (an IPv6 one gets its brackets)."""
    if not _LOCATION_HOST.fullmatch(host):
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    authority = host.encode("ascii") + (b":%d" % port if port is not None else b"")
    return scheme.encode("ascii") + b"://" + authority + uri
