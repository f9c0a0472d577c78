"""One GRPCRoute → its routes on our Gateways and its per-parent status.

A GRPCRoute shares an HTTPRoute's parents, hostnames, backends and status
(``config.gateway.httproute``); its rules differ:

- a method match (``Exact``) of a service and a method is the path ``/service/method``
  (``Exact``); of a service alone, every method of it (the prefix ``/service``); no method match,
  every path. A method alone and ``RegularExpression`` method matches would need a
  regular-expression path: such a rule is left out (PartiallyInvalid);
- header matches as an HTTPRoute's;
- filters: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef;
- its requests reach the backends as gRPC over HTTP/2 in clear (h2c: the ``GRPC`` upstream,
  as the ``backend-protocol: GRPC`` annotation does).
"""

from __future__ import annotations

import re
from typing import Mapping

from ingressd.config import filters as f
from ingressd.config.gateway import httproute, route_filters
from ingressd.config.gateway.backends import Services
from ingressd.config.gateway.grants import Grants
from ingressd.config.gateway.httproute import Rule, Translated
from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.model import EXACT, PREFIX, Conditions, WeightedBackend

KIND = "GRPCRoute"
# The backend protocol of every GRPCRoute route (the backend_protocol plugin's parsed value).
FEATURES = (("backend-protocol", "GRPC"),)
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_FILTERS = (f.RequestHeaderModifier, f.ResponseHeaderModifier, f.RequestMirror, f.ExtensionRef)


def translate(route: Mapping, generation: int, gateways, namespace_labels, services: Services, grants: Grants,
              controller: str) -> Translated:
    return httproute.translate(route, generation, gateways, namespace_labels, services, grants, controller,
                               kind=KIND, rules_of=_rules, features=FEATURES)


def _rules(raw_rules, namespace: str, services: Services, grants: Grants):
    rules: list[Rule] = []
    problems: list[str] = []
    unresolved = None
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            continue
        try:
            matches = [_match(match) for match in (raw.get("matches") or [{}])]
            members, problem, mirror_backend = httproute.rule_backends(raw, KIND, namespace, services, grants)
            unresolved = unresolved or problem
            found = route_filters.parse(raw.get("filters"), False, mirror_backend)
            if not all(isinstance(item, _FILTERS) for item in (*found, *(g for m in members for g in m.filters))):
                raise Invalid("a GRPCRoute's filters are RequestHeaderModifier, ResponseHeaderModifier, "
                              "RequestMirror and ExtensionRef")
        except Invalid as exc:
            problems.append(f"rule {index}: {exc}")
            continue
        rules.append(Rule(matches, tuple(members) or (WeightedBackend(None, 1),), found))
    return rules, unresolved, problems


def _match(raw: Mapping) -> tuple[str, str, Conditions | None]:
    method = raw.get("method") or {}
    if (method.get("type") or "Exact") != "Exact":
        raise Invalid(f"method match type {method.get('type')!r} is not supported")
    service, name = method.get("service"), method.get("method")
    for value in (service, name):
        if value is not None and not _NAME.match(str(value)):
            raise Invalid(f"{value!r} is not a gRPC service or method name")
    if service and name:
        path, path_type = f"/{service}/{name}", EXACT
    elif service:
        path, path_type = f"/{service}", PREFIX
    elif name:
        raise Invalid("a method match without a service is not supported")
    else:
        path, path_type = "/", PREFIX
    headers = httproute.values(raw.get("headers") or [], lower=True)
    return path, path_type, Conditions("", headers, ()) if headers else None
