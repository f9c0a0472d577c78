"""Custom error pages and the per-Ingress default backend.

Annotations: ``custom-http-errors`` (comma-separated 4xx/5xx codes; default: the option
``--custom-http-errors``, empty), ``default-backend`` (a Service in the Ingress's namespace;
default: the global ``--default-backend-service NAMESPACE/NAME``, an option of the
core, which resolves it into ``context.default_backend``) and
``disable-proxy-intercept-errors`` (default false).

When a listed code is produced, by the backend or by ingressd itself (503, 429, 413, 401…),
ingressd GETs ``/`` from one of the error backend's endpoints with ingress-nginx's headers
(``X-Code``, ``X-Format``, ``X-Original-URI``, ``X-Namespace``, ``X-Ingress-Name``,
``X-Service-Name``, ``X-Service-Port``, ``X-Request-ID``) and serves that body and
Content-Type **with the original status**: unlike ingress-nginx, an error backend that
answers 200 cannot turn a 401 into a 200 (CVE-2026-24513). If the error backend fails, is
slow or sends too much, the plain error is served. The error backend is the
``default-backend`` Service when it has ready endpoints, else the global one.

``disable-proxy-intercept-errors: "true"`` leaves the backend's own error responses alone
(only ingressd's own errors get pages), unless ``--custom-http-errors`` is set: ingress-nginx
then turns ``proxy_intercept_errors`` on for the whole http block, and a location that does
not say ``on`` itself inherits it.

When the route's own Service is missing or has no ready endpoints and the ``default-backend``
Service has some, the request is proxied to that Service instead, as it came (method, path,
body, forwarding headers), with ``X-Code: 503``, ``X-Format``, ``X-Namespace``,
``X-Ingress-Name``, ``X-Service-Name``, ``X-Service-Port`` (and the usual ``X-Request-ID``),
and the client gets that Service's answer, status included: ingress-nginx makes it the
location's upstream (``custom-default-backend-…``, controller.go).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from ingressd import Annotation, AnnotationError, LocalResponse, Option, Phase, RoundRobin, hookimpl, parse_bool
from ingressd import same_for_every_path


_log = Logger()

CONNECT_TIMEOUT = 2.0
TIMEOUT = 5.0  # the whole fetch: connect, response and body
MAX_BODY = 1024 * 1024

_SERVICE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def parse_codes(value: str) -> tuple[int, ...]:
    """``"404, 503"`` → (404, 503); only 4xx and 5xx codes."""
    codes = set()
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not (len(item) == 3 and item.isdigit() and item[0] in "45"):
            raise AnnotationError(f"{item!r} is not a 4xx or 5xx status code")
        codes.add(int(item))
    return tuple(sorted(codes))


def _parse_service(value: str) -> str:
    name = value.strip()
    if not _SERVICE.fullmatch(name):
        raise AnnotationError(f"{value!r} is not a Service name (in the Ingress's own namespace)")
    return name


class _BodyCollector(Protocol):
    """Collects a response body up to ``limit`` bytes; more than that is a failure."""

    def __init__(self, finished: Deferred, limit: int):
        self.finished = finished
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self.transport.stopProducing()
            return
        self.parts.append(data)

    def connectionLost(self, reason) -> None:
        if self.finished.called:
            return
        if self.size > self.limit:
            self.finished.errback(ValueError(f"error page larger than {self.limit} bytes"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)


class ErrorPageFetcher:
    """GETs error pages through one persistent connection pool (shared by every route)."""

    def __init__(self, reactor: Any, pool: HTTPConnectionPool | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 timeout: float = TIMEOUT, max_body: int = MAX_BODY):
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = 8
            pool.cachedConnectionTimeout = 30  # below typical backend keep-alive timeouts
        self.pool = pool
        self._reactor = reactor
        self._agent = Agent(reactor, connectTimeout=connect_timeout, pool=pool)
        self._timeout = timeout
        self._max_body = max_body

    def fetch(self, address: str, port: int, headers: list[tuple[bytes, bytes]]) -> Deferred:
        """A Deferred firing with (content type or None, body), or failing."""
        host = f"[{address}]" if ":" in address else address
        request_headers = Headers()
        for name, value in headers:
            request_headers.addRawHeader(name, value)
        d = self._agent.request(b"GET", f"http://{host}:{port}/".encode("ascii"), request_headers)
        d.addCallback(self._read)
        d.addTimeout(self._timeout, self._reactor)
        return d

    def _read(self, response) -> Deferred:
        # Cancelling (the timeout) aborts the body read, which closes the connection.
        finished = Deferred(lambda _: collector.transport.stopProducing())
        collector = _BodyCollector(finished, self._max_body)
        response.deliverBody(collector)
        content_type = response.headers.getRawHeaders(b"content-type", [None])[0]
        finished.addCallback(lambda body: (content_type, body))
        return finished


class ErrorPages:
    """Replaces the body of responses whose status is in ``error_codes`` (no request-time work)."""

    phase = Phase.PROXY

    def __init__(self, codes: tuple[int, ...], backend: Any, fetcher: ErrorPageFetcher,
                 intercept_upstream: bool = True):
        self.error_codes = frozenset(codes)
        self.intercept_upstream = intercept_upstream  # False: only ingressd's own errors get pages
        self._endpoints = itertools.cycle(backend.endpoints)
        self._fetcher = fetcher

    def error(self, exchange, status: int) -> Deferred | None:
        if status not in self.error_codes:
            return None
        endpoint = next(self._endpoints)
        route = exchange.route
        headers = [
            (b"X-Code", b"%d" % status),
            (b"X-Original-URI", exchange.target),
            (b"X-Namespace", route.ingress.namespace.encode("ascii")),
            (b"X-Ingress-Name", route.ingress.name.encode("ascii")),
            (b"X-Service-Name", route.backend.service.encode("ascii")),
            (b"X-Service-Port", str(route.backend.port).encode("ascii")),
            (b"X-Request-ID", exchange.request_id.encode("ascii")),
            (b"X-Forwarded-For", exchange.client_ip.encode("ascii")),
        ]
        accept = exchange.headers.get(b"accept")
        if accept:  # nginx sends no header for an empty value
            headers.insert(1, (b"X-Format", accept))
        d = self._fetcher.fetch(endpoint.address, endpoint.port, headers)
        d.addCallbacks(self._page, self._failed, callbackArgs=(status,), errbackArgs=(exchange, status))
        return d

    @staticmethod
    def _page(result, status: int) -> LocalResponse:
        content_type, body = result
        headers = [(b"content-type", content_type)] if content_type else []
        return LocalResponse(status, headers, body)

    @staticmethod
    def _failed(failure, exchange, status: int) -> None:
        _log.warn("error page for {status} ({request_id}) unavailable: {why}", status=status,
                  request_id=exchange.request_id, why=failure.getErrorMessage())
        return None


class DefaultBackend:
    """Sends the requests of a route without ready endpoints to the ``default-backend`` Service.

    Decided per request from ``exchange.route``: the routes of one Ingress and host share
    their features, and only some of their Services may have endpoints.
    """

    phase = Phase.PROXY

    def __init__(self, backend: Any):
        self._balancer = RoundRobin(backend.endpoints)

    def request(self, exchange) -> None:
        route = exchange.route
        if route.backend.endpoints:
            return None
        headers = exchange.headers
        # proxy_set_header: the client's own values never pass; an empty one sends nothing.
        for name, value in (
            (b"x-code", b"503"),
            (b"x-format", headers.get(b"accept")),
            (b"x-namespace", route.ingress.namespace.encode("ascii")),
            (b"x-ingress-name", route.ingress.name.encode("ascii")),
            (b"x-service-name", route.backend.service.encode("ascii")),
            (b"x-service-port", route.backend.port.encode("ascii")),
        ):
            headers.remove(name)
            if value:
                headers.add(name, value)
        exchange.balancer = self._balancer
        return None


# -- plugin hooks ---------------------------------------------------------------------------

STATE = "error_pages"  # this plugin's name in BuildContext.plugin_state


def _fetcher_for(context) -> ErrorPageFetcher | None:
    """The server's fetcher of error pages (persistent connections to error backends), kept
    in its plugin state; None without a reactor."""
    if context.reactor is None:
        return None
    state = context.plugin_state(STATE)
    fetcher = state.get("fetcher")
    if fetcher is None:
        fetcher = state["fetcher"] = ErrorPageFetcher(context.reactor)
    return fetcher


@hookimpl
def ingressd_options():
    return [
        Option("custom-http-errors", (), "status codes served from the error backend unless an Ingress says otherwise",
               parse_codes),
    ]


@hookimpl
def ingressd_annotations():
    return [
        Annotation("custom-http-errors", parse_codes, None, "codes whose pages come from the error backend"),
        Annotation("default-backend", _parse_service, None,
                   "a Service in this namespace serving the error pages, and the requests of paths whose "
                   "Service has no ready endpoints", resolve="service"),
        Annotation("disable-proxy-intercept-errors", parse_bool, False,
                   "pass the backend's own error responses on; only ingressd's own errors get pages"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    features: list = []
    own = values.get("default-backend")
    if own is not None and not own.endpoints:
        own = None  # ingress-nginx only makes an upstream of it with at least one endpoint
    if own is not None:
        features.append(DefaultBackend(own))
    global_codes = context.settings.get("custom_http_errors") or ()
    codes = values.get("custom-http-errors")
    if codes is None:
        codes = global_codes
    backend = own or context.default_backend
    if codes and backend is not None and backend.endpoints:
        fetcher = _fetcher_for(context)
        if fetcher is not None:
            intercept = not values.get("disable-proxy-intercept-errors") or bool(global_codes)
            features.append(ErrorPages(codes, backend, fetcher, intercept))
    return features or None
