"""One TLSRoute → the TLS hosts it passes through (``PassthroughRoute``s) and its per-parent status.

A TLSRoute attaches to a Gateway's ``TLS`` listeners in ``Passthrough`` mode (``listeners``:
an HTTP or HTTPS listener does not admit it: NotAllowedByListeners), exactly as an HTTPRoute
attaches (``httproute.translate`` does the parents, sectionName and port, namespaces, the
hostname intersection and the status). Its hostnames, intersected with the listener's, are SNI
names (exact, or ``*.example.com``); a ClientHello naming one is spliced unterminated to the
rule's backendRefs (weighted; an unusable reference keeps its share, those connections are
closed: ResolvedRefs False with BackendNotFound, RefNotPermitted or InvalidKind), by
``tls.passthrough`` as the ``ssl-passthrough`` annotation's hosts are.

As the CRD requires: at least one hostname (a TLSRoute without would take every name) and one
rule (a second is left out, PartiallyInvalid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ingressd.config.gateway import httproute
from ingressd.config.gateway.backends import Services
from ingressd.config.gateway.grants import Grants
from ingressd.config.gateway.listeners import JudgedGateway
from ingressd.config.gateway.route_filters import Invalid
from ingressd.config.model import ObjectRef, PassthroughRoute, WeightedBackend

KIND = "TLSRoute"


@dataclass
class Translated(httproute.Translated):
    passthrough: list[PassthroughRoute] = field(default_factory=list)


def translate(route: Mapping, generation: int, gateways: Mapping[tuple[str, str], JudgedGateway],
              namespace_labels: Mapping[str, Mapping], services: Services, grants: Grants,
              controller: str) -> Translated:
    meta = route.get("metadata") or {}
    ref = ObjectRef(KIND, meta.get("namespace") or "default", meta.get("name") or "")
    has_hostnames = bool((route.get("spec") or {}).get("hostnames"))
    backends: list[tuple[WeightedBackend, ...]] = []

    def rules_of(raw_rules, namespace: str, services: Services, grants: Grants):
        problems: list[str] = []
        if not has_hostnames:
            return [], None, ["a TLSRoute needs at least one hostname (an SNI name)"]
        unresolved = None
        for index, raw in enumerate(raw_rules):
            if not isinstance(raw, dict):
                continue
            if backends:
                problems.append(f"rule {index}: a TLSRoute has one rule; left out")
                continue
            try:
                members, unresolved, _ = httproute.rule_backends(raw, KIND, namespace, services, grants)
            except Invalid as exc:
                problems.append(f"rule {index}: {exc}")
                continue
            backends.append(tuple(members) or (WeightedBackend(None, 1),))
        if not backends and not problems:
            problems.append("a TLSRoute needs a rule")
        # No matches: the rule makes no HTTP route; its hosts are passed through below.
        return [httproute.Rule([], members, ()) for members in backends], unresolved, problems

    done = httproute.translate(route, generation, gateways, namespace_labels, services, grants, controller,
                               kind=KIND, rules_of=rules_of)
    result = Translated(routes=[], parents=done.parents, problems=done.problems, attached=done.attached)
    if backends:
        hosts = dict.fromkeys(name for _, _, names in done.attached for name in names if name)
        result.passthrough = [PassthroughRoute(host, backends[0], ref) for host in hosts]
    return result
