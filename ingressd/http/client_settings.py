"""The client side's settings (options, with the ingress-nginx ConfigMap's keys laid over them)
as the values of ``ServerSettings``, which the listeners and their connections share: applied
in place, they are read by the next connection and the next request of an open one.
"""

from __future__ import annotations

from typing import Any, Mapping

from ingressd.http.head_buffers import DEFAULT, parse_header_buffers
from ingressd.http.headers import ResponseIdentity, server_name

# The settings (option names, underscores) behind ``ServerSettings``: applied live.
CLIENT_SIDE = frozenset({
    "client_header_timeout", "client_body_timeout", "keepalive_timeout", "keepalive_requests",
    "http2_max_concurrent_streams", "server_tokens", "no_http2", "large_client_header_buffers",
    "enable_underscores_in_headers", "ignore_invalid_headers", "max_worker_connections",
    "allow_backend_server_header",
})


def server_values(settings: Mapping[str, Any], version: str) -> dict[str, Any]:
    """``ServerSettings`` field values from ``settings`` (ingress-nginx's defaults where unset)."""
    ignore_invalid = settings.get("ignore_invalid_headers")
    return {
        "header_timeout": float(settings.get("client_header_timeout") or 60),
        "body_timeout": float(settings.get("client_body_timeout") or 60),
        "keepalive_timeout": float(settings.get("keepalive_timeout") or 75),
        "keepalive_requests": int(settings.get("keepalive_requests", 1000) or 0),
        "http2_max_concurrent_streams": int(settings.get("http2_max_concurrent_streams") or 128),
        "header_buffers": parse_header_buffers(settings.get("large_client_header_buffers") or DEFAULT),
        "underscores_in_headers": bool(settings.get("enable_underscores_in_headers")),
        "ignore_invalid_headers": True if ignore_invalid is None else bool(ignore_invalid),
        "backend_server_header": bool(settings.get("allow_backend_server_header")),
        "identity": ResponseIdentity(server_name(bool(settings.get("server_tokens")), version)),
    }
