"""The route table against the Ingress v1 matching rules (the spec's example table and more)."""

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.config.model import Backend, ObjectRef, Route
from ingressd.config import routing
from ingressd.config.routing import RouteTable, host_of


class Entry:
    def __init__(self, route):
        self.route = route


def route(path, path_type="Prefix", host="", name="ing", created="2024-01-01T00:00:00Z", service=None):
    backend = Backend("default", service or f"{path_type}:{path}", "80")
    return Route(host, path, path_type, backend, ObjectRef("Ingress", "default", name), created)


def table(*routes, default=None):
    return RouteTable([Entry(r) for r in routes], Entry(default) if default else None)


def matched(tbl, path, host=""):
    entry = tbl.match(host, path)
    return None if entry is None else (entry.route.path_type, entry.route.path)


# The official examples table (Kubernetes docs and KEP-1453), row by row.
SPEC_TABLE = [
    (["Prefix:/"], ["/", "/anything", "/a/b/c"], "Prefix:/"),
    (["Exact:/foo"], ["/foo"], "Exact:/foo"),
    (["Exact:/foo"], ["/bar"], None),
    (["Exact:/foo"], ["/foo/"], None),
    (["Exact:/foo/"], ["/foo"], None),
    (["Prefix:/foo"], ["/foo", "/foo/"], "Prefix:/foo"),
    (["Prefix:/foo/"], ["/foo", "/foo/"], "Prefix:/foo/"),
    (["Prefix:/aaa/bb"], ["/aaa/bbb"], None),
    (["Prefix:/aaa/bbb"], ["/aaa/bbb"], "Prefix:/aaa/bbb"),
    (["Prefix:/aaa/bbb/"], ["/aaa/bbb"], "Prefix:/aaa/bbb/"),
    (["Prefix:/aaa/bbb"], ["/aaa/bbb/"], "Prefix:/aaa/bbb"),
    (["Prefix:/aaa/bbb"], ["/aaa/bbb/ccc"], "Prefix:/aaa/bbb"),
    (["Prefix:/aaa/bbb"], ["/aaa/bbbxyz"], None),
    (["Prefix:/", "Prefix:/aaa"], ["/aaa/ccc"], "Prefix:/aaa"),
    (["Prefix:/", "Prefix:/aaa", "Prefix:/aaa/bbb"], ["/aaa/bbb"], "Prefix:/aaa/bbb"),
    (["Prefix:/", "Prefix:/aaa", "Prefix:/aaa/bbb"], ["/ccc"], "Prefix:/"),
    (["Prefix:/aaa"], ["/ccc"], None),
    (["Prefix:/foo", "Exact:/foo"], ["/foo"], "Exact:/foo"),
]


@pytest.mark.parametrize("rules, requests, expected", SPEC_TABLE)
def test_spec_examples(rules, requests, expected):
    routes = [route(r.split(":", 1)[1], r.split(":", 1)[0]) for r in rules]
    for order in (routes, list(reversed(routes))):  # listing order never matters
        tbl = table(*order)
        for request in requests:
            got = matched(tbl, request)
            want = None if expected is None else tuple(expected.split(":", 1))
            assert got == want, (rules, request)


def test_prefix_is_case_sensitive_and_exact_too():
    tbl = table(route("/Foo", "Prefix"), route("/bar", "Exact"))
    assert matched(tbl, "/foo") is None
    assert matched(tbl, "/Foo/x") == ("Prefix", "/Foo")
    assert matched(tbl, "/BAR") is None


def test_trailing_slash_rule_beats_same_segments_without():
    tbl = table(route("/foo", "Prefix", service="a"), route("/foo/", "Prefix", service="b"))
    assert tbl.match("", "/foo/x").route.backend.service == "b"


def test_implementation_specific_behaves_as_prefix():
    tbl = table(route("/api", "ImplementationSpecific"))
    assert matched(tbl, "/api/v1") == ("ImplementationSpecific", "/api")
    assert matched(tbl, "/apix") is None


def test_longest_match_wins_whatever_the_type():
    tbl = table(route("/a", "Exact"), route("/a/b", "Prefix"), route("/", "Prefix"))
    assert matched(tbl, "/a/b/c") == ("Prefix", "/a/b")
    assert matched(tbl, "/a") == ("Exact", "/a")
    assert matched(tbl, "/a/") == ("Prefix", "/")


def test_conflict_goes_to_the_oldest_ingress():
    new = route("/x", host="h.com", name="new", created="2024-05-01T00:00:00Z", service="new")
    old = route("/x", host="h.com", name="old", created="2023-05-01T00:00:00Z", service="old")
    for order in ((new, old), (old, new)):
        assert table(*order).match("h.com", "/x").route.backend.service == "old"
    # same timestamp: namespace/name decides
    a = route("/y", name="a", service="a")
    b = route("/y", name="b", service="b")
    assert table(b, a).match("", "/y").route.backend.service == "a"


def test_hosts_exact_wildcard_and_any():
    tbl = table(
        route("/", host="foo.bar.com", service="exact"),
        route("/", host="*.bar.com", service="wild"),
        route("/", host="", service="any"),
    )
    assert tbl.match("foo.bar.com", "/").route.backend.service == "exact"
    assert tbl.match("baz.bar.com", "/").route.backend.service == "wild"
    assert tbl.match("a.baz.bar.com", "/").route.backend.service == "any"  # one label only
    assert tbl.match("bar.com", "/").route.backend.service == "any"
    assert tbl.match("other.org", "/").route.backend.service == "any"


def test_wildcard_needs_exactly_one_label():
    tbl = table(route("/", host="*.foo.com"))
    assert tbl.match("bar.foo.com", "/") is not None
    assert tbl.match("foo.com", "/") is None
    assert tbl.match("baz.bar.foo.com", "/") is None


def test_host_with_no_matching_path_uses_default_backend():
    default = route("/", service="default")
    tbl = table(route("/api", host="h.com"), default=default)
    assert tbl.match("h.com", "/other").route.backend.service == "default"
    assert tbl.match("nohost", "/").route.backend.service == "default"
    assert table(route("/api", host="h.com")).match("h.com", "/other") is None


@pytest.mark.parametrize(
    "header, host",
    [(b"Foo.Example.COM", "foo.example.com"), (b"foo.com:8080", "foo.com"), (b"foo.com.", "foo.com"),
     (b"[::1]:80", "[::1]"), (None, ""), (b"", "")],
)
def test_host_header_normalisation(header, host, monkeypatch):
    monkeypatch.setattr(routing, "_HOSTS", {})  # worked out, not an answer remembered before
    assert host_of(header) == host


def test_lookup_cost_does_not_depend_on_table_size():
    """Structure check (not a timing): a lookup touches one host map and the path's depth."""
    routes = [route(f"/p{i}/q", host=f"h{i}.example.com") for i in range(5000)]
    routes += [route("/", host=f"*.w{i}.example.com") for i in range(500)]
    tbl = table(*routes)
    assert len(tbl.exact_hosts) == 5000 and len(tbl.wildcard_hosts) == 500
    assert matched(tbl, "/p4999/q/z", host="h4999.example.com") == ("Prefix", "/p4999/q")
    assert tbl.match("x.w7.example.com", "/a").route.host == "*.w7.example.com"


def test_a_host_with_many_prefix_lengths_is_searched_by_segment():
    paths = [f"/{'s' * n}" for n in range(1, 12)] + ["/s/deep/er", "/"]
    tbl = table(*(route(p) for p in paths), route("/ss/x", "Exact"))
    assert tbl.any_host.lengths is None and tbl.any_host.depth == 3
    assert matched(tbl, "/sssss/a/b/c/d") == ("Prefix", "/sssss")
    assert matched(tbl, "/s/deep/er/more") == ("Prefix", "/s/deep/er")
    assert matched(tbl, "/s/deep/e") == ("Prefix", "/s")
    assert matched(tbl, "/ss/x") == ("Exact", "/ss/x")
    assert matched(tbl, "/ss/x/") == ("Prefix", "/ss")
    assert matched(tbl, "/other/s") == ("Prefix", "/")
    few = table(route("/a"), route("/a/bc"))
    assert few.any_host.lengths == (5, 2)


def _reference_match(routes, path):
    """The Ingress v1 rules by brute force: an Exact route equal to the path, else the
    Prefix/ImplementationSpecific route with the most matching segments ('/foo/' before
    '/foo', Prefix before ImplementationSpecific, then the oldest), else None."""
    exact = [r for r in routes if r.path_type == "Exact" and r.path == path]
    if exact:
        return min(exact, key=lambda r: r.age_key)
    request = [s for s in path.split("/") if s]
    best = None
    for r in routes:
        if r.path_type == "Exact":
            continue
        segments = [s for s in r.path.split("/") if s]
        if request[: len(segments)] != segments:
            continue
        rank = (-len(segments), not r.path.endswith("/") or r.path == "/", r.path_type != "Prefix", r.age_key)
        if best is None or rank < best[0]:
            best = (rank, r)
    return None if best is None else best[1]


_SEGMENT = st.sampled_from(["a", "b", "ab", "a.b", "A"])
_PATH = st.builds(lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
                  st.lists(_SEGMENT, max_size=4), st.booleans())


# Both ways a host's prefixes are found: cut at their lengths (the default for a few), and
# segment by segment (a host with more lengths than MAX_CUT_LENGTHS; 0 makes it every host).
@pytest.mark.parametrize("max_cuts", [0, routing.MAX_CUT_LENGTHS, 100])
@settings(max_examples=300, deadline=None)
@given(rules=st.lists(st.tuples(_PATH, st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]),
                                st.integers(0, 3)), max_size=12),
       requests=st.lists(_PATH, min_size=1, max_size=8))
def test_lookup_agrees_with_the_rules_by_brute_force(max_cuts, rules, requests):
    routes = [route(path, kind, name=f"i{n}", created=f"2024-01-01T00:00:0{age}Z")
              for n, (path, kind, age) in enumerate(rules)]
    with mock.patch.object(routing, "MAX_CUT_LENGTHS", max_cuts):
        tbl = table(*routes)
    if tbl.any_host is not None and max_cuts != routing.MAX_CUT_LENGTHS:
        assert (tbl.any_host.lengths is not None) == (max_cuts == 100) or tbl.any_host.lengths == ()
    for request in requests:
        entry = tbl.match("", request)
        want = _reference_match(routes, request)
        assert (entry.route if entry else None) == want, (rules, request)


# Beyond the spec's table: (rules, request, expected), each run with the host's prefixes
# found both ways, cut at their lengths and (MAX_CUT_LENGTHS 0) segment by segment.
SEARCH_TABLE = [
    # a prefix matches whole segments only, at any depth
    (["Prefix:/foo/ba"], "/foo/ba", "Prefix:/foo/ba"),
    (["Prefix:/foo/ba"], "/foo/ba/", "Prefix:/foo/ba"),
    (["Prefix:/foo/ba"], "/foo/ba/r", "Prefix:/foo/ba"),
    (["Prefix:/foo/ba"], "/foo/bar", None),
    (["Prefix:/foo/ba"], "/foo/bar/x", None),
    (["Prefix:/foo/ba"], "/foo/b", None),
    (["Prefix:/foo/ba"], "/foo", None),
    (["Prefix:/foo/ba", "Prefix:/"], "/foo/bar", "Prefix:/"),
    (["Prefix:/foo/ba", "Prefix:/foo"], "/foo/bar", "Prefix:/foo"),
    (["Prefix:/ab"], "/cd", None),  # as long as the prefix, but not it
    (["Prefix:/ab"], "/a", None),
    (["Prefix:/ab"], "/abc", None),
    (["Prefix:/ab", "Prefix:/"], "/cd", "Prefix:/"),
    # the deepest matching prefix, however far below it the path goes
    (["Prefix:/a", "Prefix:/a/b/c/d"], "/a/b/c/d/e/f/g", "Prefix:/a/b/c/d"),
    (["Prefix:/a", "Prefix:/a/b/c/d"], "/a/b/c/de", "Prefix:/a"),
    (["Prefix:/a", "Prefix:/a/b/c/d"], "/a/b/c", "Prefix:/a"),
    (["Prefix:/a/b", "Prefix:/a/b/c/d"], "/a/b/c/x/y", "Prefix:/a/b"),
    (["Prefix:/a/b/c/d/", "Prefix:/"], "/a/b/c/d", "Prefix:/a/b/c/d/"),
    # an Exact path is never a prefix
    (["Exact:/a/b", "Prefix:/a"], "/a/b", "Exact:/a/b"),
    (["Exact:/a/b", "Prefix:/a"], "/a/b/", "Prefix:/a"),
    (["Exact:/a/b", "Prefix:/a"], "/a/b/c", "Prefix:/a"),
    (["Exact:/a/b"], "/a/b/c", None),
    # a prefix ends where its path does: only its trailing '/' are dropped
    (["Prefix:/TAX"], "/TAX/1", "Prefix:/TAX"),
    (["Prefix:/TAX"], "/TA", None),
    (["Prefix:/TAX"], "/TA/X", None),
    (["Prefix:/a/b//"], "/a/b/c", "Prefix:/a/b//"),
    # a path with '//' (no valid Ingress has one) is kept to its segments, as requests are
    (["Prefix:/a//b"], "/a/b", "Prefix:/a//b"),
    (["Prefix:/a//b"], "/a/b/c", "Prefix:/a//b"),
    (["Prefix:/a//b"], "/a", None),
    (["Prefix:/a//b"], "/ab", None),
    (["Prefix://a///b//"], "/a/b/c", "Prefix://a///b//"),
]


@pytest.mark.parametrize("max_cuts", [routing.MAX_CUT_LENGTHS, 0])
@pytest.mark.parametrize("rules, request_path, expected", SEARCH_TABLE)
def test_prefix_search(max_cuts, rules, request_path, expected):
    routes = [route(r.split(":", 1)[1], r.split(":", 1)[0]) for r in rules]
    for order in (routes, list(reversed(routes))):
        with mock.patch.object(routing, "MAX_CUT_LENGTHS", max_cuts):
            tbl = table(*order)
        want = None if expected is None else tuple(expected.split(":", 1))
        assert matched(tbl, request_path) == want, (rules, request_path)


# Two rules on the same path (same slot): (rules as (type, path, created), request, the
# winner's index), whatever order they are listed in. OLD was created before NEW.
OLD, NEW = "2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z"
RANK_TABLE = [
    ([("Prefix", "/foo", OLD), ("Prefix", "/foo/", NEW)], "/foo/x", 1),  # '/foo/' is longer
    ([("Prefix", "/foo", OLD), ("Prefix", "/foo/", NEW)], "/foo", 1),
    ([("ImplementationSpecific", "/foo", OLD), ("Prefix", "/foo", NEW)], "/foo/x", 1),
    ([("ImplementationSpecific", "/foo/", OLD), ("Prefix", "/foo", NEW)], "/foo/x", 0),  # longer before type
    ([("Prefix", "/foo", NEW), ("Prefix", "/foo", OLD)], "/foo/x", 1),
    ([("ImplementationSpecific", "/foo", NEW), ("ImplementationSpecific", "/foo", OLD)], "/foo", 1),
    ([("Exact", "/foo", NEW), ("Exact", "/foo", OLD)], "/foo", 1),
    ([("Prefix", "/", NEW), ("Prefix", "/", OLD)], "/x", 1),
    ([("ImplementationSpecific", "/", OLD), ("Prefix", "/", NEW)], "/x", 1),
    ([("Prefix", "/", OLD), ("Prefix", "//", NEW)], "/x", 1),  # '//' is the root with a trailing '/'
    ([("Prefix", "/", OLD), ("Exact", "/", NEW)], "/", 1),
]


@pytest.mark.parametrize("rules, request_path, winner", RANK_TABLE)
def test_which_rule_keeps_a_path(rules, request_path, winner):
    routes = [route(path, kind, name=f"i{n}", created=created, service=f"s{n}")
              for n, (kind, path, created) in enumerate(rules)]
    for order in (routes, list(reversed(routes))):
        assert table(*order).match("", request_path).route.backend.service == f"s{winner}"
        assert _reference_match(order, request_path) is routes[winner]


# One Ingress listing the same path twice (the same age): the first listed keeps it.
@pytest.mark.parametrize(
    "path_type, path, request_path",
    [("Exact", "/x", "/x"), ("Prefix", "/x", "/x/y"), ("Prefix", "/x/", "/x"),
     ("ImplementationSpecific", "/x", "/x"), ("Prefix", "/", "/y")],
)
def test_a_path_listed_twice_by_one_ingress_goes_to_the_first(path_type, path, request_path):
    first, second = route(path, path_type, service="first"), route(path, path_type, service="second")
    assert table(first, second).match("", request_path).route.backend.service == "first"
    assert table(second, first).match("", request_path).route.backend.service == "second"


# (request host, the rule that serves it): exact, then a one-label wildcard, then no host.
HOST_TABLE = [
    ("foo.example.com", "exact"),
    ("bar.example.com", "wild"),
    ("foo.bar.example.com", "any"),  # one label only
    (".example.com", "any"),  # an empty label is no label
    ("example.com", "any"),
    ("xexample.com", "any"),
    ("", "any"),
    ("other.org", "any"),
]


@pytest.mark.parametrize("host, expected", HOST_TABLE)
def test_host_selection(host, expected):
    rules = [route("/", host="foo.example.com", service="exact"), route("/", host="*.example.com", service="wild")]
    with_any = table(*rules, route("/", service="any"))
    assert with_any.match(host, "/x").route.backend.service == expected
    without = table(*rules)
    found = without.match(host, "/x")
    assert (found.route.backend.service if found else "any") == expected


@pytest.mark.parametrize(
    "header, host",
    [
        (b"[::1]", "[::1]"),
        (b"[::1]:8443", "[::1]"),
        (b"[::FFFF:10.0.0.1]:80", "[::ffff:10.0.0.1]"),
        (b"[::1]x]", "[::1]"),  # the literal ends at its first ']'
        (b"[]:80", "[]"),
        (b"[::1", "[::1"),  # unclosed: kept whole, it matches no rule
        (b":80", ""),
        (b"foo.com:", "foo.com"),
        (b"a:b:80", "a:b"),  # only what follows the last ':' is a port
        (b" Foo.com:80 ", "foo.com"),
        (b"foo.com.:80", "foo.com"),
        (b"foo.com..", "foo.com"),
        (b"\xc9.com", "\xe9.com"),
    ],
)
def test_host_header_edge_cases(header, host, monkeypatch):
    monkeypatch.setattr(routing, "_HOSTS", {})  # worked out, not an answer remembered before
    assert host_of(header) == host


def test_a_rebuild_keeps_the_path_tables_of_unchanged_hosts():
    entries = [Entry(route("/a", host="h.com")), Entry(route("/b", host="*.w.com")), Entry(route("/c"))]
    first = RouteTable(entries)
    second = RouteTable(entries, previous=first)
    assert second.exact_hosts["h.com"] is first.exact_hosts["h.com"]
    assert second.wildcard_hosts["w.com"] is first.wildcard_hosts["w.com"]
    assert second.any_host is first.any_host
    assert second.match("h.com", "/a/x") is entries[0]
    assert second.match("x.w.com", "/b") is entries[1]
    assert second.match("other.org", "/c") is entries[2]


@pytest.mark.parametrize("host, request_host", [("h.com", "h.com"), ("*.w.com", "x.w.com"), ("", "other.org")])
def test_a_rebuild_rebuilds_a_changed_host(host, request_host):
    old, new = Entry(route("/old", host=host)), Entry(route("/new", host=host))
    other = Entry(route("/", host="o.com"))
    first = RouteTable([old, other])
    for members in ([new], [old, new], [new, old], [old, Entry(route("/old", host=host))]):
        second = RouteTable([*members, other], previous=first)
        assert second.exact_hosts["o.com"] is first.exact_hosts["o.com"]
        for path in ("/old", "/new"):
            want = next((entry for entry in members if entry.route.path == path), None)
            assert second.match(request_host, path) is want, (members, path)
    assert RouteTable([other], previous=first).match(request_host, "/old") is None


def test_entries_are_the_rules_that_can_be_matched():
    kept = [Entry(route("/x", "Exact", host="h.com", created=OLD)), Entry(route("/x", host="h.com")),
            Entry(route("/", host="*.h.com")), Entry(route("/y")), Entry(route("/y", "Exact"))]
    lost = [Entry(route("/x", "Exact", host="h.com", created=NEW)), Entry(route("/y", "ImplementationSpecific"))]
    tbl = RouteTable([lost[0], *kept, lost[1]])
    assert sorted(map(id, tbl.entries())) == sorted(map(id, kept))
    assert [entry.route.path for entry in table(route("/", host="h.com")).entries()] == ["/"]
    assert list(RouteTable().entries()) == []


def test_a_host_is_cut_at_up_to_max_cut_lengths_prefix_lengths():
    paths = [f"/{'s' * n}" for n in range(1, routing.MAX_CUT_LENGTHS + 1)]
    tbl = table(*(route(p) for p in paths))
    assert tbl.any_host.lengths == tuple(sorted((len(p) for p in paths), reverse=True))
    assert table(*(route(p) for p in [*paths, "/" + "s" * 20])).any_host.lengths is None


class _CountingDict(dict):
    probes = 0

    def get(self, key, default=None):
        self.probes += 1
        return super().get(key, default)


_MANY_LENGTHS = [f"/{'s' * n}" for n in range(1, 12)] + ["/s/deep/er", "/"]


# What a lookup costs, whatever the request path: one probe of the host's path dict for the
# path itself, then one per prefix length the host has (up to MAX_CUT_LENGTHS of them) or,
# past that, one per segment of its deepest prefix. (prefixes, request, at most so many probes)
PROBE_TABLE = [
    (["/a/b/c/d"], "/a/b/c/x/y/z", 2),
    (["/a/b/c/d"], "/a/b/c/d" + "/x" * 1000, 2),
    (["/a", "/a/b/c/d"], "/a/b/c/x/y/z", 3),
    (["/a/b/c/d", "/"], "/q" * 1000, 2),
    (_MANY_LENGTHS, "/q/w/e/r/t/y/u/i/o/p", 4),
    (_MANY_LENGTHS, "/q" * 1000, 4),
    (_MANY_LENGTHS, "/s/deep/er" + "/x" * 1000, 4),
    (_MANY_LENGTHS, "/s/deep", 4),
]


@pytest.mark.parametrize("prefixes, request_path, most", PROBE_TABLE)
def test_a_lookup_probes_no_deeper_than_the_host_prefixes(prefixes, request_path, most):
    routes = [route(p) for p in prefixes]
    tbl = table(*routes)
    want = _reference_match(routes, request_path)
    tbl.any_host.paths = counting = _CountingDict(tbl.any_host.paths)
    entry = tbl.match("", request_path)
    assert (entry.route if entry else None) == want
    assert counting.probes <= most


def test_the_table_carries_the_passthrough_hosts_it_was_given():
    hosts = object()  # tls.passthrough_hosts.PassthroughHosts: the TLSRoutes' SNI names
    assert RouteTable([], passthrough=hosts).passthrough is hosts
    assert RouteTable([]).passthrough is None
