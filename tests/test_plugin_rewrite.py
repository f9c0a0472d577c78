"""rewrite-target, use-regex and x-forwarded-prefix, as ingress-nginx renders and nginx runs them."""

from __future__ import annotations

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import rewrite

N = "nginx.ingress.kubernetes.io/"


def harness(path, annotations, path_type="ImplementationSpecific"):
    return PluginHarness([rewrite], {N + k: v for k, v in annotations.items()}, path=path, path_type=path_type,
                         host="rw.test")


def sent(path, annotations, request, headers=()):
    with harness(path, annotations) as h:
        assert h.rejection is None, h.rejection
        outcome = h.request(path=request, headers=headers)
        assert outcome.proxied
        return outcome.exchange.target.decode(), outcome.exchange


@pytest.mark.parametrize("path, target, asked, expected", [
    # ingress-nginx's documented example: /something(/|$)(.*) → /$2
    ("/something(/|$)(.*)", "/$2", "/something", "/"),
    ("/something(/|$)(.*)", "/$2", "/something/", "/"),
    ("/something(/|$)(.*)", "/$2", "/something/new", "/new"),
    ("/something(/|$)(.*)", "/$2", "/SOMETHING/New", "/New"),  # case-insensitive; captures as sent
    # e2e "should allow for custom rewrite parameters"
    ("/foo/bar/(.+)", "/new/backend/$1", "/foo/bar/bar", "/new/backend/bar"),
    # the whole URI is replaced, not only the part that matched
    ("/app", "/", "/app/deep/path", "/"),
    # a capture that did not take part, and one beyond the groups, are empty
    ("/x(/y)?(/z)?", "/a$1$2$9", "/x/z", "/a/z"),
    # the query string: kept, joined with & after the target's own, dropped by a final ?
    ("/q(.*)", "/new$1", "/q/path?a=1&b=2", "/new/path?a=1&b=2"),
    ("/q(.*)", "/new?x=1", "/q/path?a=1", "/new?x=1&a=1"),
    ("/q(.*)", "/new?", "/q/path?a=1", "/new"),
    ("/q(.*)", "/new?x=$1", "/q/p", "/new?x=/p"),
    # variables nginx substitutes in a rewrite
    ("/v(.*)", "/$host$1", "/v/a", "/rw.test/a"),
    # what must be escaped in the new path is (a decoded space from %20 in a capture)
    ("/e/(.*)", "/f/$1", "/e/a b", "/f/a%20b"),
])
def test_the_backend_receives_the_rewritten_uri(path, target, asked, expected):
    assert sent(path, {"rewrite-target": target}, asked)[0] == expected


def test_a_target_equal_to_the_path_is_no_rewrite_and_no_regex():
    with harness("/same", {"rewrite-target": "/same"}, path_type="Prefix") as h:
        assert h.features == ()
        assert not h.entry.regex


def test_use_regex_alone_changes_matching_not_the_uri():
    with harness("/v[0-9]+/", {"use-regex": "true"}) as h:
        assert h.entry.regex
        assert h.request(path="/v2/x?q=1").exchange.target == b"/v2/x?q=1"


def test_use_regex_false_is_nothing():
    with harness("/plain", {"use-regex": "false"}, path_type="Prefix") as h:
        assert h.features == () and not h.entry.regex


def test_a_target_starting_with_a_scheme_is_nginx_s_302():
    with harness("/old(/.*)", {"rewrite-target": "https://new.test$1"}) as h:
        outcome = h.request(path="/old/page?a=1")
        assert outcome.status == 302
        assert outcome.local.get("location") == "https://new.test/page?a=1"
    with harness("/old(/.*)", {"rewrite-target": "$scheme://new.test$1"}) as h:
        assert h.request(path="/old/p").local.get("location") == "http://new.test/p"


def test_x_forwarded_prefix_only_with_a_rewrite_and_replacing_the_clients():
    target, ex = sent("/app(/|$)(.*)", {"rewrite-target": "/$2", "x-forwarded-prefix": "/app"}, "/app/x",
                      headers={"x-forwarded-prefix": "/forged"})
    assert target == "/x" and ex.headers.get_all(b"x-forwarded-prefix") == [b"/app"]
    _, ex = sent("/app(/|$)(.*)", {"rewrite-target": "/$2", "x-forwarded-prefix": ""}, "/app/x")
    assert ex.headers.get(b"x-forwarded-prefix") is None
    with harness("/app", {"x-forwarded-prefix": "/app"}, path_type="Prefix") as h:
        assert h.features == ()  # no rewrite: nothing sent, as ingress-nginx's template


@pytest.mark.parametrize("path, annotations, message", [
    ("/(?!admin).*", {"use-regex": "true"}, "look-around"),
    ("/(a)\\1", {"rewrite-target": "/"}, "back-references"),
    ("/x", {"rewrite-target": "/$request_body"}, "$request_body is not substituted"),
    ("/x", {"rewrite-target": "/$0"}, "$0 is not a capture group"),
    ("/x", {"rewrite-target": "relative"}, "must be a path starting with '/'"),
    ("/x", {"rewrite-target": "/a b"}, "spaces"),
    ("/x", {"use-regex": "yes"}, "use-regex"),
])
def test_what_cannot_be_honoured_rejects_the_ingress_saying_why(path, annotations, message):
    with harness(path, annotations) as h:
        assert h.rejection is not None and message in h.rejection, h.rejection


def test_the_https_redirect_names_the_uri_the_client_sent_not_the_rewritten_one():
    from ingressd_plugins import ssl_redirect

    for plugins in ([rewrite, ssl_redirect], [ssl_redirect, rewrite]):
        with PluginHarness(plugins, {N + "rewrite-target": "/$2", N + "force-ssl-redirect": "true"},
                           path="/app(/|$)(.*)", path_type="ImplementationSpecific", host="rw.test") as h:
            outcome = h.request(path="/app/x?q=1")
            assert (outcome.status, outcome.local.get("location")) == (308, "https://rw.test/app/x?q=1")


@pytest.fixture
def logged():
    from twisted.python import log

    lines: list[str] = []

    def observer(event):
        lines.append("".join(str(part) for part in event.get("message") or ()))

    log.addObserver(observer)
    yield lines
    log.removeObserver(observer)


def test_enable_rewrite_log_writes_each_rewrite_as_nginx_s_rewrite_log(logged):
    annotations = {"rewrite-target": "/$2", "enable-rewrite-log": "true"}
    with harness("/something(/|$)(.*)", annotations) as h:
        assert h.rejection is None
        outcome = h.request(path="/something/new?q=1")
        assert outcome.exchange.target == b"/new?q=1"
    (line,) = [line for line in logged if "rewrite_log" in line]
    assert line.startswith('ingressd: rewrite_log: Ingress default/')
    assert ': "(?i)/something(/|$)(.*)" matches "/something/new", rewritten data: "/new?q=1", client: ' in line
    assert 'host: "rw.test", request id: ' in line


def test_the_rewrite_log_quotes_what_the_client_sent_and_names_redirects(logged):
    with harness("/old(/.*)", {"rewrite-target": "https://new.test$1", "enable-rewrite-log": "true"}) as h:
        assert h.request(path='/old/a"\nb').status == 302
    (line,) = [line for line in logged if "rewrite_log" in line]
    # (.*) stops at the line break, as in nginx's PCRE: the redirect has what it captured
    assert '"/old/a\\"\\nb", rewritten redirect: "https://new.test/a\\"", client' in line and "\n" not in line


def test_without_enable_rewrite_log_nothing_is_logged(logged):
    for value in ({}, {"enable-rewrite-log": "false"}):
        with harness("/p(.*)", {"rewrite-target": "/q$1", **value}) as h:
            assert h.request(path="/p/x").exchange.target == b"/q/x"
    assert not [line for line in logged if "rewrite_log" in line]
    with harness("/p(.*)", {"rewrite-target": "/q$1", "enable-rewrite-log": "maybe"}) as h:
        assert "enable-rewrite-log" in h.rejection
