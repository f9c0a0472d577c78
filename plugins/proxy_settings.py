"""Per-location upstream timeouts, request body limit and retries, as the route's ``UpstreamSettings``.

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

Retries, as nginx's ``proxy_next_upstream`` (the policy: ``ingressd/proxy/next_upstream.py``):
``proxy-next-upstream`` (words among ``error timeout invalid_header http_500 http_502 http_503
http_504 http_403 http_404 http_429 non_idempotent off``; default ``error timeout``),
``proxy-next-upstream-tries`` (every try counts; default 3; 0: no limit, here each endpoint
once) and ``proxy-next-upstream-timeout`` (seconds since the first try; default 0: no limit).
A word nginx does not know (ingress-nginx would fall back to the default, or nginx refuse
the configuration) or a negative number rejects the Ingress. ``--retry-non-idempotent`` (the
ConfigMap's ``retry-non-idempotent``, default false) adds ``non_idempotent`` to every route's
list, as ingress-nginx's buildNextUpstream does: POST, LOCK and PATCH are then retried too.
An HTTPRoute rule's ``retry`` comes as the parsed value ``gateway-retry`` (a ``NextUpstream``
made by ``ingressd/config/gateway/retry.py``) and is the route's policy the same way.
"""

from __future__ import annotations

import dataclasses

from ingressd import (Annotation, AnnotationError, NextUpstream, Option, Phase, UpstreamSettings, hookimpl,
                      parse_bool, parse_int, parse_next_upstream, parse_size)
from ingressd import same_for_every_path


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
        Annotation("proxy-next-upstream", _next_upstream, None,
                   "when a request goes to the next endpoint: error timeout invalid_header http_5xx… off"),
        Annotation("proxy-next-upstream-tries", parse_int(0, 2**31 - 1), None,
                   "tries in all, the first included (default 3; 0: each endpoint once)"),
        Annotation("proxy-next-upstream-timeout", seconds, None,
                   "seconds after the first try during which others may begin (default 0: no limit)"),
    ]


@hookimpl
def ingressd_options():
    return [Option("retry-non-idempotent", False, "retry POST, LOCK and PATCH requests too, once sent, where "
                   "proxy-next-upstream allows a retry (true or false)", _switch)]


def _switch(value) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return parse_bool(str(value).strip())
    except AnnotationError as exc:
        raise ValueError(str(exc)) from None


def _next_upstream(value: str) -> tuple:
    try:
        return parse_next_upstream(value)
    except ValueError as exc:
        raise AnnotationError(str(exc)) from None


def _retries(values, retry_non_idempotent: bool = False) -> NextUpstream | None:
    """The route's retry policy when an annotation (or ``retry-non-idempotent``) says anything,
    else None (the server's)."""
    gateway = values.get("gateway-retry")  # an HTTPRoute rule's retry (ingressd/config/gateway/retry.py)
    if gateway is not None:
        return dataclasses.replace(gateway, non_idempotent=True) if retry_non_idempotent else gateway
    conditions, tries, timeout = (values.get("proxy-next-upstream"), values.get("proxy-next-upstream-tries"),
                                  values.get("proxy-next-upstream-timeout"))
    policy = NextUpstream()  # ingress-nginx's defaults: error timeout, 3 tries, no time limit
    if conditions is None and tries is None and timeout is None:
        return dataclasses.replace(policy, non_idempotent=True) if retry_non_idempotent else None
    failures, statuses, non_idempotent = conditions if conditions is not None else (
        policy.failures, policy.statuses, policy.non_idempotent)
    return NextUpstream(failures, statuses, non_idempotent or retry_non_idempotent,
                        policy.tries if tries is None else tries, policy.timeout if timeout is None else float(timeout))


def _http_version(value: str) -> str | None:
    """ingress-nginx's options "1.0" and "1.1" (trimmed); anything else: the default, 1.1."""
    version = value.strip()
    return version if version in ("1.0", "1.1") else None


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    def seconds(name: str) -> float | None:
        value = values.get(name)
        return None if value is None else float(value)

    upstream = UpstreamSettings(seconds("proxy-connect-timeout"), seconds("proxy-read-timeout"),
                                seconds("proxy-send-timeout"), values.get("proxy-body-size"),
                                http_version=values.get("proxy-http-version"),
                                next_upstream=_retries(values, _retry_non_idempotent(context)))
    return ProxySettings(upstream) if upstream != UpstreamSettings() else None


def _retry_non_idempotent(context) -> bool:
    settings = context.settings if context is not None else {}
    value = settings.get("retry_non_idempotent", settings.get("retry-non-idempotent"))
    return bool(value) and _switch(value)
