"""The route table: host and path matching with the Ingress v1 rules, in constant time.

(A host where a route has a regular-expression path is matched by ``regex_routing``'s
table instead, as ingress-nginx matches such a host; a host where a route has extra matches
(method, headers, query parameters: Gateway API) or a Gateway API ``RegularExpression`` path by
``conditional_routing``'s. A host whose routes have neither, as every Ingress-only host, keeps
the table below and pays nothing for them.)

Routes served on one listener kind only (``Route.schemes``: a Gateway API route attached to HTTP
listeners only, or HTTPS only) make the table two: the routes served on the plain port, and
(``RouteTable.secure``) those served over TLS, each with its own hosts and memo; a request takes
the one of its connection (``RequestView.https``). Without such routes (every Ingress) there is
one table and the request path pays one attribute test.

Hosts are hash-map lookups (exact names, then one-label wildcards by suffix, then wildcards
that match any number of labels (``Route.any_depth``: Gateway API hostnames), the longest
suffix first, then rules without host); each host's paths are one dict, probed with the request path (Exact) and
its prefixes (Prefix), longest first: at most one probe per length (or segment) the
host's prefixes have, whatever the number of Ingresses.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Iterable, Protocol, TypeVar

from ingressd.config.conditional_routing import ConditionalPathTable
from ingressd.config.model import EXACT, REGULAR_EXPRESSION, Route
from ingressd.config.regex_routing import RegexPathTable
from ingressd.config.window import window

# A host with more different prefix lengths than this is searched segment by segment.
MAX_CUT_LENGTHS = 8
# Answers a route table remembers, (host, path) → entry, for hosts whose answer depends only
# on host and path; the oldest is forgotten first. Paths longer than CACHED_PATH_LENGTH are not
# remembered (the cache's memory stays bounded whatever the requests).
CACHE_SIZE = 4096
CACHED_PATH_LENGTH = 256
_MISSING = object()


class _HasRoute(Protocol):
    route: Route
    # Optional: True when the route's path is a regular expression (use-regex,
    # rewrite-target): its whole host is then matched as ingress-nginx does such hosts
    # (ingressd.config.regex_routing).


E = TypeVar("E", bound=_HasRoute)


def _prefix_rank(route: Route) -> tuple:
    # Same segments: '/foo/' beats '/foo' (the spec's "longer wins"), Prefix beats
    # ImplementationSpecific, then the oldest Ingress.
    return (not route.path.endswith("/") or route.path == "/", route.path_type != "Prefix", route.age_key)


class PathTable(Generic[E]):
    """The paths of one host, in one dict: path → (Exact entry, Prefix entry).

    Exact paths are keyed as given; Prefix (and ImplementationSpecific) paths without
    their trailing slash ("" for "/"). A lookup tries the request path itself (an Exact
    route, or a prefix equal to it), then the request path cut where a prefix could end:
    at each length the host's prefixes have, longest first, where the path has a "/"
    there. A host with many different prefix lengths is cut at its segments instead,
    from as deep as its deepest prefix. Either way one small dict is probed a few times,
    whatever the number of Ingresses. (A segment trie walked a dict and a node per
    segment: at 10,000 Ingresses, out of the CPU's caches, that was most of a lookup; and
    ``str.find`` costs as much as a probe, so cutting at known lengths beats searching.)
    The path is the routing path, with ``//`` merged (``ingressd.http.pathnorm``).
    """

    __slots__ = ("paths", "lengths", "depth", "root", "members")

    def __init__(self, members: Iterable[E] = ()) -> None:
        self.paths: dict[str, tuple[E | None, E | None]] = {}
        self.members: list[E] = list(members)  # what it was built from, for reuse
        for entry in self.members:
            self._add(entry)
        prefixes = [key for key, (_, prefix) in self.paths.items() if prefix is not None]
        root = self.paths.get("")
        self.root: E | None = root[1] if root is not None else None  # the "/" prefix
        lengths = sorted({len(key) for key in prefixes if key}, reverse=True)
        # Cut at the known lengths (an index and a comparison each) unless the host has more
        # than MAX_CUT_LENGTHS of them: then at the path's segments (a str.find each).
        self.lengths: tuple[int, ...] | None = tuple(lengths) if len(lengths) <= MAX_CUT_LENGTHS else None
        self.depth = max((key.count("/") for key in prefixes), default=0)  # segments of the deepest prefix

    def _add(self, entry: E) -> None:
        """Add a path; on a conflict the oldest Ingress keeps it."""
        route = entry.route
        if route.path_type == EXACT:
            exact, prefix = self.paths.get(route.path, (None, None))
            if exact is None or route.age_key < exact.route.age_key:
                self.paths[route.path] = (entry, prefix)
            return
        key = route.path.rstrip("/")  # "/" is ""
        if "//" in key:  # not from a valid Ingress, but keep to the segments
            key = "".join("/" + segment for segment in key.split("/") if segment)
        exact, prefix = self.paths.get(key, (None, None))
        if prefix is None or _prefix_rank(route) < _prefix_rank(prefix.route):
            self.paths[key] = (exact, entry)

    def match(self, path: str, request: object = None) -> E | None:
        # ``request``: for the tables of hosts with extra matches; no route here has any.
        paths = self.paths
        found = paths.get(path)
        if found is not None:  # an Exact route, else a prefix equal to the path
            return found[0] if found[0] is not None else found[1]
        lengths = self.lengths
        if lengths is not None:
            size = len(path)
            for length in lengths:
                if length < size and path[length] == "/":
                    found = paths.get(path[:length])
                    if found is not None and found[1] is not None:
                        return found[1]
            return self.root
        return self._match_segments(path)

    def _match_segments(self, path: str) -> E | None:
        """The prefix for ``path`` by cutting it at its segments, deepest first."""
        paths = self.paths
        depth = self.depth
        end = path.find("/", 1)
        while end > 0 and depth > 1:
            end = path.find("/", end + 1)
            depth -= 1
        candidate = path[:end] if end > 0 else path[: path.rfind("/")]
        while candidate:
            found = paths.get(candidate)
            if found is not None and found[1] is not None:
                return found[1]
            candidate = candidate[: candidate.rfind("/")]
        return self.root

    def entries(self) -> Iterable[E]:
        for exact, prefix in self.paths.values():
            if exact is not None:
                yield exact
            if prefix is not None:
                yield prefix


class RouteTable(Generic[E]):
    """Immutable once built: a new table is built for every configuration change.

    Given the ``previous`` table, a host whose entries are the very same objects keeps
    its path table, so a change to one Ingress rebuilds only that Ingress's hosts. When
    neither table has routes of one listener kind only, the new table is the previous one
    patched: the entries that came, went or moved (the window where the two lists differ, by
    positions: ``_delta``) name the hosts to build again, and every other host keeps its path
    table without its entries being grouped again (``_patch``). The result is the table a
    build from nothing would make (tests/test_routing_patch.py).

    ``match`` remembers its last ``cache_size`` answers by (host, path) — the same traffic
    asks the same questions — except where a route's extra matches make the answer depend
    on the request; the memo goes with the table when a new one is swapped in.

    When a route is served on one listener kind only (``Route.schemes``), this table holds the
    routes served on the plain port and ``secure`` another, of the routes served over TLS
    (``schemes=("https",)``: the table of one kind, built by the first); else ``secure`` is None.
    """

    def __init__(self, entries: Iterable[E] = (), default: E | None = None,
                 previous: "RouteTable[E] | None" = None, cache_size: int = CACHE_SIZE,
                 passthrough: object = None,
                 schemes: tuple[str, ...] = (), misdirected: object = None):
        self.secure: RouteTable[E] | None = None
        # The entries as given (for the next table's patch), or None (a table of one listener kind).
        self.given: list[E] | None = None
        delta = None
        if not schemes:
            entries = self.given = list(entries)
            delta = _delta(previous, entries)
            if delta is not None and not any(entry.route.schemes for entry in delta[0]):
                self._patch(entries, default, previous, cache_size, passthrough, misdirected, delta)
                return
            if any(entry.route.schemes for entry in entries):
                previous_secure = previous.secure if previous is not None else None
                self.secure = RouteTable([entry for entry in entries if _served_on(entry, "https")], default,
                                         previous_secure or previous, cache_size, passthrough, ("https",))
                entries = [entry for entry in entries if _served_on(entry, "http")]
        # (host, path) → entry; OrderedDict: forgetting its oldest is O(1) (a dict's is not).
        self.cache: OrderedDict[tuple[str, str], E | None] = OrderedDict()
        self.cache_size = cache_size
        # id() of the path tables whose answers depend on the request (not remembered).
        self.volatile: set[int] = set()
        self.exact_hosts: dict[str, PathTable[E]] = {}
        self.wildcard_hosts: dict[str, PathTable[E]] = {}
        # Wildcards that also match deeper names (a member route says ``any_depth``): suffix → table.
        self.deep_wildcard_hosts: dict[str, PathTable[E]] = {}
        self.any_host: PathTable[E] | None = None
        self.default = default
        # The TLS hosts passed through by SNI (TLSRoutes: tls.passthrough.PassthroughHosts), or None.
        self.passthrough = passthrough
        # The Gateway HTTPS listeners' hostnames (tls.misdirected.ListenerHostnames: 421), or None.
        self.misdirected = misdirected
        groups: dict[str, list[E]] = {}
        for entry in entries:
            host = entry.route.host
            group = groups.get(host)
            if group is None:
                groups[host] = [entry]
            else:
                group.append(entry)
        for host, members in groups.items():
            self._add_host(host, members, previous._table_for(host) if previous is not None else None)

    def _patch(self, entries: list[E], default: E | None, previous: "RouteTable[E]", cache_size: int,
               passthrough: object, misdirected: object, delta: tuple[list[E], list[E]]) -> None:
        """This table as ``previous`` with the hosts of the entries that came or went built again
        (``delta``: the new and the previous entries where the two lists differ); every other
        host keeps its path table."""
        self.cache = OrderedDict()  # a new table's memo starts empty, as a built one's
        self.cache_size = cache_size
        self.default = default
        self.passthrough = passthrough
        self.misdirected = misdirected
        self.volatile = set(previous.volatile)
        self.exact_hosts = dict(previous.exact_hosts)
        self.wildcard_hosts = dict(previous.wildcard_hosts)
        self.deep_wildcard_hosts = dict(previous.deep_wildcard_hosts)
        self.any_host = previous.any_host
        added, removed, start = delta
        touched = {entry.route.host for entry in added}
        touched.update(entry.route.host for entry in removed)
        if not touched:
            return
        groups = _spliced(touched, added, removed, start, previous)
        if groups is None:
            groups = {host: [] for host in touched}
            for entry in entries:  # the touched hosts' entries, in the order given (conflicts keep to it)
                group = groups.get(entry.route.host)
                if group is not None:
                    group.append(entry)
        for host, members in groups.items():
            old = previous._table_for(host)
            if old is not None:
                self.volatile.discard(id(old))
                if host.startswith("*."):
                    deep = self.deep_wildcard_hosts.pop(host[2:], None)
                    if deep is not None:
                        self.volatile.discard(id(deep))
            if not members:  # the host's last route went
                if not host:
                    self.any_host = None
                elif host.startswith("*."):
                    self.wildcard_hosts.pop(host[2:], None)
                else:
                    self.exact_hosts.pop(host, None)
                continue
            self._add_host(host, members, old)

    def _add_host(self, host: str, members: list[E], old: "PathTable[E] | None") -> None:
        """Serve ``members`` (all the entries of ``host``), reusing ``old`` if they are its own."""
        table = old if old is not None and old.members == members else _path_table(members)
        if _depends_on_request(table):
            self.volatile.add(id(table))
        if not host:
            self.any_host = table
        elif host.startswith("*."):
            self.wildcard_hosts[host[2:]] = table
            deep = [entry for entry in members if entry.route.any_depth]
            if deep:  # deeper names see only the routes that say so (never an Ingress's)
                deep_table = table if len(deep) == len(members) else _path_table(deep)
                if _depends_on_request(deep_table):
                    self.volatile.add(id(deep_table))
                self.deep_wildcard_hosts[host[2:]] = deep_table
        else:
            self.exact_hosts[host] = table

    def _table_for(self, host: str) -> PathTable[E] | None:
        if not host:
            return self.any_host
        if host.startswith("*."):
            return self.wildcard_hosts.get(host[2:])
        return self.exact_hosts.get(host)

    def match(self, host: str, path: str, request: object = None) -> E | None:
        """The entry for a request, the default backend when no rule matches, or None (404).
        ``host`` is lower-case without a port (``host_of``); ``path`` is the routing path
        (``ingressd.http.pathnorm.normalize``: ``//`` merged); ``request`` (an
        ``interfaces.RequestView``: method, headers, query) is what a route's extra matches
        test; without it, no route with extra matches is chosen. Hosts are tried exact, then as
        a one-label wildcard, then as an any-depth wildcard (longest suffix first), then the rules
        without a host. A request over TLS (``request.https``) is matched by ``secure`` when
        there is one."""
        secure = self.secure
        if secure is not None and request is not None and request.https:
            return secure.match(host, path, request)
        key = (host, path)
        cache = self.cache
        entry = cache.get(key, _MISSING)
        if entry is not _MISSING:
            return entry
        table = self.exact_hosts.get(host)
        if table is None:
            dot = host.find(".")
            if dot > 0:
                table = self.wildcard_hosts.get(host[dot + 1 :])
                if table is None and self.deep_wildcard_hosts:
                    table = self._deep_wildcard(host, dot)
            if table is None:
                table = self.any_host
                if table is None:
                    return self.default  # not remembered: as cheap as a cache probe
        entry = table.match(path, request)
        if entry is None:
            entry = self.default
        if len(path) <= CACHED_PATH_LENGTH and self.cache_size > 0 and id(table) not in self.volatile:
            if len(cache) >= self.cache_size:
                cache.popitem(last=False)  # the oldest answer
            cache[key] = entry
        return entry

    def _deep_wildcard(self, host: str, dot: int) -> "PathTable[E] | None":
        """The table of the longest any-depth wildcard suffix of ``host`` below its first
        label's (``a.b.example.com``: ``example.com``, then ``com``)."""
        deep = self.deep_wildcard_hosts
        dot = host.find(".", dot + 1)
        while dot > 0:
            table = deep.get(host[dot + 1 :])
            if table is not None:
                return table
            dot = host.find(".", dot + 1)
        return None

    def entries(self) -> Iterable[E]:
        """The entries served (on either listener kind), each once."""
        seen: set[int] = set()
        for table in (self, self.secure):
            if table is None:
                continue
            for entry in table._own_entries():
                if id(entry) not in seen:
                    seen.add(id(entry))
                    yield entry

    def _own_entries(self) -> Iterable[E]:
        for table in (*self.exact_hosts.values(), *self.wildcard_hosts.values()):
            yield from table.entries()
        if self.any_host is not None:
            yield from self.any_host.entries()


def _delta(previous: "RouteTable | None", entries: list) -> tuple[list, list, int] | None:
    """(the entries in the window where ``entries`` differ from ``previous``'s, the previous
    table's entries in that window, where the window starts), or None when the new table is to
    be built whole: no previous table, or one with routes of one listener kind (``secure``).

    The window (``config.window``): what is left once the longest common beginning and end
    are taken off, compared by identity alone. Entries outside it are the same objects, in the same order, in both; so a host
    none of whose entries is in the window has exactly its previous entries, and its path
    table is the previous one (as a build from nothing would find by ``members ==``)."""
    if previous is None or previous.secure is not None or previous.given is None:
        return None
    old = previous.given
    start, old_end, new_end = window(old, entries)
    return entries[start:new_end], old[start:old_end], start


def _spliced(hosts: set, added: list, removed: list, start: int, previous: "RouteTable") -> dict | None:
    """The entries of each of ``hosts`` in the new table's order, from the previous table's
    (``PathTable.members``) without a walk of all the entries: those outside the window are the
    same objects in the same order in both lists, so a host's new entries are its previous ones
    before the window, its ``added`` ones, then its previous ones after the window (its
    ``removed`` ones are a run of its previous ones; with none, where the window falls among
    them is found by the previous list's positions). None when a previous table does not say
    (then the caller walks the entries), or when the window is wide (a first configuration after
    Services arrived, every route anew: a walk is the cheaper way there)."""
    if len(added) + len(removed) > _SPLICED_AT_MOST:
        return None
    old_list = previous.given
    came: dict[str, list] = {}
    went: dict[str, list] = {}
    for entries, by_host in ((added, came), (removed, went)):
        for entry in entries:
            group = by_host.get(entry.route.host)
            if group is None:
                by_host[entry.route.host] = [entry]
            else:
                group.append(entry)
    groups: dict[str, list] = {}
    searches = 0
    for host in hosts:
        table = previous._table_for(host)
        members = getattr(table, "members", None) if table is not None else []
        if members is None:
            return None
        gone = went.get(host, ())
        if gone:
            first = _position(members, gone[0])
            if first is None or any(a is not b for a, b in zip(members[first:first + len(gone)], gone)) \
                    or first + len(gone) > len(members):
                return None
            cut, rest = first, first + len(gone)
        elif members:  # the previous entries before the window: a prefix of ``members``
            searches += 1
            if searches > _SEARCHES_AT_MOST:
                return None
            low, high = 0, len(members)
            while low < high:
                middle = (low + high) // 2
                if _position(old_list, members[middle], 0, start) is not None:
                    low = middle + 1
                else:
                    high = middle
            cut = rest = low
        else:
            cut = rest = 0
        groups[host] = members[:cut] + came.get(host, []) + members[rest:]
    return groups


# A window of more entries than this is grouped by a walk of all the entries (``_spliced``'s
# searches cost a list scan each: fine for a change, not for a whole configuration anew).
_SPLICED_AT_MOST = 256
# Hosts whose place of the window among their entries is searched for (each search scans the
# previous list up to the window, a few times): more than this, and the entries are walked.
_SEARCHES_AT_MOST = 16


def _position(items: list, item: object, low: int = 0, high: int | None = None) -> int | None:
    """Where ``item`` itself is in ``items[low:high]``, or None (``list.index`` at C speed; an
    equal object that is not ``item`` is passed over)."""
    high = len(items) if high is None else high
    while low < high:
        try:
            found = items.index(item, low, high)
        except ValueError:
            return None
        if items[found] is item:
            return found
        low = found + 1
    return None


def _served_on(entry: _HasRoute, scheme: str) -> bool:
    """Whether a route is served on listeners of this kind ("http", "https")."""
    schemes = entry.route.schemes
    return not schemes or scheme in schemes


def _depends_on_request(table: object) -> bool:
    """Whether a host's answer may depend on more than its path: a route there has extra
    matches (method, headers, query parameters)."""
    if isinstance(table, PathTable):
        return False
    if isinstance(table, (RegexPathTable, ConditionalPathTable)):
        return any(entry.route.conditions is not None for entry in table.members)
    return True  # a table this module does not know


def _path_table(members: list[E]) -> "PathTable[E] | RegexPathTable[E] | ConditionalPathTable[E]":
    """A host's paths: by the Ingress v1 rules; all as regular expressions once one route of
    the host has a regular-expression path (as ingress-nginx renders the host; extra matches
    are tested there too); by the Gateway API's precedence once one has extra matches or a
    Gateway API ``RegularExpression`` path."""
    conditional = False
    for entry in members:
        if getattr(entry, "regex", False):
            return RegexPathTable(members)
        if entry.route.conditions is not None or entry.route.path_type == REGULAR_EXPRESSION:
            conditional = True
    return ConditionalPathTable(members) if conditional else PathTable(members)


# Host headers seen recently → their routing key (a pure function of the bytes: nothing to
# invalidate). Bounded: emptied when full; headers longer than a DNS name are not kept.
_HOSTS: dict[bytes, str] = {}
HOSTS_REMEMBERED = 1024
# The memo's read alone: a Host header's routing key when it was seen recently, else None (then
# host_of). The request path asks it first, without host_of's frame (the dict is only ever
# cleared in place, so this stays its reader).
remembered_host = _HOSTS.get
_LONGEST_NAME = 255


def host_of(host_header: bytes | None) -> str:
    """The Host header as a routing key: lower-case, port and trailing dot removed."""
    if not host_header:
        return ""
    host = _HOSTS.get(host_header)
    if host is not None:
        return host
    host = _host_of(host_header)
    if len(host_header) <= _LONGEST_NAME:
        if len(_HOSTS) >= HOSTS_REMEMBERED:
            _HOSTS.clear()
        _HOSTS[host_header] = host
    return host


def _host_of(host_header: bytes) -> str:
    host = host_header.decode("latin-1").strip().lower()
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".")
