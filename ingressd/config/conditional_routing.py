"""The paths of a host where a route has extra matches (method, headers, query parameters) or a
Gateway API ``RegularExpression`` path: the Gateway API's precedence.

A host's table is this one only when one of its routes has ``Conditions`` or a
``RegularExpression`` path (``routing._path_table`` decides); a host whose routes match by host
and path alone keeps ``routing.PathTable``, so an Ingress-only table pays nothing for what it
does not use.

For a request, the candidates are tried in the Gateway API's order (HTTPRouteRule, "ordered
tie-breakers"), and the first whose conditions the request carries wins:

1. an ``Exact`` path equal to the request's path;
2. a ``RegularExpression`` path matching the whole request path (``regex_routing.compile_full_path``),
   the longest expression (in characters) first: the spec leaves their precedence to the
   implementation; here after ``Exact`` and before every prefix, as Envoy Gateway orders them, so
   that a catch-all ``/`` prefix never hides an expression;
3. a prefix (``Prefix``, ``ImplementationSpecific``), the most characters first (the request
   path cut at each ``/``, deepest first, then the root);
4. among routes of the same path: a method match first, then the most header matches, then the
   most query-parameter matches;
5. then, for exact paths and expressions, the oldest object (creation time, then namespace and
   name); for prefixes, as ``routing.PathTable`` ranks equal ones (``/foo/`` before ``/foo``,
   ``Prefix`` before ``ImplementationSpecific``, then the oldest object);
6. then the order the source gave them (a route's rules, in order: a stable sort).

A route without conditions is a candidate that every request carries. When no candidate's
conditions hold, the host has no route for the request (the default backend, or 404).
"""

from __future__ import annotations

from typing import Any, Generic, Iterable, Protocol, TypeVar

from twisted.python import log

from ingressd.config.conditions import compile_conditions
from ingressd.config.model import EXACT, REGULAR_EXPRESSION, Route
from ingressd.config.regex_routing import compile_full_path
from ingressd.features import PathPatternError


class _HasRoute(Protocol):
    route: Route


E = TypeVar("E", bound=_HasRoute)

_Candidates = tuple  # ((test or None, entry), …), most specific first


def _specificity(route: Route) -> tuple[int, int, int]:
    conditions = route.conditions
    if conditions is None:
        return (0, 0, 0)
    method, headers, query = conditions.rank
    return (-method, -headers, -query)


def _exact_order(entry: _HasRoute) -> tuple:
    return (_specificity(entry.route), entry.route.age_key)


def _prefix_order(entry: _HasRoute) -> tuple:
    route = entry.route
    return (_specificity(route), not route.path.endswith("/") or route.path == "/",
            route.path_type != "Prefix", route.age_key)


def _candidates(entries: list, order) -> _Candidates:
    return tuple((None if entry.route.conditions is None else compile_conditions(entry.route.conditions), entry)
                 for entry in sorted(entries, key=order))


def _regex_order(entry: _HasRoute) -> tuple:
    return (-len(entry.route.path), _specificity(entry.route), entry.route.age_key)


def _regex_candidates(entries: list) -> tuple:
    """((pattern, test or None, entry), …) in ``_regex_order``; an expression RE2 cannot compile
    (the translator leaves such rules out) is left out here too, logged."""
    found = []
    for entry in sorted(entries, key=_regex_order):
        route = entry.route
        try:
            pattern = compile_full_path(route.path)
        except PathPatternError as exc:
            log.msg(f"ingressd: {route.ingress}: {exc}; not matched on host {route.host!r}")
            continue
        found.append((pattern, None if route.conditions is None else compile_conditions(route.conditions), entry))
    return tuple(found)


def _first(candidates: _Candidates, request: Any):
    for test, entry in candidates:
        if test is None or (request is not None and test(request)):
            return entry
    return None


class ConditionalPathTable(Generic[E]):
    """The paths of one host whose routes have extra matches: path → candidates."""

    __slots__ = ("members", "exact", "regexes", "prefixes")

    def __init__(self, members: Iterable[E] = ()) -> None:
        self.members: list[E] = list(members)  # what it was built from, for reuse
        exact: dict[str, list[E]] = {}
        prefixes: dict[str, list[E]] = {}
        regexes: list[E] = []
        for entry in self.members:
            route = entry.route
            if route.path_type == EXACT:
                exact.setdefault(route.path, []).append(entry)
            elif route.path_type == REGULAR_EXPRESSION:
                regexes.append(entry)
            else:
                key = "".join("/" + segment for segment in route.path.split("/") if segment)  # "/" is ""
                prefixes.setdefault(key, []).append(entry)
        self.exact: dict[str, _Candidates] = {path: _candidates(group, _exact_order) for path, group in exact.items()}
        self.prefixes: dict[str, _Candidates] = {key: _candidates(group, _prefix_order)
                                                 for key, group in prefixes.items()}
        self.regexes: tuple = _regex_candidates(regexes)

    def match(self, path: str, request: Any = None) -> E | None:
        """The entry for a request (None: no route of this host). Without a ``request``, only
        routes without conditions can match."""
        candidates = self.exact.get(path)
        if candidates is not None:
            found = _first(candidates, request)
            if found is not None:
                return found
        for pattern, test, entry in self.regexes:
            if pattern.match(path) is not None and (test is None or (request is not None and test(request))):
                return entry
        prefixes = self.prefixes
        end = len(path)
        while end >= 0:
            candidates = prefixes.get(path[:end])
            if candidates is not None:
                found = _first(candidates, request)
                if found is not None:
                    return found
            end = path.rfind("/", 0, end)
        return None

    def entries(self) -> Iterable[E]:
        for candidates in (*self.exact.values(), *self.prefixes.values()):
            for _, entry in candidates:
                yield entry
        for _, _, entry in self.regexes:
            yield entry
