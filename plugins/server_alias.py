"""``server-alias``: more host names for a host's rules, as ingress-nginx's ``server_name HOST ALIAS…``.

ingress-nginx (internal/ingress/annotations/alias, controller.go createServers) attaches the
Ingress's aliases to the server of each host in its rules, so an alias serves *every* path of
that host, those of other Ingresses too, with the host's certificate. An alias that is itself a
host of some Ingress rule, or that an older Ingress already claimed, is skipped with a warning
("already defined in another server"): nothing is merged silently. The value is a
comma-separated list of host names (``*.`` wildcards allowed); anything else rejects the Ingress.
"""

from __future__ import annotations

import dataclasses
import re

from twisted.logger import Logger

from ingressd import Annotation, AnnotationError, HostRoute, hookimpl, values_in_use

_log = Logger()
_NAME = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def _parse_aliases(value: str) -> tuple[str, ...]:
    names = []
    for part in value.split(","):
        name = part.strip().lower().rstrip(".")
        if not name:
            continue
        if len(name) > 253 or not _NAME.match(name):
            raise AnnotationError(f"{part.strip()!r} is not a host name")
        names.append(name)
    return tuple(dict.fromkeys(names))


@hookimpl
def ingressd_annotations():
    return [Annotation("server-alias", _parse_aliases, (), "more host names for the same rules (comma-separated)")]


@hookimpl
def ingressd_host_routes(config, context):
    # Called on every rebuild: only the routes with aliases are ordered (a configuration without
    # any, the usual one, costs one pass over its routes instead of a sort and a dict per route),
    # and a route's features (one pair per declared annotation; every Ingress without annotations
    # of ours shares one tuple) are read once per tuple.
    # The distinct tuples first (``context.values_in_use``: followed from the last configuration, no pass
    # over the routes; they live in ``config`` for the whole call).
    tuples = values_in_use(config.routes) if context is None else context.values_in_use(config.routes)
    read = {key: dict(features).get("server-alias") or () for key, features in tuples.items()}
    if not any(read.values()):
        return []

    def _aliases(route) -> tuple[str, ...]:
        return read[id(route.features)]

    aliased = [route for route in config.routes if read[id(route.features)]]
    routes_by_host: dict[str, list] = {}
    for route in config.routes:
        routes_by_host.setdefault(route.host, []).append(route)
    tls_by_host = {tls.host: tls for tls in config.tls_hosts}
    claimed: dict[str, str] = {}
    added = []
    for route in sorted(aliased, key=lambda r: r.age_key):  # the oldest Ingress claims first
        for alias in _aliases(route):
            if alias in claimed and claimed[alias] == route.host:
                continue
            if alias in routes_by_host or alias in claimed:
                owner = "an Ingress rule" if alias in routes_by_host else f"host {claimed[alias]}"
                _log.warn("{ingress}: server-alias {alias} is already defined for {owner}; skipped",
                          ingress=str(route.ingress), alias=alias, owner=owner)
                continue
            claimed[alias] = route.host
            tls = tls_by_host.get(route.host)
            for served in routes_by_host[route.host]:
                added.append(HostRoute(
                    dataclasses.replace(served, host=alias), None,
                    dataclasses.replace(tls, host=alias) if tls is not None and served is routes_by_host[route.host][0]
                    else None))
    return added
