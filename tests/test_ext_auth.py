"""External authentication in memory: the annotations' validation (ingress-nginx's), the
sub-request ingressd sends, every answer mapped (2xx → on to the backend; 401 → 401 or the
sign-in redirect; 403 → 403; anything else, a timeout, a refused connection → 500), the
copied headers and cookies through the real Exchange, the cache, and the attack cases (a
client's forged headers, CRLF in substitutions, an auth answer's hop-by-hop headers)."""

from __future__ import annotations

import dataclasses

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from ingressd import AnnotationError, SubrequestError, SubResponse
from ingressd.features import BuildContext
from ingressd.http.headers import Headers
from ingressd.testing import PluginHarness, exchange as fake_exchange, features_for, make_route, run_request
from ingressd_plugins import _auth_cache, _auth_variables, ext_auth

from test_exchange import entry, proxy_for, request, send


class FakeAuth:
    """interfaces.Subrequests: answers each sub-request with ``answer(method, url, headers)``
    (a SubResponse, an exception, or None to leave it pending)."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda method, url, headers: SubResponse(200, ()))
        self.sent = []  # (method, url, headers, body, kwargs)
        self.pending = []

    def fetch(self, method, url, headers=(), body=None, **kwargs):
        headers = list(headers)
        self.sent.append((method, url, headers, body, kwargs))
        result = self.answer(method, url, headers)
        if result is None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        if isinstance(result, Exception):
            return defer.fail(result)
        return defer.succeed(result)

    def headers(self, index=-1) -> dict:
        return {name: value for name, value in self.sent[index][2]}


def auth_feature(annotations, client=None, settings=None, resolved=None, route=None, clock=None):
    context = BuildContext(settings=dict(settings or {}), reactor=clock or Clock(),
                           subrequests=client if client is not None else FakeAuth())
    features = features_for(ext_auth, annotations, route=route, context=context, resolved=resolved)
    return features[0] if features else None, context.subrequests


def answer(status, *headers):
    return lambda method, url, sent: SubResponse(status, tuple(headers))


# -- parsing: ingress-nginx's validation ---------------------------------------------------------


@pytest.mark.parametrize("text", [
    "http://auth.test/oauth2/auth",
    "https://auth.test:8443/check?x=1&y=2",
    "http://$host/oauth2/auth",  # validated by ingress-nginx: the host may be a variable...
    "http://auth.test/check?uri=$escaped_request_uri&m=$request_method&a=$arg_x&h=$http_x_y",
])
def test_auth_url_accepted(text):
    assert isinstance(ext_auth._auth_url(text), _auth_variables.Template)


@pytest.mark.parametrize("text, says", [
    ("ftp://auth/", "http:// or https://"),
    ("auth.test/check", "http:// or https://"),
    ("http://auth/%0d%0a", "not a valid auth-url"),  # '%' is outside ingress-nginx's characters
    ("http://auth/\r\nx", "control character"),
    ("http://auth/a;b", "not a valid auth-url"),
    ("http://auth/$document_root", "not a variable ingressd substitutes"),
    ("http://user@auth/", "not a valid auth-url"),
    ("http://", "no host"),
    ("", "not a valid auth-url"),
])
def test_auth_url_refused(text, says):
    with pytest.raises(AnnotationError) as caught:
        ext_auth._auth_url(text)
    assert says in str(caught.value)


def test_the_other_annotations_are_validated_as_ingress_nginx_does():
    assert ext_auth._method("POST") == "POST"
    for bad in ("post", "FOO", "GET "):
        with pytest.raises(AnnotationError):
            ext_auth._method(bad)
    assert ext_auth._response_headers("X-Auth-Request-User, X-Auth-Request-Email,,") == (
        b"x-auth-request-user", b"x-auth-request-email")
    for bad in ("X-User;", "X User", "Connection", "Transfer-Encoding", "Host", "content-length"):
        with pytest.raises(AnnotationError):
            ext_auth._response_headers(bad)
    assert ext_auth._redirect_param("orig") == "orig"
    for bad in ("", "a=b", "r d", "a&b"):
        with pytest.raises(AnnotationError):
            ext_auth._redirect_param(bad)
    for bad in ("$http_x y", "a.b", "$foo"):
        with pytest.raises(AnnotationError):
            ext_auth._cache_key(bad)
    with pytest.raises(AnnotationError):
        ext_auth._request_redirect("http://a/$b")


def test_cache_durations_as_proxy_cache_valid():
    assert _auth_cache.parse_durations("200 202 401 5m") == ((frozenset((200, 202, 401)), 300),)
    assert _auth_cache.parse_durations("200 1h, 401 30s") == ((frozenset((200,)), 3600), (frozenset((401,)), 30))
    assert _auth_cache.parse_durations("any 10s") == ((None, 10),)
    assert _auth_cache.parse_durations("30m") == ((frozenset((200, 301, 302)), 1800),)
    assert _auth_cache.parse_durations("") == ((frozenset((200, 202, 401)), 300),)
    for bad in ("200", "5m 200", "abc 5m", "200 5x", "99 5m", "200;5m"):
        with pytest.raises(AnnotationError):
            _auth_cache.parse_durations(bad)


def test_an_invalid_value_rejects_only_its_ingress_with_the_reason():
    with PluginHarness(plugins=[ext_auth], annotations={"auth-url": "gopher://a/"}) as harness:
        assert "auth-url" in harness.rejection and "http:// or https://" in harness.rejection
    with PluginHarness(plugins=[ext_auth], annotations={"auth-url": "http://a/", "auth-method": "get"}) as harness:
        assert "auth-method" in harness.rejection


def test_without_a_sub_request_client_every_request_is_500():
    with PluginHarness(plugins=[ext_auth], annotations={"auth-url": "http://auth.test/"}) as harness:
        assert harness.request().status == 500  # ingressd check, in-memory tests: fail closed


def test_a_missing_proxy_set_headers_configmap_denies_the_route():
    with PluginHarness(plugins=[ext_auth], annotations={
            "auth-url": "http://auth.test/", "auth-proxy-set-headers": "nope"}) as harness:
        assert harness.request().status == 503


# -- the sub-request ----------------------------------------------------------------------------


def test_the_sub_request_carries_what_ingress_nginx_sends():
    feature, client = auth_feature({"auth-url": "http://auth.test:9000/oauth2/auth"})
    ex = fake_exchange({"host": "shop.test", "cookie": "s=1", "x-custom": "yes", "content-length": "5",
                        "connection": "keep-alive, x-custom", "x-forwarded-proto": "gopher"},
                       method=b"POST", request_uri=b"/cart?id=7", client_ip="192.0.2.9", request_id="abc")
    assert run_request([feature], ex) is None
    method, url, headers, body, kwargs = client.sent[0]
    assert (method, url.host, url.port, url.target, body) == (b"GET", "auth.test", 9000, b"/oauth2/auth", None)
    sent = client.headers()
    assert headers[0] == (b"host", b"auth.test")  # the auth URL's host, without its port (ingress-nginx)
    assert sent[b"x-original-url"] == b"http://shop.test/cart?id=7"
    assert sent[b"x-original-method"] == b"POST"
    assert sent[b"x-sent-from"] == b"nginx-ingress-controller"
    assert sent[b"x-real-ip"] == sent[b"x-forwarded-for"] == b"192.0.2.9"
    assert sent[b"x-auth-request-redirect"] == b"/cart?id=7"
    assert sent[b"x-request-id"] == b"abc"
    assert sent[b"x-forwarded-host"] == b"shop.test"
    assert sent[b"cookie"] == b"s=1"
    assert b"x-forwarded-proto" not in sent  # nginx.tmpl clears it
    assert b"content-length" not in sent and b"connection" not in sent
    assert b"x-custom" not in sent  # named by Connection: hop-by-hop
    assert b"x-original-uri" not in sent and b"x-scheme" not in sent
    assert kwargs.get("discard") is True


def test_auth_method_and_request_redirect():
    feature, client = auth_feature({"auth-url": "http://auth.test/", "auth-method": "POST",
                                    "auth-request-redirect": "http://shop.test/landing"})
    run_request([feature], fake_exchange({"host": "shop.test"}, request_uri=b"/a?b", scheme="https"))
    sent = client.headers()
    assert client.sent[0][0] == b"POST" and client.sent[0][3] is None  # never the request's body
    assert sent[b"x-original-uri"] == b"/a?b" and sent[b"x-scheme"] == b"https"
    assert sent[b"x-auth-request-redirect"] == b"http://shop.test/landing"


def test_a_client_cannot_forge_what_the_auth_service_is_told():
    feature, client = auth_feature({"auth-url": "http://auth.test/"})
    forged = {"host": "shop.test", "x-original-url": "http://admin.test/", "x-original-method": "GET",
              "x-sent-from": "me", "x-real-ip": "10.0.0.1", "x-forwarded-for": "10.0.0.1",
              "x-forwarded-host": "evil.test", "x-auth-request-redirect": "http://evil.test/", "x-request-id": "x"}
    run_request([feature], fake_exchange(forged, method=b"DELETE", request_uri=b"/x", request_id="r1"))
    headers = client.sent[0][2]
    for name in (b"x-original-url", b"x-original-method", b"x-sent-from", b"x-real-ip", b"x-forwarded-for",
                 b"x-forwarded-host", b"x-auth-request-redirect", b"x-request-id", b"host"):
        assert len([value for key, value in headers if key == name]) == 1, name
    sent = client.headers()
    assert sent[b"x-original-url"] == b"http://shop.test/x" and sent[b"x-original-method"] == b"DELETE"
    assert sent[b"x-forwarded-host"] == b"shop.test" and sent[b"x-real-ip"] == b"192.0.2.10"


def test_variables_in_the_auth_url_are_data():
    feature, client = auth_feature({
        "auth-url": "http://auth.test/check?rd=$escaped_request_uri&m=$request_method&a=$arg_q&h=$http_x_token"})
    ex = fake_exchange({"host": "shop.test", "x-token": "a b\x7f#c"}, request_uri=b"/p?q=1&z=2",
                       query=b"q=1&z=2", method=b"GET")
    run_request([feature], ex)
    target = client.sent[0][1].target
    assert target == b"/check?rd=%2Fp%3Fq%3D1%26z%3D2&m=GET&a=1&h=a%20b%7F%23c"


def test_a_variable_host_is_checked_per_request_and_a_bad_one_is_500():
    feature, client = auth_feature({"auth-url": "http://$http_x_auth_host/check"})
    ok = run_request([feature], fake_exchange({"host": "shop.test", "x-auth-host": "auth.test"}))
    assert ok is None and client.sent[0][1].host == "auth.test" and client.headers()[b"host"] == b"auth.test"
    bad = run_request([feature], fake_exchange({"host": "shop.test", "x-auth-host": "a@b"}))
    assert bad.status == 500 and len(client.sent) == 1  # never sent


def test_crlf_can_never_reach_the_sub_request():
    feature, client = auth_feature({"auth-url": "http://auth.test/c?x=$arg_x&h=$http_x_h"})
    ex = fake_exchange({"host": "shop.test", "x-h": "1\r\nX-Injected: 1"}, query=b"x=%0d%0a\r\nA: b",
                       request_uri=b"/?x=%0d%0a")
    run_request([feature], ex)
    target = client.sent[0][1].target
    assert b"\r" not in target and b"\n" not in target and b" " not in target
    assert target.endswith(b"h=1%0D%0AX-Injected:%201")


def test_proxy_set_headers_from_the_configmap():
    from ingressd.config.model import ConfigMapData, ObjectRef
    route = dataclasses.replace(make_route(), annotations=(
        ("nginx.ingress.kubernetes.io/auth-proxy-set-headers", "default/auth-h"),))
    config_map = ConfigMapData(ObjectRef("ConfigMap", "default", "auth-h"),
                               (("X-Tenant", "shop"), ("X-Path", "$request_uri"), ("X-Sent-From", "mine")))
    feature, client = auth_feature({"auth-url": "http://auth.test/", "auth-proxy-set-headers": "default/auth-h"},
                                   resolved={"auth-proxy-set-headers": config_map}, route=route)
    run_request([feature], fake_exchange({"host": "shop.test", "x-tenant": "forged"}, request_uri=b"/a"))
    sent = client.sent[0][2]
    assert (b"x-tenant", b"shop") in sent and (b"x-path", b"/a") in sent and (b"x-tenant", b"forged") not in sent
    bad = ConfigMapData(ObjectRef("ConfigMap", "default", "auth-h"), (("X Bad", "1"),))
    denied, _ = auth_feature({"auth-url": "http://auth.test/", "auth-proxy-set-headers": "default/auth-h"},
                             resolved={"auth-proxy-set-headers": bad}, route=route)
    assert run_request([denied], fake_exchange()).status == 503


# -- the answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_a_2xx_lets_the_request_through(status):
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(answer(status)))
    assert run_request([feature], fake_exchange()) is None


def test_a_401_is_a_401_with_the_auth_services_challenges():
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(answer(
        401, (b"www-authenticate", b'Basic realm="a"'), (b"www-authenticate", b"Bearer"),
        (b"set-cookie", b"s=1"), (b"x-other", b"1"))))
    local = run_request([feature], fake_exchange())
    assert local.status == 401 and b"401 Authorization Required" in local.body
    assert [v for k, v in local.headers if k == b"www-authenticate"] == [b'Basic realm="a"', b"Bearer"]
    assert not [v for k, v in local.headers if k in (b"set-cookie", b"x-other")]


def test_a_403_is_a_403():
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(answer(403, (b"set-cookie", b"s=1"))))
    local = run_request([feature], fake_exchange())
    assert local.status == 403 and not [v for k, v in local.headers if k == b"set-cookie"]


@pytest.mark.parametrize("outcome", [
    SubResponse(500, ()), SubResponse(302, ((b"location", b"http://x/"),)), SubResponse(404, ()),
    SubResponse(100, ()), SubResponse(400, ()), SubResponse(503, ()),
    SubrequestError("refused", "connect_failed"), SubrequestError("slow", "read_timeout", timeout=True),
    SubrequestError("bad", "invalid_response"), ValueError("anything else"),
])
def test_any_other_answer_or_failure_is_500_never_the_backend(outcome):
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(lambda *a: outcome))
    local = run_request([feature], fake_exchange())
    assert local is not None and local.status == 500


def test_always_set_cookie_adds_the_cookie_to_denials_too():
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-always-set-cookie": "true"},
                              FakeAuth(answer(403, (b"set-cookie", b"s=1"))))
    assert (b"set-cookie", b"s=1") in run_request([feature], fake_exchange()).headers


def test_the_sign_in_redirect_as_ingress_nginx_builds_it():
    auth = FakeAuth(answer(401, (b"set-cookie", b"csrf=1")))
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-signin": "http://$host/auth/start"}, auth)
    local = run_request([feature], fake_exchange({"host": "shop.test"}, host="shop.test", request_uri=b"/?a=b&c=d"))
    assert local.status == 302
    location = dict(local.headers)[b"location"]
    # test/e2e/annotations/auth.go: http://HOST/auth/start?rd=http://HOST + url.QueryEscape("/?a=b&c=d")
    assert location == b"http://shop.test/auth/start?rd=http://shop.test%2F%3Fa%3Db%26c%3Dd"
    assert (b"set-cookie", b"csrf=1") in local.headers


@pytest.mark.parametrize("signin, param, expected", [
    ("https://sso.test/start", "orig", b"https://sso.test/start?orig=https://shop.test%2Fx"),
    ("https://sso.test/start?a=1", None, b"https://sso.test/start?a=1&rd=https://shop.test%2Fx"),
    ("https://sso.test/start?rd=$escaped_request_uri", None, b"https://sso.test/start?rd=%2Fx"),
    ("https://sso.test/start?rd=", None, b"https://sso.test/start?rd=&rd=https://shop.test%2Fx"),
])
def test_the_sign_in_redirect_parameter(signin, param, expected):
    annotations = {"auth-url": "http://auth.test/", "auth-signin": signin}
    if param:
        annotations["auth-signin-redirect-param"] = param
    feature, _ = auth_feature(annotations, FakeAuth(answer(401)))
    local = run_request([feature], fake_exchange({"host": "shop.test"}, scheme="https", request_uri=b"/x"))
    assert dict(local.headers)[b"location"] == expected


def test_the_sign_in_redirect_never_carries_crlf():
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-signin": "http://sso.test/s?h=$http_x_h"},
                              FakeAuth(answer(401)))
    local = run_request([feature], fake_exchange({"host": "shop.test\r\nx: 1", "x-h": "a\r\nSet-Cookie: x=1"},
                                                 request_uri=b"/"))
    location = dict(local.headers)[b"location"]
    assert b"\r" not in location and b"\n" not in location


# -- through the real Exchange: copied headers, cookies --------------------------------------------


def test_copied_headers_reach_the_backend_and_a_clients_copies_never_do():
    auth = FakeAuth(answer(202, (b"x-auth-request-user", b"alice"), (b"x-auth-request-email", b"a@shop.test"),
                           (b"set-cookie", b"_oauth2=refreshed"), (b"connection", b"close"),
                           (b"transfer-encoding", b"chunked"), (b"x-auth-request-groups", b"admin")))
    feature, _ = auth_feature({"auth-url": "http://auth.test/",
                               "auth-response-headers": "X-Auth-Request-User, X-Auth-Request-Email, X-Missing"},
                              auth)
    proxy, pool, _ = proxy_for(entry([feature]))
    client, _ex = send(proxy, request(headers=[(b"x-auth-request-user", b"mallory"), (b"x-missing", b"forged"),
                                               (b"x-auth-request-groups", b"root")]))
    connection = pool.connect()
    head = connection.sent.decode()
    assert "x-auth-request-user: alice\r\n" in head and "mallory" not in head
    assert "x-auth-request-email: a@shop.test\r\n" in head
    assert "x-missing" not in head  # the auth answer lacks it: the client's copy is removed
    assert "x-auth-request-groups: root" in head  # not listed: the client's own passes, as nginx
    assert "transfer-encoding" not in head and "connection: close" not in head.lower()
    connection.respond(200, [(b"set-cookie", b"app=1")], b"ok")
    assert client.head[0] == 200 and client.header(b"set-cookie") == [b"app=1", b"_oauth2=refreshed"]
    assert client.header(b"connection") == [] and client.header(b"transfer-encoding") == []


@pytest.mark.parametrize("status, always, added", [(200, False, True), (302, False, True), (503, False, False),
                                                   (404, False, False), (503, True, True)])
def test_the_auth_cookie_on_the_backends_answer(status, always, added):
    auth = FakeAuth(answer(200, (b"set-cookie", b"alma=armud")))
    annotations = {"auth-url": "http://auth.test/"}
    if always:
        annotations["auth-always-set-cookie"] = "true"
    feature, _ = auth_feature(annotations, auth)
    proxy, pool, _ = proxy_for(entry([feature]))
    client, _ex = send(proxy, request())
    pool.connect().respond(status, [], b"x")
    assert (client.header(b"set-cookie") == [b"alma=armud"]) is added


def test_a_denied_request_never_reaches_the_backend():
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, FakeAuth(answer(401)))
    proxy, pool, _ = proxy_for(entry([feature]))
    client, _ = send(proxy, request())
    assert client.head[0] == 401 and pool.asked == []


def test_a_slow_auth_service_holds_only_its_own_request():
    auth = FakeAuth(lambda method, url, headers: None)  # never answers until told
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, auth)
    plain_entry = entry([], host="other.test")
    proxy, pool, _ = proxy_for(entry([feature]), plain_entry)
    slow_client, _ = send(proxy, request())
    other_client, _ = send(proxy, request(host=b"other.test"))
    assert slow_client.head is None and len(pool.asked) == 1  # the other request went on
    auth.pending[0].callback(SubResponse(200, ()))
    assert len(pool.asked) == 2


def test_an_answer_after_the_client_left_leaves_nothing_behind():
    auth = FakeAuth(lambda method, url, headers: None)
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, auth)
    proxy, pool, _ = proxy_for(entry([feature]))
    _client, ex = send(proxy, request())
    ex.client_lost()
    auth.pending[0].callback(SubResponse(200, ((b"set-cookie", b"a=1"),)))
    assert pool.asked == [] and feature._granted == {}


# -- the cache ----------------------------------------------------------------------------------


def test_answers_are_cached_per_key_and_never_across_keys():
    clock = Clock()
    auth = FakeAuth(lambda method, url, headers: SubResponse(
        200 if dict(headers).get(b"authorization") == b"good" else 401, ((b"x-user", b"u"),)))
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-cache-key": "$http_authorization",
                               "auth-response-headers": "X-User"}, auth, clock=clock)
    good = lambda: fake_exchange({"authorization": "good"})  # noqa: E731
    assert run_request([feature], good()) is None
    assert run_request([feature], good()) is None and len(auth.sent) == 1  # a hit
    assert run_request([feature], fake_exchange({"authorization": "bad"})).status == 401  # another key: asked
    assert run_request([feature], fake_exchange({"authorization": "bad"})).status == 401
    assert len(auth.sent) == 2  # 401 is cached too (200 202 401 5m)
    ex = good()
    run_request([feature], ex)
    lines = [(b"x-user", b"forged")]
    feature.upstream_request(ex, lines)
    assert lines == [(b"x-user", b"u")]  # a hit gives the cached answer's headers
    clock.advance(301)
    run_request([feature], good())
    assert len(auth.sent) == 3  # expired


def test_without_a_cache_key_nothing_is_cached():
    auth = FakeAuth(answer(200))
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, auth)
    run_request([feature], fake_exchange())
    run_request([feature], fake_exchange())
    assert len(auth.sent) == 2


@pytest.mark.parametrize("headers, cached", [
    ((), True), (((b"set-cookie", b"a=1"),), False), (((b"cache-control", b"no-store"),), False),
    (((b"cache-control", b"private, max-age=60"),), False), (((b"cache-control", b"max-age=0"),), False),
    (((b"vary", b"Cookie"),), False),
])
def test_answers_nginx_would_not_cache_are_not_cached(headers, cached):
    auth = FakeAuth(answer(200, *headers))
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-cache-key": "$remote_addr"}, auth)
    run_request([feature], fake_exchange())
    run_request([feature], fake_exchange())
    assert len(auth.sent) == (1 if cached else 2)


def test_statuses_outside_the_duration_list_are_not_cached_and_other_methods_never():
    auth = FakeAuth(answer(403))
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-cache-key": "$remote_addr",
                               "auth-cache-duration": "200 1m"}, auth)
    run_request([feature], fake_exchange())
    run_request([feature], fake_exchange())
    assert len(auth.sent) == 2
    auth = FakeAuth(answer(200))
    feature, _ = auth_feature({"auth-url": "http://auth.test/", "auth-cache-key": "$remote_addr",
                               "auth-method": "POST"}, auth)
    run_request([feature], fake_exchange())
    run_request([feature], fake_exchange())
    assert len(auth.sent) == 2


def test_the_cache_is_bounded_and_belongs_to_the_server():
    clock = Clock()
    cache = _auth_cache.AuthCache(clock, max_entries=3, max_bytes=10 ** 6)
    for index in range(10):
        cache.put(b"k%d" % index, SubResponse(200, ()), 60)
    assert len(cache) == 3 and cache.get(b"k9") is not None and cache.get(b"k0") is None
    small = _auth_cache.AuthCache(clock, max_entries=100, max_bytes=1000)
    for index in range(100):
        small.put(b"k%d" % index, SubResponse(200, ((b"x", b"y" * 50),)), 60)
    assert small.size <= 1000 and len(small) < 100
    context = BuildContext(settings={}, reactor=clock, subrequests=FakeAuth())
    first = features_for(ext_auth, {"auth-url": "http://a.test/", "auth-cache-key": "$host"}, context=context)[0]
    second = features_for(ext_auth, {"auth-url": "http://a.test/", "auth-cache-key": "$host"}, context=context)[0]
    assert first._cache is second._cache is context.plugin_state("ext_auth")["cache"]
    other = BuildContext(settings={}, reactor=clock, subrequests=FakeAuth())
    third = features_for(ext_auth, {"auth-url": "http://a.test/", "auth-cache-key": "$host"}, context=other)[0]
    assert third._cache is not first._cache


# -- global auth --------------------------------------------------------------------------------


def test_global_auth_applies_to_routes_without_auth_url_unless_they_opt_out():
    settings = {"global_auth_url": "http://global.test/check", "global_auth_response_headers": "X-User"}
    feature, auth = auth_feature({}, settings=settings)
    assert feature is not None
    run_request([feature], fake_exchange())
    assert auth.sent[0][1].host == "global.test"
    opted_out, _ = auth_feature({"enable-global-auth": "false"}, settings=settings)
    assert opted_out is None
    own, auth = auth_feature({"auth-url": "http://own.test/"}, settings=settings)
    run_request([own], fake_exchange())
    assert auth.sent[0][1].host == "own.test"
    none, _ = auth_feature({})
    assert none is None


def test_global_auth_options_are_checked_at_start():
    (url_option,) = [o for o in ext_auth.ingressd_options() if o.name == "global-auth-url"]
    assert url_option.coerce("http://a.test/") == "http://a.test/"
    with pytest.raises(ValueError):
        url_option.coerce("gopher://a/")


def test_escape_uri_matches_set_escape_uri():
    assert _auth_variables.escape_uri(b"/a b?c=d&e=f~g!*'()#%") == b"%2Fa%20b%3Fc%3Dd%26e%3Df~g!*'()%23%25"
    assert _auth_variables.escape_uri("é".encode()) == b"%C3%A9"


def test_acme_challenges_are_never_authenticated_as_ingress_nginx_no_auth_locations():
    route = dataclasses.replace(make_route(), path="/.well-known/acme-challenge/token")
    feature, _ = auth_feature({"auth-url": "http://auth.test/"}, route=route)
    assert feature is None
    feature, _ = auth_feature({}, settings={"global_auth_url": "http://g.test/"}, route=route)
    assert feature is None
    other = dataclasses.replace(make_route(), path="/.well-known/other")
    assert auth_feature({"auth-url": "http://auth.test/"}, route=other)[0] is not None
