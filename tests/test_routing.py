"""The route table against the Ingress v1 matching rules (the spec's example table and more)."""

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.model import Backend, ObjectRef, Route
from ingressd import routing
from ingressd.routing import RouteTable, host_of


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
def test_host_header_normalisation(header, host):
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
