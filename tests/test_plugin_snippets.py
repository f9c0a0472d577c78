"""configuration-snippet and server-snippet through the real build path: each directive as nginx runs it."""

from __future__ import annotations

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import snippets

N = "nginx.ingress.kubernetes.io/"


def harness(location=None, server=None, **extra):
    annotations = {}
    if location is not None:
        annotations[N + "configuration-snippet"] = location
    if server is not None:
        annotations[N + "server-snippet"] = server
    annotations.update(extra)
    return PluginHarness([snippets], annotations, host="snip.test")


def test_more_set_headers_replaces_for_every_status_and_add_header_only_for_success():
    with harness("more_set_headers 'X-A: a';\nadd_header X-B b;\nadd_header X-C c always;") as h:
        ok = h.request(path="/").response(200, {"x-a": "backend"})
        assert ok.get_all("x-a") == ["a"] and ok.get("x-b") == "b" and ok.get("x-c") == "c"
        missing = h.request(path="/").response(404)
        assert missing.get("x-a") == "a" and missing.get("x-b") is None and missing.get("x-c") == "c"


def test_header_options_and_clearing():
    with harness("more_set_headers -s 404 'X-Only: 404';\nmore_set_headers -t text/html 'X-Html: y';\n"
                 "more_clear_headers X-Powered-* Server-Timing;\nproxy_hide_header X-Secret;") as h:
        got = h.request().response(200, [("content-type", "text/html; charset=utf-8"), ("x-powered-by", "php"),
                                         ("x-powered-extra", "1"), ("server-timing", "a"), ("x-secret", "s")])
        assert got.get("x-only") is None and got.get("x-html") == "y"
        assert [k for k, _ in got.header_items()] == ["content-type", "x-html"]
        assert h.request().response(404).get("x-only") == "404"


def test_variables_in_values():
    with harness("more_set_headers 'X-V: $scheme $host $uri $args $remote_addr $request_method "
                 "$http_user_agent $cookie_s $arg_a $server_port';") as h:
        got = h.request(path="/p?a=1&b=2", headers={"user-agent": "ua", "cookie": "t=0; s=cv"}).response(200)
        assert got.get("x-v") == "http snip.test /p a=1&b=2 192.0.2.10 GET ua cv 1 80"


def test_input_headers_and_proxy_set_header():
    with harness("more_set_input_headers 'X-In: $host';\nmore_set_input_headers -r 'X-Only-If: new';\n"
                 "more_clear_input_headers X-Drop;\nproxy_set_header X-Up $request_uri;\n"
                 "proxy_set_header X-Empty '';") as h:
        sent = dict(h.request(path="/a?b=1", headers={"x-drop": "1", "x-empty": "e"}).upstream_headers)
        assert sent["x-in"] == "snip.test" and sent["x-up"] == "/a?b=1"
        assert "x-only-if" not in sent and "x-drop" not in sent and "x-empty" not in sent
        sent = dict(h.request(headers={"x-only-if": "old"}).upstream_headers)
        assert sent["x-only-if"] == "new"


@pytest.mark.parametrize("snippet, path, status, location, body", [
    ("return 403;", "/", 403, None, b"403 Forbidden\n"),
    ('return 200 "hello $host";', "/", 200, None, b"hello snip.test"),
    ("return 301 https://$host$request_uri;", "/a?b=1", 301, "https://snip.test/a?b=1", None),
    ("return 308 /elsewhere;", "/", 308, "http://snip.test/elsewhere", None),  # nginx's absolute_redirect on
    ("return https://x.test/;", "/", 302, "https://x.test/", None),
    ("rewrite ^/old/(.*)$ /new/$1 redirect;", "/old/p?q=1", 302, "http://snip.test/new/p?q=1", None),
    ("rewrite ^/old/(.*)$ /new/$1 permanent;", "/old/p", 301, "http://snip.test/new/p", None),
    ("rewrite ^/old/(.*)$ https://n.test/$1?x=1;", "/old/p?q=1", 302, "https://n.test/p?x=1&q=1", None),
    ("rewrite ^/old/(.*)$ https://n.test/$1? redirect;", "/old/p?q=1", 302, "https://n.test/p", None),
])
def test_return_and_redirecting_rewrites(snippet, path, status, location, body):
    with harness(snippet) as h:
        outcome = h.request(path=path)
        assert outcome.status == status
        assert outcome.local.get("location") == location
        if body is not None:
            assert outcome.local.body == body


@pytest.mark.parametrize("snippet, path, target", [
    ("rewrite ^/old/(.*)$ /new/$1 break;", "/old/a b?q=1", "/new/a%20b?q=1"),
    ("rewrite ^/old/(.*)$ /new/$1?x=$1 last;", "/old/p?q=1", "/new/p?x=p&q=1"),
    ("rewrite ^/old /a;\nrewrite ^/a /b break;\nrewrite ^/b /c;", "/old", "/b"),
    ("rewrite ^/OLD /a break;", "/old", "/old"),  # case-sensitive, as nginx
    ("rewrite (?i)^/OLD /a break;", "/old", "/a"),
])
def test_rewrites_change_the_uri_sent(snippet, path, target):
    with harness(snippet) as h:
        assert h.request(path=path).exchange.target.decode() == target


@pytest.mark.parametrize("condition, headers, path, holds", [
    ("$http_x", {"x": "1"}, "/", True),
    ("$http_x", {"x": "0"}, "/", False),
    ("$http_x", {}, "/", False),
    ("$http_x = abc", {"x": "abc"}, "/", True),
    ("$http_x != abc", {"x": "abc"}, "/", False),
    ("$uri ~ ^/A", {}, "/a", False),
    ("$uri ~* ^/A", {}, "/a", True),
    ("$uri !~ ^/A", {}, "/a", True),
    ("$uri !~* ^/A", {}, "/a", False),
    ('$request_method = "POST"', {}, "/", False),
])
def test_if_conditions(condition, headers, path, holds):
    with harness(f"if ({condition}) {{ return 403; }}") as h:
        assert (h.request(path=path, headers=headers).status == 403) is holds


def test_if_captures_and_if_level_headers():
    with harness("add_header X-Loc l;\nif ($uri ~ ^/u/(\\w+)) {\n  add_header X-User $1;\n}") as h:
        got = h.request(path="/u/ann").response(200)
        assert got.get("x-user") == "ann" and got.get("x-loc") is None  # the if's add_header replaces
        assert h.request(path="/other").response(200).get("x-loc") == "l"


def test_allow_deny_first_match_wins():
    with harness("allow 10.1.0.0/16;\ndeny 10.0.0.0/8;\nallow 192.0.2.10;\ndeny all;") as h:
        assert h.request(client_ip="10.1.2.3").proxied
        assert h.request(client_ip="10.2.0.1").status == 403
        assert h.request(client_ip="192.0.2.10").proxied
        assert h.request(client_ip="198.51.100.1").status == 403


def test_server_snippet_runs_first_and_location_rules_replace_its_access_rules():
    with harness("allow all;\nmore_set_headers 'X-Loc: 1';",
                 "rewrite ^/s/(.*) /$1;\ndeny all;\nmore_set_headers 'X-Srv: 1';") as h:
        outcome = h.request(path="/s/x")
        assert outcome.proxied and outcome.exchange.target == b"/x"
        got = outcome.response(200)
        assert got.get("x-srv") == "1" and got.get("x-loc") == "1"
    with harness(server="deny all;") as h:
        assert h.request().status == 403


def test_an_unsupported_snippet_fails_closed_unless_ignored():
    with harness("content_by_lua_block { ngx.say('x') }") as h:
        assert "line 1: directive content_by_lua_block is not supported" in h.rejection
    with harness("deny all;\nset $a 1;", **{"ingressd.io/ignore-annotations": "configuration-snippet"}) as h:
        assert h.rejection is None and h.request().proxied
        assert any("line 2: directive set is not supported" in w for w in h.warnings)


def test_multi_line_snippets_pass_the_value_check_but_header_values_stay_single_line():
    with harness('more_set_headers "X-A: a\\r\\nX-Evil: 1";') as h:
        assert "control character" in h.rejection


def test_the_location_variables_of_ingress_nginx_s_template():
    from ingressd.testing import PluginHarness
    from ingressd_plugins import snippets as plugin

    snippet = ('proxy_set_header X-Service "$namespace/$ingress_name/$service_name:$service_port";\n'
               'more_set_headers "X-Path: $location_path";')
    with PluginHarness([plugin], {"nginx.ingress.kubernetes.io/configuration-snippet": snippet},
                       path="/app", namespace="shop", name="web") as h:
        assert h.rejection is None, h.rejection
        outcome = h.request(path="/app/x")
        assert ("x-service", "shop/web/web:80") in [(k.lower(), v) for k, v in outcome.upstream_headers]
        assert outcome.response(200).get("x-path") == "/app"


@pytest.mark.parametrize("snippet, honoured", [
    ("server_tokens off;", True), ("server_tokens on;", True), ("proxy_ssl_verify off;", True),
    ("proxy_ssl_verify on;", False), ("server_tokens build;", False),
])
def test_directives_whose_effect_ingressd_already_has(snippet, honoured):
    from ingressd.snippets import SnippetError, parse_snippet

    if honoured:
        parse_snippet(snippet, "server")
    else:
        with pytest.raises(SnippetError, match="line 1: .*only"):
            parse_snippet(snippet, "server")


def test_relative_redirects_keep_a_snippets_redirect_relative():
    from ingressd.testing import PluginHarness
    from ingressd_plugins import redirect, snippets as plugin

    with PluginHarness([plugin, redirect], {"nginx.ingress.kubernetes.io/configuration-snippet": "return 301 /x;",
                                            "nginx.ingress.kubernetes.io/relative-redirects": "true"}) as h:
        assert h.request().local.get("location") == "/x"
