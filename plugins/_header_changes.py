"""One change to a header list — names dropped, values set, lines added — applied in one place.

Every plugin that changes the headers of a request the backend is sent or of an answer the
client gets builds a ``HeaderChange`` from its own parsed settings and calls ``apply``:

- the annotations (``upstream_headers``: ``request-headers`` / ``remove-request-headers`` /
  ``upstream-vhost``; ``response_headers``: ``response-headers`` /
  ``remove-response-headers``), from ``_header_values.header_edits``; ``custom-headers``
  (``custom_headers``: nginx's ``more_set_headers``, the names dropped and the lines appended);
- the Gateway API's ``RequestHeaderModifier`` / ``ResponseHeaderModifier`` and ``URLRewrite``'s
  hostname (``gateway_filters``), from ``from_filter``.

The order of the work is the same for both: every header named in ``drop`` is removed; a set
value takes the place of the first removed header of its name (else it goes at the end); then
the ``add`` lines are appended (the Gateway API's ``add``: another line, never a replacement).
"""

from __future__ import annotations

from typing import Any

from ingressd import AnnotationError

from ._header_values import HOP_BY_HOP, Value, apply_edits


class HeaderChange:
    """Drop ``drop``, set ``pairs`` ((name, Value), expanded per request), append ``add`` ((name, bytes))."""

    __slots__ = ("drop", "pairs", "add")

    def __init__(self, drop: frozenset = frozenset(), pairs: tuple = (), add: tuple = ()):
        self.pairs = tuple(pairs)
        self.drop = frozenset(drop) | {name for name, _ in self.pairs}  # a set name replaces its old lines
        self.add = tuple(add)

    def __bool__(self) -> bool:
        return bool(self.drop or self.pairs or self.add)

    def apply(self, headers: list, exchange: Any) -> None:
        """Change ``headers`` (a list of (lower-case name, value) pairs) in place."""
        if self.drop:
            apply_edits(headers, self.drop, self.pairs, exchange)
        if self.add:
            headers.extend(self.add)


def from_filter(changes: Any, which: str) -> HeaderChange:
    """A Gateway API header modifier (``config.filters.HeaderChanges``) as a change; a hop-by-hop
    or framing name refused (ingressd frames every message itself)."""
    for name in (*(n for n, _ in changes.set), *(n for n, _ in changes.add), *changes.remove):
        if name.lower() in HOP_BY_HOP:
            raise AnnotationError(f"{which}: {name} is a hop-by-hop or framing header: ingressd sets it itself")
    pairs = tuple((name.lower().encode("ascii"), Value((value.encode("utf-8"),))) for name, value in changes.set)
    added = tuple((name.lower().encode("ascii"), value.encode("utf-8")) for name, value in changes.add)
    return HeaderChange(frozenset(name.lower().encode("ascii") for name in changes.remove), pairs, added)


def set_host(host: Value) -> HeaderChange:
    """The Host the backend is sent replaced (``upstream-vhost``, URLRewrite's ``hostname``)."""
    return HeaderChange(frozenset((b"host",)), ((b"host", host),))
