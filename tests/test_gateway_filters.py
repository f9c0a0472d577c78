"""The Gateway API filters (``Route.filters``) through the real Exchange: what the backend is sent,
what the client gets, and what ingressd answers itself — the cases of the Gateway API
conformance tests (httproute-request-header-modifier, -response-header-modifier, -redirect-*,
-rewrite-host, -rewrite-path, -request-mirror, -cors), with routes built as the translation
builds them."""

from __future__ import annotations

import pytest

from ingressd import AnnotationError, LocalResponse, hookimpl
from ingressd.config.entries import RouteEntry
from ingressd.config.filters import (
    CORS,
    REPLACE_FULL_PATH,
    REPLACE_PREFIX_MATCH,
    ExtensionRef,
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
from ingressd_plugins import gateway_filters

from test_exchange import ONE, FakeClient, proxy_for, request, send
from test_mirror import FakeSubrequests

MIRROR = Backend("default", "mirror", "8080", (Endpoint("10.0.0.9", 8080), Endpoint("10.0.0.10", 8080)))


def route(filters, path="/", path_type="Prefix", host="shop.test"):
    return Route(host, path, path_type, Backend("default", "web", "80", (ONE,)),
                 ObjectRef("HTTPRoute", "default", "shop"), filters=tuple(filters))


def context(subrequests=None, settings=None):
    return BuildContext(settings=dict(settings or {}), reactor=None, subrequests=subrequests)


def built(filters, path="/", path_type="Prefix", subrequests=None, settings=None):
    """A proxy serving one route with these filters, its features from the plugin's hook."""
    served = route(filters, path, path_type)
    features = gateway_filters.ingressd_route_features(served, {}, context(subrequests, settings)) or ()
    return proxy_for(RouteEntry(served, list(features)))


def forwarded(filters, target=b"/", headers=(), path="/", path_type="Prefix", method=b"GET"):
    """(the request head the backend got, the client, the connection) for one request."""
    proxy, pool, _ = built(filters, path, path_type)
    client, _ = send(proxy, request(method=method, target=target, headers=headers))
    connection = pool.connect()
    return connection.sent.decode("latin-1"), client, connection


def lines(head, name):
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:] if line.split(":", 1)[0] == name]


# -- the hook ------------------------------------------------------------------------------------


def test_routes_without_filters_get_nothing():
    assert gateway_filters.ingressd_route_features(route(()), {}, context()) is None


def test_the_features_keep_the_rules_order_in_one_phase():
    changes = HeaderChanges(set=(("x-a", "1"),))
    features = gateway_filters.features_for(
        route([ResponseHeaderModifier(changes), RequestHeaderModifier(changes), CORS(allow_origins=("*",))]),
        context())
    assert [type(f).__name__ for f in features] == ["ResponseHeaders", "RequestHeaders", "Cors"]
    assert len({f.phase for f in features}) == 1


class LimitExtension:
    """A third party's plugin handling the ExtensionRef example.io/Limit."""

    class Answer:
        phase = 300

        def __init__(self, name):
            self.name = name

        def request(self, exchange):
            return LocalResponse(429, [(b"x-limit", self.name.encode())])

    @hookimpl
    def ingressd_filter_extension(self, extension, route, context):
        if (extension.group, extension.kind) != ("example.io", "Limit"):
            return None
        if extension.name == "bad":
            raise AnnotationError("Limit bad: no such limit")
        return [self.Answer(extension.name)]


def test_hook_ingressd_filter_extension():
    from ingressd.config.entries import build_table
    from ingressd.config.model import Config
    from ingressd.plugin_manager import load_plugins

    plugins = load_plugins(extra=[gateway_filters, LimitExtension()], entry_points=False)
    header = RequestHeaderModifier(HeaderChanges(set=(("x-a", "1"),)))

    def served(filters, name):
        one = Route("shop.test", "/", "Prefix", Backend("default", "web", "80", (ONE,)),
                    ObjectRef("HTTPRoute", "default", name), filters=tuple(filters))
        return one

    table, config = build_table(Config(routes=(
        served([header, ExtensionRef("example.io", "Limit", "strict")], "handled"),
    )), plugins, context())
    assert config.rejections == ()
    proxy, pool, _ = proxy_for()
    proxy.state.table = table
    client, _ = send(proxy, request())
    assert client.head[0] == 429 and client.header(b"x-limit") == [b"strict"] and pool.asked == []
    for filters, says in (([ExtensionRef("example.io", "Other", "x")], "example.io/Other x: no ingressd plugin "
                                                                        "handles it, so the rule is not served"),
                          ([ExtensionRef("", "Limit", "x")], "core/Limit x: no ingressd plugin handles it"),
                          ([ExtensionRef("example.io", "Limit", "bad")], "Limit bad: no such limit")):
        _, config = build_table(Config(routes=(served(filters, "shop"),)), plugins, context())
        (rejection,) = config.rejections
        assert rejection.ref == ObjectRef("HTTPRoute", "default", "shop") and says in rejection.reason


def test_a_redirect_with_a_rewrite_is_refused_even_if_it_arrives():
    with pytest.raises(AnnotationError, match="RequestRedirect and URLRewrite"):
        gateway_filters.features_for(route([RequestRedirect(), URLRewrite(hostname="a.test")]), context())


def test_a_framing_header_change_is_refused():
    for changes in (HeaderChanges(set=(("content-length", "1"),)), HeaderChanges(remove=("transfer-encoding",)),
                    HeaderChanges(add=(("connection", "close"),))):
        with pytest.raises(AnnotationError, match="framing"):
            gateway_filters.features_for(route([RequestHeaderModifier(changes)]), context())


def test_replace_prefix_match_needs_a_prefix_route():
    with pytest.raises(AnnotationError, match="PathPrefix"):
        gateway_filters.features_for(
            route([URLRewrite(path=PathModifier(REPLACE_PREFIX_MATCH, "/x"))], path="/a", path_type="Exact"),
            context())


# -- RequestHeaderModifier -----------------------------------------------------------------------


def test_request_headers_set_add_and_remove_as_the_conformance_case():
    changes = HeaderChanges(set=(("x-header-set", "set-overwrites-values"),),
                            add=(("x-header-add", "header-val-1"), ("x-header-add-append", "header-val-2")),
                            remove=("x-header-remove",))
    head, _, _ = forwarded([RequestHeaderModifier(changes)], headers=[
        (b"x-header-set", b"some-other-value"), (b"x-header-set", b"more"), (b"x-header-add-append", b"append-val-1"),
        (b"X-Header-Remove", b"remove-val"), (b"x-keep", b"1")])
    assert lines(head, "x-header-set") == ["set-overwrites-values"]
    assert lines(head, "x-header-add") == ["header-val-1"]
    assert lines(head, "x-header-add-append") == ["append-val-1", "header-val-2"]  # a line each: joined with ","
    assert lines(head, "x-header-remove") == [] and lines(head, "x-keep") == ["1"]
    assert lines(head, "x-real-ip") == ["192.0.2.7"]  # ingressd's forwarding headers are kept


def test_request_header_set_of_a_missing_name_adds_it():
    head, _, _ = forwarded([RequestHeaderModifier(HeaderChanges(set=(("x-new", "v"),)))])
    assert lines(head, "x-new") == ["v"]


# -- ResponseHeaderModifier ----------------------------------------------------------------------


def test_response_headers_on_the_backends_answer():
    changes = HeaderChanges(set=(("x-header-set", "set-overwrites-values"),), add=(("x-header-add", "add-appends"),),
                            remove=("x-header-remove",))
    _, client, connection = forwarded([ResponseHeaderModifier(changes)])
    connection.respond(200, [(b"X-Header-Set", b"original"), (b"X-Header-Add", b"original"),
                             (b"X-Header-Remove", b"gone"), (b"Content-Type", b"text/plain")], b"hi")
    assert client.head[0] == 200 and client.body == b"hi"
    assert client.header(b"x-header-set") == [b"set-overwrites-values"]
    assert client.header(b"x-header-add") == [b"original", b"add-appends"]
    assert client.header(b"x-header-remove") == []


def test_response_headers_on_ingressds_own_answers_too():
    changes = HeaderChanges(set=(("x-served-by", "gw"),))
    proxy, pool, _ = built([ResponseHeaderModifier(changes), RequestRedirect(hostname="example.org")])
    client, _ = send(proxy, request())
    assert client.head[0] == 302 and client.header(b"x-served-by") == [b"gw"] and pool.asked == []


# -- RequestRedirect -----------------------------------------------------------------------------


def redirected(redirect, target=b"/", path="/", path_type="Prefix", scheme="http", host=b"shop.test"):
    proxy, pool, _ = built([redirect], path, path_type)
    client, _ = send(proxy, request(target=target, host=host), FakeClient(scheme=scheme))
    assert pool.asked == []  # never forwarded
    location = client.header(b"location")
    return client.head[0], location[0].decode() if location else None


@pytest.mark.parametrize("redirect, status, location", [
    # httproute-redirect-host-and-status
    (RequestRedirect(hostname="example.org"), 302, "http://example.org/hostname-redirect"),
    (RequestRedirect(hostname="example.org", status_code=301), 301, "http://example.org/hostname-redirect"),
    # httproute-redirect-scheme
    (RequestRedirect(scheme="https"), 302, "https://shop.test/hostname-redirect"),
    (RequestRedirect(scheme="https", hostname="example.org", status_code=301), 301,
     "https://example.org/hostname-redirect"),
    # httproute-redirect-port
    (RequestRedirect(port=8083), 302, "http://shop.test:8083/hostname-redirect"),
    (RequestRedirect(port=8083, hostname="example.org", status_code=301), 301,
     "http://example.org:8083/hostname-redirect"),
    # httproute-redirect-port-and-scheme: the scheme's port is left out; a named scheme wins over
    # the listener's port; without either, the listener's declared port
    (RequestRedirect(hostname="example.org", listener_port=8080), 302, "http://example.org:8080/hostname-redirect"),
    (RequestRedirect(hostname="example.org", port=80, listener_port=8080), 302,
     "http://example.org/hostname-redirect"),
    (RequestRedirect(scheme="https", hostname="example.org", listener_port=8080), 302,
     "https://example.org/hostname-redirect"),
    (RequestRedirect(scheme="https", hostname="example.org", port=443), 302, "https://example.org/hostname-redirect"),
    (RequestRedirect(scheme="https", hostname="example.org", port=8443), 302,
     "https://example.org:8443/hostname-redirect"),
    (RequestRedirect(hostname="example.org", port=8080), 302, "http://example.org:8080/hostname-redirect"),
    (RequestRedirect(status_code=308), 308, "http://shop.test/hostname-redirect"),
    (RequestRedirect(hostname="Example.ORG", status_code=303), 303, "http://example.org/hostname-redirect"),
])
def test_redirects_as_the_conformance_cases(redirect, status, location):
    assert redirected(redirect, b"/hostname-redirect") == (status, location)


def test_a_redirect_never_uses_the_local_port_or_the_hosts_port():
    # The client side listens on 80 in the fake; the Host names another port: neither is used.
    assert redirected(RequestRedirect(), b"/a", host=b"shop.test:8888") == (302, "http://shop.test/a")
    assert redirected(RequestRedirect(), b"/a", scheme="https", host=b"shop.test:8443") == (302, "https://shop.test/a")
    assert redirected(RequestRedirect(listener_port=443), b"/a", scheme="https") == (302, "https://shop.test/a")


@pytest.mark.parametrize("modifier, path, target, location", [
    # httproute-redirect-path
    (PathModifier(REPLACE_PREFIX_MATCH, "/replacement-prefix"), "/original-prefix", b"/original-prefix/lemon",
     "http://shop.test/replacement-prefix/lemon"),
    (PathModifier(REPLACE_FULL_PATH, "/full-path-replacement"), "/full", b"/full/path/original",
     "http://shop.test/full-path-replacement"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/replacement-prefix"), "/path-and-host", b"/path-and-host",
     "http://shop.test/replacement-prefix"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/"), "/strip", b"/strip/rest", "http://shop.test/rest"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/"), "/strip", b"/strip", "http://shop.test/"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/new"), "/old/", b"/old/x?q=1", "http://shop.test/new/x?q=1"),
])
def test_redirect_paths(modifier, path, target, location):
    assert redirected(RequestRedirect(path=modifier), target, path=path) == (302, location)


def test_a_redirect_keeps_the_query_and_the_path_as_sent():
    assert redirected(RequestRedirect(hostname="example.org"), b"/a%20b?x=1&y") == (302, "http://example.org/a%20b?x=1&y")


# -- URLRewrite ----------------------------------------------------------------------------------


def test_rewrite_host_is_the_host_the_backend_sees():  # httproute-rewrite-host
    head, _, _ = forwarded([URLRewrite(hostname="one.example.org")], target=b"/one")
    assert lines(head, "host") == ["one.example.org"] and head.startswith("GET /one ")
    assert lines(head, "x-forwarded-host") == ["shop.test"]  # the client's, as upstream-vhost


@pytest.mark.parametrize("modifier, path, target, sent", [
    # httproute-rewrite-path
    (PathModifier(REPLACE_PREFIX_MATCH, "/one"), "/prefix/one", b"/prefix/one/two", "/one/two"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/"), "/strip-prefix", b"/strip-prefix/three", "/three"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/"), "/strip-prefix", b"/strip-prefix", "/"),
    (PathModifier(REPLACE_FULL_PATH, "/one"), "/full/one", b"/full/one/two", "/one"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/prefix"), "/prefix/rewrite-path-and-modify-headers",
     b"/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"),
    (PathModifier(REPLACE_FULL_PATH, "/test"), "/full/rewrite-path-and-modify-headers",
     b"/full/rewrite-path-and-modify-headers/test?a=1", "/test?a=1"),
    (PathModifier(REPLACE_PREFIX_MATCH, "/new/"), "/old", b"/old/x?q=%20", "/new/x?q=%20"),
])
def test_rewrite_paths(modifier, path, target, sent):
    head, _, _ = forwarded([URLRewrite(path=modifier)], target=target, path=path)
    assert head.startswith(f"GET {sent} HTTP/1.1\r\n")


def test_rewrite_path_and_modify_headers_together():
    changes = HeaderChanges(set=(("x-header-set", "set-overwrites-values"),), remove=("x-header-remove",))
    head, _, _ = forwarded([URLRewrite(path=PathModifier(REPLACE_FULL_PATH, "/test")), RequestHeaderModifier(changes)],
                           target=b"/full/rewrite/x", path="/full", headers=[(b"x-header-remove", b"r")])
    assert head.startswith("GET /test HTTP/1.1") and lines(head, "x-header-set") == ["set-overwrites-values"]
    assert lines(head, "x-header-remove") == []


# -- RequestMirror -------------------------------------------------------------------------------


def test_a_mirror_gets_a_copy_and_the_request_is_served():
    client_side = FakeSubrequests()
    proxy, pool, _ = built([RequestMirror(MIRROR)], subrequests=client_side)
    client, _ = send(proxy, request(target=b"/mirror?x=1", headers=[(b"x-tag", b"t")]))
    connection = pool.connect()
    assert len(client_side.sent) == 1
    method, url, headers, _body, kwargs, _ = client_side.sent[0]
    assert (method, url.host, url.port, url.target) == (b"GET", "10.0.0.9", 8080, b"/mirror?x=1")
    assert (b"host", b"shop.test") in headers and (b"x-tag", b"t") in headers and kwargs.get("discard")
    connection.respond(200, [], b"ok")
    assert client.head[0] == 200 and client.body == b"ok"


def test_mirrors_take_the_endpoints_in_turn_and_percent_samples_evenly():
    client_side = FakeSubrequests()
    proxy, pool, _ = built([RequestMirror(MIRROR, percent=25)], subrequests=client_side)
    for _ in range(8):
        send(proxy, request())
        pool.connect()
    assert [sent[1].host for sent in client_side.sent] == ["10.0.0.9", "10.0.0.10"]


def test_multiple_mirrors_each_get_a_copy():  # httproute-request-multiple-mirrors
    client_side = FakeSubrequests()
    other = Backend("default", "mirror2", "8080", (Endpoint("10.0.0.11", 8081),))
    proxy, pool, _ = built([RequestMirror(MIRROR), RequestMirror(other)], subrequests=client_side)
    send(proxy, request())
    pool.connect()
    assert sorted((sent[1].host, sent[1].port) for sent in client_side.sent) == [("10.0.0.11", 8081),
                                                                                 ("10.0.0.9", 8080)]


def test_an_unusable_mirror_mirrors_nothing_and_serves_the_request():
    client_side = FakeSubrequests()
    for item in (RequestMirror(None), RequestMirror(Backend("default", "gone", "80")), RequestMirror(MIRROR, 0)):
        proxy, pool, _ = built([item], subrequests=client_side)
        send(proxy, request())
        pool.connect().respond(200, [], b"ok")
    assert client_side.sent == []


# -- CORS ----------------------------------------------------------------------------------------

CORS_1 = CORS(allow_origins=("https://www.foo.com", "https://*.bar.com"), allow_methods=("GET", "OPTIONS"),
              allow_headers=("x-header-1", "x-header-2"), expose_headers=("x-header-3", "x-header-4"),
              allow_credentials=True, max_age=3600)
PREFLIGHT = b"OPTIONS"


def preflight(cors, origin, method=b"GET", asked_headers=None):
    proxy, pool, _ = built([cors])
    headers = [(b"origin", origin), (b"access-control-request-method", method)]
    if asked_headers:
        headers.append((b"access-control-request-headers", asked_headers))
    client, _ = send(proxy, request(method=PREFLIGHT, headers=headers))
    assert pool.asked == []  # a preflight is answered here, never forwarded
    return client


@pytest.mark.parametrize("origin", [b"https://www.foo.com", b"https://www.bar.com", b"https://xpto.www.bar.com"])
def test_a_preflight_from_an_allowed_origin(origin):
    client = preflight(CORS_1, origin, asked_headers=b"x-header-1, x-header-2")
    assert client.head[0] == 204
    assert client.header(b"access-control-allow-origin") == [origin]
    assert client.header(b"access-control-allow-methods") == [b"GET, OPTIONS"]
    assert client.header(b"access-control-allow-headers") == [b"x-header-1, x-header-2"]
    assert client.header(b"access-control-expose-headers") == [b"x-header-3, x-header-4"]
    assert client.header(b"access-control-max-age") == [b"3600"]
    assert client.header(b"access-control-allow-credentials") == [b"true"]
    assert client.header(b"vary") == [b"Origin"]


@pytest.mark.parametrize("origin", [b"https://foobar.com", b"https://bar.com", b"http://www.bar.com",
                                    b"https://www.bar.com:8443", b"https://www.foo.com.evil.test",
                                    b"https://evil.test#.bar.com", b"https://a@b.bar.com", b"https://.bar.com"])
def test_a_preflight_from_another_origin_gets_no_cors_header_and_is_not_forwarded(origin):
    client = preflight(CORS_1, origin)
    assert client.head[0] == 204
    assert not any(name.startswith(b"access-control-") for name, _ in client.head[1])


def test_an_actual_request_from_an_allowed_origin_gets_the_headers_and_others_none():
    for origin, allowed in ((b"https://www.foo.com", True), (b"https://www.bar.com", True),
                            (b"https://foobar.com", False)):
        _, client, connection = forwarded([CORS_1], headers=[(b"origin", origin)])
        connection.respond(200, [(b"Access-Control-Allow-Origin", b"*")], b"ok")
        assert client.head[0] == 200
        assert client.header(b"access-control-allow-origin") == ([origin] if allowed else [b"*"])
        if allowed:
            assert client.header(b"access-control-allow-credentials") == [b"true"]
            assert client.header(b"access-control-expose-headers") == [b"x-header-3, x-header-4"]


def test_wildcard_methods_answer_what_the_preflight_asks_without_credentials():  # cors-wildcard-methods
    client = preflight(CORS(allow_origins=("https://www.foo.com",), allow_methods=("*",)), b"https://www.foo.com",
                       method=b"POST")
    assert client.header(b"access-control-allow-methods") == [b"POST"]
    assert client.header(b"access-control-allow-origin") == [b"https://www.foo.com"]
    assert client.header(b"access-control-allow-credentials") == []


def test_a_wildcard_origin_without_credentials_is_a_star():  # cors-wildcard-origin
    cors = CORS(allow_origins=("*",), allow_methods=("PUT",))
    for origin in (b"https://foobar.com", b"https://foobar.com:12345"):
        client = preflight(cors, origin, method=b"PUT")
        assert client.header(b"access-control-allow-origin") == [b"*"]
        assert client.header(b"access-control-allow-methods") == [b"PUT"]
        assert client.header(b"access-control-allow-credentials") == []
        assert client.header(b"vary") == []


def test_wildcards_with_credentials_echo_the_origin_method_and_headers():  # cors-wildcard-methods-headers
    cors = CORS(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",), allow_credentials=True)
    client = preflight(cors, b"https://other.foo.com", method=b"PUT", asked_headers=b"x-header-1, x-header-2")
    assert client.header(b"access-control-allow-origin") == [b"https://other.foo.com"]
    assert client.header(b"access-control-allow-methods") == [b"PUT"]
    assert client.header(b"access-control-allow-headers") == [b"x-header-1, x-header-2"]
    assert client.header(b"access-control-allow-credentials") == [b"true"]
    _, client, connection = forwarded([cors], headers=[(b"origin", b"https://other.foo.com")])
    connection.respond(200, [], b"ok")
    assert client.header(b"access-control-allow-origin") == [b"https://other.foo.com"]
    assert client.header(b"access-control-allow-credentials") == [b"true"]
    # Something that is not an origin is never echoed with credentials.
    _, client, connection = forwarded([cors], headers=[(b"origin", b"javascript:alert(1)")])
    connection.respond(200, [], b"ok")
    assert client.header(b"access-control-allow-origin") == []


def test_an_options_request_without_a_preflights_headers_is_forwarded():
    _, client, connection = forwarded([CORS_1], method=b"OPTIONS", headers=[(b"origin", b"https://www.foo.com")])
    connection.respond(200, [], b"")
    assert client.head[0] == 200 and client.header(b"access-control-allow-methods") == []


# -- order ---------------------------------------------------------------------------------------


def test_a_redirect_answers_before_the_backend_whatever_comes_after_it():
    changes = HeaderChanges(set=(("x-a", "1"),))
    proxy, pool, _ = built([RequestRedirect(hostname="example.org"), RequestHeaderModifier(changes),
                            RequestMirror(MIRROR)], subrequests=FakeSubrequests())
    client, _ = send(proxy, request(target=b"/x"))
    assert client.head[0] == 302 and pool.asked == []
    assert client.header(b"location") == [b"http://example.org/x"]


def test_a_preflight_listed_before_a_redirect_is_answered_by_cors():
    proxy, pool, _ = built([CORS_1, RequestRedirect(hostname="example.org")])
    client, _ = send(proxy, request(method=b"OPTIONS", headers=[(b"origin", b"https://www.foo.com"),
                                                                 (b"access-control-request-method", b"GET")]))
    assert client.head[0] == 204 and client.header(b"location") == []


# -- through build_table -------------------------------------------------------------------------


def test_two_rules_on_one_path_keep_their_own_filters_in_the_table():
    """Rules of one HTTPRoute told apart by a header match share host, path and object: each keeps
    its own filters (the table's feature cache tells them apart by their filters)."""
    from ingressd.config.entries import build_table
    from ingressd.config.model import Conditions, Config, ValueMatch
    from ingressd.plugin_manager import load_plugins

    def rule(value, location_host):
        return Route("shop.test", "/", "Prefix", Backend("default", "web", "80", (ONE,)),
                     ObjectRef("HTTPRoute", "default", "shop"),
                     conditions=Conditions(headers=(ValueMatch("x-rule", value),)),
                     filters=(RequestRedirect(hostname=location_host),))

    plugins = load_plugins(extra=[gateway_filters], entry_points=False)
    table, config = build_table(Config(routes=(rule("a", "a.example"), rule("b", "b.example"))), plugins, context())
    assert config.rejections == ()
    proxy, _, _ = proxy_for()
    proxy.state.table = table
    for value, location in ((b"a", b"http://a.example/x"), (b"b", b"http://b.example/x")):
        client, _ = send(proxy, request(target=b"/x", headers=[(b"x-rule", value)]))
        assert (client.head[0], client.header(b"location")) == (302, [location])


def test_a_preflight_without_allowed_methods_lists_none():
    client = preflight(CORS(allow_origins=("https://www.foo.com",)), b"https://www.foo.com")
    assert client.head[0] == 204 and client.header(b"access-control-allow-methods") == []
    assert client.header(b"access-control-allow-origin") == [b"https://www.foo.com"]
    assert client.header(b"access-control-max-age") == [b"5"]  # the Gateway API's default


@pytest.mark.parametrize("path, prefix, value, modified", [
    # The table of HTTPPathModifier.ReplacePrefixMatch (gateway-api apis/v1/httproute_types.go).
    ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
    ("/foo", "/foo", "/xyz", "/xyz"),
    ("/foo/", "/foo", "/xyz", "/xyz/"),
    ("/foo/bar", "/foo", "", "/bar"),
    ("/foo/", "/foo", "", "/"),
    ("/foo", "/foo", "", "/"),
    ("/foo/", "/foo", "/", "/"),
    ("/foo", "/foo", "/", "/"),
    ("/anything", "/", "/xyz", "/xyz/anything"),
])
def test_replace_prefix_match_as_the_specifications_table(path, prefix, value, modified):
    assert gateway_filters.modified_path(path, PathModifier(REPLACE_PREFIX_MATCH, value), prefix) == modified


# -- the filter types have owners: never served without a filter -------------------------------


def test_hook_ingressd_filters():
    """gateway_filters owns every filter type but ExtensionRef; without it (--disable-plugin
    gateway_filters) a route carrying a filter is rejected, not served without the filter; two
    owners of one type is a start-up error."""
    from ingressd.config import filters as f
    from ingressd.plugin_manager import PluginError, load_plugins

    plugins = load_plugins()
    assert set(plugins.filter_owners) == {f.RequestHeaderModifier, f.ResponseHeaderModifier, f.RequestRedirect,
                                          f.URLRewrite, f.RequestMirror, f.CORS, f.ClientCertificateValidation}
    assert set(plugins.filter_owners.values()) == {"gateway_filters"}
    route = Route("h.example", "/", "Prefix", Backend("default", "web", 80), ObjectRef("HTTPRoute", "default", "r"),
                  filters=(f.RequestHeaderModifier(f.HeaderChanges(set=(("x-a", "1"),))),))
    without = load_plugins(disabled=["gateway_filters"])
    with pytest.raises(AnnotationError, match="RequestHeaderModifier: no loaded ingressd plugin applies it"):
        without.route_features(route, BuildContext({}, None))
    assert plugins.route_features(route, BuildContext({}, None))  # served with it
    with pytest.raises(AnnotationError, match="RequestHeaderModifier: no loaded ingressd plugin applies it"):
        without.route_features_for_build()(route, BuildContext({}, None))  # build_table's path too
    assert plugins.route_features_for_build()(route, BuildContext({}, None))

    class Twice:
        @hookimpl
        def ingressd_filters(self):
            return (f.CORS,)

    with pytest.raises(PluginError, match="filter CORS is claimed by two plugins"):
        load_plugins(extra=[Twice()])
