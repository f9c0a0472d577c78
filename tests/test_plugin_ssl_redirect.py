"""ssl_redirect: the Location ingress-nginx's Lua builds, through the real build path.

ingress-nginx (rootfs/etc/nginx/lua/lua_ingress.lua, ``_M.rewrite``) redirects to
``https://`` + host + ``$request_uri``, first dropping the URI's last character when it is
``/`` (unless preserve-trailing-slash). Its e2e tests: annotations/forcesslredirect.go and
ssl/http_redirect.go expect ``https://<host>`` for ``/``, annotations/preservetrailingslash.go
``https://<host>/``.
"""

from __future__ import annotations

import pytest

import fakes  # noqa: F401  (makes ingressd_plugins importable)
from ingressd.testing import PluginHarness
from ingressd_plugins import ssl_redirect

HOST = "forcesslredirect.bar.com"


def harness(tls: bool = False, **annotations: str) -> PluginHarness:
    """One Ingress for HOST, path "/"; with ``tls`` its TLS section names HOST (the Secret
    need not exist: ingress-nginx redirects then too, ssl/http_redirect.go)."""
    built = PluginHarness(plugins=[ssl_redirect], annotations=annotations, host=HOST)
    if tls:
        ingress = built.objects[-1]
        assert ingress["kind"] == "Ingress"
        ingress["spec"]["tls"] = [{"hosts": [HOST], "secretName": "missing"}]
        built.rebuild()
    return built


# (request target, preserve-trailing-slash, the Location ingress-nginx sends)
LOCATIONS = [
    ("/", False, f"https://{HOST}"),
    ("/", True, f"https://{HOST}/"),
    ("/foo", False, f"https://{HOST}/foo"),
    ("/foo/", False, f"https://{HOST}/foo"),
    ("/foo/", True, f"https://{HOST}/foo/"),
    ("/foo//", False, f"https://{HOST}/foo/"),  # one character only
    ("/foo/?a=b", False, f"https://{HOST}/foo/?a=b"),  # the URI ends in "b": nothing dropped
    ("/foo?a=b/", False, f"https://{HOST}/foo?a=b"),  # the query's own last "/" goes
    ("/foo?a=b/", True, f"https://{HOST}/foo?a=b/"),
    ("/?next=/", False, f"https://{HOST}/?next="),
    ("/?", False, f"https://{HOST}/?"),  # $request_uri keeps an empty query's "?"
    ("/a%2Fb/?x=%20", False, f"https://{HOST}/a%2Fb/?x=%20"),  # as the client sent it
]


@pytest.mark.parametrize("annotation", ["force-ssl-redirect", "ssl-redirect"])
@pytest.mark.parametrize("target,preserve,location", LOCATIONS)
def test_location_is_ingress_nginx_s(annotation, target, preserve, location):
    annotations = {annotation: "true"}
    if preserve:
        annotations["preserve-trailing-slash"] = "true"
    outcome = harness(tls=annotation == "ssl-redirect", **annotations).request("GET", target)
    assert outcome.status == 308
    assert outcome.local.get("location") == location


@pytest.mark.parametrize(
    "settings,host,location",
    [
        ({"https_port_for_redirect": 8443}, HOST, f"https://{HOST}:8443"),
        ({}, "[::1]", "https://[::1]"),  # an IPv6 Host as the core gives it (with brackets)
        ({"https_port_for_redirect": 8443}, "[2001:db8::1]", "https://[2001:db8::1]:8443"),
        ({"https_redirect_port": 8443}, HOST, f"https://{HOST}:8443"),  # the name the demo uses
        ({"https_redirect_port": 443}, HOST, f"https://{HOST}"),
        ({"https_redirect_port": 9443, "https_port_for_redirect": 8443}, HOST, f"https://{HOST}:9443"),
    ],
)
def test_port_and_host_before_the_uri(settings, host, location):
    built = PluginHarness(plugins=[ssl_redirect], annotations={"force-ssl-redirect": "true"}, host=HOST,
                          settings=settings)
    assert built.request("GET", "/", host=host).local.get("location") == location


@pytest.mark.parametrize("code,title", [(308, "Permanent Redirect"), (301, "Moved Permanently"),
                                        (302, "Found"), (307, "Temporary Redirect")])
def test_redirect_body_is_nginx_s_title(code, title):
    built = PluginHarness(plugins=[ssl_redirect], annotations={"force-ssl-redirect": "true"}, host=HOST,
                          settings={"http_redirect_code": code})
    answer = built.request("GET", "/x/").local
    assert (answer.status, answer.get("location")) == (code, f"https://{HOST}/x")
    assert answer.body == f"{code} {title}\n".encode()


@pytest.mark.parametrize(
    "tls,annotations,scheme,redirected",
    [
        (True, {}, "http", True),  # ssl-redirect defaults to true for a TLS host
        (True, {"ssl-redirect": "false"}, "http", False),
        (True, {}, "https", False),
        (False, {}, "http", False),  # no TLS, no force
        (False, {"force-ssl-redirect": "true"}, "http", True),
        (False, {"force-ssl-redirect": "true"}, "https", False),
        (True, {"force-ssl-redirect": "true", "ssl-redirect": "false"}, "http", True),
    ],
)
def test_when_to_redirect(tls, annotations, scheme, redirected):
    outcome = harness(tls=tls, **annotations).request("GET", "/x", scheme=scheme)
    assert (outcome.status == 308) is redirected
    assert outcome.proxied is not redirected


# -- https_response_fields: the feature's word that the exchange's plain lane relies on ----------

@pytest.mark.parametrize("hsts", [None, b"max-age=5", b"max-age=31536000; includeSubDomains; preload"])
@pytest.mark.parametrize("redirect", [True, False])
def test_over_https_the_hooks_only_set_the_fields_they_declare(hsts, redirect):
    from types import SimpleNamespace

    feature = ssl_redirect.SSLRedirect(redirect, hsts=hsts, exempt=("/.well-known",))
    assert feature.https_response_fields == (() if hsts is None else ((b"strict-transport-security", hsts),))
    exchange = SimpleNamespace(scheme="https", path="/a/", host=HOST, target=b"/a/", query=b"")
    assert feature.request(exchange) is None
    backend = [(b"x-a", b"1"), (b"strict-transport-security", b"max-age=1"), (b"Strict-Transport-Security", b"x")]
    headers = list(backend)
    feature.response(exchange, 200, headers)
    names = {name for name, _ in feature.https_response_fields}
    # what the plain lane does with the declared fields (backends' names arrive lower-case)
    lowered = [(name.lower(), value) for name, value in backend]
    expected = [pair for pair in lowered if pair[0] not in names] + list(feature.https_response_fields)
    assert [(name.lower(), value) for name, value in headers] == expected
    if hsts is None:
        assert headers == backend  # nothing touched
