"""One HTTPRoute → its routes on our Gateways and its per-parent status.

Parents (``parentRefs``) that are not our Gateways or their ListenerSets are left alone (another
controller's). For
each of ours: the listeners it names (``sectionName``, ``port``), those that admit the route
(namespace and kind), those whose hostname intersects the route's (``hostnames``) → Accepted,
or the spec's reason (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname).

Each rule × match becomes one ``Route`` per host: path ``Exact`` / ``PathPrefix`` (segment-wise,
as the Ingress ``Prefix``) / ``RegularExpression`` (RE2, matching the whole path:
``regex_routing.compile_full_path``), method, header and query-parameter matches as
``Conditions``, the rule's filters (``route_filters``; a backendRef's own ride with its member and
run after them, only for the requests that go to it), its ``timeouts`` (``timeouts``:
``Route.timeouts``) and its backendRefs as the weighted set (``backends``), with the upstream
protocol their Service ports' ``appProtocol`` asks for (``rule_protocol``; ``backends``) and its
``retry`` as their retry policy (``retry``). A route is served only
on the kinds of listener it attached to (``Route.schemes``: HTTP listeners on the plain port, HTTPS
on the TLS one); one route serves both when it attached to both and its filters are the same on
both. A rule that cannot be served (an expression RE2 refuses, an invalid filter or timeout) is
left out and the route is PartiallyInvalid (Accepted=False when no rule is left); a backendRef
that cannot be used keeps its share and answers 500 for it (ResolvedRefs=False).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

import re2

from ingressd.config.gateway import retry, route_filters, timeouts
from ingressd.config.gateway.backends import Services, resolve
from ingressd.config.gateway.grants import Grants
from ingressd.config.gateway.hostnames import claimed_by_another, intersect
from ingressd.config.gateway.listeners import GROUP, LISTENER_SET, JudgedGateway, Listener
from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.gateway.status import condition
from ingressd.config.filters import RequestRedirect
from ingressd.config.model import (
    EXACT, PREFIX, REGULAR_EXPRESSION, Backend, Conditions, ObjectRef, Route, Timeouts, ValueMatch, WeightedBackend,
)
from ingressd.config.regex_routing import compile_full_path
from ingressd.features import PathPatternError, re2_reason

KIND = "HTTPRoute"
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


@dataclass
class Rule:
    matches: list  # (path, path type, Conditions | None)
    backends: tuple[WeightedBackend, ...]
    filters: tuple
    timeouts: Timeouts | None = None  # the rule's ``timeouts`` (request, backendRequest)
    features: tuple = ()  # parsed values for its routes (the backends' protocol: ``rule_protocol``)


@dataclass
class Translated:
    routes: list[Route] = field(default_factory=list)
    parents: list[dict] = field(default_factory=list)  # the status's parents (ours only)
    problems: list[str] = field(default_factory=list)  # left-out rules, for warnings
    attached: list[tuple[JudgedGateway, Listener, tuple[str, ...]]] = field(default_factory=list)


def translate(route: Mapping, generation: int, gateways: Mapping[tuple[str, str], JudgedGateway],
              namespace_labels: Mapping[str, Mapping], services: Services, grants: Grants,
              controller: str, kind: str = KIND, rules_of=None, features: tuple = ()) -> Translated:
    """``kind`` and ``rules_of`` (its rules → (rules, first unresolved reference, problems)) let a
    GRPCRoute share the parents, hostnames and status (``config.gateway.grpcroute``);
    ``features`` go on every route (a GRPCRoute's backend protocol)."""
    meta = route.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    ref = ObjectRef(kind, namespace, meta.get("name") or "")
    spec = route.get("spec") or {}
    hostnames = [str(name) for name in spec.get("hostnames") or []]
    result = Translated()
    parents = [(parent, gateways.get(_parent_key(parent, namespace)))
               for parent in spec.get("parentRefs") or [] if isinstance(parent, dict)
               and (parent.get("group") or GROUP) == GROUP
               and (parent.get("kind") or "Gateway") in ("Gateway", LISTENER_SET)]
    parents = [(parent, gateway) for parent, gateway in parents if gateway is not None]
    if not parents:
        return result
    rules, unresolved, problems = (rules_of or _rules)(spec.get("rules") or [], namespace, services, grants)
    result.problems = problems
    for parent, gateway in parents:
        accepted = _attach(parent, gateway, namespace, namespace_labels.get(namespace) or {}, hostnames, result,
                           kind)
        if accepted is None and not rules:
            accepted = ("UnsupportedValue", "no rule of this route can be served: " + "; ".join(problems))
        conditions = [condition("Accepted", accepted is None, accepted[0] if accepted else "Accepted",
                                accepted[1] if accepted else "accepted by ingressd", generation),
                      condition("ResolvedRefs", unresolved is None, unresolved.reason if unresolved else "ResolvedRefs",
                                unresolved.message if unresolved else "references resolved", generation)]
        if problems and rules:
            conditions.append(condition("PartiallyInvalid", True, "UnsupportedValue", "; ".join(problems),
                                        generation))
        result.parents.append({"parentRef": dict(parent), "controllerName": controller, "conditions": conditions})
    # host → listener kind → the first listener of that kind that brings the host (it gives the port)
    hosts: dict[str, dict[str, Listener]] = {}
    for gateway, listener, names in result.attached:
        others = [other.hostname for other in gateway.listeners if other is not listener and other.usable
                  and other.port == listener.port and _scheme(other) == _scheme(listener)]
        for name in names:
            if not claimed_by_another(name, listener.hostname, others):  # listener isolation
                hosts.setdefault(name, {}).setdefault(_scheme(listener), listener)
    created = str(meta.get("creationTimestamp") or "")
    for host, listeners in hosts.items():
        for rule in rules:
            backend = next((member.backend for member in rule.backends if member.backend is not None),
                           Backend(namespace, "", ""))
            for schemes, rule_filters, members in _per_scheme(rule, listeners):
                for path, path_type, conditions in rule.matches:
                    result.routes.append(Route(host=host, path=path, path_type=path_type, backend=backend,
                                               ingress=ref, created=created, conditions=conditions,
                                               backends=members, filters=rule_filters, features=features + rule.features,
                                               any_depth=host.startswith("*."), timeouts=rule.timeouts,
                                               schemes=schemes))
    return result


def _parent_key(parent: Mapping, namespace: str) -> tuple:
    """Where a parentRef's Gateway or ListenerSet is kept (``gateway_api``: ListenerSets under
    their kind)."""
    key = (str(parent.get("namespace") or namespace), str(parent.get("name") or ""))
    return key if (parent.get("kind") or "Gateway") == "Gateway" else (LISTENER_SET, *key)


def _scheme(listener: Listener) -> str:
    """The kind of port a listener is served on: "https" (TLS) or "http"."""
    return "https" if listener.protocol == "HTTPS" else "http"


def _per_scheme(rule, listeners: Mapping[str, Listener]) -> list[tuple[tuple[str, ...], tuple, tuple]]:
    """(the route's ``schemes``, its filters, its weighted members with their own filters) for each
    kind of listener a host came through: one route for both kinds (``schemes`` empty) when the
    filters come out the same for both."""
    found = [((scheme,), listener.filters + _with_listener_port(rule.filters, listener),
              tuple(dataclasses.replace(member, filters=_with_listener_port(member.filters, listener))
                    if member.filters else member for member in rule.backends))
             for scheme, listener in sorted(listeners.items())]
    if len(found) == 2 and found[0][1:] == found[1][1:]:
        return [((), *found[0][1:])]
    return found


def _with_listener_port(rule_filters: tuple, listener: Listener) -> tuple:
    """A redirect that names neither a scheme nor a port keeps the listener's declared port (the
    spec's rule), never the local port ingressd listens on: filled in here, where the listener
    is known; the scheme's default port (80 for HTTP, 443 for HTTPS) stays implicit (None)."""
    default = 443 if listener.protocol == "HTTPS" else 80
    if listener.port in (0, default):
        return rule_filters
    return tuple(dataclasses.replace(item, port=listener.port)
                 if isinstance(item, RequestRedirect) and item.port is None and item.scheme is None else item
                 for item in rule_filters)


def _attach(parent: Mapping, gateway: JudgedGateway, namespace: str, labels: Mapping, hostnames: list,
            result: Translated, kind: str = KIND) -> tuple[str, str] | None:
    """Attach to the parent's listeners; None when accepted, else (reason, message)."""
    listeners = gateway.listeners
    section = parent.get("sectionName")
    if section:
        listeners = [listener for listener in listeners if listener.name == section]
    port = parent.get("port")
    if port is not None:
        listeners = [listener for listener in listeners if listener.port == port]
    if not listeners:
        return ("NoMatchingParent", f"{gateway.ref} has no listener " + (f"{section!r} " if section else "")
                + (f"on port {port}" if port is not None else ""))
    allowed = [listener for listener in listeners if listener.usable and kind in listener.kinds
               and listener.admits_namespace(gateway.ref.namespace, namespace, labels)]
    if not allowed:
        return ("NotAllowedByListeners", f"no listener of {gateway.ref} admits {kind}s from namespace {namespace}")
    attached = []
    for listener in allowed:
        names = intersect(listener.hostname, hostnames)
        if names:
            attached.append((gateway, listener, names))
    if not attached:
        return ("NoMatchingListenerHostname", f"no hostname of the route matches a listener of {gateway.ref}")
    for _, listener, _ in attached:
        listener.attached += 1
    result.attached.extend(attached)
    return None



def rule_backends(raw: Mapping, kind: str, namespace: str, services: Services, grants: Grants,
                  prefix_match: bool = False):
    """A rule's backendRefs (HTTPRoute's or GRPCRoute's) → its weighted members (each with its
    backendRef's own ``filters``, parsed as a rule's: ``Invalid`` for one that cannot be served),
    the first reference that could not be used (None when all could), and how a mirror filter's
    backendRef is resolved the same way."""
    def mirror_backend(backend_ref: Mapping):
        member, _ = resolve({**backend_ref, "weight": 1}, kind, namespace, services, grants)
        return member.backend

    members = []
    unresolved = None
    for backend_ref in raw.get("backendRefs") or []:
        member, problem = resolve(backend_ref or {}, kind, namespace, services, grants)
        own = (backend_ref or {}).get("filters")
        if own:
            member = dataclasses.replace(member, filters=route_filters.parse(own, prefix_match, mirror_backend))
        members.append(member)
        if problem is not None and unresolved is None:
            unresolved = problem
    return members, unresolved, mirror_backend


def rule_protocol(members, services: Services, kind: str = KIND) -> str:
    """The one upstream protocol of a rule's usable members (by their ports' ``appProtocol``):
    one route has one upstream setting, so members that need different ones leave the rule out."""
    found = {services.upstream_protocol(member.backend, kind) for member in members if member.backend is not None}
    if len(found) > 1:
        raise Invalid("its backends' appProtocols need different upstream protocols "
                      f"({', '.join(sorted(str(p) for p in found))}): not supported")
    return found.pop() if found else "HTTP"


def _rules(raw_rules, namespace: str, services: Services, grants: Grants):
    rules: list[Rule] = []
    problems: list[str] = []
    unresolved = None
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            continue
        try:
            matches = [_match(match) for match in (raw.get("matches") or [{}])]
            prefix_match = all(path_type == PREFIX for _, path_type, _ in matches)
            members, problem, mirror_backend = rule_backends(raw, KIND, namespace, services, grants, prefix_match)
            unresolved = unresolved or problem
            filters = route_filters.parse(raw.get("filters"), prefix_match, mirror_backend)
            for member in members:
                if member.filters:
                    route_filters.check_together(filters + member.filters)
            rule_timeouts = timeouts.parse(raw.get("timeouts"))
            protocol = rule_protocol(members, services)
            rule_retry = retry.parse(raw.get("retry"))
        except Invalid as exc:
            problems.append(f"rule {index}: {exc}")
            continue
        # No backendRefs: every request is answered 500 (unless a filter answers first: a redirect).
        rules.append(Rule(matches, tuple(members) or (WeightedBackend(None, 1),), filters, rule_timeouts,
                          (() if protocol == "HTTP" else (("backend-protocol", protocol),))
                          + (() if rule_retry is None else ((retry.RETRY, rule_retry),))))
    return rules, unresolved, problems


def _match(raw: Mapping) -> tuple[str, str, Conditions | None]:
    path = raw.get("path") or {}
    kind = path.get("type") or "PathPrefix"
    value = str(path.get("value") if path.get("value") is not None else "/")
    if kind == REGULAR_EXPRESSION:
        try:
            compile_full_path(value)
        except PathPatternError as exc:
            raise Invalid(str(exc)) from None
    elif kind not in ("Exact", "PathPrefix"):
        raise Invalid(f"path type {kind!r} is not supported")
    elif not value.startswith("/") or "//" in value:
        raise Invalid(f"path {value!r} is invalid")
    method = str(raw.get("method") or "")
    if method and method not in _METHODS:
        raise Invalid(f"method {method!r} is not supported")
    headers = values(raw.get("headers") or [], lower=True)
    query = values(raw.get("queryParams") or [], lower=False)
    conditions = Conditions(method, headers, query) if method or headers or query else None
    return value, {"Exact": EXACT, REGULAR_EXPRESSION: REGULAR_EXPRESSION}.get(kind, PREFIX), conditions


def values(raws, lower: bool) -> tuple[ValueMatch, ...]:
    found: dict[str, ValueMatch] = {}
    for raw in raws:
        name = str((raw or {}).get("name") or "")
        kind = (raw or {}).get("type") or EXACT
        value = str((raw or {}).get("value") if (raw or {}).get("value") is not None else "")
        if not name:
            raise Invalid("a header or query match needs a name")
        if kind not in (EXACT, REGULAR_EXPRESSION):
            raise Invalid(f"match type {kind!r} is not supported")
        if kind == REGULAR_EXPRESSION:
            try:
                re2.compile(value)
            except re2.error as exc:
                raise Invalid(f"expression {value!r} for {name!r}: {re2_reason(exc)}") from None
        key = name.lower() if lower else name
        found.setdefault(key, ValueMatch(key, value, kind))  # the first of a name wins, as the spec says
    return tuple(found.values())
