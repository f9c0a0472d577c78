"""The server-wide block lists of ingress-nginx's ConfigMap: 403 for the clients they name.

Options (and the ConfigMap keys of the same names, applied live): ``--block-cidrs`` (client
addresses and CIDRs: nginx's ``deny`` in the http block), ``--block-user-agents`` and
``--block-referers`` (nginx ``map`` keys on ``$http_user_agent`` and ``$http_referer``: an
entry is an exact value, compared without regard to case, or a regular expression after
``~`` (case-sensitive) or ``~*`` (case-insensitive), found anywhere in the value; RE2 syntax).
Every route gets the check, before any other feature (ingress-nginx: for every server). The
address checked is ``exchange.client_ip``, the real client as the forwarding settings define it.
A list that does not parse is refused at start (the option) or refuses the ConfigMap change.
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

from ingressd import AnnotationError, Option, Phase, hookimpl, parse_list, re2_reason
from ingressd import same_for_every_path

from ._cidr import CidrMatcher, parse_cidr_list
from ._responses import plain

_RE2 = re2.Options()
_RE2.log_errors = False


@dataclass(frozen=True)
class ValueList:
    """Exact values (lower-cased) and patterns, as nginx's ``map`` reads its keys."""

    exact: frozenset = frozenset()
    patterns: tuple = ()  # compiled RE2 patterns

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)

    def matches(self, value: bytes | None) -> bool:
        if value is None:
            return False
        text = value.decode("latin-1")
        if text.lower() in self.exact:
            return True
        return any(pattern.search(text) for pattern in self.patterns)


def parse_value_list(value: str) -> ValueList:
    """``"~*curl, ~^Bot/, BadAgent 1.0"`` → a ``ValueList``; a pattern RE2 cannot compile raises."""
    exact, patterns = set(), []
    for item in parse_list(value):
        if len(item) > 1 and item[0] == item[-1] == '"':
            item = item[1:-1]
        if item.startswith("~"):
            caseless = item.startswith("~*")
            source = item[2:] if caseless else item[1:]
            try:
                patterns.append(re2.compile(("(?i)" if caseless else "") + source, _RE2))
            except re2.error as exc:
                raise AnnotationError(f"{item!r} is not a regular expression RE2 reads: {re2_reason(exc)}") from None
        else:
            exact.add(item.lower())
    return ValueList(frozenset(exact), tuple(patterns))


def _cidrs(value) -> tuple:
    return parse_cidr_list(value) if isinstance(value, str) else tuple(value or ())


def _values(value) -> ValueList:
    return parse_value_list(value) if isinstance(value, str) else (value or ValueList())


class BlockLists:
    """Phase REWRITE (first): 403 for a blocked client address, User-Agent or Referer."""

    phase = Phase.REWRITE - 1

    def __init__(self, cidrs: CidrMatcher, agents: ValueList, referers: ValueList):
        self._cidrs = cidrs
        self._agents = agents
        self._referers = referers

    def request(self, exchange):
        if self._cidrs and exchange.client_ip in self._cidrs:
            return plain(403)
        if self._agents and self._agents.matches(exchange.headers.get(b"user-agent")):
            return plain(403)
        if self._referers and self._referers.matches(exchange.headers.get(b"referer")):
            return plain(403)
        return None


@hookimpl
def ingressd_options():
    return [
        Option("block-cidrs", (), "client addresses and CIDRs refused with 403 on every route (comma-separated)",
               parse_cidr_list),
        Option("block-user-agents", ValueList(), "User-Agent values (exact, ~regex, ~*regex) refused with 403 "
               "(comma-separated)", parse_value_list),
        Option("block-referers", ValueList(), "Referer values (exact, ~regex, ~*regex) refused with 403 "
               "(comma-separated)", parse_value_list),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    settings = context.settings if context is not None else {}
    cidrs = _cidrs(settings.get("block_cidrs"))
    agents = _values(settings.get("block_user_agents"))
    referers = _values(settings.get("block_referers"))
    if not cidrs and not agents and not referers:
        return None
    return BlockLists(CidrMatcher(cidrs), agents, referers)
