"""app-root, permanent-redirect and temporal-redirect, as ingress-nginx renders them and nginx answers.

The expected values come from ingress-nginx's own tests (test/e2e/annotations/approot.go,
redirect.go; internal/ingress/annotations/redirect/redirect_test.go) and its template.
"""

from __future__ import annotations

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import redirect, ssl_redirect

N = "nginx.ingress.kubernetes.io/"


def harness(annotations, **kwargs):
    kwargs.setdefault("host", "approot.bar.com")
    return PluginHarness([redirect], {N + k: v for k, v in annotations.items()}, **kwargs)


def answer(annotations, path="/", **request):
    with harness(annotations) as h:
        assert h.rejection is None, h.rejection
        return h.request(path=path, **request)


# -- app-root ------------------------------------------------------------------------------


def test_app_root_redirects_a_request_for_slash_with_302():
    # approot.go: GET / with Host approot.bar.com → 302, Location http://approot.bar.com/foo
    outcome = answer({"app-root": "/foo"})
    assert outcome.status == 302
    assert outcome.local.get("location") == "http://approot.bar.com/foo"
    assert outcome.local.body == b"302 Found\n"


def test_app_root_keeps_the_host_header_as_sent_and_the_scheme():
    # $scheme://$http_host: the port and the spelling the client sent
    outcome = answer({"app-root": "/foo"}, host="ApprooT.bar.com:8080")
    assert outcome.local.get("location") == "http://ApprooT.bar.com:8080/foo"
    outcome = answer({"app-root": "/foo"}, scheme="https")
    assert outcome.local.get("location") == "https://approot.bar.com/foo"


def test_app_root_drops_the_query_and_leaves_other_paths_alone():
    assert answer({"app-root": "/app1"}, path="/?a=1").local.get("location") == "http://approot.bar.com/app1"
    assert answer({"app-root": "/app1"}, path="/other").proxied
    assert answer({"app-root": "/app1"}, path="/app1").proxied


def test_app_root_refuses_a_host_header_that_could_change_the_url():
    assert answer({"app-root": "/foo"}, host="evil.com/x").status == 400


@pytest.mark.parametrize("value, message", [
    ("foo", "must be a path"),
    ("http://other/foo", "not an absolute URL"),
    ("//other/foo", "not an absolute URL"),
    ("/foo$host", "variables"),
    ("/a b", "must be a path"),
    ("/a?b=c", "must be a path"),
])
def test_an_app_root_that_is_not_a_path_rejects_the_ingress(value, message):
    with harness({"app-root": value}) as h:
        assert h.rejection is not None and "app-root" in h.rejection and message in h.rejection


# -- permanent-redirect / temporal-redirect --------------------------------------------------


def test_permanent_redirect_answers_every_request_301_with_the_url_as_written():
    # redirect.go: permanent-redirect http://redirect.example.com → 301, Location exactly it
    for path in ("/", "/some/path?x=1"):
        outcome = answer({"permanent-redirect": "http://redirect.example.com"}, path=path)
        assert outcome.status == 301
        assert outcome.local.get("location") == "http://redirect.example.com"
        assert outcome.local.body == b"301 Moved Permanently\n"


def test_temporal_redirect_answers_302():
    outcome = answer({"temporal-redirect": "https://t.example.com/x?y=1&z=2"}, path="/a?b=c")
    assert (outcome.status, outcome.local.get("location")) == (302, "https://t.example.com/x?y=1&z=2")
    assert outcome.local.body == b"302 Found\n"


@pytest.mark.parametrize("annotations, status", [
    # redirect_test.go: a valid custom code is used, an invalid one (418) falls back
    ({"permanent-redirect-code": "308"}, 308),
    ({"permanent-redirect-code": "418"}, 301),
    ({"permanent-redirect-code": "299"}, 301),
    ({"permanent-redirect-code": "303"}, 303),
    # redirect.go e2e: a custom code 308
    ({"permanent-redirect-code": "+308"}, 308),
])
def test_permanent_redirect_code(annotations, status):
    outcome = answer({"permanent-redirect": "http://r.example.com", **annotations})
    assert outcome.status == status
    assert outcome.local.get("location") == "http://r.example.com"


@pytest.mark.parametrize("code, status", [("307", 307), ("418", 302), ("308", 302), ("301", 301), ("303", 303)])
def test_temporal_redirect_code(code, status):
    outcome = answer({"temporal-redirect": "http://r.example.com", "temporal-redirect-code": code})
    assert outcome.status == status


def test_temporal_wins_over_permanent():
    outcome = answer({"temporal-redirect": "http://t.example.com", "permanent-redirect": "http://p.example.com",
                      "permanent-redirect-code": "308"})
    assert (outcome.status, outcome.local.get("location")) == (302, "http://t.example.com")


def test_a_code_that_is_no_redirect_sends_the_url_as_the_body():
    # nginx's return: only 301, 302, 303, 307 and 308 are redirects; 300 sends the text
    outcome = answer({"permanent-redirect": "http://r.example.com", "permanent-redirect-code": "300"})
    assert outcome.status == 300 and outcome.local.get("location") is None
    assert outcome.local.body == b"http://r.example.com"
    outcome = answer({"permanent-redirect": "http://r.example.com", "permanent-redirect-code": "304"})
    assert outcome.status == 304 and outcome.local.body == b"" and outcome.local.get("location") is None


def test_a_permanent_redirect_to_a_path_is_made_absolute_as_nginx_does():
    outcome = answer({"permanent-redirect": "/new/place"}, path="/old", scheme="https")
    # absolute_redirect on, port_in_redirect off: scheme, the request's host, no port
    assert outcome.local.get("location") == "https://approot.bar.com/new/place"


@pytest.mark.parametrize("annotations, message", [
    ({"permanent-redirect": "http://r.example.com/a b"}, "is not a URL ingress-nginx accepts"),
    ({"permanent-redirect": "http://r.example.com/%0d%0aX:y"}, "is not a URL ingress-nginx accepts"),
    ({"permanent-redirect": "http://r.example.com/$request_uri"}, "variables"),
    ({"temporal-redirect": "http://r.example.com/#x"}, "is not a URL ingress-nginx accepts"),
    ({"temporal-redirect": "ftp://r.example.com"}, "must be an http:// or https:// URL"),
    ({"temporal-redirect": "/path"}, "must be an http:// or https:// URL"),
    ({"permanent-redirect": "http://r.example.com", "permanent-redirect-code": "30x"}, "expected an integer"),
    ({"temporal-redirect": "http://r.example.com", "temporal-redirect-code": " 302"}, "expected an integer"),
])
def test_invalid_values_reject_the_ingress_with_the_reason(annotations, message):
    with harness(annotations) as h:
        assert h.rejection is not None and message in h.rejection, h.rejection


def test_nothing_set_adds_no_feature():
    with harness({"permanent-redirect-code": "308", "temporal-redirect-code": "307"}) as h:
        assert h.features == ()


# -- order with the other REWRITE features ---------------------------------------------------------


def test_the_redirects_answer_before_the_https_redirect_of_a_tls_host():
    # nginx: `return` (rewrite module) runs before the Lua HTTPS redirect (rewrite_by_lua)
    objects_kw = {"host": "approot.bar.com"}
    with PluginHarness([ssl_redirect, redirect], {N + "permanent-redirect": "https://r.example.com",
                                                  N + "force-ssl-redirect": "true"}, **objects_kw) as h:
        outcome = h.request(path="/x")
        assert (outcome.status, outcome.local.get("location")) == (301, "https://r.example.com")
    with PluginHarness([redirect, ssl_redirect], {N + "app-root": "/app", N + "force-ssl-redirect": "true"},
                       **objects_kw) as h:
        outcome = h.request(path="/")
        assert (outcome.status, outcome.local.get("location")) == (302, "http://approot.bar.com/app")
        assert h.request(path="/x").status == 308


# -- from-to-www-redirect ------------------------------------------------------------------


def www_answer(h, host, path="/", scheme="http", port=None):
    """A request for a host the harness's Ingress does not list, through the route table."""
    from ingressd.http.headers import Headers
    from ingressd.testing import FakeExchange

    entry = h.table.match(host, path.partition("?")[0])
    assert entry is not None, f"no route for {host}"
    raw_path, _, query = path.partition("?")
    ex = FakeExchange(method=b"GET", target=path.encode(), path=raw_path, query=query.encode(), host=host,
                      headers=Headers([(b"host", host.encode())]), scheme=scheme,
                      server_port=port or (443 if scheme == "https" else 80), route=entry.route)
    for request in entry.request_features:
        answered = request(ex)
        if answered is not None:
            return answered
    return None


def test_from_to_www_redirects_the_www_name_to_the_host():
    # fromtowwwredirect.go: GET /foo, Host www.fromtowwwredirect.bar.com → 308,
    # Location http://fromtowwwredirect.bar.com:80/foo
    with harness({"from-to-www-redirect": "true"}, host="fromtowwwredirect.bar.com") as h:
        answer = www_answer(h, "www.fromtowwwredirect.bar.com", "/foo")
        assert answer.status == 308
        assert dict(answer.headers)[b"location"] == b"http://fromtowwwredirect.bar.com:80/foo"
        assert answer.body == b"308 Permanent Redirect\n"
        # https, /: the last "/" of the URI is dropped, the port is always there
        answer = www_answer(h, "www.fromtowwwredirect.bar.com", "/", scheme="https")
        assert dict(answer.headers)[b"location"] == b"https://fromtowwwredirect.bar.com:443"
        answer = www_answer(h, "www.fromtowwwredirect.bar.com", "/a/?q=1/", port=8080)
        assert dict(answer.headers)[b"location"] == b"http://fromtowwwredirect.bar.com:8080/a/?q=1"
        # the host itself is the Ingress's, proxied
        assert h.request(path="/foo").proxied


def test_from_to_www_redirects_the_bare_name_to_www_and_uses_the_redirect_code_option():
    with harness({"from-to-www-redirect": "true"}, host="www.example.org",
                 settings={"http_redirect_code": 301}) as h:
        answer = www_answer(h, "example.org", "/x?y=1")
        assert (answer.status, dict(answer.headers)[b"location"]) == (301, b"http://www.example.org:80/x?y=1")


def test_from_to_www_adds_nothing_when_another_ingress_has_the_other_name():
    from harness import ingress

    with harness({"from-to-www-redirect": "true"}, host="shop.test") as h:
        h.objects.append(ingress("www", [("www.shop.test", [("/", "Prefix", "echo", 80)])]))
        h.rebuild()
        entry = h.table.match("www.shop.test", "/")
        assert entry is not None and entry.route.ingress.name == "www" and not entry.features


def test_from_to_www_off_or_wildcard_adds_nothing():
    with harness({"from-to-www-redirect": "false"}, host="shop.test") as h:
        assert h.table.match("www.shop.test", "/") is None
    with harness({"from-to-www-redirect": "true"}, host="*.shop.test") as h:
        assert {route.host for route in h.config.routes} == {"*.shop.test"}
    with harness({"from-to-www-redirect": "yes"}, host="shop.test") as h:
        assert "from-to-www-redirect" in h.rejection


def test_from_to_www_offers_the_ingress_certificate_only_where_it_covers_the_other_name():
    with harness({"from-to-www-redirect": "true"}, host="shop.test",
                 objects=[]) as h:
        assert [t for t in h.config.tls_hosts] == []  # no TLS section: nothing to offer
    import certs
    from ingressd.tls.certificates import CertificateStore

    for names, served in ((("shop.test", "www.shop.test"), True), (("shop.test",), False)):
        leaf = certs.make_leaf(*names)
        with harness({"from-to-www-redirect": "true"}, host="shop.test",
                     secrets={"tls": {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem()}}) as h:
            ingress_object = next(o for o in h.objects if o["kind"] == "Ingress")
            ingress_object["spec"]["tls"] = [{"hosts": ["shop.test"], "secretName": "tls"}]
            h.rebuild()
            extra = [t for t in h.config.tls_hosts if t.host == "www.shop.test"]
            assert len(extra) == 1 and extra[0].covered_only
            store = CertificateStore()
            assert store.update(h.config) == []
            assert store.warnings == ()  # not covered: the default, silently, as ingress-nginx
            assert (store.certificate_for("www.shop.test").fingerprint == leaf.fingerprint) is served


def test_relative_redirects_and_the_port_in_redirects():
    from ingressd.testing import exchange
    from ingressd_plugins.redirect import Redirect

    for relative, with_port, port, expected in ((False, False, 8080, b"http://example.com/moved"),
                                                (True, False, 8080, b"/moved"),
                                                (False, True, 8080, b"http://example.com:8080/moved"),
                                                (False, True, 80, b"http://example.com/moved")):  # the default port
        answer = Redirect(301, "/moved", relative, with_port).request(exchange(server_port=port))
        assert dict(answer.headers)[b"location"] == expected, (relative, with_port, port)
