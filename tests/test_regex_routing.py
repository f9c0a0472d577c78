"""Regular-expression paths: a host in regex mode is matched as ingress-nginx's ``location ~*``."""

from __future__ import annotations

import pytest

from ingressd import PathPatternError, compile_path
from ingressd.config.model import Backend, ObjectRef, Route
from ingressd.config.regex_routing import RegexPathTable
from ingressd.config.routing import PathTable, RouteTable


class Entry:
    def __init__(self, path, host="re.test", regex=False, name=None, created="2026-01-01T00:00:00Z",
                 path_type="ImplementationSpecific"):
        self.route = Route(host, path, path_type, Backend("ns", "svc", "80", ()),
                           ObjectRef("Ingress", "ns", name or path), created)
        self.regex = regex

    def __repr__(self):
        return f"Entry({self.route.path!r})"


def table(*entries):
    return RouteTable(list(entries))


def test_one_regex_route_turns_its_whole_host_to_regex_mode_and_no_other_host():
    plain, regex, other = Entry("/api", path_type="Prefix"), Entry("/v[0-9]+/", regex=True), Entry("/api", host="o.test")
    routes = table(plain, regex, other)
    assert isinstance(routes.exact_hosts["re.test"], RegexPathTable)
    assert isinstance(routes.exact_hosts["o.test"], PathTable)
    assert routes.match("re.test", "/v2/x") is regex
    # The plain Prefix path is now "^/api", case-insensitive: as ingress-nginx renders it.
    assert routes.match("re.test", "/apis") is plain and routes.match("re.test", "/API/x") is plain
    assert routes.match("o.test", "/apis") is None and routes.match("o.test", "/api/x") is other


def test_anchored_at_the_start_only_and_case_insensitive():
    entry = Entry("/foo/bar/(.+)", regex=True)
    routes = table(entry)
    assert routes.match("re.test", "/FOO/Bar/baz") is entry
    assert routes.match("re.test", "/foo/bar/baz/and/more") is entry  # not anchored at the end
    assert routes.match("re.test", "/x/foo/bar/baz") is None  # anchored at the start
    assert routes.match("re.test", "/foo/bar/") is None


def test_longest_pattern_first_not_longest_match():
    """ingress-nginx's e2e "should fail to use longest match for documented warning"."""
    exact = Entry("/foo/bar/bar", path_type="Prefix")
    regex = Entry("/foo/bar/[a-z]{3}", regex=True)
    routes = table(exact, regex)
    assert routes.match("re.test", "/foo/bar/bar") is regex
    root = Entry("/", regex=True)
    acme = Entry("/.well-known/acme/challenge", path_type="Prefix")
    routes = table(root, acme)
    assert routes.match("re.test", "/.well-known/acme/challenge") is acme
    assert routes.match("re.test", "/anything") is root


def test_same_path_twice_the_oldest_ingress_keeps_it():
    young = Entry("/same", regex=True, name="young", created="2026-05-01T00:00:00Z")
    old = Entry("/same", regex=True, name="old", created="2026-01-01T00:00:00Z")
    assert table(young, old).match("re.test", "/same") is old
    assert list(table(young, old).exact_hosts["re.test"].entries()) == [old]


def test_exact_loses_its_meaning_in_regex_mode():
    exact = Entry("/exact", path_type="Exact")
    routes = table(exact, Entry("/r.*", regex=True))
    assert routes.match("re.test", "/exact/more") is exact


def test_a_path_re2_cannot_compile_is_left_out_of_the_host():
    bad, good = Entry("/(?=look)", regex=False), Entry("/ok", regex=True)
    routes = table(bad, good)
    assert routes.match("re.test", "/ok") is good
    assert list(routes.exact_hosts["re.test"].entries()) == [good]


@pytest.mark.parametrize("pattern, reason", [
    ("/(?=x)", "look-around"), ("/(a)\\1", "back-references"), ("/(", "missing )"),
])
def test_compile_path_says_why_re2_refuses_a_pattern(pattern, reason):
    with pytest.raises(PathPatternError) as info:
        compile_path(pattern)
    assert pattern in str(info.value) and "linear time" in str(info.value)
    assert reason in str(info.value)


def test_a_pathological_pattern_matches_in_linear_time():
    """(a+)+$ against a long run of a's and a b: exponential for a backtracking engine."""
    pattern = compile_path("/(a+)+$")
    assert pattern.match("/" + "a" * 100_000 + "b") is None  # would never return with backtracking
    assert pattern.match("/" + "a" * 100_000) is not None


def test_a_host_leaves_regex_mode_when_its_regex_route_goes():
    plain = Entry("/api", path_type="Prefix")
    regex = Entry("/v[0-9]", regex=True)
    before = table(plain, regex)
    after = RouteTable([plain], previous=before)
    assert isinstance(after.exact_hosts["re.test"], PathTable)
    assert after.match("re.test", "/apis") is None and after.match("re.test", "/api/x") is plain
