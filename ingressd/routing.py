"""The route table: host and path matching with the Ingress v1 rules, in constant time.

Hosts are hash-map lookups (exact names, then one-label wildcards by suffix, then rules
without host); paths are a dict for Exact and a segment trie for Prefix, so a lookup
costs the depth of the request path whatever the number of Ingresses.
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


class _Node:
    __slots__ = ("children", "entry")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entry = None


class PathTable(Generic[E]):
    """The paths of one host."""

    __slots__ = ("exact", "root", "members")

    def __init__(self, members: Iterable[E] = ()) -> None:
        self.exact: dict[str, E] = {}
        self.root = _Node()
        self.members: list[E] = list(members)  # what it was built from, for reuse
        for entry in self.members:
            self.add(entry)

    def add(self, entry: E) -> None:
        """Add a path; on a conflict the oldest Ingress keeps it."""
        route = entry.route
        if route.path_type == EXACT:
            current = self.exact.get(route.path)
            if current is None or route.age_key < current.route.age_key:
                self.exact[route.path] = entry
            return
        node = self.root
        for segment in route.path.split("/"):
            if segment:
                node = node.children.setdefault(segment, _Node())
        if node.entry is None or _prefix_rank(route) < _prefix_rank(node.entry.route):
            node.entry = entry

    def match(self, path: str) -> E | None:
        entry = self.exact.get(path)
        if entry is not None:
            return entry
        node = self.root
        best = node.entry
        for segment in path.split("/"):
            if not segment:
                continue
            node = node.children.get(segment)
            if node is None:
                break
            if node.entry is not None:
                best = node.entry
        return best

    def entries(self) -> Iterable[E]:
        yield from self.exact.values()
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.entry is not None:
                yield node.entry
            stack.extend(node.children.values())


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
        """The entry for a request, the default backend when no rule matches, or None (404)."""
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
