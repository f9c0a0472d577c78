"""A route's extra matches, compiled: does a request carry the method, headers and query
parameters a route's ``Conditions`` ask for (Gateway API HTTPRouteMatch)?

``compile_conditions`` turns a ``model.Conditions`` into a test of a request, once per distinct
``Conditions`` (memoized) when the route table is built. The request is read as plugins read it
(``interfaces.RequestView``: ``method`` bytes, ``headers.pairs`` with lower-case names,
``query`` bytes). As the Gateway API says:

- the method is compared exactly (``GET`` is not ``get``);
- a header's name case-insensitively; a header sent several times is matched as its values
  joined with ``,`` (RFC 9110's combination); a header that is absent never matches;
- a query parameter's name exactly (case-sensitive), its first occurrence only, its name and
  value percent-decoded as UTF-8 (``+`` is a space); a parameter that is absent never matches;
- ``RegularExpression`` values are RE2 expressions (linear-time), matched against the whole
  value. An expression RE2 refuses makes a test that never matches (fail closed); the source
  that built the route is expected to have rejected it already.
"""

from __future__ import annotations

import functools
from typing import Any, Callable
from urllib.parse import unquote_plus

import re2
from twisted.python import log

from ingressd.config.model import REGULAR_EXPRESSION, Conditions, ValueMatch
from ingressd.features import re2_reason

Test = Callable[[Any], bool]

_OPTIONS = re2.Options()


def compile_value(match: ValueMatch) -> Callable[[str], bool]:
    """A test of one value (a header's, a parameter's) against ``match``."""
    if match.type == REGULAR_EXPRESSION:
        try:
            pattern = re2.compile(match.value, _OPTIONS)
        except re2.error as exc:
            log.msg(f"ingressd: the expression {match.value!r} for {match.name!r} cannot be compiled ({re2_reason(exc)}): "
                    "it never matches")
            return _never
        return lambda value: pattern.fullmatch(value) is not None
    expected = match.value
    return lambda value: value == expected


def _never(value: str) -> bool:
    return False


@functools.lru_cache(maxsize=4096)
def compile_conditions(conditions: Conditions) -> Test:
    """A test of a request: True when it carries everything ``conditions`` asks for."""
    method = conditions.method.encode("latin-1")
    headers = tuple((match.name.lower().encode("latin-1"), compile_value(match)) for match in conditions.headers)
    query = tuple((match.name, compile_value(match)) for match in conditions.query)

    def test(request: Any) -> bool:
        if method and request.method != method:
            return False
        if headers:
            pairs = request.headers.pairs
            for name, matches in headers:
                values = [value for key, value in pairs if key == name]
                if not values or not matches(b",".join(values).decode("latin-1")):
                    return False
        if query:
            parameters = query_parameters(request.query)
            for name, matches in query:
                value = parameters.get(name)
                if value is None or not matches(value):
                    return False
        return True

    return test


def query_parameters(query: bytes) -> dict[str, str]:
    """A query string's parameters by name, the first occurrence of each, percent-decoded."""
    found: dict[str, str] = {}
    if not query:
        return found
    for part in query.decode("utf-8", "replace").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        found.setdefault(unquote_plus(name, errors="replace"), unquote_plus(value, errors="replace"))
    return found
