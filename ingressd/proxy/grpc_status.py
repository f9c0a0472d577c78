"""A gRPC call's error, answered the gRPC way: which ``grpc-status`` an HTTP error becomes.

ingress-nginx (``grpc_pass``) answers a failed gRPC backend with nginx's own HTTP error
(502, 503, 504…), which a gRPC client turns into a status by the gRPC spec's table
("HTTP to gRPC Status Code Mapping"). ingressd answers a gRPC call (a route with
``backend-protocol: GRPC``/``GRPCS`` and a request of ``content-type: application/grpc…``) as
a gRPC server would, with the same code the client would have derived: HTTP 200,
``content-type: application/grpc``, no message, ``grpc-status`` and ``grpc-message`` in the
trailers. A deadline (``grpc-timeout``) that passed is DEADLINE_EXCEEDED. Anything else on a
gRPC route (a browser's GET) keeps its HTTP error page.
"""

from __future__ import annotations

from typing import Any

GRPC_PROTOCOLS = frozenset(("GRPC", "GRPCS"))

OK = 0
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

# The gRPC spec's table (doc/http-grpc-status-mapping.md); every other status is UNKNOWN.
_FROM_HTTP = {
    400: INTERNAL,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}


def is_grpc_call(exchange: Any) -> bool:
    """A request of a gRPC client to a gRPC route."""
    if exchange.upstream_settings.protocol not in GRPC_PROTOCOLS:
        return False
    content_type = exchange.headers.get(b"content-type") or b""
    return content_type[:16].lower() == b"application/grpc"


def of_http(status: int, cause: str = "") -> tuple[int, bytes]:
    """(grpc-status, grpc-message) for an HTTP error status ingressd answers (``cause``: the
    exchange's ``error_cause``, ``grpc_deadline`` when the call's own deadline passed)."""
    if cause == "grpc_deadline":
        return DEADLINE_EXCEEDED, b"deadline exceeded (grpc-timeout)"
    code = _FROM_HTTP.get(status, UNKNOWN)
    return code, b"HTTP status %d from ingressd%s" % (status, b" (" + cause.encode("ascii", "replace") + b")" if cause else b"")
