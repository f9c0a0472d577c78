"""Gateway API ``RegularExpression`` paths: translated (config.gateway.httproute), compiled
(regex_routing.compile_full_path: RE2, the whole path, case-sensitive) and ordered among a host's
paths (conditional_routing: Exact, then expressions longest first, then prefixes)."""

from __future__ import annotations

import pytest

from ingressd.config.conditional_routing import ConditionalPathTable
from ingressd.config.gateway_api import translate
from ingressd.config.model import EXACT, PREFIX, REGULAR_EXPRESSION, Backend, Conditions, ObjectRef, Route
from ingressd.config.regex_routing import FullPathPattern, RegexPathTable, compile_full_path
from ingressd.config.routing import PathTable, RouteTable, _depends_on_request, _path_table
from ingressd.features import PathPatternError
from test_conditional_routing import Req, when
from test_gateway_translate import BASE, conditions, route_yaml, snapshot, status

WEB = Backend("default", "web", "80")


class Entry:
    def __init__(self, route, regex=False):
        self.route = route
        self.regex = regex

    def __repr__(self):
        return f"Entry({self.route.ingress.name}:{self.route.path})"


def r(path, name="a", path_type=PREFIX, created="2024-01-01T00:00:00Z", host="h.test", conditions=None):
    return Entry(Route(host, path, path_type, WEB, ObjectRef("HTTPRoute", "default", name), created,
                       conditions=conditions))


def rx(path, name="a", **kwargs):
    return r(path, name, REGULAR_EXPRESSION, **kwargs)


# -- compiling ------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, path, matches", [
    ("/v[0-9]+/users", "/v12/users", True),
    ("/v[0-9]+/users", "/v12/users/7", False),  # the whole path, not a prefix
    ("/v[0-9]+/users", "/api/v12/users", False),  # nor anywhere inside it
    ("/v[0-9]+/users", "/V12/users", False),  # case-sensitive
    ("/a|/b", "/b", True),  # alternatives are anchored as a whole
    ("/a|/b", "/ab", False),
    ("/caf.", "/café", True),  # one character, not one byte
    (".*", "/anything/at/all", True),
])
def test_an_expression_matches_the_whole_path(pattern, path, matches):
    compiled = compile_full_path(pattern)
    assert isinstance(compiled, FullPathPattern) and compiled.path == pattern
    assert (compiled.match(path) is not None) is matches


@pytest.mark.parametrize("pattern", ["/v(?=1)", "/(a)\\1", "/a++", "/(unclosed"])
def test_an_expression_re2_refuses_says_why(pattern):
    with pytest.raises(PathPatternError) as caught:
        compile_full_path(pattern)
    message = str(caught.value)
    assert message.startswith(f"path {pattern!r} is not an RE2 regular expression (")
    assert message.endswith(")") and "()" not in message  # RE2's reason is given


# -- translation ----------------------------------------------------------------------


def _route(match: str, more: str = "") -> str:
    return route_yaml(f"""
  parentRefs: [{{name: same-namespace}}]
  rules:
  - matches: [{match}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
{more}""")


def test_a_regular_expression_path_is_served():
    config = translate(snapshot(BASE, _route("{path: {type: RegularExpression, value: '/v[0-9]+/.*'}, method: GET}")))
    (route,) = config.routes
    assert (route.path, route.path_type, route.conditions) == ("/v[0-9]+/.*", REGULAR_EXPRESSION, Conditions("GET"))
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                "ResolvedRefs": ("True", "ResolvedRefs")}
    assert config.warnings == ()


def test_an_expression_need_not_look_like_a_path():
    # Neither a leading "/" nor "//" is asked of an expression (the CRD asks them of Exact and PathPrefix only).
    config = translate(snapshot(BASE, _route("{path: {type: RegularExpression, value: '.*//x'}}")))
    (route,) = config.routes
    assert (route.path, route.path_type) == (".*//x", REGULAR_EXPRESSION)


def test_an_expression_re2_refuses_leaves_its_rule_out():
    more = """  - matches: [{path: {value: /ok}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]"""
    config = translate(snapshot(BASE, _route("{path: {type: RegularExpression, value: '/(?!admin).*'}}", more)))
    assert [(route.path, route.path_type) for route in config.routes] == [("/ok", PREFIX)]
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["PartiallyInvalid"] == ("True", "UnsupportedValue")
    (warning,) = config.warnings
    assert "rule 0: path '/(?!admin).*' is not an RE2 regular expression" in warning.reason


def test_replace_prefix_match_is_refused_with_an_expression():
    match = ("{path: {type: RegularExpression, value: '/v[0-9]+'}}]\n    filters: [{type: URLRewrite, urlRewrite: "
             "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}")
    config = translate(snapshot(BASE, _route(match)))
    assert config.routes == ()
    parent = status(config, "HTTPRoute", "gateway-conformance-infra", "r")["parents"][0]
    assert conditions(parent["conditions"])["Accepted"] == ("False", "UnsupportedValue")


def test_an_unknown_path_type_is_still_refused():
    config = translate(snapshot(BASE, _route("{path: {type: Glob, value: '/x*'}}")))
    assert config.routes == ()
    assert "path type 'Glob' is not supported" in config.warnings[0].reason


# -- precedence -----------------------------------------------------------------------


def test_a_host_with_an_expression_gets_the_gateway_table():
    assert isinstance(_path_table([r("/a"), rx("/b.*")]), ConditionalPathTable)
    assert isinstance(_path_table([r("/a"), r("/b", path_type=EXACT)]), PathTable)


def test_exact_then_expressions_then_prefixes():
    exact, expression, prefix, root = r("/v1/x", "exact", EXACT), rx("/v[0-9]+/.*", "expression"), \
        r("/v1", "prefix"), r("/", "root")
    table = ConditionalPathTable([root, prefix, expression, exact])
    assert table.match("/v1/x") is exact
    assert table.match("/v1/y") is expression  # before the longer-matching prefix /v1
    assert table.match("/v1") is prefix  # the expression wants a second segment
    assert table.match("/w1/y") is root
    assert set(map(id, table.entries())) == set(map(id, (exact, expression, prefix, root)))


def test_the_longest_expression_first_then_the_more_specific_then_the_oldest():
    short = rx("/a.*", "short")
    long = rx("/a/[a-z]+", "long")
    old = rx("/b.*", "old", created="2020-01-01T00:00:00Z")
    young = rx("/b.*", "young", created="2024-01-01T00:00:00Z")
    table = ConditionalPathTable([short, young, long, old])
    assert table.match("/a/bc") is long
    assert table.match("/a/1") is short
    assert table.match("/bx") is old
    post = rx("/c.*", "post", conditions=when("POST"))
    anything = rx("/c.*", "anything")
    table = ConditionalPathTable([anything, post])
    assert table.match("/c", Req(b"POST")) is post
    assert table.match("/c", Req(b"GET")) is anything
    assert table.match("/c") is anything  # without a request, no condition holds


def test_an_expression_whose_conditions_fail_falls_to_the_prefixes():
    only_post = rx("/api/.*", "post", conditions=when("POST"))
    api = r("/api", "prefix")
    table = ConditionalPathTable([only_post, api])
    assert table.match("/api/x", Req(b"POST")) is only_post
    assert table.match("/api/x", Req(b"GET")) is api


def test_an_expression_re2_refuses_is_left_out_of_the_table():
    bad, good = rx("/(?=x)", "bad"), rx("/x", "good")
    table = ConditionalPathTable([bad, good])
    assert list(table.entries()) == [good]
    assert table.match("/x") is good


def test_answers_of_a_host_with_expressions_only_are_remembered():
    plain = ConditionalPathTable([rx("/a.*"), r("/b")])
    assert not _depends_on_request(plain)
    assert _depends_on_request(ConditionalPathTable([rx("/a.*", conditions=when("GET"))]))
    assert _depends_on_request(object())
    table = RouteTable([rx("/a.*"), r("/b")])
    entry = table.match("h.test", "/abc")
    assert entry.route.path == "/a.*"
    assert table.cache[("h.test", "/abc")] is entry
    conditional = RouteTable([rx("/a.*", conditions=when("GET"))])
    assert conditional.match("h.test", "/abc", Req(b"GET")) is not None
    assert ("h.test", "/abc") not in conditional.cache


def test_an_expression_on_a_host_in_ingress_nginx_regex_mode_keeps_its_meaning():
    # An Ingress with use-regex on the same host turns the host into ingress-nginx's regex mode;
    # the HTTPRoute's expression there still matches the whole path, case-sensitively.
    ingress = Entry(Route("h.test", "/ing", PREFIX, WEB, ObjectRef("Ingress", "default", "i")), regex=True)
    expression = rx("/v[0-9]+", "gw")
    table = _path_table([ingress, expression])
    assert isinstance(table, RegexPathTable)
    assert table.match("/v1") is expression
    assert table.match("/v1/more") is None
    assert table.match("/V1") is None
    assert table.match("/ING/x") is ingress  # the Ingress's own path keeps ingress-nginx's ~* "^PATH"


def test_re2s_reason_is_given_as_text():
    # RE2 gives its reason as bytes: decoded (UTF-8), never shown as a bytes literal
    with pytest.raises(PathPatternError) as caught:
        compile_full_path("/v(?=1)")
    assert str(caught.value) == "path '/v(?=1)' is not an RE2 regular expression (invalid perl operator: (?=)"
    with pytest.raises(PathPatternError) as caught:
        compile_full_path("/café(")
    assert str(caught.value) == "path '/café(' is not an RE2 regular expression (missing ): /café()"


def test_a_non_ascii_expression_compiles_as_utf_8():
    compiled = compile_full_path("/über/[0-9]+")
    assert compiled.match("/über/12") is not None and compiled.match("/uber/12") is None


def test_an_empty_set_of_conditions_ranks_as_none_and_the_older_route_wins():
    # ingress-nginx's regex mode (an Ingress with use-regex on the host): same expression, one
    # route without conditions and one with an empty set of them: neither is more specific.
    ingress = Entry(Route("h.test", "/ing", PREFIX, WEB, ObjectRef("Ingress", "default", "i")), regex=True)
    older = rx("/v[0-9]+", "older", created="2020-01-01T00:00:00Z")
    newer = rx("/v[0-9]+", "newer", created="2024-01-01T00:00:00Z", conditions=Conditions())
    for members in ([ingress, newer, older], [ingress, older, newer]):
        table = _path_table(members)
        assert isinstance(table, RegexPathTable)
        assert table.match("/v1", Req(b"GET")) is older
