"""cors: preflight answered at the edge, origin matching, header rules, the *+credentials rule."""

import pytest

from fakes import annotation_values, exchange, features_for, header, run_request, run_response
from ingressd.features import AnnotationError, Phase
from ingressd.testing import PluginHarness
from ingressd_plugins import cors

LIST = {"enable-cors": "true", "cors-allow-origin": "https://app.example.com, https://*.example.org:8443, null"}


def cors_feature(raw):
    [feature] = features_for(cors, raw)
    assert feature.phase == Phase.REWRITE
    return feature


def preflight(origin="https://app.example.com", **kwargs):
    headers = {"origin": origin, "access-control-request-method": "PUT"} if origin else {"access-control-request-method": "PUT"}
    return exchange(headers, method=b"OPTIONS", **kwargs)


def respond(feature, ex, status=200, headers=None):
    return run_response([feature], ex, status, list(headers or [(b"content-type", b"text/html")]))


def test_off_unless_enabled():
    assert features_for(cors, {}) == []
    assert features_for(cors, {"cors-allow-origin": "https://a.com", "enable-cors": "false"}) == []


def test_defaults_match_ingress_nginx():
    values = annotation_values(cors, {"enable-cors": "true"})
    assert values["cors-allow-origin"] == ("*",)
    assert values["cors-allow-methods"] == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    assert values["cors-allow-credentials"] is True
    assert values["cors-max-age"] == 1728000
    assert values["cors-expose-headers"] == ""


def test_preflight_from_allowed_origin_is_answered_204_with_cors_headers():
    feature = cors_feature(LIST)
    ex = preflight()
    answer = run_request([feature], ex)
    assert answer.status == 204 and answer.body == b""
    headers = respond(feature, ex, 204, answer.headers)
    assert header(headers, b"access-control-allow-origin") == [b"https://app.example.com"]
    assert header(headers, b"access-control-allow-credentials") == [b"true"]
    assert header(headers, b"access-control-allow-methods") == [b"GET, PUT, POST, DELETE, PATCH, OPTIONS"]
    assert header(headers, b"access-control-allow-headers") == [
        b"DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
    ]
    assert header(headers, b"access-control-max-age") == [b"1728000"]
    assert header(headers, b"access-control-expose-headers") == []
    assert header(headers, b"vary") == [b"Origin"]


@pytest.mark.parametrize("ex", [
    exchange({"origin": "https://app.example.com"}, method=b"OPTIONS"),  # no Access-Control-Request-Method
    exchange({"access-control-request-method": "GET"}, method=b"OPTIONS"),  # no Origin
    exchange({"origin": "https://app.example.com", "access-control-request-method": "GET"}, method=b"GET"),
])
def test_not_a_preflight_is_proxied(ex):
    assert run_request([cors_feature(LIST)], ex) is None


@pytest.mark.parametrize("origin", [
    "https://evil.com", "https://app.example.com.evil.com", "xhttps://app.example.com", "http://app.example.com",
    "https://app.example.com:444", "https://a.b.example.org:8443", "https://x.example.org", "https://.example.org:8443",
])
def test_other_origins_get_no_cors_headers_and_their_preflight_is_proxied(origin):
    feature = cors_feature(LIST)
    assert run_request([feature], preflight(origin)) is None
    headers = respond(feature, exchange({"origin": origin}))
    assert not [name for name, _ in headers if name.startswith(b"access-control-")]
    assert header(headers, b"vary") == [b"Origin"]  # the answer depends on Origin


@pytest.mark.parametrize("origin", ["https://APP.example.com", "https://api.example.org:8443", "https://x-1.EXAMPLE.org:8443", "null"])
def test_allowed_origins_are_echoed(origin):
    feature = cors_feature(LIST)
    assert run_request([feature], preflight(origin)).status == 204
    headers = respond(feature, exchange({"origin": origin}), headers=[(b"vary", b"Accept-Encoding")])
    assert header(headers, b"access-control-allow-origin") == [origin.encode()]
    assert header(headers, b"vary") == [b"Accept-Encoding", b"Origin"]


def test_backend_cors_headers_are_replaced_for_allowed_origins():
    feature = cors_feature({**LIST, "cors-allow-credentials": "false"})
    upstream = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-credentials", b"true"), (b"vary", b"origin")]
    headers = respond(feature, exchange({"origin": "https://app.example.com"}), headers=upstream)
    assert header(headers, b"access-control-allow-origin") == [b"https://app.example.com"]
    assert header(headers, b"access-control-allow-credentials") == []
    assert header(headers, b"vary") == [b"origin"]


def test_star_with_credentials_echoes_the_origin_never_star():
    feature = cors_feature({"enable-cors": "true"})
    headers = respond(feature, exchange({"origin": "https://any.where"}))
    assert header(headers, b"access-control-allow-origin") == [b"https://any.where"]
    assert header(headers, b"access-control-allow-credentials") == [b"true"]
    assert header(headers, b"vary") == [b"Origin"]
    # No Origin (not a CORS request): "*" as in ingress-nginx, but without credentials.
    headers = respond(feature, exchange())
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []
    # Something that is not an origin is not echoed.
    headers = respond(feature, exchange({"origin": "https://a.com/path?x"}))
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []


def test_star_without_credentials_is_a_literal_star_and_no_vary():
    feature = cors_feature({"enable-cors": "true", "cors-allow-credentials": "false", "cors-allow-origin": "https://a.com, *"})
    headers = respond(feature, exchange({"origin": "https://b.com"}))
    assert header(headers, b"access-control-allow-origin") == [b"*"]
    assert header(headers, b"access-control-allow-credentials") == []
    assert header(headers, b"vary") == []
    assert run_request([feature], preflight("https://b.com")).status == 204


def test_custom_values_are_sent_as_written():
    feature = cors_feature({**LIST, "cors-allow-methods": "GET,POST", "cors-allow-headers": "X-Custom,  Content-Type",
                            "cors-expose-headers": "X-Total, *", "cors-max-age": "60"})
    headers = respond(feature, exchange({"origin": "https://app.example.com"}), status=401)
    assert header(headers, b"access-control-allow-methods") == [b"GET,POST"]
    assert header(headers, b"access-control-allow-headers") == [b"X-Custom,  Content-Type"]
    assert header(headers, b"access-control-expose-headers") == [b"X-Total, *"]
    assert header(headers, b"access-control-max-age") == [b"60"]


# -- values as ingress-nginx reads them (internal/ingress/annotations/cors/main.go) -------


def parsed(name, value):
    """(the value the route gets, whether something was logged as ignored)."""
    result = annotation_values(cors, {name: value})[name]
    if isinstance(result, cors.Lenient):
        return result.value, True
    return result, False


ORIGINS = [
    # (cors-allow-origin, the origins kept (lower-cased), whether something was ignored)
    ("https://origin.cors.com:8080", ("https://origin.cors.com:8080",), False),
    ("null, https://origin123.test.com:4443", ("null", "https://origin123.test.com:4443"), False),
    ("test://localhost, tauri://localhost:3000", ("test://localhost", "tauri://localhost:3000"), False),
    ("https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,",
     ("https://origin-123.cors.com:8080", "https://origin-321.cors.com:8080"), False),
    ("https://APP.example.com, http://*.Origin.com:8080", ("https://app.example.com", "http://*.origin.com:8080"), False),
    ("https://a.com:99999999", ("https://a.com:99999999",), False),  # any number of port digits
    # empty, or a "*" anywhere: every origin
    ("", ("*",), False),
    ("      ", ("*",), False),
    ("*", ("*",), False),
    ("*, foo.bar.com", ("*",), False),
    ("https://a.com, *", ("*",), False),
    ("https://(a+)+$, *", ("*",), False),
    # entries that are not scheme://host[:port] or null are ignored...
    ("origin.cors.com:8080, https://origin2.cors.com, https://origin.com",
     ("https://origin2.cors.com", "https://origin.com"), True),
    ("chrome-extension://abc, https://a.com", ("https://a.com",), True),  # the scheme is letters only
    ("https://*.*.example.com, NULL, *.example.com, https://a.com", ("https://a.com",), True),
    # ...and a list left empty switches CORS off (no $cors = 'true' in the template)
    ("origin.cors.com:8080", (), True),
    (",", (), True),
    (" , ,", (), True),
]


@pytest.mark.parametrize("value,origins,ignored", ORIGINS)
def test_origin_lists(value, origins, ignored):
    assert parsed("cors-allow-origin", value) == (origins, ignored)


@pytest.mark.parametrize("value,methods,ignored", [
    ("POST, GET", "POST, GET", False),
    ("  GET,PATCH  ", "GET,PATCH", False),  # trimmed, otherwise as written
    ("GET POST", "GET POST", False),
    ("GET,\tPOST,", "GET,\tPOST,", False),
    ("", cors.DEFAULT_METHODS, False),
    ("   ", cors.DEFAULT_METHODS, False),
    ("GET ,POST", cors.DEFAULT_METHODS, True),  # passes the validator, fails the second check
    ("GET,  POST", cors.DEFAULT_METHODS, True),
])
def test_methods(value, methods, ignored):
    assert parsed("cors-allow-methods", value) == (methods, ignored)


@pytest.mark.parametrize("value,expose,ignored", [
    ("X-CustomResponseHeader, X-CustomSecondHeader", "X-CustomResponseHeader, X-CustomSecondHeader", False),
    ("*, X-CustomResponseHeader", "*, X-CustomResponseHeader", False),
    ("", "", False),
    ("X-A ,X-B", "", True),
])
def test_expose_headers(value, expose, ignored):
    assert parsed("cors-expose-headers", value) == (expose, ignored)


@pytest.mark.parametrize("value,headers", [
    ("DNT,X-CustomHeader, Keep-Alive,User-Agent", "DNT,X-CustomHeader, Keep-Alive,User-Agent"),
    ("DNT, User-Agent", "DNT, User-Agent"),
    (",, X_A", ",, X_A"),
    ("", cors.DEFAULT_HEADERS),
    ("  ", cors.DEFAULT_HEADERS),
])
def test_allow_headers(value, headers):
    assert parsed("cors-allow-headers", value) == (headers, False)


@pytest.mark.parametrize("name,value,expected,ignored", [
    # Go's strconv.ParseBool; anything else gets ingress-nginx's default
    ("enable-cors", "true", True, False),
    ("enable-cors", "T", True, False),
    ("enable-cors", "1", True, False),
    ("enable-cors", "False", False, False),
    ("enable-cors", "yes", False, True),
    ("enable-cors", " true", False, True),
    ("enable-cors", "", False, True),
    ("cors-allow-credentials", "false", False, False),
    ("cors-allow-credentials", "f", False, False),
    # Go's strconv.Atoi: sign and leading zeros allowed, 64 bits
    ("cors-max-age", "200", 200, False),
    ("cors-max-age", "+007", 7, False),
    ("cors-max-age", "-1", -1, False),
    ("cors-max-age", "9223372036854775807", 2**63 - 1, False),
    ("cors-max-age", "9223372036854775808", cors.DEFAULT_MAX_AGE, True),
    ("cors-max-age", "abcd", cors.DEFAULT_MAX_AGE, True),
    ("cors-max-age", " 5", cors.DEFAULT_MAX_AGE, True),
    ("cors-max-age", "1_000", cors.DEFAULT_MAX_AGE, True),
    ("cors-max-age", "1" * 4000, cors.DEFAULT_MAX_AGE, True),
    ("cors-max-age", "", cors.DEFAULT_MAX_AGE, True),
])
def test_booleans_and_max_age(name, value, expected, ignored):
    assert parsed(name, value) == (expected, ignored)


@pytest.mark.parametrize("raw", [
    # What ingress-nginx's validator refuses (it would log it and use the default, "*" for
    # the origins): we reject the Ingress instead.
    {"cors-allow-origin": "https://a.com/"}, {"cors-allow-origin": "https://a.com/path"},
    {"cors-allow-origin": "HTTPS://a.com"}, {"cors-allow-origin": "https://(a+)+$"},
    {"cors-allow-origin": 'https://a.test; return 200 "x"; #'}, {"cors-allow-origin": "https://a.com\thttps://b.com"},
    {"cors-allow-origin": "https://a.com:"}, {"cors-allow-origin": "1://a.com"}, {"cors-allow-origin": "https://**.a.com"},
    {"cors-allow-methods": "GET;rm"}, {"cors-allow-methods": 'GET; return 200 "x"; #'}, {"cors-allow-methods": ","},
    {"cors-allow-methods": "GET, PATCH, $nginx"}, {"cors-allow-headers": "X-A: b"}, {"cors-allow-headers": "*"},
    {"cors-allow-headers": "@alright, #ingress"}, {"cors-allow-headers": "X-A\t"},
    {"cors-expose-headers": "${jndi:ldap://x}"}, {"cors-expose-headers": "@alright, #ingress"},
])
def test_values_ingress_nginx_s_validator_refuses_reject_the_ingress(raw):
    with pytest.raises(AnnotationError):
        annotation_values(cors, raw)


@pytest.mark.parametrize("value", ["no", "off", "maybe", " true"])
def test_an_unreadable_allow_credentials_rejects_the_ingress(value):
    # ingress-nginx would use its default, true: wider than what was meant by "no".
    with pytest.raises(AnnotationError):
        annotation_values(cors, {"enable-cors": "true", "cors-allow-credentials": value})


def test_parsers_are_linear_on_hostile_lists():
    # ingress-nginx's regexes nest repetitions; ported to Python's re they would backtrack
    # for ages on these.
    for value in ["a" * 4000 + "!", "a," * 2000 + "!", "a:1" * 1300 + "!", "a " * 2000 + ";"]:
        for name in ("cors-allow-origin", "cors-allow-methods", "cors-expose-headers", "cors-allow-headers"):
            with pytest.raises(AnnotationError):
                annotation_values(cors, {name: value})


# -- what a client sees, through the whole build path (test/e2e/annotations/cors.go) -----


def allow_origin(annotations, origin=None, method="GET"):
    """The Access-Control-Allow-Origin a client gets, or None; "proxied"/"204" for a preflight."""
    harness = PluginHarness(plugins=[cors], annotations={"enable-cors": "true", **annotations})
    headers = {"origin": origin} if origin else {}
    if method == "OPTIONS":
        headers["access-control-request-method"] = "PUT"
    outcome = harness.request(method, "/", headers)
    response = outcome.response(200) if outcome.proxied else outcome.local
    return response.get("access-control-allow-origin"), ("proxied" if outcome.proxied else str(outcome.status))


E2E = [
    # (annotations, Origin, the Allow-Origin ingress-nginx's e2e tests expect, or None)
    ({}, None, "*"),
    ({"cors-allow-origin": "*"}, None, "*"),
    ({"cors-allow-origin": "*, foo.bar.com"}, None, "*"),
    ({"cors-allow-origin": "      "}, None, "*"),
    ({"cors-allow-origin": "https://origin.cors.com:8080"}, "https://origin.cors.com:8080", "https://origin.cors.com:8080"),
    ({"cors-allow-origin": "https://origin.cors.com:8080, https://origin2.cors.com"}, "https://origin.cors.com:8080",
     "https://origin.cors.com:8080"),
    ({"cors-allow-origin": "http://origin2.cors.com, https://origin.com"}, "http://no.origin.com", None),
    ({"cors-allow-origin": "origin.cors.com:8080, https://origin2.cors.com, https://origin.com"}, "origin.cors.com:8080",
     None),
    ({"cors-allow-origin": "origin.cors.com:8080, https://origin2.cors.com, https://origin.com"},
     "https://origin2.cors.com", "https://origin2.cors.com"),
    ({"cors-allow-origin": "origin.cors.com:8080, https://origin2.cors.com, https://origin.com"},
     "https://origin.com", "https://origin.com"),
    ({"cors-allow-origin": "https://foo.bar.com"}, "https://fooxbar.com", None),
    ({"cors-allow-origin": "http://origin.cors.com:8080, http://origin.com:8080"}, "http://origin.com:8080",
     "http://origin.com:8080"),
    ({"cors-allow-origin": "https://origin2.cors.com, http://origin.com"}, "http://origin.com:8080", None),
    ({"cors-allow-origin": "http://origin.cors.com:8080, http://origin.com:8080"}, "http://origin.com", None),
    ({"cors-allow-origin": "http://*.origin.cors.com, http://*.origin.com:8080"}, "http://bar-foo.origin.cors.com",
     "http://bar-foo.origin.cors.com"),
    ({"cors-allow-origin": "http://*.origin.cors.com, http://*.origin.com:8080"}, "http://bar.foo.origin.cors.com",
     None),
    ({"cors-allow-origin": "http://origin.cors.com:8080, http://*.origin.com:8080"}, "http://abc.origin.com:8080",
     "http://abc.origin.com:8080"),
    ({"cors-allow-origin": "http://origin.cors.com:8080, http://*.origin.com:8080"}, "http://abc.origin.com", None),
    ({"cors-allow-origin": "http://origin.cors.com:8080, http://*.origin.com:8080"}, "http://origin.com:8080", None),
    ({"cors-allow-origin": "https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,"},
     "https://origin-321.cors.com:8080", "https://origin-321.cors.com:8080"),
    ({"cors-allow-origin": "https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,"},
     "https://unknown.cors.com:8080", None),
    ({"cors-allow-origin": "test://localhost, tauri://localhost:3000"}, "tauri://localhost:3000",
     "tauri://localhost:3000"),
]


@pytest.mark.parametrize("annotations,origin,expected", E2E)
def test_e2e_scenarios(annotations, origin, expected):
    assert allow_origin(annotations, origin) == (expected, "proxied")


@pytest.mark.parametrize("value", ["origin.cors.com:8080", ",", "https://*.*.example.com"])
def test_a_list_with_no_usable_origin_means_no_cors(value):
    harness = PluginHarness(plugins=[cors], annotations={"enable-cors": "true", "cors-allow-origin": value})
    assert harness.rejection is None and harness.features == ()
    # No header for anyone, and a preflight goes to the backend.
    assert allow_origin({"cors-allow-origin": value}, "https://origin.cors.com") == (None, "proxied")
    assert allow_origin({"cors-allow-origin": value}, "https://origin.cors.com", "OPTIONS") == (None, "proxied")


def test_ignored_entries_and_defaults_are_logged_naming_the_ingress():
    from twisted.logger import globalLogPublisher

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        PluginHarness(plugins=[cors], name="shop", annotations={
            "enable-cors": "true", "cors-allow-origin": "origin.cors.com:8080, https://a.com",
            "cors-max-age": "abcd"})
        PluginHarness(plugins=[cors], name="off", annotations={"enable-cors": "yes"})
    finally:
        globalLogPublisher.removeObserver(seen.append)
    from twisted.logger import formatEvent

    lines = [formatEvent(event) for event in seen]
    assert any("default/shop" in line and "cors-allow-origin" in line and "'origin.cors.com:8080'" in line
               for line in lines), lines
    assert any("default/shop" in line and "cors-max-age" in line and "1728000" in line for line in lines), lines
    assert any("default/off" in line and "enable-cors" in line and "'yes'" in line for line in lines), lines
