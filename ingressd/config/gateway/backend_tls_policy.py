"""BackendTLSPolicy (``gateway.networking.k8s.io/v1``): how the routes' requests to a Service go
over TLS, judged once per build, and put on the routes whose backends it targets.

A policy targets Services of its own namespace (``targetRefs``: group ``""``, kind ``Service``,
optionally ``sectionName``, a port name of the Service; a section-specific policy wins over one
for the whole Service). ``validation.caCertificateRefs`` name ConfigMaps of its namespace whose
``ca.crt`` holds the trusted CAs; ``hostname`` is the SNI name sent and, unless
``subjectAltNames`` are given, the name the certificate must carry; ``subjectAltNames``
(``Hostname`` or ``URI``) are then what it must carry instead (any one). The result is a
``BackendTLS`` (``features.BackendTLS``, as the ``proxy-ssl-*`` annotations make it: verified,
the chain against those CAs), carried to the route as the parsed value ``BACKEND_TLS`` that the
``backend_protocol`` plugin turns into the route's upstream: HTTPS (GRPCS for a GRPCRoute).

A policy that cannot be honoured never lets a request go in clear or unverified: a missing
ConfigMap, one without a readable ``ca.crt`` (InvalidCACertificateRef), a reference of another
kind (InvalidKind) → ``Accepted`` False NoValidCACertificate, and the route's requests to the
Service are answered 500 (the value is then a ``Refused`` reason). ``wellKnownCACertificates``
is not supported (Accepted False, Invalid: the spec's answer for an implementation without it;
the requests are answered 500 too). Two policies on one target: the older (then by
namespace/name) wins, the other is Accepted False, Conflicted.

Status (the spec's ``PolicyStatus``): ``ancestors``, one per Gateway of ours whose routes send to
a targeted Service, each with ``Accepted`` and ``ResolvedRefs`` (written in cluster mode by the
Gateway status writer, ingressd's ancestor entries only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from cryptography import x509

from ingressd.config.gateway.status import condition
from ingressd.config.model import ObjectRef
from ingressd.config.store import unpack
from ingressd.features import BackendTLS

KIND = "BackendTLSPolicy"
BACKEND_TLS = "gateway-backend-tls"  # the route value: a BackendTLS, or a Refused
_SAN_KINDS = ("Hostname", "URI")


@dataclass(frozen=True)
class Refused:
    """The policy on a route's backend cannot be honoured: its requests are answered 500."""

    reason: str


@dataclass
class Policy:
    ref: ObjectRef
    generation: int
    created: str
    targets: list[tuple[str, str | None]]  # (Service name, port name or None)
    tls: BackendTLS | Refused
    accepted: tuple[str, str] | None = None  # (reason, message) when not Accepted
    resolved: tuple[str, str] | None = None  # (reason, message) when refs not resolved
    ancestors: dict = field(default_factory=dict)  # Gateway ObjectRef → True (ordered)

    def status(self, controller: str) -> dict:
        gen = self.generation
        conditions = [
            condition("Accepted", self.accepted is None, self.accepted[0] if self.accepted else "Accepted",
                      self.accepted[1] if self.accepted else "the policy is applied to its Services' routes", gen),
            condition("ResolvedRefs", self.resolved is None, self.resolved[0] if self.resolved else "ResolvedRefs",
                      self.resolved[1] if self.resolved else "references resolved", gen),
        ]
        return {"ancestors": [{"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                               "namespace": gateway.namespace, "name": gateway.name},
                               "controllerName": controller, "conditions": conditions}
                              for gateway in self.ancestors]}


class Policies:
    """The snapshot's BackendTLSPolicies, judged, looked up by the backend they apply to."""

    def __init__(self, objects: Mapping):
        self.all: list[Policy] = []
        self._services = objects.get("Service") or {}
        config_maps = objects.get("ConfigMap") or {}
        found = []
        for (namespace, name), packed in (objects.get(KIND) or {}).items():
            obj = unpack(packed)
            meta = obj.get("metadata") or {}
            found.append((str(meta.get("creationTimestamp") or "9999"), namespace, name, obj))
        self._by_target: dict[tuple[str, str, str | None], Policy] = {}
        self.beaten: dict[int, list[Policy]] = {}  # id(winner) → the policies Conflicted by it
        for created, namespace, name, obj in sorted(found, key=lambda item: item[:3]):
            policy = _judge(obj, namespace, name, created, config_maps)
            self.all.append(policy)
            for service, section in policy.targets:
                key = (namespace, service, section)
                if key in self._by_target:
                    winner = self._by_target[key].ref
                    policy.accepted = ("Conflicted", f"{winner.namespace}/{winner.name} is older and targets "
                                                     f"Service {service}" + (f" port {section}" if section else ""))
                    policy.tls = Refused(policy.accepted[1])
                    self.beaten.setdefault(id(self._by_target[key]), []).append(policy)
                    continue
                self._by_target[key] = policy

    def for_backend(self, namespace: str, service: str, port: str) -> Policy | None:
        """The policy of a Service port (its number, as ``Backend.port``), or None."""
        if not self._by_target:
            return None
        section = self._port_name(namespace, service, port)
        return (self._by_target.get((namespace, service, section)) if section else None) or \
            self._by_target.get((namespace, service, None))

    def _port_name(self, namespace: str, service: str, port: str) -> str | None:
        packed = self._services.get((namespace, service))
        if packed is None:
            return None
        for item in (unpack(packed).get("spec") or {}).get("ports") or []:
            if isinstance(item, dict) and str(item.get("port")) == port:
                return item.get("name") or None
        return None


def _judge(obj: Mapping, namespace: str, name: str, created: str, config_maps: Mapping) -> Policy:
    meta = obj.get("metadata") or {}
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else 1
    spec = obj.get("spec") or {}
    targets = []
    for ref in spec.get("targetRefs") or []:
        if isinstance(ref, dict) and str(ref.get("group") or "") == "" and ref.get("kind") == "Service":
            targets.append((str(ref.get("name") or ""), str(ref["sectionName"]) if ref.get("sectionName") else None))
    policy = Policy(ObjectRef(KIND, namespace, name), generation, created, targets, Refused("not judged"))
    validation = spec.get("validation") or {}
    hostname = str(validation.get("hostname") or "").lower()
    refs = validation.get("caCertificateRefs") or []
    if not targets:
        policy.accepted = ("Invalid", "no targetRef to a Service (group \"\", kind Service)")
    elif validation.get("wellKnownCACertificates"):
        policy.accepted = ("Invalid", f"wellKnownCACertificates {validation.get('wellKnownCACertificates')!r} is not "
                                      "supported by ingressd: name the CAs in caCertificateRefs")
    elif not hostname:
        policy.accepted = ("Invalid", "validation.hostname is required")
    elif not refs:
        policy.accepted = ("Invalid", "validation.caCertificateRefs is required")
    if policy.accepted is not None:
        policy.tls = Refused(policy.accepted[1])
        return policy
    sans = []
    for san in validation.get("subjectAltNames") or []:
        kind = (san or {}).get("type")
        value = (san or {}).get("hostname" if kind == "Hostname" else "uri")
        if kind not in _SAN_KINDS or not value:
            policy.accepted = ("Invalid", f"subjectAltName {san!r} is not a Hostname or URI with its value")
            policy.tls = Refused(policy.accepted[1])
            return policy
        sans.append((kind, str(value)))
    bundle = b""
    for ref in refs:
        group, kind, ca_name = str((ref or {}).get("group") or ""), (ref or {}).get("kind"), (ref or {}).get("name")
        if group != "" or kind != "ConfigMap":
            policy.resolved = ("InvalidKind", f"caCertificateRef {group or 'core'}/{kind} {ca_name} is not a ConfigMap")
            break
        packed = config_maps.get((namespace, str(ca_name or "")))
        ca = ((unpack(packed).get("data") or {}).get("ca.crt") if packed is not None else None) or ""
        try:
            if not x509.load_pem_x509_certificates(ca.encode()):
                raise ValueError("no certificate")
        except (ValueError, TypeError, AttributeError):
            why = "does not exist" if packed is None else "has no readable ca.crt (PEM certificates)"
            policy.resolved = ("InvalidCACertificateRef", f"ConfigMap {namespace}/{ca_name} {why}")
            break
        bundle += ca.encode() + b"\n"
    if policy.resolved is not None:
        # Every reference must be usable: a request is never verified against fewer CAs than asked.
        policy.accepted = ("NoValidCACertificate", policy.resolved[1])
        policy.tls = Refused(policy.resolved[1])
        return policy
    policy.tls = BackendTLS(verify=True, verify_name=hostname, verify_depth=10, server_name=hostname, ca=bundle,
                            subject_alt_names=tuple(sans))
    return policy


def apply(routes, policies: Policies, gateways) -> tuple[list, list[str]]:
    """``routes`` (one route object's) with the policy of their backends as the value
    ``BACKEND_TLS``; the policies used get ``gateways`` (ObjectRefs) as ancestors. A route whose
    backends do not all share one policy (or all have none) is left out, with a problem: one
    route has one upstream setting, and a backend with a policy is never sent to in clear."""
    kept, problems = [], []
    for route in routes:
        members = [member.backend for member in (route.backends or ()) if member.backend is not None] \
            or ([route.backend] if route.backend is not None and route.backend.service else [])
        found = [policies.for_backend(backend.namespace, backend.service, backend.port) for backend in members]
        if not any(found):
            kept.append(route)
            continue
        if any(policy is not found[0] for policy in found):
            problems.append(f"{route.host or '*'}{route.path}: its backends do not share one BackendTLSPolicy "
                            "(not supported: the rule is not served)")
            continue
        policy = found[0]
        for gateway in gateways:  # the Conflicted ones say so on the same ancestors
            for judged in (policy, *policies.beaten.get(id(policy), ())):
                judged.ancestors.setdefault(gateway, True)
        kept.append(dataclasses.replace(route, features=route.features + ((BACKEND_TLS, policy.tls),)))
    return kept, problems
