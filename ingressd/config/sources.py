"""Sources of routes: the translators registered in one place, the kinds they read, and the
merge of what they produce into one configuration.

A source of routes (``interfaces.RouteSource``: the Ingress translator, the Gateway API one
(its kinds read, its translation still empty)) declares the Kubernetes kinds it reads as ``KindSpec``s and turns a store snapshot
into a fragment of the one model (a ``Config`` holding only what it contributes). Everything
that used to list kinds by hand takes them from here: the store's kinds (``KINDS``), the file
provider, the Kubernetes provider's REST paths (``providers.kube.rest.RESOURCES``), its RBAC
calls (``providers.kube.config.API_CALLS``), and what the reflector keeps of an object
(``KindSpec.keep_metadata`` / ``keep_items``).

Sources are core built-ins listed in ``ROUTE_SOURCES``, not plugins: the kinds they read decide
the RBAC rules ingressd ships (checked against ``API_CALLS``) and the store's layout, which a
plugin installed later could not widen safely. Plugins extend what a route does (features),
sources decide which routes exist.

Merging (``merge``): the fragments are taken in ``ROUTE_SOURCES`` order (the Ingress translator
first). A route of a later source whose host, path, path type and extra matches (method,
headers, query) are exactly those of an earlier source's route is not served where the two
overlap (``Route.schemes``: the plain port, TLS, or both) and becomes a warning on its object:
an Ingress keeps what it serves when an HTTPRoute names the same host and path. An Ingress
route is served on both kinds, so an HTTPRoute attached to an HTTPS listener only is not
served at all; a later route served on both kinds beside an earlier one served on HTTPS only
keeps the plain port (narrowed to ``schemes=("http",)``) and is warned for TLS. Routes that differ in any match coexist, and the route table's precedence decides
between them. The first source with a default backend gives it; the rest is concatenated. A
TLS host passed through (``Config.passthrough``: a TLSRoute) whose name an earlier source's
route serves is not passed through and becomes a warning: the Ingress keeps its host's TLS.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from ingressd.config.gateway_api import GatewayTranslator
from ingressd.config.kinds import KindSpec
from ingressd.config.model import Config, Rejection, Route
from ingressd.config.translate import Translator


# Every source of routes, in merge order: a class per source (``interfaces.RouteSource``),
# instantiated once per server (a translator keeps a cache between builds).
ROUTE_SOURCES: tuple[type, ...] = (Translator, GatewayTranslator)


def kind_specs(sources: Iterable[type] = ROUTE_SOURCES) -> tuple[KindSpec, ...]:
    """The kinds the sources read, each once, in the order first declared. Two sources may
    both read a kind (Services, Secrets) only if they declare it alike."""
    found: dict[str, KindSpec] = {}
    for source in sources:
        name = source.name
        for spec in source.kinds:
            known = found.setdefault(spec.kind, spec)
            if known != spec:
                raise ValueError(f"route source {name!r} declares {spec.kind} unlike another source: "
                                 f"{spec} != {known}")
    return tuple(found.values())


KIND_SPECS: tuple[KindSpec, ...] = kind_specs()
KINDS: tuple[str, ...] = tuple(spec.kind for spec in KIND_SPECS)
SPECS: dict[str, KindSpec] = {spec.kind: spec for spec in KIND_SPECS}


def new_translators() -> list:
    """A fresh translator of every source, in merge order."""
    return [source() for source in ROUTE_SOURCES]


# -- merging --------------------------------------------------------------------------


def match_key(route: Route) -> tuple:
    """What a request must carry to match ``route``: equal keys are the same route."""
    return (route.host, route.path, route.path_type, route.conditions)


def merge(fragments: Sequence[Config]) -> Config:
    """One configuration from the sources' fragments (see the module's docstring)."""
    present = [fragment for fragment in fragments if fragment != _EMPTY]
    if len(present) <= 1:
        return present[0] if present else (fragments[0] if fragments else _EMPTY)
    routes: list[Route] = []
    owners: dict[tuple, tuple[Route, frozenset]] = {}  # match key → (first owner, schemes owned)
    warnings: list[Rejection] = []
    rejections: list[Rejection] = []
    tls_hosts: list = []
    secrets: dict = {}
    default_backend = None
    passthrough: list = []
    for index, fragment in enumerate(present):
        if fragment.passthrough:
            hosts = {}  # an earlier source's host keeps its TLS (terminated)
            for route in routes:
                hosts.setdefault(route.host, route)
        for item in fragment.passthrough:
            owner = hosts.get(item.host)
            if owner is not None:
                warnings.append(Rejection(item.source, f"TLS for {item.host} is terminated for {owner.ingress}, "
                                                       "which takes precedence: not passed through"))
            else:
                passthrough.append(item)
        added: dict[tuple, list] = {}
        for route in fragment.routes:
            key = match_key(route)
            wanted = _schemes_of(route)
            taken = owners.get(key)
            if taken is not None:
                owner, owned = taken
                left = tuple(scheme for scheme in wanted if scheme not in owned)
                if len(left) < len(wanted):
                    where = "" if not left else f" on {'/'.join(s for s in wanted if s in owned).upper()}"
                    warnings.append(Rejection(
                        route.ingress, f"{route.host or '*'}{route.path} ({route.path_type}) is served by "
                                       f"{owner.ingress}, which takes precedence{where}"))
                    if not left:
                        continue
                    route = dataclasses.replace(route, schemes=left)
            owner_schemes = added.setdefault(key, [route, set()])
            owner_schemes[1].update(_schemes_of(route))
            routes.append(route)
        for key, (route, schemes) in added.items():
            if key in owners:
                owners[key] = (owners[key][0], owners[key][1] | schemes)
            else:
                owners[key] = (route, frozenset(schemes))
        if default_backend is None:
            default_backend = fragment.default_backend
        tls_hosts.extend(fragment.tls_hosts)
        for secret in fragment.secrets:
            secrets.setdefault(secret.ref, secret)
        rejections.extend(fragment.rejections)
        warnings.extend(fragment.warnings)
    return dataclasses.replace(
        present[0], routes=tuple(routes), default_backend=default_backend, tls_hosts=tuple(tls_hosts),
        secrets=tuple(secrets.values()), rejections=tuple(rejections), warnings=tuple(warnings),
        status=tuple(item for fragment in present for item in fragment.status), passthrough=tuple(passthrough),
        https_listeners=tuple(name for fragment in present for name in fragment.https_listeners))


_BOTH = ("http", "https")


def _schemes_of(route: Route) -> tuple[str, ...]:
    """The listener kinds a route is served on (``Route.schemes``; empty: both)."""
    return route.schemes or _BOTH


_EMPTY = Config()
