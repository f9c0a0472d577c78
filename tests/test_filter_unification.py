"""One implementation per filter kind for the annotations and the Gateway API filters.

For each kind unified, a differential test: equivalent settings through the annotation plugin
and through ``gateway_filters`` give the same bytes (the request the backend is sent, or the
answer the client gets), and a spy shows both reach the same shared function."""

from __future__ import annotations

import pytest

from ingressd.config.entries import RouteEntry
from ingressd.config.filters import (
    CORS,
    REPLACE_FULL_PATH,
    HeaderChanges,
    PathModifier,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
)
from ingressd.config.model import Backend, Endpoint, ObjectRef, Route
from ingressd.features import BuildContext
from ingressd.testing import features_for
from ingressd_plugins import _cors_policy, _header_changes, _redirects, cors, gateway_filters, redirect
from ingressd_plugins import _mirroring, _rewrites, mirror, response_headers, rewrite
from ingressd_plugins import upstream_headers

from test_exchange import ONE, FakeClient, proxy_for, request, send
from test_mirror import FakeSubrequests


def _route(filters=(), kind="Ingress"):
    return Route("shop.test", "/", "Prefix", Backend("default", "web", "80", (ONE,)),
                 ObjectRef(kind, "default", "shop"), filters=tuple(filters))


def _context():
    return BuildContext(settings={}, reactor=None)


def _gateway_features(filters):
    served = _route(filters, "HTTPRoute")
    return served, list(gateway_filters.ingressd_route_features(served, {}, _context()) or ())


def _annotation_features(plugin, raw):
    served = _route()
    return served, features_for(plugin, raw, served, _context())


def _backend_request(served, features, headers=()):
    """The request head the backend is sent for one GET /."""
    proxy, pool, _ = proxy_for(RouteEntry(served, features))
    send(proxy, request(headers=headers))
    return _same_id(pool.connect().sent)


def _same_id(head):
    """The request id is random per request: the same placeholder for both sides."""
    return b"\r\n".join(b"x-request-id: ID" if line.startswith(b"x-request-id:") else line
                         for line in head.split(b"\r\n"))


def _client_answer(served, features, backend_headers):
    """The head the client gets when the backend answers 200 with ``backend_headers``."""
    proxy, pool, _ = proxy_for(RouteEntry(served, features))
    client, _ = send(proxy, request())
    connection = pool.connect()
    connection.respond(200, list(backend_headers), b"")
    return client.head


@pytest.fixture
def spy(monkeypatch):
    """Which plugin modules' features reached ``HeaderChange.apply``."""
    calls = []
    original = _header_changes.HeaderChange.apply

    def apply(self, headers, exchange):
        calls.append(self)
        return original(self, headers, exchange)

    monkeypatch.setattr(_header_changes.HeaderChange, "apply", apply)
    return calls


# -- header changes ---------------------------------------------------------------------------


CLIENT = [(b"x-old", b"1"), (b"x-keep", b"k"), (b"x-old", b"2"), (b"x-gone", b"g")]


def test_request_headers_annotation_and_filter_send_the_backend_the_same_bytes(spy):
    served, by_annotation = _annotation_features(upstream_headers, {
        "request-headers": "X-Old: new\nX-Extra: e", "remove-request-headers": "X-Gone"})
    annotation_bytes = _backend_request(served, by_annotation, CLIENT)
    assert len(spy) == 1
    served, by_filter = _gateway_features([RequestHeaderModifier(HeaderChanges(
        set=(("x-old", "new"), ("x-extra", "e")), remove=("x-gone",)))])
    filter_bytes = _backend_request(served, by_filter, CLIENT)
    assert len(spy) == 2
    assert annotation_bytes == filter_bytes
    assert b"x-old: new\r\nx-keep: k\r\n" in filter_bytes and b"x-gone" not in filter_bytes
    assert filter_bytes.count(b"x-old") == 1 and b"x-extra: e\r\n" in filter_bytes


BACKEND = [(b"x-old", b"1"), (b"x-keep", b"k"), (b"x-gone", b"g")]


def test_response_headers_annotation_and_filter_give_the_client_the_same_bytes(spy):
    served, by_annotation = _annotation_features(response_headers, {
        "response-headers": "X-Old: new", "remove-response-headers": "X-Gone"})
    annotation_head = _client_answer(served, by_annotation, BACKEND)
    assert len(spy) == 1
    served, by_filter = _gateway_features([ResponseHeaderModifier(HeaderChanges(
        set=(("x-old", "new"),), remove=("x-gone",)))])
    filter_head = _client_answer(served, by_filter, BACKEND)
    assert len(spy) == 2
    assert annotation_head == filter_head


def test_upstream_vhost_and_url_rewrite_hostname_share_the_host_change(spy):
    served, by_annotation = _annotation_features(upstream_headers, {"upstream-vhost": "inside.test"})
    annotation_bytes = _backend_request(served, by_annotation)
    served, by_filter = _gateway_features([URLRewrite(hostname="inside.test")])
    filter_bytes = _backend_request(served, by_filter)
    assert len(spy) == 2
    assert annotation_bytes == filter_bytes
    assert b"host: inside.test\r\n" in filter_bytes


def test_custom_headers_is_the_same_change_dropping_then_appending(spy):
    from ingressd_plugins.custom_headers import CustomHeaders

    feature = CustomHeaders(((b"x-a", b"new"),))
    headers = [(b"x-a", b"1"), (b"x-b", b"b"), (b"x-a", b"2")]
    feature.response(None, 200, headers)
    assert headers == [(b"x-b", b"b"), (b"x-a", b"new")] and len(spy) == 1


def test_a_filters_add_appends_another_line_after_the_sets():
    change = _header_changes.HeaderChange(frozenset((b"x-gone",)), ((b"x-a", _value(b"1")),),
                                          ((b"x-a", b"2"),))
    headers = [(b"x-a", b"0"), (b"x-gone", b"g"), (b"x-b", b"b")]
    change.apply(headers, None)
    assert headers == [(b"x-a", b"1"), (b"x-b", b"b"), (b"x-a", b"2")]


def test_an_empty_change_changes_nothing():
    headers = [(b"x-a", b"0")]
    _header_changes.HeaderChange().apply(headers, None)
    assert headers == [(b"x-a", b"0")] and not _header_changes.HeaderChange()


def _value(constant):
    from ingressd_plugins._header_values import Value
    return Value((constant,))


# -- redirects --------------------------------------------------------------------------------


def _redirect_answer(served, features, host=b"shop.test", scheme="http", target=b"/old"):
    proxy, pool, _ = proxy_for(RouteEntry(served, features))
    client, _ = send(proxy, request(target=target, host=host), FakeClient(scheme=scheme))
    assert pool.asked == []  # answered by ingressd, never forwarded
    return client.head, client.body


@pytest.fixture
def redirect_spy(monkeypatch):
    """The status and Location of every answer made by ``_redirects.answer``."""
    calls = []
    original = _redirects.answer

    def answer(code, target):
        calls.append((code, target))
        return original(code, target)

    monkeypatch.setattr(_redirects, "answer", answer)
    return calls


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("code", [301, 302, 308])
def test_permanent_redirect_and_request_redirect_give_the_same_answer(redirect_spy, code, scheme):
    served, by_annotation = _annotation_features(redirect, {
        "permanent-redirect": "/new", "permanent-redirect-code": str(code)})
    annotation_answer = _redirect_answer(served, by_annotation, scheme=scheme)
    served, by_filter = _gateway_features([RequestRedirect(path=PathModifier(REPLACE_FULL_PATH, "/new"),
                                                           status_code=code)])
    filter_answer = _redirect_answer(served, by_filter, scheme=scheme)
    assert redirect_spy == [(code, f"{scheme}://shop.test/new".encode())] * 2
    assert annotation_answer == filter_answer
    assert annotation_answer[0][0] == code


def test_a_host_that_cannot_be_put_in_a_location_is_400_for_both(redirect_spy):
    from ingressd.testing import exchange

    _, by_annotation = _annotation_features(redirect, {"permanent-redirect": "/new"})
    _, by_filter = _gateway_features([RequestRedirect(path=PathModifier(REPLACE_FULL_PATH, "/new"),
                                                      status_code=301)])
    answers = [feature.request(exchange(host="bad host", path="/old", target=b"/old"))
               for feature in (*by_annotation, *by_filter)]
    assert redirect_spy == [(301, None)] * 2
    assert [answer.status for answer in answers] == [400, 400] and answers[0].body == answers[1].body


def test_the_shared_location_leaves_out_the_schemes_own_port():
    assert _redirects.location("http", "a.test", 80, b"/") == b"http://a.test/"
    assert _redirects.location("https", "a.test", 443, b"/") == b"https://a.test/"
    assert _redirects.location("http", "a.test", 443, b"/") == b"http://a.test:443/"
    assert _redirects.location("https", "::1", 8443, b"/x") == b"https://[::1]:8443/x"
    assert _redirects.location("http", "bad host", None, b"/") is None


@pytest.mark.parametrize("code, status, body", [(304, 304, b""), (300, 300, b"/new")])
def test_a_code_that_is_not_a_redirect_sends_no_location(code, status, body):
    answer = _redirects.answer(code, b"/new")
    assert answer.status == status and (answer.body or b"") == body
    assert all(name != b"location" for name, _ in answer.headers)


# -- CORS ---------------------------------------------------------------------------------------


ORIGIN = (b"origin", b"https://a.test")
PREFLIGHT = [ORIGIN, (b"access-control-request-method", b"POST")]


@pytest.fixture
def cors_spy(monkeypatch):
    """Which features' ``CorsPolicy.response`` ran."""
    calls = []
    original = _cors_policy.CorsPolicy.response

    def response(self, exchange, status, headers):
        calls.append(type(self).__module__)
        return original(self, exchange, status, headers)

    monkeypatch.setattr(_cors_policy.CorsPolicy, "response", response)
    return calls


def _cors_pair(origins="https://a.test", credentials=True):
    _, by_annotation = _annotation_features(cors, {
        "enable-cors": "true", "cors-allow-origin": origins, "cors-allow-methods": "GET, POST",
        "cors-allow-headers": "X-A", "cors-allow-credentials": str(credentials).lower(), "cors-max-age": "100"})
    _, by_filter = _gateway_features([CORS(allow_origins=tuple(origins.split(",")), allow_methods=("GET", "POST"),
                                           allow_headers=("X-A",), allow_credentials=credentials, max_age=100)])
    return by_annotation, by_filter


def _answer(features, method=b"GET", headers=()):
    proxy, pool, _ = proxy_for(RouteEntry(_route(), features))
    client, _ = send(proxy, request(method=method, headers=headers))
    if pool.asked:
        pool.connect().respond(200, [(b"Access-Control-Allow-Origin", b"https://backend.test")], b"")
    return client.head


@pytest.mark.parametrize("credentials", [True, False])
def test_enable_cors_and_the_cors_filter_answer_an_allowed_preflight_with_the_same_bytes(cors_spy, credentials):
    by_annotation, by_filter = _cors_pair(credentials=credentials)
    assert _answer(by_annotation, b"OPTIONS", PREFLIGHT) == _answer(by_filter, b"OPTIONS", PREFLIGHT)
    assert cors_spy == ["ingressd_plugins.cors", "ingressd_plugins.gateway_filters"]


def test_an_allowed_origins_answer_gets_the_same_origin_credentials_and_vary_from_both(cors_spy):
    by_annotation, by_filter = _cors_pair()
    common = (b"access-control-allow-origin", b"access-control-allow-credentials", b"vary")

    def shared(head):
        return [pair for pair in head[1] if pair[0] in common]

    annotation_head, filter_head = _answer(by_annotation, headers=[ORIGIN]), _answer(by_filter, headers=[ORIGIN])
    assert shared(annotation_head) == shared(filter_head) == [
        (b"vary", b"Origin"), (b"access-control-allow-origin", b"https://a.test"),
        (b"access-control-allow-credentials", b"true")]
    assert len(cors_spy) == 2


def test_where_the_specifications_differ_the_shared_code_takes_a_parameter():
    # A preflight from an origin not allowed: enable-cors lets the backend answer it, the
    # Gateway API answers 204 without any Access-Control-* header.
    by_annotation, by_filter = _cors_pair()
    other = [(b"origin", b"https://b.test"), (b"access-control-request-method", b"POST")]
    proxy, pool, _ = proxy_for(RouteEntry(_route(), by_annotation))
    send(proxy, request(method=b"OPTIONS", headers=other))
    assert pool.asked  # forwarded
    head = _answer(by_filter, b"OPTIONS", other)
    assert head[0] == 204 and not any(name.startswith(b"access-control-") for name, _ in head[1])
    # Every origin allowed, no Origin header: enable-cors still sends "*", the Gateway API nothing.
    by_annotation, by_filter = _cors_pair("*", credentials=False)
    assert (b"access-control-allow-origin", b"*") in _answer(by_annotation)[1]
    filter_head = _answer(by_filter)[1]
    assert [value for name, value in filter_head if name == b"access-control-allow-origin"] == [
        b"https://backend.test"]  # the backend's own, untouched


# -- mirror -------------------------------------------------------------------------------------


def _copy_sent(features, subrequests):
    proxy, pool, _ = proxy_for(RouteEntry(_route(), features))
    send(proxy, request(target=b"/m?x=1", headers=[(b"x-tag", b"t")]))
    pool.connect()
    (sent,) = subrequests.sent
    method, url, headers, body, kwargs, _ = sent
    headers = [(name, b"ID" if name == b"x-request-id" else value) for name, value in headers]
    return method, (url.scheme, url.host, url.port, url.target), headers, body, kwargs


def test_mirror_target_and_request_mirror_send_the_same_copy(monkeypatch):
    made = []
    original = _mirroring.mirror_to

    def mirror_to(*args):
        made.append(args[0].text)
        return original(*args)

    monkeypatch.setattr(_mirroring, "mirror_to", mirror_to)
    monkeypatch.setattr(mirror, "mirror_to", mirror_to)
    monkeypatch.setattr(gateway_filters, "mirror_to", mirror_to)
    by_annotation_client, by_filter_client = FakeSubrequests(), FakeSubrequests()
    by_annotation = features_for(mirror, {"mirror-target": "http://10.0.0.9:8080", "mirror-host": "$host"},
                                 _route(), BuildContext(settings={}, reactor=None, subrequests=by_annotation_client))
    served = _route([RequestMirror(Backend("default", "mirror", "8080", (Endpoint("10.0.0.9", 8080),)))],
                    "HTTPRoute")
    by_filter = list(gateway_filters.ingressd_route_features(
        served, {}, BuildContext(settings={}, reactor=None, subrequests=by_filter_client)))
    assert made == ["http://10.0.0.9:8080"] * 2
    annotation_copy = _copy_sent(by_annotation, by_annotation_client)
    assert annotation_copy == _copy_sent(by_filter, by_filter_client)
    assert annotation_copy[1] == ("http", "10.0.0.9", 8080, b"/m?x=1") and annotation_copy[4].get("discard")


def test_the_mirror_bounds_are_the_operators_for_both():
    context = BuildContext(settings={"mirror_max_in_flight": 3, "mirror_max_body_size": "2k"}, reactor=None,
                           subrequests=FakeSubrequests())
    limits = {}
    target = mirror.parse_target("http://10.0.0.9:8080")
    first = _mirroring.mirror_to(target, True, None, context, limits)
    second = _mirroring.mirror_to(target, False, None, context, limits)
    assert first._limit is second._limit and list(limits) == [("http", "10.0.0.9", 8080)]
    assert (first._max_in_flight, first._body_limit, second._body_limit) == (3, 2048, 0)


# -- rewrite ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [b"/old?x=1", b"/old", b"/old?a=%20b&c"])
def test_rewrite_target_and_url_rewrite_send_the_backend_the_same_target(monkeypatch, target):
    made = []
    original = _rewrites.rewritten_target

    def rewritten_target(*args):
        made.append(args[0])
        return original(*args)

    monkeypatch.setattr(rewrite, "rewritten_target", rewritten_target)
    monkeypatch.setattr(gateway_filters, "rewritten_target", rewritten_target)
    ingress = Route("shop.test", "/old", "Prefix", Backend("default", "web", "80", (ONE,)),
                    ObjectRef("Ingress", "default", "shop"))
    by_annotation = features_for(rewrite, {"rewrite-target": "/neu/é"}, ingress, _context())
    http_route = Route("shop.test", "/old", "Prefix", Backend("default", "web", "80", (ONE,)),
                       ObjectRef("HTTPRoute", "default", "shop"),
                       filters=(URLRewrite(path=PathModifier(REPLACE_FULL_PATH, "/neu/é")),))
    by_filter = list(gateway_filters.ingressd_route_features(http_route, {}, _context()))

    def sent(served, features):
        proxy, pool, _ = proxy_for(RouteEntry(served, features))
        send(proxy, request(target=target))
        return _same_id(pool.connect().sent)

    annotation_bytes, filter_bytes = sent(ingress, by_annotation), sent(http_route, by_filter)
    assert made == ["/neu/é", "/neu/é"]
    assert annotation_bytes == filter_bytes
    query = target.partition(b"?")[2]
    assert filter_bytes.startswith(b"GET /neu/%C3%A9" + (b"?" + query if query else b"") + b" HTTP/1.1\r\n")


def test_the_shared_target_keeps_or_drops_the_query_as_asked():
    assert _rewrites.rewritten_target("/a b", b"x=1") == b"/a%20b?x=1"
    assert _rewrites.rewritten_target("/a", b"x=1", "y=2") == b"/a?y=2&x=1"
    assert _rewrites.rewritten_target("/a", b"x=1", None, keep_query=False) == b"/a"
    assert _rewrites.rewritten_target("/a", b"") == b"/a"
