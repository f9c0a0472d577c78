"""Misdirected requests (421): a request over TLS whose Host belongs to another Gateway HTTPS
listener than the one its connection's SNI name chose.

The Gateway API (GEP-3567, the conformance case HTTPRouteHTTPSListenerDetectMisdirectedRequests):
HTTPS listeners on one port are told apart by the SNI name; a client that reuses a connection
for another host (HTTP/2 connection coalescing, when one certificate covers both) must be told
to open one of its own: 421 Misdirected Request, whatever the certificates. Each name belongs to
the most specific listener that matches it: the listener of that exact hostname, else of the
longest wildcard covering it (``*.example.com``: any name below it), else the listener without
hostname, if any. The request is misdirected when its SNI name and its Host belong to two
different listeners; a connection without SNI, or a name no listener matches (an Ingress host
where no HTTPS listener lacks a hostname), is never judged here: Ingresses are served as before.

All the HTTPS listeners of our Gateways are served on ``--https``, so they are one port here;
two listeners with the same hostname (two Gateways) are one. Pure: built once per route table
(``config.entries.build_table`` from ``Config.https_listeners``), asked by the exchange.
"""

from __future__ import annotations

from typing import Iterable


class ListenerHostnames:
    """The hostnames of the HTTPS listeners on the TLS port ("" for one without hostname)."""

    __slots__ = ("_exact", "_wildcards", "_catch_all")

    def __init__(self, hostnames: Iterable[str]):
        names = {name.lower() for name in hostnames}
        self._exact = frozenset(name for name in names if name and not name.startswith("*."))
        # ".example.com" for "*.example.com", longest (most specific) first
        self._wildcards = tuple(sorted((name[1:] for name in names if name.startswith("*.")),
                                       key=lambda suffix: (-len(suffix), suffix)))
        self._catch_all = "" in names

    def listener_of(self, name: str) -> str | None:
        """The hostname of the listener ``name`` belongs to ("" without hostname), or None."""
        if name in self._exact:
            return name
        for suffix in self._wildcards:
            if name.endswith(suffix) and len(name) > len(suffix):
                return "*" + suffix
        return "" if self._catch_all else None

    def misdirected(self, server_name: str, host: str) -> bool:
        """Whether a request for ``host`` on a connection made for ``server_name`` (lower-case;
        "" when the client sent none) is answered 421."""
        if not server_name or server_name == host:
            return False
        chosen = self.listener_of(server_name)
        if chosen is None:
            return False
        wanted = self.listener_of(host)
        return wanted is not None and wanted != chosen
