"""A route table patched from the previous one (``RouteTable._patch``) against one built from nothing,
and the reloader's proportional grouping by Ingress (``reloader._regrouped``) against the whole one:
random sequences of routes added, changed, moved and removed (Hypothesis) must leave them equal."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.config import routing
from ingressd.config.conditional_routing import ConditionalPathTable
from ingressd.config.model import Backend, Conditions, Config, ObjectRef, Route
from ingressd.config.regex_routing import RegexPathTable
from ingressd.config.reloader import _regrouped, _routes_by_ingress, describe_change
from ingressd.config.routing import PathTable, RouteTable


class Entry:
    """A route table entry as the table sees one (identity, like ``RouteEntry``)."""

    __slots__ = ("route", "regex")

    def __init__(self, route: Route, regex: bool = False):
        self.route = route
        self.regex = regex

    def __repr__(self) -> str:
        return f"Entry({self.route.host}{self.route.path} {self.route.ingress.name})"


HOSTS = ("", "a.test", "b.test", "*.w.test", "*.v.test")
PATHS = ("/", "/x", "/x/", "/x/y", "/z", "/x/y/z")
TYPES = ("Prefix", "Exact", "ImplementationSpecific")
NAMES = ("i0", "i1", "i2", "i3")
PROBE_HOSTS = ("", "a.test", "b.test", "c.test", "q.w.test", "deep.q.w.test", "q.v.test", "w.test")
PROBE_PATHS = ("/", "/x", "/x/", "/x/y", "/x/y/z/k", "/z", "/zz", "/other")


class Req:
    method = b"GET"
    https = False
    query = b""

    def __init__(self):
        from ingressd.http.headers import Headers
        self.headers = Headers([])


specs = st.tuples(
    st.sampled_from(HOSTS), st.sampled_from(PATHS), st.sampled_from(TYPES), st.sampled_from(NAMES),
    st.sampled_from(("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")),
    st.integers(0, 9),  # 0: a regular-expression path (its host in regex mode), 1: extra matches, 2: any depth,
    # 3: both of the last two (a wildcard's deeper names then have a table of their own that depends on the request)
)


def make(spec) -> Entry:
    host, path, path_type, name, created, flavour = spec
    route = Route(host, path, path_type, Backend("default", f"{name}{path}", "80"),
                  ObjectRef("Ingress", "default", name), created,
                  conditions=Conditions("GET") if flavour in (1, 3) else None,
                  any_depth=flavour in (2, 3) and host.startswith("*."))
    return Entry(route, regex=flavour == 0)


# An operation on the list of entries: (kind, position, spec).
operations = st.lists(st.tuples(st.sampled_from(("add", "remove", "replace", "move", "same", "swap")),
                                st.integers(0, 1000), specs), min_size=1, max_size=12)


def apply(entries: list, operation) -> list:
    kind, position, spec = operation
    entries = list(entries)
    if kind == "add" or not entries:
        entries.insert(position % (len(entries) + 1), make(spec))
    elif kind == "remove":
        del entries[position % len(entries)]
    elif kind == "replace":  # the same route translated again: an equal route, a new object
        old = entries[position % len(entries)]
        entries[position % len(entries)] = Entry(old.route, old.regex)
    elif kind == "move":  # a new object elsewhere (an Ingress whose age changed)
        del entries[position % len(entries)]
        entries.insert((position * 7) % (len(entries) + 1), make(spec))
    elif kind == "swap":  # the same objects in another order
        a, b = position % len(entries), (position * 3 + 1) % len(entries)
        entries[a], entries[b] = entries[b], entries[a]
    return entries


def _path_shape(table) -> tuple:
    shape = (type(table).__name__, [id(entry) for entry in table.members])
    if isinstance(table, PathTable):
        shape += ({key: tuple(map(id, pair)) for key, pair in table.paths.items()}, table.lengths, table.depth,
                  id(table.root))
    return shape


def shape(table: RouteTable) -> dict:
    """Everything a lookup reads, by host (path tables by their members and their maps; volatile
    ones marked), for comparing a patched table with a built one."""
    out = {}
    for kind, hosts in (("exact", table.exact_hosts), ("wildcard", table.wildcard_hosts),
                        ("deep", table.deep_wildcard_hosts)):
        for host, path_table in hosts.items():
            out[(kind, host)] = (_path_shape(path_table), id(path_table) in table.volatile)
    if table.any_host is not None:
        out[("any", "")] = (_path_shape(table.any_host), id(table.any_host) in table.volatile)
    out["default"] = id(table.default)
    out["volatile"] = len(table.volatile)
    out["secure"] = table.secure is not None
    return out


def answers(table: RouteTable) -> list:
    request = Req()
    return [id(table.match(host, path, request)) for host in PROBE_HOSTS for path in PROBE_PATHS]


@settings(max_examples=300, deadline=None)
@given(st.lists(specs, max_size=12), operations)
def test_a_patched_table_is_the_table_built_from_nothing(start, steps):
    entries = [make(spec) for spec in start]
    default = Entry(Route("", "/", "Prefix", Backend("default", "dflt", "80"), ObjectRef("Service", "d", "d")))
    table = RouteTable(entries, default)
    for step in steps:
        entries = apply(entries, step)
        patched = RouteTable(entries, default, previous=table)
        built = RouteTable(entries, default)
        assert shape(patched) == shape(built)
        assert answers(patched) == answers(built)
        table = patched


def test_a_patched_table_reuses_untouched_hosts_and_builds_touched_ones():
    a = [make(("a.test", f"/p{n}", "Prefix", "i0", "", 9)) for n in range(3)]
    b = [make(("b.test", "/x", "Prefix", "i1", "", 9))]
    before = RouteTable(a + b)
    changed = make(("b.test", "/y", "Prefix", "i1", "", 9))
    after = RouteTable(a + [changed], previous=before)
    assert after.exact_hosts["a.test"] is before.exact_hosts["a.test"]  # untouched: kept
    assert after.exact_hosts["b.test"] is not before.exact_hosts["b.test"]
    assert after.match("b.test", "/y") is changed and after.match("b.test", "/x") is None
    assert after.given == a + [changed]
    gone = RouteTable(a, previous=after)  # the host's last route went: the host goes
    assert "b.test" not in gone.exact_hosts and gone.exact_hosts["a.test"] is before.exact_hosts["a.test"]
    assert gone.cache == {} and gone.cache is not after.cache  # each table its own memo


def test_a_patched_table_takes_the_new_tables_settings_not_the_previous_ones():
    """The default backend, the passthrough and misdirected-request tables and the memo's size
    are the new build's, whichever hosts are patched (even none)."""
    a = [make(("a.test", "/", "Prefix", "i0", "", 9))]
    old_default, new_default = make(("", "/", "Prefix", "d0", "", 9)), make(("", "/", "Prefix", "d1", "", 9))
    before = RouteTable(a, old_default, cache_size=4, passthrough="old-pt", misdirected="old-md")
    assert (before.default, before.cache_size, before.passthrough, before.misdirected) == (
        old_default, 4, "old-pt", "old-md")
    for entries in (a, a + [make(("b.test", "/", "Prefix", "i1", "", 9))]):
        after = RouteTable(entries, new_default, previous=before, cache_size=7, passthrough="pt", misdirected="md")
        assert (after.default, after.cache_size, after.passthrough, after.misdirected) == (
            new_default, 7, "pt", "md")
        assert after.match("c.test", "/") is new_default
        for n in range(9):  # the memo keeps the new size
            after.match("a.test", f"/p{n}")
        assert len(after.cache) == 7


def test_a_wildcard_hosts_last_route_going_takes_its_deeper_names_too():
    """A one-label wildcard whose last route goes (or whose any-depth route goes) stops
    answering deeper names; an exact host and the hostless rules likewise stop answering."""
    deep = make(("*.w.test", "/", "Prefix", "i0", "", 2))
    shallow = make(("*.w.test", "/", "Prefix", "i1", "", 9))
    exact = make(("a.test", "/", "Prefix", "i2", "", 9))
    anyhost = make(("", "/", "Prefix", "i3", "", 9))
    full = RouteTable([deep, exact, anyhost])
    assert full.match("x.y.w.test", "/") is deep and full.match("a.test", "/") is exact
    assert full.match("other.test", "/") is anyhost
    without_deep = RouteTable([shallow, exact, anyhost], previous=full)
    assert without_deep.match("x.y.w.test", "/") is anyhost  # deeper names fall to the hostless rules
    assert without_deep.match("x.w.test", "/") is shallow
    assert "w.test" not in without_deep.deep_wildcard_hosts
    assert without_deep.volatile == RouteTable([shallow, exact, anyhost]).volatile
    none_left = RouteTable([], previous=without_deep)
    assert none_left.match("x.w.test", "/") is None and none_left.match("a.test", "/") is None
    assert none_left.match("other.test", "/") is None
    assert (none_left.exact_hosts, none_left.wildcard_hosts, none_left.deep_wildcard_hosts,
            none_left.any_host) == ({}, {}, {}, None)
    volatile = make(("*.v.test", "/", "Prefix", "i0", "", 1))  # extra matches: request-dependent
    with_volatile = RouteTable([volatile, exact])
    assert with_volatile.volatile
    assert RouteTable([exact], previous=with_volatile).volatile == set()


def test_a_touched_host_whose_entries_are_the_same_keeps_its_path_table():
    """Two hosts' entries swapped in the list: both hosts are in the window, neither's entries
    changed, so each keeps its path table; a wildcard all of whose routes reach any depth
    serves deeper names from that same table."""
    a1, b1 = make(("a.test", "/", "Prefix", "i0", "", 9)), make(("b.test", "/", "Prefix", "i1", "", 9))
    before = RouteTable([a1, b1])
    after = RouteTable([b1, a1], previous=before)
    assert after.exact_hosts["a.test"] is before.exact_hosts["a.test"]
    assert after.exact_hosts["b.test"] is before.exact_hosts["b.test"]
    deep = make(("*.w.test", "/", "Prefix", "i2", "", 2))
    table = RouteTable([deep])
    assert table.deep_wildcard_hosts["w.test"] is table.wildcard_hosts["w.test"]


def test_the_window_is_where_the_lists_differ_by_identity():
    entries = [make(("a.test", f"/p{n}", "Prefix", "i0", "", 9)) for n in range(6)]
    table = RouteTable(entries)
    new = entries[:2] + [make(("a.test", "/new", "Prefix", "i0", "", 9))] + entries[3:]
    added, removed, start = routing._delta(table, new)
    assert added == [new[2]] and removed == [entries[2]] and start == 2
    assert routing._delta(table, list(entries)) == ([], [], 6)  # the same objects: an empty window
    grown = entries + [new[2]]
    assert routing._delta(table, grown) == ([new[2]], [], 6)
    assert routing._delta(None, entries) is None


def test_a_table_with_routes_of_one_listener_kind_is_built_whole():
    plain = make(("a.test", "/", "Prefix", "i0", "", 9))
    https_only = Entry(Route("a.test", "/s", "Prefix", Backend("d", "s", "80"), ObjectRef("HTTPRoute", "d", "s"),
                             schemes=("https",)))
    split = RouteTable([plain, https_only], previous=RouteTable([plain]))
    assert split.secure is not None and split.given is not None
    assert routing._delta(split, [plain]) is None  # its next table is built whole too
    assert RouteTable([plain], previous=split).secure is None


def test_regex_and_conditional_hosts_are_patched_as_built():
    regex = make(("a.test", "/x", "Prefix", "i0", "", 0))
    conditional = make(("b.test", "/x", "Prefix", "i1", "", 1))
    table = RouteTable([regex, conditional])
    assert isinstance(table.exact_hosts["a.test"], RegexPathTable)
    assert isinstance(table.exact_hosts["b.test"], ConditionalPathTable)
    assert id(table.exact_hosts["b.test"]) in table.volatile
    plain = make(("b.test", "/x", "Prefix", "i1", "", 9))
    patched = RouteTable([regex, plain], previous=table)
    assert isinstance(patched.exact_hosts["b.test"], PathTable) and patched.volatile == set()
    assert shape(patched) == shape(RouteTable([regex, plain]))


# -- the reloader's grouping by Ingress ---------------------------------------------------


def _route(name: str, path: str) -> Route:
    return Route("h.test", path, "Prefix", Backend("d", "s", "80"), ObjectRef("Ingress", "d", name))


route_specs = st.tuples(st.sampled_from(NAMES + ("i4", "i5")), st.sampled_from(PATHS))
route_operations = st.lists(st.tuples(st.sampled_from(("add", "remove", "replace", "swap")),
                                      st.integers(0, 1000), route_specs), min_size=1, max_size=10)


def _apply_routes(routes: list, operation) -> list:
    kind, position, (name, path) = operation
    routes = list(routes)
    if kind == "add" or not routes:
        routes.insert(position % (len(routes) + 1), _route(name, path))
    elif kind == "remove":
        del routes[position % len(routes)]
    elif kind == "replace":  # an equal route, a new object (translated again)
        old = routes[position % len(routes)]
        routes[position % len(routes)] = _route(old.ingress.name, old.path)
    else:
        a, b = position % len(routes), (position * 3 + 1) % len(routes)
        routes[a], routes[b] = routes[b], routes[a]
    return routes


@settings(max_examples=300, deadline=None)
@given(st.lists(route_specs, max_size=12), route_operations)
def test_the_proportional_grouping_is_the_whole_one(start, steps):
    routes = [_route(name, path) for name, path in start]
    config = Config(routes=tuple(routes))
    groups = _routes_by_ingress(config)
    for step in steps:
        routes = _apply_routes(routes, step)
        new = Config(routes=tuple(routes))
        whole = _routes_by_ingress(new)
        regrouped = _regrouped(groups, config.routes, new.routes)
        if regrouped is not None:
            after, refs = regrouped
            assert after == whole
            # what the log line says is the same, whether it looked at every Ingress or at ``refs``
            assert describe_change(config, new, groups, after, refs) == describe_change(config, new)
        config, groups = new, whole


def test_the_grouping_is_proportional_to_the_change():
    routes = [_route(f"i{n // 3}", f"/p{n % 3}") for n in range(30)]
    config = Config(routes=tuple(routes))
    groups = _routes_by_ingress(config)
    changed = routes[:9] + [_route("i3", "/moved")] + routes[10:]
    after, refs = _regrouped(groups, config.routes, tuple(changed))
    assert refs == {ObjectRef("Ingress", "d", "i3")}
    assert after[ObjectRef("Ingress", "d", "i3")] == (_route("i3", "/moved"), routes[10], routes[11])
    assert all(after[ref] is groups[ref] for ref in groups if ref.name != "i3")  # kept, not rebuilt
    assert _regrouped(groups, config.routes, config.routes) == (groups, set())
    # An Ingress of the window with a route elsewhere too: grouped whole instead.
    split = routes + [_route("i3", "/again")]
    assert _regrouped(_routes_by_ingress(Config(routes=tuple(split))), tuple(split),
                      tuple(split[:9] + [_route("i3", "/x")] + split[10:])) is None


# -- the window itself, and the certificate store's names served ---------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=10), st.lists(st.integers(0, 5), max_size=10))
def test_the_window_leaves_out_exactly_the_common_beginning_and_end(old_keys, new_keys):
    from ingressd.config.window import window
    pool = [object() for _ in range(6)]  # the same objects on both sides where the keys agree
    old, new = [pool[k] for k in old_keys], [pool[k] for k in new_keys]
    start, old_end, new_end = window(old, new)
    assert old[:start] == new[:start] and old[old_end:] == new[new_end:]
    assert 0 <= start <= old_end <= len(old) and start <= new_end <= len(new)
    # as short as can be: the beginning first, then the end
    assert start == len(old) == len(new) or start == min(len(old), len(new)) or old[start] is not new[start]
    if old_end > start and new_end > start:
        assert old[old_end - 1] is not new[new_end - 1]
    assert window(old, old) == (len(old), len(old), len(old))


HOST_NAMES = ("", "a.test", "A.Test.", "*.w.test", " b.test ", ".")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(HOST_NAMES), st.sampled_from(PATHS)), max_size=10),
       st.lists(st.tuples(st.sampled_from(("add", "remove", "replace", "swap", "tls")), st.integers(0, 1000),
                          st.tuples(st.sampled_from(HOST_NAMES), st.sampled_from(PATHS))), min_size=1, max_size=10))
def test_the_names_served_followed_change_by_change_are_the_names_of_the_whole(start, steps):
    from ingressd.config.model import TLSHost
    from ingressd.tls.certificates import _served_names, _ServedNames

    def make_route(host, path):
        return Route(host, path, "Prefix", Backend("d", "s", "80"), ObjectRef("Ingress", "d", "i"))

    routes = [make_route(*spec) for spec in start]
    tls_hosts: tuple = ()
    served = _ServedNames()
    assert served.names(Config(routes=tuple(routes))) == _served_names(Config(routes=tuple(routes)))
    for kind, position, spec in steps:
        if kind == "tls":
            tls_hosts = tls_hosts + (TLSHost(spec[0] or "t.test", ObjectRef("Secret", "d", "s"),
                                             ObjectRef("Ingress", "d", "i")),)
        elif kind == "add" or not routes:
            routes.insert(position % (len(routes) + 1), make_route(*spec))
        elif kind == "remove":
            del routes[position % len(routes)]
        elif kind == "replace":
            routes[position % len(routes)] = make_route(*spec)
        else:
            a, b = position % len(routes), (position * 3 + 1) % len(routes)
            routes[a], routes[b] = routes[b], routes[a]
        config = Config(routes=tuple(routes), tls_hosts=tls_hosts)
        assert served.names(config) == _served_names(config)


# -- build_table: the last build's entries by position, against a build from nothing -------


class _Canary:
    phase = 900
    canary = "rule"


class _HostWide:
    phase = 100
    host_wide = True


class _BuildPlugins:
    """Features by Ingress name: "bad" fails on /z (its Ingress rejected whole), "canary" is a
    canary of its host and path, "wide" carries a host-wide feature."""

    def route_features(self, route, context):
        from ingressd.features import AnnotationError
        name = route.ingress.name
        if name == "bad" and route.path == "/z":
            raise AnnotationError("no /z here")
        if name == "canary":
            return [_Canary()]
        if name == "wide":
            return [_HostWide()]
        return []

    def host_routes(self, config, context):
        return []


def _table_by_routes(table: RouteTable) -> dict:
    out = {}
    for kind, hosts in (("exact", table.exact_hosts), ("wildcard", table.wildcard_hosts)):
        for host, path_table in hosts.items():
            out[(kind, host)] = [(id(entry.route), [id(alt.route) for _, alt in entry.alternatives])
                                 for entry in path_table.members]
    if table.any_host is not None:
        out["any"] = [id(entry.route) for entry in table.any_host.members]
    out["default"] = id(table.default.route) if table.default is not None else None
    return out


build_names = NAMES + ("bad", "canary", "wide")
build_specs = st.tuples(st.sampled_from(("a.test", "b.test", "")), st.sampled_from(("/", "/x", "/z")),
                        st.sampled_from(build_names))


def _build_route(spec) -> Route:
    host, path, name = spec
    return Route(host, path, "Prefix", Backend("d", name, "80"), ObjectRef("Ingress", "d", name),
                 f"2024-01-0{1 + build_names.index(name)}T00:00:00Z")


@settings(max_examples=300, deadline=None)
@given(st.lists(build_specs, max_size=10),
       st.lists(st.tuples(st.sampled_from(("add", "remove", "replace", "swap", "default")), st.integers(0, 1000),
                          build_specs), min_size=1, max_size=10))
def test_build_table_from_the_last_build_is_the_build_from_nothing(start, steps):
    from ingressd.config.entries import _LAST, build_table
    from ingressd.features import BuildContext

    plugins, context = _BuildPlugins(), BuildContext(settings={}, reactor=None)
    routes = [_build_route(spec) for spec in start]
    default = None
    cache: dict = {}
    table, _ = build_table(Config(routes=tuple(routes)), plugins, context, cache)
    for kind, position, spec in steps:
        if kind == "default":
            default = None if default is not None else _build_route(("", "/", spec[2]))
        elif kind == "add" or not routes:
            routes.insert(position % (len(routes) + 1), _build_route(spec))
        elif kind == "remove":
            del routes[position % len(routes)]
        elif kind == "replace":  # translated again: an equal route, a new object
            old = routes[position % len(routes)]
            routes[position % len(routes)] = dataclasses.replace(old)
        else:
            a, b = position % len(routes), (position * 3 + 1) % len(routes)
            routes[a], routes[b] = routes[b], routes[a]
        config = Config(routes=tuple(routes), default_backend=default)
        table, served = build_table(config, plugins, context, cache, table)
        whole_table, whole = build_table(config, plugins, context)
        assert served == whole
        assert _table_by_routes(table) == _table_by_routes(whole_table)
        assert _table_by_routes(table) == _table_by_routes(RouteTable(list(table.given), table.default))
        # the cache holds an entry for each route served and the default, each for its own route
        if _LAST in cache:
            for route in served.routes + ((default,) if served.default_backend else ()):
                assert cache[id(route)].route is route


def test_build_table_takes_the_last_builds_entries_by_position():
    from ingressd.config.entries import _LAST, build_table
    from ingressd.features import BuildContext

    plugins, context = _BuildPlugins(), BuildContext(settings={}, reactor=None)
    routes = [_build_route(("a.test", f"/p{n}", "i0")) for n in range(5)]
    cache: dict = {}
    table, _ = build_table(Config(routes=tuple(routes)), plugins, context, cache)
    assert cache[_LAST][0] == tuple(routes)
    first = list(table.given)
    changed = routes[:2] + [_build_route(("a.test", "/new", "i0"))] + routes[3:]
    table, _ = build_table(Config(routes=tuple(changed)), plugins, context, cache, table)
    assert [entry for n, entry in enumerate(table.given) if n != 2] == [e for n, e in enumerate(first) if n != 2]
    assert table.given[2].route is changed[2] and id(routes[2]) not in cache
    # a failed Ingress: no last build kept, the next one looks at every route
    failing = changed + [_build_route(("b.test", "/z", "bad"))]
    _, served = build_table(Config(routes=tuple(failing)), plugins, context, cache, table)
    assert _LAST not in cache and served.rejections[0].ref.name == "bad"


# -- the patch's grouping without a walk (``_spliced``) and its search (``_position``) ------


def _walked(entries: list, hosts: set) -> dict:
    return {host: [entry for entry in entries if entry.route.host == host] for host in hosts}


def _assert_spliced_as_walked(table: RouteTable, entries: list) -> None:
    """``entries`` after ``table``'s: the touched hosts' entries ``_spliced`` takes from ``table``
    (it answers: no walk) are the walk's, the very objects in the new list's order."""
    added, removed, where = routing._delta(table, entries)
    touched = {entry.route.host for entry in added} | {entry.route.host for entry in removed}
    groups = routing._spliced(touched, added, removed, where, table)
    assert groups is not None
    assert {host: list(map(id, group)) for host, group in groups.items()} == {
        host: list(map(id, group)) for host, group in _walked(entries, touched).items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(specs, max_size=12), operations)
def test_a_small_change_is_grouped_from_the_previous_table_without_a_walk(start, steps):
    """For a window of a few entries the touched hosts' entries come from the previous table's
    (``_spliced`` answers, it does not leave it to the walk), in the order of the new list."""
    entries = [make(spec) for spec in start]
    table = RouteTable(entries)
    for step in steps:
        entries = apply(entries, step)
        _assert_spliced_as_walked(table, entries)
        table = RouteTable(entries, previous=table)


def test_a_change_among_many_entries_of_one_host_is_spliced_in_place():
    """A host's entry replaced, removed or added in the middle, at the start or the end of its
    run, among other hosts' entries: its new entries are the walk's, in the new order."""
    def spec(host, n):
        return make((host, f"/p{n}", "Prefix", "i0", "", 9))

    base = [spec("a.test" if n % 3 else "b.test", n) for n in range(30)]
    table = RouteTable(base)
    news = [make(("a.test", "/new", "Prefix", "i1", "", 9)) for _ in range(4)]
    for entries in (base[:10] + [news[0]] + base[11:],  # one of a.test's replaced (a.test at 10)
                    base[:1] + base[2:],  # a.test's first removed
                    base[:-1],  # the last (a.test: 29 % 3 == 2) removed
                    base + [news[1]],  # added at the end
                    [news[2]] + base,  # added at the start
                    base[:15] + [news[3]] + base[15:],  # added before a b.test entry (15 % 3 == 0)
                    base[:4] + base[7:],  # a run of both hosts removed
                    base[:5] + [news[0], news[1]] + base[5:]):
        _assert_spliced_as_walked(table, entries)
        patched = RouteTable(entries, previous=table)
        assert shape(patched) == shape(RouteTable(entries))


def test_position_finds_the_object_itself_not_an_equal_one():
    route = Route("a.test", "/", "Prefix", Backend("d", "s", "80"), ObjectRef("Ingress", "d", "i"))
    a1, a2, a3 = (dataclasses.replace(route) for _ in range(3))  # equal, not the same
    b = dataclasses.replace(route, path="/b")
    assert a1 == a2 == a3 and a1 is not a2
    items = [a1, a2, b, a3]
    cases = [((a1,), 0), ((a2,), 1), ((b,), 2), ((a3,), 3),
             ((a2, 1), 1), ((a2, 2), None), ((a3, 0, 3), None), ((a3, 3, 4), 3), ((a1, 1), None),
             ((b, 0, 2), None), ((b, 2, 3), 2), ((a2, 0, 1), None), ((a2, 0, 2), 1), ((a1, 0, 0), None)]
    for args, where in cases:
        assert routing._position(items, *args) == where, args
    assert routing._position([], a1) is None
    assert routing._position([a2, a2, a1], a1) == 2
    assert routing._position([b], a1) is None


def test_a_change_up_to_the_bounds_is_spliced_and_a_wide_one_walked():
    """A window of ``_SPLICED_AT_MOST`` entries, or one whose hosts' place among their entries is
    searched for ``_SEARCHES_AT_MOST`` times, is still grouped from the previous table; a wider
    one (every route anew) is grouped by a walk. Either way the patched table is the built one."""
    hosts = [f"h{n}.test" for n in range(routing._SEARCHES_AT_MOST)]
    base = [make((host, "/", "Prefix", "i0", "", 9)) for host in hosts]
    table = RouteTable(base)
    # one entry added in the middle for each host: every host's place is searched for
    entries = base[:1] + [make((host, "/new", "Prefix", "i1", "", 9)) for host in hosts] + base[1:]
    added, removed, where = routing._delta(table, entries)
    groups = routing._spliced(set(hosts), added, removed, where, table)
    assert groups is not None and groups == _walked(entries, set(hosts))
    assert shape(RouteTable(entries, previous=table)) == shape(RouteTable(entries))

    many = [make((f"m{n % 7}.test", f"/p{n}", "Prefix", "i0", "", 9)) for n in range(routing._SPLICED_AT_MOST)]
    table = RouteTable(many[:1])
    entries = many[:1] + [make((f"m{n % 7}.test", f"/q{n}", "Prefix", "i0", "", 9))
                          for n in range(routing._SPLICED_AT_MOST)]
    added, removed, where = routing._delta(table, entries)
    assert len(added) + len(removed) == routing._SPLICED_AT_MOST
    touched = {entry.route.host for entry in added}
    groups = routing._spliced(touched, added, removed, where, table)
    assert groups is not None and groups == _walked(entries, touched)
    previous = RouteTable(entries)
    wide = list(many)  # every route but the first anew: a window of more than _SPLICED_AT_MOST entries
    added, removed, where = routing._delta(previous, wide)
    touched = {entry.route.host for entry in added + removed}
    assert len(added) + len(removed) > routing._SPLICED_AT_MOST
    assert routing._spliced(touched, added, removed, where, previous) is None
    patched = RouteTable(wide, previous=previous)
    assert shape(patched) == shape(RouteTable(wide))
    assert answers(patched) == answers(RouteTable(wide))
    assert patched.match("m3.test", "/p3/x") is many[3]
