"""Regular-expression paths, matched the way ingress-nginx's generated nginx matches them.

Once one Ingress on a host asks for regular-expression paths (``use-regex``, or a
``rewrite-target`` that differs from its path), ingress-nginx renders *every* location of
that host as ``location ~* "^PATH"`` (template.go: ``enforceRegexModifier``,
``buildLocation``), sorted by the length of PATH, longest first, and nginx takes the first
that matches. So, for such a host:

- each path is a regular expression, anchored at the start of the request path only (a
  path ``/api`` also matches ``/apis``), matched case-insensitively;
- ``Exact`` and ``Prefix`` lose their meaning: every path is such a regular expression;
- the longest path (in characters of the pattern, not of what it matches) is tried first;
  among paths of the same length, the oldest Ingress first (as it keeps a conflicting
  path elsewhere);
- nothing matching: the default backend, as for any host.

A route with extra matches (``Conditions``: method, headers, query parameters) on such a host
is tried in the same order and chosen only when the request carries them; at the same
length, routes with more specific conditions first (``conditional_routing``'s tie-breakers),
and the same path is kept once per distinct set of conditions.

The request path matched is the normalised, percent-decoded one (nginx's ``$uri``).
Patterns are compiled by RE2 (google-re2), whose matching time is linear in the input: no
path can make a request's matching super-linear. A pattern RE2 cannot compile (look-around,
back-references, possessive quantifiers) is reported by ``compile_path``; the plugin that
turns regular-expression paths on rejects its Ingress with that message, and a path of
another Ingress that cannot be compiled is left out of the host's matching (logged).

A Gateway API ``RegularExpression`` path (``Route.path_type``) is not ingress-nginx's: it is
matched against the whole request path, case-sensitively (``compile_full_path``), as
Envoy-based implementations do; on a host in regular-expression mode it keeps that meaning.
"""

from __future__ import annotations

from typing import Any, Generic, Iterable, Protocol, TypeVar

from twisted.python import log

import re2

from ingressd.config.conditions import compile_conditions
from ingressd.config.model import REGULAR_EXPRESSION, Route
from ingressd.features import PathPatternError, compile_path, re2_compile, re2_reason


class FullPathPattern:
    """A Gateway API ``RegularExpression`` path (``compile_full_path``): ``match`` gives a match
    object only when the expression matches the whole request path."""

    __slots__ = ("_regex", "path")

    def __init__(self, regex: Any, path: str):
        self._regex = regex
        self.path = path

    def match(self, text: str) -> Any:
        # As UTF-8 bytes: the binding's str path maps character offsets on every call.
        return self._regex.fullmatch(text.encode("utf-8"))


def compile_full_path(path: str) -> FullPathPattern:
    """A Gateway API ``RegularExpression`` path, compiled by RE2: case-sensitive, matching the
    whole path (as Envoy's ``safe_regex``: ``/v[0-9]+`` matches ``/v2``, not ``/v2/x``). Raises
    ``PathPatternError`` saying why RE2 refuses it."""
    try:
        return FullPathPattern(re2_compile(path.encode("utf-8")), path)
    except re2.error as exc:
        raise PathPatternError(f"path {path!r} is not an RE2 regular expression ({re2_reason(exc)})") from None


class _HasRoute(Protocol):
    route: Route


E = TypeVar("E", bound=_HasRoute)


class RegexPathTable(Generic[E]):
    """The paths of a host in regular-expression mode: tried longest first, first match wins."""

    __slots__ = ("members", "ordered")

    def __init__(self, members: Iterable[E] = ()) -> None:
        self.members: list[E] = list(members)  # what it was built from, for reuse
        ordered: list[tuple[object, E, Any]] = []
        seen: set[tuple] = set()
        for entry in sorted(self.members, key=_order):
            path = entry.route.path
            conditions = entry.route.conditions
            if (path, conditions) in seen:  # the same location twice: the oldest Ingress keeps it
                continue
            try:
                pattern = compile_full_path(path) if entry.route.path_type == REGULAR_EXPRESSION else compile_path(path)
            except PathPatternError as exc:
                log.msg(f"ingressd: {entry.route.ingress}: {exc}; not matched on host {entry.route.host!r}")
                continue
            seen.add((path, conditions))
            ordered.append((pattern, entry, None if conditions is None else compile_conditions(conditions)))
        self.ordered = tuple(ordered)

    def match(self, path: str, request: Any = None) -> E | None:
        for pattern, entry, test in self.ordered:
            if pattern.match(path) is not None and (test is None or (request is not None and test(request))):
                return entry
        return None

    def entries(self) -> Iterable[E]:
        for _, entry, _ in self.ordered:
            yield entry


def _order(entry: _HasRoute) -> tuple:
    route = entry.route
    conditions = route.conditions
    rank = (0, 0, 0) if conditions is None else tuple(-count for count in conditions.rank)
    return (-len(route.path), rank, route.age_key)
