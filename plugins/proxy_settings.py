"""Per-location upstream timeouts and request body limit, as the route's ``UpstreamSettings``.

Annotations: ``proxy-connect-timeout``, ``proxy-read-timeout``, ``proxy-send-timeout``
(whole seconds, as ingress-nginx reads them: ``60``, not ``60s``) and ``proxy-body-size``
(nginx size: ``1024``, ``8k``, ``8M``, ``1g``; ``0`` = unlimited, as nginx's
client_max_body_size 0). Only annotations that are present are applied: the defaults are
the core's options (``--proxy-connect-timeout`` 5, ``--proxy-read-timeout`` 60,
``--proxy-send-timeout`` 60, ``--proxy-body-size`` 1m).

A timeout of ``0`` is what nginx makes of it, not "no timeout": ingress-nginx renders
``proxy_read_timeout 0s;`` and nginx arms its timer for 0 ms, so the wait ends at the next
turn of its event loop with a 504 (connect: unless the connection was made at once). The
core's timers do the same with 0 seconds (a ``callLater(0)``), so 0 is passed on as it is.
"""

from __future__ import annotations

from ingressd import Annotation, Phase, UpstreamSettings, hookimpl, parse_int, parse_size


_NGINX_MAX_SECONDS = (2**63 - 1) // 1000

class ProxySettings:
    """Phase PROXY: the location's timeouts and body limit, as typed settings of its route
    entry (the core applies them when the route is matched; nothing runs per request)."""

    phase = Phase.PROXY

    def __init__(self, upstream: UpstreamSettings):
        self.upstream = upstream


@hookimpl
def ingressd_annotations():
    # ingress-nginx takes any integer (strconv.Atoi) and renders "<n>s"; nginx refuses a
    # negative one and, for these millisecond directives, more than its largest integer
    # in milliseconds (ngx_parse_time), so the configuration would not load.
    seconds = parse_int(0, _NGINX_MAX_SECONDS)
    return [
        Annotation("proxy-connect-timeout", seconds, None, "seconds to connect to the upstream (default 5)"),
        Annotation("proxy-read-timeout", seconds, None, "seconds between two reads from the upstream (default 60)"),
        Annotation("proxy-send-timeout", seconds, None, "seconds between two writes to the upstream (default 60)"),
        Annotation("proxy-body-size", parse_size, None, "largest request body, nginx size; 0 = unlimited (default 1m)"),
        Annotation("proxy-http-version", _http_version, None, "1.0 or 1.1: the HTTP version of requests to the backend"),
    ]


def _http_version(value: str) -> str | None:
    """ingress-nginx's options "1.0" and "1.1" (trimmed); anything else: the default, 1.1."""
    version = value.strip()
    return version if version in ("1.0", "1.1") else None


@hookimpl
def ingressd_route_features(route, values, context):
    def seconds(name: str) -> float | None:
        value = values.get(name)
        return None if value is None else float(value)

    upstream = UpstreamSettings(seconds("proxy-connect-timeout"), seconds("proxy-read-timeout"),
                                seconds("proxy-send-timeout"), values.get("proxy-body-size"),
                                http_version=values.get("proxy-http-version"))
    return ProxySettings(upstream) if upstream != UpstreamSettings() else None
