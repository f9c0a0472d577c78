"""error_pages: which codes, which backend, the default-backend fallback, disable-proxy-intercept-errors,
and real fetches from a tiny twisted.web error backend."""

from dataclasses import replace

import pytest
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest
from twisted.web import resource, server

from fakes import annotation_values, exchange, features_for, make_context, make_route
from ingressd.features import AnnotationError, LocalResponse
from ingressd.config.model import Backend, Endpoint
from ingressd_plugins import error_pages


class FakeFetcher:
    def __init__(self):
        self.calls = []

    def fetch(self, address, port, headers):
        self.calls.append((address, port, dict(headers)))
        return defer.succeed((b"text/html", b"<h1>oops</h1>"))


ERRORS = Backend("default", "errors", "80", (Endpoint("10.9.0.1", 8080), Endpoint("10.9.0.2", 8080)))
GLOBAL = Backend("ingress", "global-errors", "80", (Endpoint("10.8.0.1", 80),))


@pytest.fixture
def fake_fetcher(monkeypatch):
    fetcher = FakeFetcher()
    monkeypatch.setattr(error_pages, "_fetcher_for", lambda context: fetcher)
    return fetcher


def test_codes_and_service_parsing():
    assert error_pages.parse_codes("503, 404,404 ,") == (404, 503)
    for bad in ("200", "600", "40x", "4041", "404;500"):
        with pytest.raises(AnnotationError):
            error_pages.parse_codes(bad)
    for bad in ("other-ns/errors", "Errors", "-x"):
        with pytest.raises(AnnotationError):
            annotation_values(error_pages, {"default-backend": bad})


def error_pages_of(features):
    return [feature for feature in features if isinstance(feature, error_pages.ErrorPages)]


def test_no_error_pages_without_codes_or_backend(fake_fetcher):
    assert error_pages_of(features_for(error_pages, {"default-backend": "errors"},
                                       resolved={"default-backend": ERRORS})) == []
    assert features_for(error_pages, {"custom-http-errors": "503"}) == []  # no backend anywhere
    empty = Backend("default", "errors", "80", ())
    assert features_for(error_pages, {"custom-http-errors": "503"}, resolved={"default-backend": empty}) == []
    missing = features_for(error_pages, {"custom-http-errors": "503", "default-backend": "errors"},
                           resolved={"default-backend": None})
    assert missing == []


def test_a_default_backend_without_endpoints_leaves_the_pages_to_the_global_one(fake_fetcher):
    # controller.go: no "custom-default-backend-…" upstream without endpoints, so the
    # location's error pages stay with "upstream-default-backend".
    empty = Backend("default", "errors", "80", ())
    for resolved in (empty, None):
        [feature] = features_for(error_pages, {"custom-http-errors": "503", "default-backend": "errors"},
                                 context=make_context(default_backend=GLOBAL), resolved={"default-backend": resolved})
        feature.error(exchange(), 503)
    assert [call[0] for call in fake_fetcher.calls] == ["10.8.0.1", "10.8.0.1"]


def test_annotation_backend_wins_over_the_global_one_and_endpoints_rotate(fake_fetcher):
    context = make_context(default_backend=GLOBAL)
    [feature] = error_pages_of(features_for(error_pages, {"custom-http-errors": "503,404"}, context=context,
                                            resolved={"default-backend": ERRORS}))
    assert feature.error_codes == frozenset({404, 503})
    assert feature.error(exchange(), 502) is None
    ex = exchange({"accept": "application/json"}, target=b"/a?b=1", request_id="rid-1", client_ip="192.0.2.4",
                  route=make_route(namespace="shop", ingress="front", service="cart", port="http"))
    answer = feature.error(ex, 503).result
    assert answer == LocalResponse(503, [(b"content-type", b"text/html")], b"<h1>oops</h1>")
    feature.error(ex, 404)
    (first_addr, _, headers), (second_addr, _, _) = fake_fetcher.calls
    assert {first_addr, second_addr} == {"10.9.0.1", "10.9.0.2"}
    assert headers == {
        b"X-Code": b"503", b"X-Format": b"application/json", b"X-Original-URI": b"/a?b=1", b"X-Namespace": b"shop",
        b"X-Ingress-Name": b"front", b"X-Service-Name": b"cart", b"X-Service-Port": b"http",
        b"X-Request-ID": b"rid-1", b"X-Forwarded-For": b"192.0.2.4",
    }


def test_global_backend_and_global_codes(fake_fetcher):
    context = make_context({"custom_http_errors": (429,)}, default_backend=GLOBAL)
    [feature] = features_for(error_pages, {}, context=context)
    assert feature.error_codes == frozenset({429})
    feature.error(exchange(), 429)
    assert fake_fetcher.calls[0][0] == "10.8.0.1"
    assert b"X-Format" not in fake_fetcher.calls[0][2]  # no Accept, no header (as nginx)
    # An Ingress's own list replaces the global one.
    [feature] = features_for(error_pages, {"custom-http-errors": "404"}, context=context)
    assert feature.error_codes == frozenset({404})


@pytest.mark.parametrize("annotation, global_codes, intercepts", [
    (None, (), True),
    ("false", (), True),
    ("true", (), False),
    # --custom-http-errors turns proxy_intercept_errors on for the whole http block
    # (nginx.tmpl); a location that does not say "on" itself inherits it.
    ("true", (503,), True),
])
def test_disable_proxy_intercept_errors(fake_fetcher, annotation, global_codes, intercepts):
    raw = {"custom-http-errors": "404"}
    if annotation is not None:
        raw["disable-proxy-intercept-errors"] = annotation
    context = make_context({"custom_http_errors": global_codes}, default_backend=GLOBAL)
    [feature] = features_for(error_pages, raw, context=context)
    assert feature.error_codes == frozenset({404})
    assert feature.intercept_upstream is intercepts


def test_disable_proxy_intercept_errors_takes_a_bool():
    assert annotation_values(error_pages, {})["disable-proxy-intercept-errors"] is False
    with pytest.raises(AnnotationError):
        annotation_values(error_pages, {"disable-proxy-intercept-errors": "maybe"})


# -- default-backend: the route's Service has no ready endpoints ------------------------------


def fallback_for(route, resolved=ERRORS):
    features = features_for(error_pages, {"default-backend": "errors"}, route=route,
                            resolved={"default-backend": resolved})
    return [feature for feature in features if isinstance(feature, error_pages.DefaultBackend)]


@pytest.mark.parametrize("request_headers, expected_format", [
    ({"accept": "application/json"}, b"application/json"),
    ({}, None),  # no Accept: no X-Format (nginx sends no header for an empty value)
    ({"x-code": "200", "x-format": "evil", "x-service-name": "evil"}, None),  # the client's own never pass
])
def test_requests_of_a_route_without_endpoints_go_to_the_default_backend(request_headers, expected_format):
    route = replace(make_route(namespace="shop", ingress="front"), backend=Backend("shop", "invalid", "http", ()))
    [feature] = fallback_for(route)
    ex = exchange(request_headers, route=route, target=b"/alma/armud?x=1")
    assert feature.request(ex) is None
    assert ex.target == b"/alma/armud?x=1"  # proxied as it came, not as an error-page request
    sent = {name: ex.headers.get_all(name) for name, _ in ex.headers}
    assert sent[b"x-code"] == [b"503"]
    assert sent.get(b"x-format", [None]) == [expected_format]
    assert (sent[b"x-namespace"], sent[b"x-ingress-name"]) == ([b"shop"], [b"front"])
    assert (sent[b"x-service-name"], sent[b"x-service-port"]) == ([b"invalid"], [b"http"])
    assert b"x-original-uri" not in sent  # the custom-default-backend block does not set it
    assert [ex.balancer.pick() for _ in range(3)] == [Endpoint("10.9.0.1", 8080), Endpoint("10.9.0.2", 8080),
                                                      Endpoint("10.9.0.1", 8080)]
    assert ex.balancer.pick((Endpoint("10.9.0.2", 8080),)) == Endpoint("10.9.0.1", 8080)


def test_requests_of_a_route_with_endpoints_are_left_alone():
    [feature] = fallback_for(make_route())
    ex = exchange({"accept": "text/html"})
    assert feature.request(ex) is None
    assert getattr(ex, "balancer", None) is None and ex.headers.get(b"x-code") is None


def test_no_fallback_to_a_default_backend_without_endpoints():
    assert fallback_for(make_route(), Backend("default", "errors", "80", ())) == []
    assert fallback_for(make_route(), None) == []


# -- real fetches over loopback --------------------------------------------------------------


class ErrorBackend(resource.Resource):
    isLeaf = True

    def __init__(self, status_from_code=True, body=b"<p>custom error</p>", hang=False):
        super().__init__()
        self.requests = []
        self.status_from_code = status_from_code
        self.body = body
        self.hang = hang

    def render_GET(self, request):
        self.requests.append((request.uri, {k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()}))
        if self.hang:
            return server.NOT_DONE_YET
        # A badly behaved backend ignores X-Code and answers 200.
        request.setResponseCode(int(request.getHeader(b"x-code")) if self.status_from_code else 200)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return self.body


class FetchTests(unittest.TestCase):
    def start(self, backend):
        site = server.Site(backend)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def make_feature(self, port, codes=(401, 503), **fetcher_kwargs):
        fetcher = error_pages.ErrorPageFetcher(reactor, **fetcher_kwargs)
        self.addCleanup(fetcher.pool.closeCachedConnections)
        backend = Backend("default", "errors", "80", (Endpoint("127.0.0.1", port),))
        return error_pages.ErrorPages(codes, backend, fetcher)

    @defer.inlineCallbacks
    def test_page_is_fetched_and_the_original_status_kept(self):
        backend = ErrorBackend(status_from_code=False)
        feature = self.make_feature(self.start(backend))
        ex = exchange({"accept": "text/html"}, target=b"/private?x=1", request_id="abc")
        answer = yield feature.error(ex, 401)
        self.assertEqual(answer.status, 401)  # the backend said 200: never a 200 for a 401
        self.assertEqual(answer.body, b"<p>custom error</p>")
        self.assertEqual(answer.headers, [(b"content-type", b"text/html; charset=utf-8")])
        uri, headers = backend.requests[0]
        self.assertEqual(uri, b"/")
        self.assertEqual(headers[b"x-code"], b"401")
        self.assertEqual(headers[b"x-format"], b"text/html")
        self.assertEqual(headers[b"x-original-uri"], b"/private?x=1")
        self.assertEqual(headers[b"x-request-id"], b"abc")
        self.assertEqual(headers[b"x-namespace"], b"default")

    @defer.inlineCallbacks
    def test_connections_are_reused(self):
        backend = ErrorBackend()
        port = self.start(backend)
        feature = self.make_feature(port)
        for _ in range(3):
            answer = yield feature.error(exchange(), 503)
            self.assertEqual(answer.status, 503)
        pool = feature._fetcher.pool
        connections = pool._connections.get((b"http", b"127.0.0.1", port), [])
        self.assertEqual(len(connections), 1)
        self.assertEqual(len(backend.requests), 3)

    @defer.inlineCallbacks
    def test_backend_down_serves_the_plain_error(self):
        listening = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        port = listening.getHost().port
        yield listening.stopListening()
        answer = yield self.make_feature(port).error(exchange(), 503)
        self.assertIsNone(answer)

    @defer.inlineCallbacks
    def test_slow_backend_times_out(self):
        backend = ErrorBackend(hang=True)
        feature = self.make_feature(self.start(backend), timeout=0.2)
        answer = yield feature.error(exchange(), 503)
        self.assertIsNone(answer)
        self.assertEqual(len(backend.requests), 1)

    @defer.inlineCallbacks
    def test_oversized_page_is_refused(self):
        backend = ErrorBackend(body=b"x" * 5000)
        feature = self.make_feature(self.start(backend), max_body=1000)
        answer = yield feature.error(exchange(), 503)
        self.assertIsNone(answer)
