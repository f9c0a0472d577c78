"""The route table: host and path matching with the Ingress v1 rules, in constant time.

Hosts are hash-map lookups (exact names, then one-label wildcards by suffix, then rules
without host); each host's paths are one dict, probed with the request path (Exact) and
its prefixes (Prefix) from the deepest the host has: at most one probe per segment of
that prefix, whatever the number of Ingresses.
"""

from __future__ import annotations

from typing import Generic, Iterable, Protocol, TypeVar

from ingressd.model import EXACT, Route


class _HasRoute(Protocol):
    route: Route


E = TypeVar("E", bound=_HasRoute)


def _prefix_rank(route: Route) -> tuple:
    # Same segments: '/foo/' beats '/foo' (the spec's "longer wins"), Prefix beats
    # ImplementationSpecific, then the oldest Ingress.
    return (not route.path.endswith("/") or route.path == "/", route.path_type != "Prefix", route.age_key)


class PathTable(Generic[E]):
    """The paths of one host, in one dict: path → (Exact entry, Prefix entry).

    Exact paths are keyed as given; Prefix (and ImplementationSpecific) paths without
    their trailing slash ("" for "/"). A lookup tries the request path for an Exact
    route, then cuts it after as many segments as the deepest prefix has and drops a
    segment at a time until a prefix is found: usually one or two probes of one small
    dict, whatever the number of Ingresses. (A segment trie walked a dict and a node per
    segment: at 10,000 Ingresses, out of the CPU's caches, that was most of a lookup.)
    The path is the routing path, with ``//`` merged (``ingressd.pathnorm``).
    """

    __slots__ = ("paths", "depth", "members")

    def __init__(self, members: Iterable[E] = ()) -> None:
        self.paths: dict[str, tuple[E | None, E | None]] = {}
        self.depth = 0  # segments of the deepest prefix
        self.members: list[E] = list(members)  # what it was built from, for reuse
        for entry in self.members:
            self.add(entry)

    def add(self, entry: E) -> None:
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
        depth = key.count("/")
        if depth > self.depth:
            self.depth = depth

    def match(self, path: str) -> E | None:
        paths = self.paths
        found = paths.get(path)
        if found is not None and found[0] is not None:
            return found[0]
        depth = self.depth
        if depth:
            end = path.find("/", 1)
            while end > 0 and depth > 1:
                end = path.find("/", end + 1)
                depth -= 1
            if end > 0:
                candidate = path[:end]
            elif path[-1:] == "/":
                candidate = path[:-1]
            elif found is not None:
                return found[1]  # the path is a prefix key (its Exact slot is empty)
            else:
                candidate = path[: path.rfind("/")]
        else:
            candidate = ""
        while True:
            found = paths.get(candidate)
            if found is not None and found[1] is not None:
                return found[1]
            if not candidate:
                return None
            candidate = candidate[: candidate.rfind("/")]

    def entries(self) -> Iterable[E]:
        for exact, prefix in self.paths.values():
            if exact is not None:
                yield exact
            if prefix is not None:
                yield prefix


class RouteTable(Generic[E]):
    """Immutable once built: a new table is built for every configuration change.

    Given the ``previous`` table, a host whose entries are the very same objects keeps
    its path table, so a change to one Ingress rebuilds only that Ingress's hosts.
    """

    def __init__(self, entries: Iterable[E] = (), default: E | None = None,
                 previous: "RouteTable[E] | None" = None):
        self.exact_hosts: dict[str, PathTable[E]] = {}
        self.wildcard_hosts: dict[str, PathTable[E]] = {}
        self.any_host: PathTable[E] | None = None
        self.default = default
        groups: dict[str, list[E]] = {}
        for entry in entries:
            host = entry.route.host
            group = groups.get(host)
            if group is None:
                groups[host] = [entry]
            else:
                group.append(entry)
        for host, members in groups.items():
            old = previous._table_for(host) if previous is not None else None
            table = old if old is not None and old.members == members else PathTable(members)
            if not host:
                self.any_host = table
            elif host.startswith("*."):
                self.wildcard_hosts[host[2:]] = table
            else:
                self.exact_hosts[host] = table

    def _table_for(self, host: str) -> PathTable[E] | None:
        if not host:
            return self.any_host
        if host.startswith("*."):
            return self.wildcard_hosts.get(host[2:])
        return self.exact_hosts.get(host)

    def host_table(self, host: str) -> PathTable[E] | None:
        """The paths serving ``host`` (lower-case, no port): exact, then wildcard, then any."""
        table = self.exact_hosts.get(host)
        if table is not None:
            return table
        dot = host.find(".")
        if dot > 0:
            table = self.wildcard_hosts.get(host[dot + 1 :])
            if table is not None:
                return table
        return self.any_host

    def match(self, host: str, path: str) -> E | None:
        """The entry for a request, the default backend when no rule matches, or None (404).
        ``path`` is the routing path (``ingressd.pathnorm.normalize``: ``//`` merged)."""
        table = self.host_table(host)
        if table is not None:
            entry = table.match(path)
            if entry is not None:
                return entry
        return self.default

    def entries(self) -> Iterable[E]:
        for table in (*self.exact_hosts.values(), *self.wildcard_hosts.values()):
            yield from table.entries()
        if self.any_host is not None:
            yield from self.any_host.entries()


def host_of(host_header: bytes | None) -> str:
    """The Host header as a routing key: lower-case, port and trailing dot removed."""
    if not host_header:
        return ""
    host = host_header.decode("latin-1").strip().lower()
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".")
