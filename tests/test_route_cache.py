"""The route table's memo of answers, (host, path) → entry: bounded, oldest forgotten first,
never used where a route's extra matches make the answer depend on the request, and gone
with the table."""

from __future__ import annotations

from ingressd.config import routing
from ingressd.config.conditional_routing import ConditionalPathTable
from ingressd.config.model import Backend, Conditions, ObjectRef, Route
from ingressd.config.regex_routing import RegexPathTable
from ingressd.config.routing import CACHE_SIZE, CACHED_PATH_LENGTH, PathTable, RouteTable
from ingressd.http.headers import Headers

WEB = Backend("default", "web", "80")
GET_ONLY = Conditions(method="GET")


class Entry:
    def __init__(self, route, regex=False):
        self.route = route
        self.regex = regex

    def __repr__(self):
        return f"Entry({self.route.host}{self.route.path})"


def entry(path="/", host="h.test", path_type="Prefix", conditions=None, regex=False, name="a"):
    return Entry(Route(host, path, path_type, WEB, ObjectRef("Ingress", "default", name),
                       conditions=conditions), regex)


class Req:
    def __init__(self, method=b"GET"):
        self.method = method
        self.headers = Headers([])
        self.query = b""


def test_an_answer_is_remembered_by_host_and_path_and_given_again():
    root, api = entry("/"), entry("/api")
    table = RouteTable([root, api])
    assert table.match("h.test", "/api/x") is api
    assert table.cache == {("h.test", "/api/x"): api}
    # A remembered answer is what match returns, without asking the host's table again.
    table.exact_hosts["h.test"] = PathTable([root])
    assert table.match("h.test", "/api/x") is api
    assert table.match("h.test", "/other") is root


def test_a_remembered_answer_may_be_none_or_the_default():
    default = entry("/", host="", name="default")
    table = RouteTable([entry("/api", path_type="Exact")], default)
    assert table.match("h.test", "/nothing") is default
    assert table.cache[("h.test", "/nothing")] is default
    bare = RouteTable([entry("/api", path_type="Exact")])
    assert bare.match("h.test", "/nothing") is None
    assert ("h.test", "/nothing") in bare.cache and bare.cache[("h.test", "/nothing")] is None
    assert bare.match("h.test", "/nothing") is None


def test_a_host_no_table_serves_is_not_remembered():
    default = entry("/", host="", name="default")
    table = RouteTable([entry("/")], default)
    assert table.match("other.test", "/") is default
    assert table.match("x.other.test", "/") is default
    assert table.cache == {}


def test_wildcard_and_hostless_answers_are_remembered_under_the_requests_host():
    wild, anyhost = entry("/", host="*.w.test"), entry("/", host="", name="b")
    table = RouteTable([wild, anyhost])
    assert table.match("a.w.test", "/x") is wild
    assert table.match("z.test", "/x") is anyhost
    assert table.cache == {("a.w.test", "/x"): wild, ("z.test", "/x"): anyhost}


def test_the_memo_is_bounded_and_forgets_the_oldest_answer_first():
    root = entry("/")
    table = RouteTable([root], cache_size=3)
    for path in ("/1", "/2", "/3"):
        table.match("h.test", path)
    assert list(table.cache) == [("h.test", "/1"), ("h.test", "/2"), ("h.test", "/3")]
    table.match("h.test", "/2")  # a hit changes nothing
    assert list(table.cache) == [("h.test", "/1"), ("h.test", "/2"), ("h.test", "/3")]
    table.match("h.test", "/4")
    assert list(table.cache) == [("h.test", "/2"), ("h.test", "/3"), ("h.test", "/4")]
    for number in range(5, 100):
        assert table.match("h.test", f"/{number}") is root
        assert len(table.cache) == 3
    assert list(table.cache)[-1] == ("h.test", "/99")


def test_the_default_bound():
    assert RouteTable().cache_size == CACHE_SIZE == 4096
    table = RouteTable([entry("/")])
    for number in range(CACHE_SIZE + 10):
        table.match("h.test", f"/{number}")
    assert len(table.cache) == CACHE_SIZE
    assert ("h.test", "/9") not in table.cache and ("h.test", "/10") in table.cache


def test_long_paths_are_answered_but_not_remembered():
    root = entry("/")
    table = RouteTable([root])
    longest = "/" + "a" * (CACHED_PATH_LENGTH - 1)
    assert len(longest) == CACHED_PATH_LENGTH == 256
    assert table.match("h.test", longest) is root and ("h.test", longest) in table.cache
    longer = longest + "b"
    assert table.match("h.test", longer) is root and ("h.test", longer) not in table.cache


def test_a_host_with_extra_matches_is_asked_every_time():
    get_only = entry("/", conditions=GET_ONLY)
    table = RouteTable([get_only])
    assert isinstance(table.exact_hosts["h.test"], ConditionalPathTable)
    assert table.match("h.test", "/x", Req(b"GET")) is get_only
    assert table.match("h.test", "/x", Req(b"POST")) is None
    assert table.match("h.test", "/x", Req(b"GET")) is get_only
    assert table.cache == {}


def test_a_regex_host_is_remembered_unless_a_route_there_has_extra_matches():
    plain = entry("/a.*", regex=True)
    table = RouteTable([plain])
    assert isinstance(table.exact_hosts["h.test"], RegexPathTable)
    assert table.match("h.test", "/abc") is plain and ("h.test", "/abc") in table.cache
    matched = entry("/b.*", regex=True, conditions=GET_ONLY, name="b")
    mixed = RouteTable([entry("/a.*", regex=True), matched])
    assert isinstance(mixed.exact_hosts["h.test"], RegexPathTable)
    assert mixed.match("h.test", "/bcd", Req(b"GET")) is matched
    assert mixed.match("h.test", "/bcd", Req(b"POST")) is None
    assert mixed.cache == {}


def test_whether_a_host_depends_on_the_request_is_judged_once_per_table_when_built(monkeypatch):
    calls = []
    real = routing._depends_on_request
    monkeypatch.setattr(routing, "_depends_on_request", lambda t: calls.append(t) or real(t))
    conditional = entry("/", host="c.test", conditions=GET_ONLY)
    table = RouteTable([entry("/"), conditional])
    assert calls == [table.exact_hosts["h.test"], table.exact_hosts["c.test"]]
    assert table.volatile == {id(table.exact_hosts["c.test"])}
    for path in ("/1", "/2", "/3"):
        table.match("h.test", path)
        table.match("c.test", path, Req())
    assert len(calls) == 2
    assert list(table.cache) == [("h.test", "/1"), ("h.test", "/2"), ("h.test", "/3")]


def test_a_reused_path_table_is_judged_again_for_the_new_table():
    conditional = entry("/", host="c.test", conditions=GET_ONLY)
    old = RouteTable([conditional])
    new = RouteTable([conditional, entry("/")], previous=old)
    assert new.exact_hosts["c.test"] is old.exact_hosts["c.test"]
    assert new.volatile == {id(new.exact_hosts["c.test"])}
    assert new.match("c.test", "/", Req(b"POST")) is None and new.cache == {}


def test_a_memo_of_size_zero_remembers_nothing():
    root = entry("/")
    table = RouteTable([root], cache_size=0)
    assert table.match("h.test", "/") is root and table.match("h.test", "/") is root
    assert table.cache == {}


def test_depends_on_request():
    assert routing._depends_on_request(PathTable([entry("/")])) is False
    assert routing._depends_on_request(RegexPathTable([entry("/a")])) is False
    assert routing._depends_on_request(RegexPathTable([entry("/a"), entry("/b", conditions=GET_ONLY)])) is True
    assert routing._depends_on_request(ConditionalPathTable([entry("/", conditions=GET_ONLY)])) is True
    assert routing._depends_on_request(object()) is True


def test_a_new_table_starts_with_an_empty_memo_even_when_it_reuses_path_tables():
    root, api = entry("/"), entry("/api")
    old = RouteTable([root, api])
    old.match("h.test", "/api")
    new = RouteTable([root], previous=old)
    assert new.cache == {}
    assert new.match("h.test", "/api") is root  # the new table's answer, not the old memo's
    assert old.match("h.test", "/api") is api


def test_host_of_remembers_recent_host_headers_and_empties_its_memo_when_full(monkeypatch):
    monkeypatch.setattr(routing, "_HOSTS", {})
    monkeypatch.setattr(routing, "HOSTS_REMEMBERED", 3)
    assert routing.host_of(b"A.test:80") == "a.test"
    assert routing._HOSTS == {b"A.test:80": "a.test"}
    routing._HOSTS[b"A.test:80"] = "remembered"  # a remembered answer is given without work
    assert routing.host_of(b"A.test:80") == "remembered"
    routing.host_of(b"b.test")
    routing.host_of(b"c.test")
    assert len(routing._HOSTS) == 3
    assert routing.host_of(b"D.test") == "d.test"
    assert routing._HOSTS == {b"D.test": "d.test"}
    assert routing.host_of(b"A.test:80") == "a.test"


def test_host_of_keeps_no_header_longer_than_a_dns_name(monkeypatch):
    monkeypatch.setattr(routing, "_HOSTS", {})
    longest = b"a" * 255
    assert routing.host_of(longest) == "a" * 255 and longest in routing._HOSTS
    assert routing.host_of(longest + b"a") == "a" * 256 and longest + b"a" not in routing._HOSTS
    assert routing.host_of(b"") == "" and routing.host_of(None) == ""
    assert routing._HOSTS == {longest: "a" * 255}


def test_host_of_remembers_by_default_a_thousand_and_twenty_four_headers():
    assert routing.HOSTS_REMEMBERED == 1024


def test_a_deep_wildcard_subset_with_extra_matches_is_not_remembered():
    """*.bar.com holds an Ingress route (one label) and a Gateway API route (any depth) that only
    GET may take: the deeper names' own table (the any-depth subset) depends on the request, so
    a POST's 404 must not be given to the GET that follows, nor the GET's answer to a POST."""
    ingress = Entry(Route("*.bar.com", "/", "Prefix", Backend("ns", "ingress", 80), ObjectRef("Ingress", "ns", "i")))
    gateway = Entry(Route("*.bar.com", "/", "Prefix", Backend("ns", "gw", 80), ObjectRef("HTTPRoute", "ns", "r"),
                          conditions=GET_ONLY, any_depth=True))
    table = RouteTable([ingress, gateway])
    deep = table.deep_wildcard_hosts["bar.com"]
    assert id(deep) in table.volatile
    assert table.match("a.b.bar.com", "/x", Req(b"POST")) is None
    assert table.match("a.b.bar.com", "/x", Req(b"GET")) is gateway
    assert table.match("a.b.bar.com", "/x", Req(b"POST")) is None
    assert ("a.b.bar.com", "/x") not in table.cache


def test_a_memo_of_size_one_remembers_the_last_answer():
    root, api = entry("/"), entry("/api")
    table = RouteTable([root, api], cache_size=1)
    assert table.match("h.test", "/api") is api
    assert table.cache == {("h.test", "/api"): api}
    assert table.match("h.test", "/") is root
    assert table.cache == {("h.test", "/"): root}  # the older answer forgotten


def test_a_deep_wildcard_subset_without_extra_matches_is_remembered():
    """*.bar.com holds an Ingress route (one label) and a Gateway API route (any depth): the
    deeper names' own table (the any-depth subset) depends on the path alone, so its answers
    are remembered as any host's."""
    ingress = Entry(Route("*.bar.com", "/", "Prefix", Backend("ns", "ingress", 80), ObjectRef("Ingress", "ns", "i")))
    gateway = Entry(Route("*.bar.com", "/gw", "Prefix", Backend("ns", "gw", 80), ObjectRef("HTTPRoute", "ns", "r"),
                          any_depth=True))
    table = RouteTable([ingress, gateway])
    assert table.deep_wildcard_hosts["bar.com"] is not table.wildcard_hosts["bar.com"]
    assert table.volatile == set()
    assert table.match("a.b.bar.com", "/gw/x", Req()) is gateway
    assert table.cache == {("a.b.bar.com", "/gw/x"): gateway}


def test_a_patched_wildcard_forgets_its_deeper_names_request_dependent_table():
    """The host of such a request-dependent deep subset changed: the patched table judges its
    new tables alone, as a table built from nothing does (nothing of the old subset is kept)."""
    ingress = Entry(Route("*.bar.com", "/", "Prefix", Backend("ns", "ingress", 80), ObjectRef("Ingress", "ns", "i")))
    gateway = Entry(Route("*.bar.com", "/", "Prefix", Backend("ns", "gw", 80), ObjectRef("HTTPRoute", "ns", "r"),
                          conditions=GET_ONLY, any_depth=True))
    table = RouteTable([ingress, gateway])
    assert id(table.deep_wildcard_hosts["bar.com"]) in table.volatile
    for entries in ([ingress], [gateway], [ingress, entry("/", host="*.bar.com", name="j")], []):
        patched = RouteTable(entries, previous=table)
        built = RouteTable(entries)
        assert len(patched.volatile) == len(built.volatile)
        served = (*patched.exact_hosts.values(), *patched.wildcard_hosts.values(),
                  *patched.deep_wildcard_hosts.values(), patched.any_host)
        assert patched.volatile <= {id(t) for t in served if t is not None}  # no table that went
        assert patched.match("a.b.bar.com", "/", Req(b"GET")) is built.match("a.b.bar.com", "/", Req(b"GET"))
