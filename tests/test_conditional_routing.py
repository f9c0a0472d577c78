"""Routes with extra matches (method, headers, query parameters) and weighted backend sets:
ingressd.config.conditions, conditional_routing, weighted, and how routing and regex_routing
choose and use them. Ingress-only hosts keep their table and their exact behaviour."""

from __future__ import annotations

from twisted.internet.task import Clock

from ingressd.config.conditional_routing import ConditionalPathTable
from ingressd.config.conditions import compile_conditions, compile_value, query_parameters
from ingressd.config.entries import RouteEntry
from ingressd.config.model import (
    EXACT,
    PREFIX,
    REGULAR_EXPRESSION,
    Backend,
    Conditions,
    ObjectRef,
    Route,
    ValueMatch,
    WeightedBackend,
)
from ingressd.config.regex_routing import RegexPathTable
from ingressd.config.routing import PathTable, RouteTable
from ingressd.config.weighted import WeightedChoice
from ingressd.http.headers import Headers
from ingressd.http.http1 import Request
from ingressd.proxy.exchange import Proxy, ProxySettings
from test_exchange import FakeClient

WEB = Backend("default", "web", "80")


class Req:
    """What a route's conditions read of a request (interfaces.RequestView's fields)."""

    def __init__(self, method=b"GET", headers=(), query=b""):
        self.method = method
        self.headers = Headers(list(headers))
        self.query = query


class Entry:
    def __init__(self, route, regex=False):
        self.route = route
        self.regex = regex

    def __repr__(self):
        return f"Entry({self.route.ingress.name}:{self.route.path})"


def r(path, name="a", path_type=PREFIX, created="2024-01-01T00:00:00Z", host="h.test", conditions=None,
      namespace="default"):
    return Entry(Route(host, path, path_type, WEB, ObjectRef("HTTPRoute", namespace, name), created,
                       conditions=conditions))


def when(method="", headers=(), query=()):
    return Conditions(method, tuple(ValueMatch(*h) for h in headers), tuple(ValueMatch(*q) for q in query))


# -- conditions ---------------------------------------------------------------------------


def test_method_is_compared_exactly():
    test = compile_conditions(when(method="POST"))
    assert test(Req(b"POST")) and not test(Req(b"GET")) and not test(Req(b"post"))
    assert compile_conditions(when())(Req(b"DELETE"))  # no conditions at all: every request


def test_header_exact_and_case_insensitive_name():
    test = compile_conditions(when(headers=[("Version", "two")]))
    assert test(Req(headers=[(b"version", b"two")]))
    assert not test(Req(headers=[(b"version", b"Two")]))  # values are compared exactly
    assert not test(Req(headers=[(b"other", b"two")]))  # absent: never matches
    assert not test(Req())
    # sent twice: matched as the values joined with ","
    assert not test(Req(headers=[(b"version", b"two"), (b"version", b"three")]))
    assert compile_conditions(when(headers=[("version", "two,three")]))(
        Req(headers=[(b"version", b"two"), (b"version", b"three")]))


def test_every_header_must_hold():
    test = compile_conditions(when(headers=[("a", "1"), ("b", "2")]))
    assert test(Req(headers=[(b"b", b"2"), (b"a", b"1")]))
    assert not test(Req(headers=[(b"a", b"1")]))
    assert not test(Req(headers=[(b"a", b"1"), (b"b", b"3")]))


def test_regular_expressions_match_the_whole_value():
    test = compile_conditions(when(headers=[("version", "v[0-9]+", REGULAR_EXPRESSION)]))
    assert test(Req(headers=[(b"version", b"v12")]))
    assert not test(Req(headers=[(b"version", b"v12x")]))
    assert not test(Req(headers=[(b"version", b"xv12")]))
    value = compile_value(ValueMatch("q", "a.c", REGULAR_EXPRESSION))
    assert value("abc") and not value("abcd")
    assert compile_value(ValueMatch("q", "a.c"))("a.c") and not compile_value(ValueMatch("q", "a.c"))("abc")


def test_an_expression_re2_refuses_never_matches():
    test = compile_conditions(when(headers=[("x", "(?=a)a", REGULAR_EXPRESSION)]))  # look-ahead
    assert not test(Req(headers=[(b"x", b"a")]))
    assert not compile_value(ValueMatch("x", "(", REGULAR_EXPRESSION))("(")


def test_query_parameters():
    test = compile_conditions(when(query=[("animal", "whale")]))
    assert test(Req(query=b"animal=whale"))
    assert test(Req(query=b"x=1&animal=whale"))
    assert not test(Req(query=b"Animal=whale"))  # names are case-sensitive
    assert not test(Req(query=b"animal=dolphin&animal=whale"))  # the first occurrence only
    assert not test(Req(query=b""))
    assert not test(Req(query=b"animal"))  # present without a value: ""
    assert compile_conditions(when(query=[("animal", "")]))(Req(query=b"animal"))
    regex = compile_conditions(when(query=[("n", "[0-9]+", REGULAR_EXPRESSION)]))
    assert regex(Req(query=b"n=42")) and not regex(Req(query=b"n=4x"))
    both = compile_conditions(when(query=[("a", "1"), ("b", "2")]))
    assert both(Req(query=b"b=2&a=1")) and not both(Req(query=b"a=1"))


def test_query_parameters_are_decoded():
    assert query_parameters(b"a=x%20y&b=1+2&&c=%C3%A9&a=second&d") == {"a": "x y", "b": "1 2", "c": "é", "d": ""}
    assert query_parameters(b"") == {}
    assert query_parameters(b"%zz=1") == {"%zz": "1"}


def test_method_headers_and_query_together():
    test = compile_conditions(when("GET", [("x", "1")], [("q", "1")]))
    assert test(Req(b"GET", [(b"x", b"1")], b"q=1"))
    assert not test(Req(b"PUT", [(b"x", b"1")], b"q=1"))
    assert not test(Req(b"GET", [], b"q=1"))
    assert not test(Req(b"GET", [(b"x", b"1")], b"q=2"))


def test_compiled_once_per_distinct_conditions():
    assert compile_conditions(when("GET")) is compile_conditions(when("GET"))


def test_rank_is_method_then_headers_then_query():
    assert when().rank == (0, 0, 0)
    assert when("GET", [("a", "1"), ("b", "2")], [("q", "1")]).rank == (1, 2, 1)


# -- the conditional table: the Gateway API's precedence -----------------------------------


def table(*entries):
    return ConditionalPathTable(entries)


def test_exact_before_prefix_and_longest_prefix_first():
    exact, prefix, longer, root = r("/a", "e", EXACT), r("/a", "p"), r("/a/b", "l"), r("/", "root")
    t = table(root, prefix, longer, exact, r("/z", "gated", conditions=when("GET")))
    assert t.match("/a", Req()) is exact
    assert t.match("/a/", Req()) is prefix
    assert t.match("/a/b/c", Req()) is longer
    assert t.match("/a/bc", Req()) is prefix  # prefixes end at a "/"
    assert t.match("/ab", Req()) is root
    assert t.match("/", Req()) is root
    assert t.match("/z/1") is root  # without a request, a route with conditions is never chosen
    assert t.match("/z/1", Req()).route.ingress.name == "gated"


def test_method_then_headers_then_query_at_the_same_path():
    query = r("/p", "query", conditions=when(query=[("q", "1"), ("r", "1")]))
    header = r("/p", "header", conditions=when(headers=[("h", "1")]))
    two_headers = r("/p", "two", conditions=when(headers=[("h", "1"), ("i", "1")]))
    method = r("/p", "method", conditions=when("GET"))
    plain = r("/p", "plain")
    t = table(plain, query, header, two_headers, method)
    everything = Req(b"GET", [(b"h", b"1"), (b"i", b"1")], b"q=1&r=1")
    assert t.match("/p", everything) is method
    assert t.match("/p", Req(b"PUT", [(b"h", b"1"), (b"i", b"1")], b"q=1&r=1")) is two_headers
    assert t.match("/p", Req(b"PUT", [(b"h", b"1")], b"q=1&r=1")) is header
    assert t.match("/p", Req(b"PUT", [], b"q=1&r=1")) is query
    assert t.match("/p", Req(b"PUT")) is plain


def test_a_longer_prefix_wins_over_more_conditions():
    specific = r("/", "specific", conditions=when("GET", [("h", "1")]))
    longer = r("/long", "longer")
    t = table(specific, longer)
    assert t.match("/long/x", Req(b"GET", [(b"h", b"1")])) is longer
    assert t.match("/other", Req(b"GET", [(b"h", b"1")])) is specific
    assert t.match("/other", Req(b"GET")) is None  # nothing else on the host


def test_falls_back_to_a_shorter_path_when_conditions_fail():
    gated_exact = r("/a/b", "ge", EXACT, conditions=when(headers=[("h", "1")]))
    gated = r("/a/b", "g", conditions=when(headers=[("h", "1")]))
    fallback = r("/a", "f")
    t = table(gated_exact, gated, fallback)
    assert t.match("/a/b", Req(headers=[(b"h", b"1")])) is gated_exact
    assert t.match("/a/b/c", Req(headers=[(b"h", b"1")])) is gated
    assert t.match("/a/b", Req()) is fallback
    assert t.match("/a/b/c", Req()) is fallback


def test_oldest_then_namespace_and_name_then_given_order():
    old = r("/x", "zzz", created="2020-01-01T00:00:00Z", conditions=when("GET"))
    new = r("/x", "aaa", created="2024-01-01T00:00:00Z", conditions=when("GET"))
    assert table(new, old).match("/x", Req()) is old
    same_a = r("/x", "a", conditions=when("GET"))
    same_b = r("/x", "b", conditions=when("GET"))
    assert table(same_b, same_a).match("/x", Req()) is same_a
    other_ns = r("/x", "a", namespace="aaa", conditions=when("GET"))
    assert table(same_a, other_ns).match("/x", Req()) is other_ns
    # two rules of one route: the first given wins (a stable sort)
    rule_one = r("/x", "same", conditions=when(headers=[("h", "1")]))
    rule_two = r("/x", "same", conditions=when(headers=[("i", "1")]))
    both = Req(headers=[(b"h", b"1"), (b"i", b"1")])
    assert table(rule_one, rule_two).match("/x", both) is rule_one
    assert table(rule_two, rule_one).match("/x", both) is rule_two
    exact_old = r("/e", "zzz", EXACT, created="2020-01-01T00:00:00Z")
    exact_new = r("/e", "aaa", EXACT)
    assert table(exact_new, exact_old).match("/e", Req()) is exact_old


def test_equal_prefixes_rank_as_the_ingress_table_ranks_them():
    slash = r("/foo/", "slash", created="2024-06-01T00:00:00Z")
    bare = r("/foo", "bare", created="2020-01-01T00:00:00Z")
    specific = r("/foo", "is", path_type="ImplementationSpecific", created="2019-01-01T00:00:00Z")
    t = table(bare, slash, specific, r("/q", conditions=when("GET")))
    assert t.match("/foo/x", Req()) is slash
    t = table(bare, specific)
    assert t.match("/foo/x", Req()) is bare
    odd = [r("/", "root"), r("//", "odd")]
    assert table(*odd).match("/x", Req()) is PathTable(odd).match("/x")


def test_entries_and_members():
    entries = [r("/a", "e", EXACT), r("/a"), r("/", conditions=when("GET"))]
    t = table(*entries)
    assert t.members == entries
    assert sorted(map(id, t.entries())) == sorted(map(id, entries))


# -- the route table picks the table a host needs --------------------------------------------


def test_ingress_only_hosts_keep_their_table_and_requests_change_nothing():
    plain = r("/", "plain")
    routes = RouteTable([plain, r("/x", host="g.test", conditions=when("GET"))])
    assert type(routes.exact_hosts["h.test"]) is PathTable
    assert type(routes.exact_hosts["g.test"]) is ConditionalPathTable
    assert routes.match("h.test", "/a", Req(b"PUT")) is plain
    assert routes.match("h.test", "/a") is plain
    assert PathTable([plain]).match("/a", Req()) is plain
    assert routes.match("g.test", "/x/1", Req()).route.path == "/x"
    assert routes.match("g.test", "/x/1", Req(b"PUT")) is None
    assert routes.match("g.test", "/x/1") is None


def test_the_default_backend_when_no_conditions_hold():
    default = r("/", "default", host="")
    routes = RouteTable([r("/x", host="g.test", conditions=when("GET"))], default=default)
    assert routes.match("g.test", "/x", Req(b"PUT")) is default
    assert routes.match("g.test", "/x", Req(b"GET")).route.path == "/x"


def test_a_regex_host_tests_conditions_too():
    # named to sort after "plain": only the conditions' specificity puts it first
    gated = Entry(r("/api/v[0-9]+", "zz-gated", conditions=when(headers=[("h", "1")])).route, regex=True)
    plain = Entry(r("/api/v[0-9]+", "plain").route, regex=True)
    other = r("/api/v", "other")
    routes = RouteTable([plain, gated, other])
    assert type(routes.exact_hosts["h.test"]) is RegexPathTable
    assert routes.match("h.test", "/api/v2", Req(headers=[(b"h", b"1")])) is gated  # more specific first
    assert routes.match("h.test", "/api/v2", Req()) is plain
    assert routes.match("h.test", "/api/v2") is plain  # no request: conditions do not hold
    only_gated = RegexPathTable([gated, other])
    assert only_gated.match("/api/v2", Req()) is other  # falls through to the shorter pattern
    assert only_gated.match("/api/v2") is other
    assert only_gated.match("/api/v2", Req(headers=[(b"h", b"1")])) is gated
    assert list(only_gated.entries()) == [gated, other]
    # between two routes with conditions: the more specific first, whatever the names
    two = Entry(r("/api/v[0-9]+", "zzz", conditions=when(headers=[("h", "1"), ("i", "1")])).route, regex=True)
    one = Entry(r("/api/v[0-9]+", "aaa", conditions=when(headers=[("h", "1")])).route, regex=True)
    both = RegexPathTable([one, two])
    assert both.match("/api/v1", Req(headers=[(b"h", b"1"), (b"i", b"1")])) is two
    assert both.match("/api/v1", Req(headers=[(b"h", b"1")])) is one


def test_a_regex_host_keeps_a_path_once_per_set_of_conditions():
    first = Entry(r("/p", "first", created="2020-01-01T00:00:00Z").route, regex=True)
    again = Entry(r("/p", "again").route, regex=True)
    gated = Entry(r("/p", "gated", conditions=when("GET")).route, regex=True)
    gated_again = Entry(r("/p", "gated2", conditions=when("GET")).route, regex=True)
    t = RegexPathTable([again, gated_again, first, gated])
    assert [e.route.ingress.name for e in t.entries()] == ["gated", "first"]


# -- the exchange routes with the request -------------------------------------------------


class _State:
    def __init__(self, routes):
        self.table = routes


class _Pool:
    name = "HTTP"

    def __init__(self):
        self.asked = []

    def acquire(self, host, port, settings, on_ready, on_error):
        self.asked.append((host, port))
        return lambda: None

    def close(self):
        pass


def _request(method, target, headers=()):
    req = Request()
    req.method, req.target, req.version = method, target, b"HTTP/1.1"
    req.headers = [(b"host", b"g.test"), *headers]
    req.keep_alive, req.content_length, req.complete = True, None, True
    return req


def test_the_exchange_routes_on_method_headers_and_query():
    from ingressd.config.model import Endpoint

    def gateway_entry(name, address, conditions):
        backend = Backend("default", name, "80", (Endpoint(address, 80),))
        return RouteEntry(Route("g.test", "/", PREFIX, backend, ObjectRef("HTTPRoute", "default", name),
                                conditions=conditions), ())

    routes = RouteTable([gateway_entry("canary", "10.0.0.2", when(headers=[("x-canary", "1")], query=[("v", "2")])),
                         gateway_entry("main", "10.0.0.1", when(headers=[("x-canary", "1")]))])
    pool = _Pool()
    proxy = Proxy(_State(routes), {"HTTP": pool}, ProxySettings(), Clock())
    proxy(FakeClient(), _request(b"GET", b"/x?v=2", [(b"x-canary", b"1")]))
    proxy(FakeClient(), _request(b"GET", b"/x?v=1", [(b"x-canary", b"1")]))
    assert pool.asked == [("10.0.0.2", 80), ("10.0.0.1", 80)]
    client = FakeClient()
    proxy(client, _request(b"GET", b"/x?v=2")).body_done()
    assert client.head[0] == 404 and len(pool.asked) == 2


# -- weighted backend sets -------------------------------------------------------------------


def test_weights_share_the_requests():
    one, two = Backend("default", "one", "80"), Backend("default", "two", "80")
    choice = WeightedChoice((WeightedBackend(one, 1), WeightedBackend(two, 3)))
    assert choice.total == 4 and choice.bounds == (1, 4)
    assert choice.pick(0.0) is one and choice.pick(0.2499) is one
    assert choice.pick(0.25) is two and choice.pick(0.9999) is two
    assert choice.pick(1.0) is two  # out of range: the last member, never an error


def test_weight_zero_is_never_chosen_and_all_zero_is_500():
    one, two = Backend("default", "one", "80"), Backend("default", "two", "80")
    choice = WeightedChoice((WeightedBackend(one, 0), WeightedBackend(two, 5), WeightedBackend(one, -1)))
    assert choice.members == (two,)
    assert all(choice.pick(draw / 10) is two for draw in range(10))
    assert WeightedChoice((WeightedBackend(one, 0),)).pick(0.5) is None
    assert WeightedChoice(()).pick(0.5) is None
    assert WeightedChoice(()).total == 0


def test_an_unusable_member_keeps_its_share_answered_500():
    one = Backend("default", "one", "80")
    choice = WeightedChoice((WeightedBackend(one, 1), WeightedBackend(None, 1)))
    assert choice.pick(0.1) is one and choice.pick(0.6) is None
    assert WeightedBackend(one).weight == 1


def test_ingress_routes_have_no_extra_matches():
    route = Route("h", "/", PREFIX, WEB, ObjectRef("Ingress", "default", "i"))
    assert route.conditions is None and route.backends == ()
