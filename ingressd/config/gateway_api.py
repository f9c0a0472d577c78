"""The Gateway API source of routes: GatewayClass, Gateway, ListenerSet, HTTPRoute, GRPCRoute,
TLSRoute, BackendTLSPolicy and ReferenceGrant (``gateway.networking.k8s.io``) into a fragment of the one model.

Registered in ``ingressd.config.sources`` after the Ingress translator. A GatewayClass is ours
when its ``controllerName`` is ``TranslateSettings.gateway_controller``
(``--gateway-controller-name``, ``ingressd.io/gateway-controller`` by default); other classes,
their Gateways and the routes attached only to those are ignored entirely. The fragment holds
the HTTPRoutes' routes (``config.gateway.httproute``), the HTTPS listeners' certificates as TLS
hosts (``config.gateway.listeners``) and the status judged for every object of ours
(``Config.status``: written in cluster mode, shown on the admin page in file mode). GRPCRoutes
(``config.gateway.grpcroute``) are routes too, their backends reached over gRPC (h2c). TLSRoutes
(``config.gateway.tlsroute``) on TLS Passthrough listeners give ``Config.passthrough``: SNI names
whose connections are spliced unterminated to their backends. BackendTLSPolicies
(``config.gateway.backend_tls_policy``) make the routes to their Services go over verified TLS.
ListenerSets of our Gateways (``listeners.judge_listener_set``) are parents of their own, kept
with the Gateways under the key ``("ListenerSet", namespace, name)`` (a Gateway's is
``(namespace, name)``).
"""

from __future__ import annotations

from typing import Sequence

from ingressd.config.gateway import backend_client_cert, backend_tls_policy, grpcroute, httproute, listeners, tlsroute
from ingressd.config.gateway.backends import Services
from ingressd.config.gateway.grants import Grants
from ingressd.config.gateway.status import document, gateway_class_status, generation_of
from ingressd.config.kinds import GATEWAY_KINDS
from ingressd.config.model import Config, ObjectRef, Rejection, TLSHost
from ingressd.config.store import Snapshot, unpack

DEFAULT_CONTROLLER = "ingressd.io/gateway-controller"
_EMPTY = Config()


class GatewayTranslator:
    """``interfaces.RouteSource`` for the Gateway API kinds."""

    name = "gateway-api"
    kinds = GATEWAY_KINDS

    def translate(self, objects: Snapshot, settings: object = None, annotations: Sequence = ()) -> Config:
        classes = objects.get("GatewayClass") or {}
        if not classes:
            return _EMPTY
        return translate(objects, getattr(settings, "gateway_controller", None) or DEFAULT_CONTROLLER)


def _age(item: tuple) -> tuple:
    key, obj = item
    return (str((obj.get("metadata") or {}).get("creationTimestamp") or "9999"), key)


def _listener_sets(objects: Snapshot, gateways: dict, labels: dict, grants: Grants, secrets) -> None:
    """Judge the ListenerSets of our Gateways, oldest first (then namespace/name, as the spec
    orders them), into ``gateways``; each attached one counts on its Gateway."""
    found = sorted(((key, unpack(packed)) for key, packed in (objects.get(listeners.LISTENER_SET) or {}).items()),
                   key=_age)
    before: dict = {key: list(gateway.listeners) for key, gateway in gateways.items()}
    for (namespace, name), obj in found:
        parent = listeners.parent_of_listener_set(obj)
        gateway = gateways.get(parent) if parent is not None else None
        if gateway is None:
            continue  # another controller's Gateway, or none
        judged = listeners.judge_listener_set(obj, generation_of(obj), gateway, labels.get(namespace) or {},
                                              before[parent], grants, secrets)
        gateways[(listeners.LISTENER_SET, namespace, name)] = judged
        if judged.refused is None and judged.accepted:
            gateway.attached_sets += 1
            before[parent].extend(judged.listeners)


def translate(objects: Snapshot, controller: str = DEFAULT_CONTROLLER) -> Config:
    """The snapshot's Gateway API objects → routes, TLS hosts and status (pure)."""
    status: list = []
    ours: set[str] = set()
    for (_, name), packed in sorted((objects.get("GatewayClass") or {}).items()):
        obj = unpack(packed)
        if (obj.get("spec") or {}).get("controllerName") != controller:
            continue
        ours.add(name)
        generation = generation_of(obj)
        status.append((ObjectRef("GatewayClass", "", name), document(generation, gateway_class_status(generation))))
    if not ours:
        return _EMPTY
    grants = Grants(unpack(packed) for packed in (objects.get("ReferenceGrant") or {}).values())
    secrets = objects.get("Secret") or {}
    gateways: dict[tuple[str, str], listeners.JudgedGateway] = {}
    for key, packed in sorted((objects.get("Gateway") or {}).items()):
        obj = unpack(packed)
        if (obj.get("spec") or {}).get("gatewayClassName") not in ours:
            continue
        gateways[key] = listeners.judge(obj, generation_of(obj), grants, secrets, objects.get("ConfigMap") or {})
    labels = {name: (unpack(packed).get("metadata") or {}).get("labels") or {}
              for (_, name), packed in (objects.get("Namespace") or {}).items()}
    _listener_sets(objects, gateways, labels, grants, secrets)
    services = Services(objects.get("Service") or {}, objects.get("EndpointSlice") or {})
    routes: list = []
    warnings: list = []
    tls_hosts: list = []
    route_status: list = []
    passthrough: list = []
    policies = backend_tls_policy.Policies(objects) if objects.get(backend_tls_policy.KIND) else None
    translators = {httproute.KIND: httproute.translate, grpcroute.KIND: grpcroute.translate,
                   tlsroute.KIND: tlsroute.translate}
    found = [(kind, key, unpack(packed)) for kind in translators
             for key, packed in (objects.get(kind) or {}).items()]
    for kind, (namespace, name), obj in sorted(found, key=lambda item: _age(item[1:])):
        done = translators[kind](obj, generation_of(obj), gateways, labels, services, grants, controller)
        if not done.parents:
            continue
        ref = ObjectRef(kind, namespace, name)
        served, problems = done.routes, done.problems
        if policies is not None and served:
            served, left_out = backend_tls_policy.apply(served, policies, [g.ref for g, _, _ in done.attached])
            problems = problems + left_out
            served, left_out = backend_client_cert.present(served, [
                g.backend_certificate[0] for g in {id(g): g for g, _, _ in done.attached}.values()
                if g.backend_certificate[0] is not None])
            problems = problems + left_out
        routes.extend(served)
        passthrough.extend(getattr(done, "passthrough", ()))
        warnings.extend(Rejection(ref, problem) for problem in problems)
        route_status.append((ref, document(generation_of(obj), {"parents": done.parents})))
        for gateway, listener, hosts in done.attached:
            if listener.protocol == "HTTPS" and not listener.hostname:
                # A listener without hostname serves its certificate for the hosts routes bring.
                certificate = next((t for t in gateway.tls_hosts if t.host == ""), None)
                if certificate is not None:
                    tls_hosts.extend(TLSHost(host, certificate.secret, gateway.ref, covered_only=True)
                                     for host in hosts if host)
    used_secrets: dict = {}
    for gateway in gateways.values():
        tls_hosts[:0] = [t for t in gateway.tls_hosts if t.host]
        for secret in gateway.secrets:
            used_secrets.setdefault(secret.ref, secret)
        status.append((gateway.ref, document(gateway.generation, gateway.status())))
    for policy in policies.all if policies is not None else ():
        status.append((policy.ref, document(policy.generation, policy.status(controller))))
    # The HTTPS listeners served on the TLS port, by hostname: a request for another one's host
    # on a connection its SNI made for one is misdirected (421, tls/misdirected.py).
    https_listeners = sorted({listener.hostname or "" for gateway in gateways.values()
                              for listener in gateway.listeners if listener.protocol == "HTTPS" and listener.usable})
    return Config(routes=tuple(routes), tls_hosts=tuple(tls_hosts), secrets=tuple(used_secrets.values()),
                  warnings=tuple(warnings), status=tuple(status + route_status), passthrough=tuple(passthrough),
                  https_listeners=tuple(https_listeners))

