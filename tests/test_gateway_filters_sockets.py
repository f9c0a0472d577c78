"""The Gateway API filters over real sockets on 127.0.0.1: ingressd's HTTP/1.1 server side, the real
Exchange and HTTP/1.1 upstream, a real backend and a real mirror (twisted.web), and a client
speaking raw HTTP/1.1 — what the backend saw, what the mirror got, what the client got."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest
from twisted.web import server

from ingressd.config.entries import RouteEntry
from ingressd.config.filters import (
    CORS,
    REPLACE_PREFIX_MATCH,
    HeaderChanges,
    PathModifier,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
)
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.config.routing import RouteTable
from ingressd.features import BuildContext
from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.proxy.exchange import Proxy, ProxySettings
from ingressd.proxy.http1_upstream import HTTP1Upstream
from ingressd.proxy.subrequest import SubrequestClient
from ingressd_plugins import gateway_filters

from test_exchange import State
from test_subrequest import Recorder, wait_for


class _Raw(Protocol):
    """Sends one request (``Connection: close``) and collects the answer until the close."""

    def __init__(self, data: bytes):
        self.data, self.received, self.done = data, b"", defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.data)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)


def _head(answer: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
    return int(lines[0].split()[1]), headers, body


class GatewayFiltersOverSockets(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.backend, self.mirror = Recorder(), Recorder()
        self.backend_port = self._listen(server.Site(self.backend))
        self.mirror_port = self._listen(server.Site(self.mirror))
        self.pools = {"HTTP": HTTP1Upstream(reactor)}
        self.mirror_pool = HTTP1Upstream(reactor)
        self.subrequests = SubrequestClient({"HTTP": self.mirror_pool}, reactor, connect_timeout=5,
                                            read_timeout=10, send_timeout=10)
        self.state: dict = {}  # the plugins' state (the mirror's copies outstanding)
        self.addCleanup(self._close_pools)

    def _listen(self, factory) -> int:
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return listening.getHost().port

    def _close_pools(self):
        pools = [*self.pools.values(), self.mirror_pool]
        connections = [c for pool in pools for idle in pool.idle.values() for c in idle]
        for pool in pools:
            pool.close()
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abortConnection()
        return wait_for(lambda: not any(c.connected for c in connections))

    def serve(self, filters, path="/") -> int:
        """ingressd's HTTP/1.1 side on 127.0.0.1 for one route with ``filters``; its port."""
        route = Route("shop.test", path, "Prefix",
                      Backend("default", "web", "80", (Endpoint("127.0.0.1", self.backend_port),)),
                      ObjectRef("HTTPRoute", "default", "shop"), filters=tuple(filters))
        context = BuildContext(settings={}, reactor=reactor, subrequests=self.subrequests, state=self.state)
        features = gateway_filters.ingressd_route_features(route, {}, context) or ()
        proxy = Proxy(State(RouteTable([RouteEntry(route, list(features))])), self.pools, ProxySettings(), reactor)
        return self._listen(HTTP1Factory(proxy, ServerSettings(), reactor))

    @defer.inlineCallbacks
    def ask(self, port, method=b"GET", target=b"/", headers=()):
        data = b"%s %s HTTP/1.1\r\nhost: shop.test\r\nconnection: close\r\n" % (method, target)
        data += b"".join(b"%s: %s\r\n" % pair for pair in headers) + b"\r\n"
        client = _Raw(data)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        answer = yield client.done
        return _head(answer)

    @defer.inlineCallbacks
    def test_headers_and_a_rewrite_reach_the_backend_and_the_client(self):
        port = self.serve([
            RequestHeaderModifier(HeaderChanges(set=(("x-set", "new"),), add=(("x-add", "two"),),
                                                remove=("x-gone",))),
            URLRewrite(hostname="one.example.org", path=PathModifier(REPLACE_PREFIX_MATCH, "/one")),
            ResponseHeaderModifier(HeaderChanges(set=(("x-answer", "gw"),), remove=("set-cookie",))),
        ], path="/prefix")
        status, headers, body = yield self.ask(port, target=b"/prefix/two?q=1", headers=[
            (b"x-set", b"old"), (b"x-add", b"one"), (b"x-gone", b"1")])
        self.assertEqual(status, 200)
        self.assertEqual(body, b"GET /one/two?q=1 ")
        ((_, uri, seen, _),) = self.backend.requests
        self.assertEqual(uri, b"/one/two?q=1")
        self.assertEqual(seen[b"Host"], [b"one.example.org"])
        self.assertEqual(seen[b"X-Set"], [b"new"])
        self.assertEqual(seen[b"X-Add"], [b"one", b"two"])
        self.assertNotIn(b"X-Gone", seen)
        self.assertIn(("x-answer", "gw"), headers)
        self.assertNotIn("set-cookie", [name for name, _ in headers])

    @defer.inlineCallbacks
    def test_a_redirect_is_answered_and_never_forwarded(self):
        port = self.serve([RequestRedirect(scheme="https", hostname="example.org", status_code=301)])
        status, headers, _ = yield self.ask(port, target=b"/a?b=c")
        self.assertEqual(status, 301)
        self.assertIn(("location", "https://example.org/a?b=c"), headers)
        self.assertEqual(self.backend.requests, [])

    @defer.inlineCallbacks
    def test_the_mirror_gets_a_copy_and_the_client_the_backends_answer(self):
        mirror = Backend("default", "mirror", "8080", (Endpoint("127.0.0.1", self.mirror_port),))
        port = self.serve([RequestMirror(mirror)])
        status, _, body = yield self.ask(port, target=b"/mirror?x=1")
        self.assertEqual((status, body), (200, b"GET /mirror?x=1 "))
        limits = self.state["gateway_filters"]["mirror_limits"].values()
        yield wait_for(lambda: len(self.mirror.requests) == 1 and not any(limit.in_flight for limit in limits))
        ((method, uri, seen, _),) = self.mirror.requests
        self.assertEqual((method, uri, seen[b"Host"]), (b"GET", b"/mirror?x=1", [b"shop.test"]))

    @defer.inlineCallbacks
    def test_a_cors_preflight_is_answered_and_never_forwarded(self):
        port = self.serve([CORS(allow_origins=("https://*.bar.com",), allow_methods=("GET",), max_age=60)])
        status, headers, _ = yield self.ask(port, method=b"OPTIONS", headers=[
            (b"origin", b"https://www.bar.com"), (b"access-control-request-method", b"GET")])
        self.assertEqual(status, 204)
        self.assertIn(("access-control-allow-origin", "https://www.bar.com"), headers)
        self.assertIn(("access-control-max-age", "60"), headers)
        self.assertEqual(self.backend.requests, [])
        status, headers, _ = yield self.ask(port, headers=[(b"origin", b"https://www.bar.com")])
        self.assertEqual(status, 200)
        self.assertIn(("access-control-allow-origin", "https://www.bar.com"), headers)
        self.assertEqual(len(self.backend.requests), 1)
