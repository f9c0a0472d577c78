"""A Gateway's listeners, judged: which are usable, which routes each admits, the
certificates its HTTPS listeners serve, and the Gateway's status (but for ``attachedRoutes``,
which the routes decide).

Supported: protocol ``HTTP`` and ``HTTPS`` (``tls.mode: Terminate``, ``certificateRefs`` to
``kubernetes.io/tls`` Secrets; another namespace's only with a ReferenceGrant), and ``TLS`` with
``tls.mode: Passthrough`` (TLSRoutes: the connection spliced by SNI, unterminated; ``Terminate``
on a TLS listener is not Accepted: UnsupportedValue); hostnames;
``allowedRoutes`` by namespace (``Same``, the default; ``All``; ``Selector`` over the
Namespaces' labels) and kind (HTTPRoute and GRPCRoute by default, TLSRoute on a TLS listener).
Other protocols are not Accepted (UnsupportedProtocol). Listeners on one port with one hostname
are Conflicted (both kept out); HTTPS and TLS listeners may share a port (SNI tells them apart).
A Gateway's ``spec.tls.frontend`` (``frontend_tls``) makes its HTTPS listeners (and its
ListenerSets') ask for client certificates: the validation rides on the listener's routes
(``Listener.filters``); an unusable one leaves the listener unserved (NoValidCACertificate).
In file mode the declared ports are not bound: HTTP listeners are served on ``--http``, HTTPS
and TLS listeners on ``--https`` (docs/gateway-api.md).

A Gateway with ``spec.infrastructure.parametersRef`` is not Accepted (InvalidParameters: ingressd
reads no parameters kind) and none of its listeners is served.

A ListenerSet (``judge_listener_set``) brings more listeners to a Gateway that admits it
(``spec.allowedListeners``: ``None``, the default; ``Same``; ``All``; ``Selector``); routes attach
to it as a parent of its own (kind ``ListenerSet``), never through the Gateway. Its listeners are
judged as a Gateway's, in its own namespace (``allowedRoutes: Same``, certificateRefs and their
ReferenceGrants from a ``ListenerSet``); one that conflicts with a listener before it (the
Gateway's, then older ListenerSets', as the spec orders them) is not served (Conflicted), and a
listener of a protocol not served on the port of one before it is a ``ProtocolConflict`` (not
UnsupportedProtocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ingressd.config.gateway import backend_client_cert
from ingressd.config.gateway.frontend_tls import Frontend
from ingressd.config.gateway.grants import Grants
from ingressd.config.gateway.status import condition
from ingressd.config.model import ObjectRef, SecretData, TLSHost
from ingressd.config.store import unpack
from ingressd.config.translate import secret_data

GROUP = "gateway.networking.k8s.io"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")  # the route kinds served on HTTP and HTTPS listeners
TLS_ROUTE_KINDS = ("TLSRoute",)  # and on TLS listeners (tls.mode Passthrough)
LISTENER_SET = "ListenerSet"
_PROTOCOLS = ("HTTP", "HTTPS", "TLS")
# Protocols that may share a port: HTTPS and TLS listeners are told apart by the SNI name.
_PORT_SHARING = {"HTTP": "HTTP", "HTTPS": "TLS", "TLS": "TLS"}


@dataclass
class Listener:
    name: str
    protocol: str
    port: int
    hostname: str | None
    from_: str = "Same"
    selector: Mapping | None = None
    kinds: tuple[str, ...] = ROUTE_KINDS
    conditions: list = field(default_factory=list)
    usable: bool = True  # routes attach to it
    attached: int = 0
    # Filters every route served through it carries first (the Gateway's frontend client
    # certificate validation: ``frontend_tls``).
    filters: tuple = ()

    def admits_namespace(self, gateway_namespace: str, namespace: str, labels: Mapping) -> bool:
        if self.from_ == "All":
            return True
        if self.from_ == "Selector":
            return self.selector is not None and selects(self.selector, labels)
        return namespace == gateway_namespace


@dataclass
class JudgedGateway:
    ref: ObjectRef
    generation: int
    listeners: list[Listener]
    tls_hosts: list[TLSHost]
    secrets: list[SecretData]
    addresses: list
    accepted: bool = True
    # A Gateway's ``allowedListeners`` (from, selector); a ListenerSet's: why it is not
    # attached (reason, message), None when it is. ``attached_sets``: ListenerSets attached.
    allowed_listeners: tuple = ("None", None)
    refused: tuple[str, str] | None = None
    attached_sets: int = 0
    frontend: Frontend | None = None  # spec.tls.frontend (a ListenerSet's listeners use its Gateway's)
    # spec.tls.backend.clientCertificateRef: (the certificate presented to TLS backends or None,
    # (reason, message) when it cannot be used or None); (None, None) when none is named.
    backend_certificate: tuple = (None, None)
    # Why ``spec.infrastructure.parametersRef`` cannot be used (the Gateway is not served), or None.
    invalid_parameters: str | None = None

    def listener_named(self, name: str) -> Listener | None:
        return next((listener for listener in self.listeners if listener.name == name), None)

    def admits_listener_set(self, namespace: str, labels: Mapping) -> bool:
        from_, selector = self.allowed_listeners
        if from_ == "All":
            return True
        if from_ == "Selector":
            return selector is not None and selects(selector, labels)
        return from_ == "Same" and namespace == self.ref.namespace

    def status(self) -> dict:
        generation = self.generation
        if self.ref.kind == LISTENER_SET:
            return self._set_status()
        programmed = self.accepted and any(listener.usable for listener in self.listeners)
        refused = ("InvalidParameters", self.invalid_parameters) if self.invalid_parameters else \
            ("ListenersNotValid", "no listener is valid")
        return {
            "addresses": self.addresses,
            "conditions": [
                condition("Accepted", self.accepted, "Accepted" if self.accepted else refused[0],
                          "served by ingressd" if self.accepted else refused[1], generation),
                condition("Programmed", programmed, "Programmed" if programmed else "Invalid",
                          "served by ingressd" if programmed else "no listener can be served", generation),
                *self._backend_certificate_condition(),
                *([condition("InsecureFrontendValidationMode", True, "ConfigurationChanged",
                             "a frontend validation is AllowInsecureFallback: clients without a valid "
                             "certificate are served", generation)]
                  if self.frontend is not None and self.frontend.insecure else []),
            ],
            "listeners": [{
                "name": listener.name,
                "supportedKinds": [{"group": GROUP, "kind": kind} for kind in listener.kinds],
                "attachedRoutes": listener.attached,
                "conditions": listener.conditions,
            } for listener in self.listeners],
            **({"attachedListenerSets": self.attached_sets} if self.allowed_listeners[0] != "None" else {}),
        }

    def _backend_certificate_condition(self) -> list:
        """ResolvedRefs, when ``tls.backend.clientCertificateRef`` names a certificate."""
        if self.backend_certificate == (None, None):
            return []
        reason, message = self.backend_certificate[1] or ("ResolvedRefs", "references resolved")
        return [condition("ResolvedRefs", self.backend_certificate[1] is None, reason, message, self.generation)]

    def _set_status(self) -> dict:
        generation = self.generation
        usable = self.refused is None and any(listener.usable for listener in self.listeners)
        reason, message = self.refused or (("Accepted", "attached to its Gateway") if usable else
                                           ("ListenersNotValid", "no listener is valid"))
        return {
            "conditions": [
                condition("Accepted", usable, reason, message, generation),
                condition("Programmed", usable, "Programmed" if usable else reason,
                          "served by ingressd" if usable else message, generation),
            ],
            "listeners": [{
                "name": listener.name,
                "supportedKinds": [{"group": GROUP, "kind": kind} for kind in listener.kinds],
                "attachedRoutes": listener.attached,
                "conditions": listener.conditions,
            } for listener in self.listeners],
        }


def selects(selector: Mapping, labels: Mapping) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def judge(gateway: Mapping, generation: int, grants: Grants, secrets: Mapping,
          config_maps: Mapping | None = None) -> JudgedGateway:
    meta = gateway.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    ref = ObjectRef("Gateway", namespace, meta.get("name") or "")
    spec = gateway.get("spec") or {}
    frontend = Frontend(gateway, ref, grants, config_maps or {})
    listeners: list[Listener] = []
    tls_hosts: list[TLSHost] = []
    used: list[SecretData] = []
    for raw in spec.get("listeners") or []:
        if not isinstance(raw, dict):
            continue
        listener = Listener(str(raw.get("name") or ""), str(raw.get("protocol") or ""),
                            raw.get("port") if isinstance(raw.get("port"), int) else 0,
                            str(raw["hostname"]).lower() if raw.get("hostname") else None)
        listeners.append(listener)
        _judge_listener(listener, raw, ref, generation, grants, secrets, tls_hosts, used, frontend)
    _conflicts(listeners, generation)
    addresses = [{"type": str(a.get("type") or "IPAddress"), "value": str(a.get("value") or "")}
                 for a in spec.get("addresses") or [] if isinstance(a, dict)]
    allowed = ((spec.get("allowedListeners") or {}).get("namespaces") or {})
    selector = allowed.get("selector") if isinstance(allowed.get("selector"), dict) else None
    invalid = _parameters(spec)
    if invalid is not None:  # not accepted: none of it is served
        tls_hosts, used = [], []
        for listener in listeners:
            listener.usable = False
            listener.conditions = [
                condition("Programmed", False, "Invalid", "the Gateway is not accepted", generation)
                if item["type"] == "Programmed" else item for item in listener.conditions]
    return JudgedGateway(ref, generation, listeners, tls_hosts, used, addresses,
                         accepted=bool(listeners) and invalid is None,
                         allowed_listeners=(str(allowed.get("from") or "None"), selector), frontend=frontend,
                         backend_certificate=backend_client_cert.judge(gateway, ref, grants, secrets),
                         invalid_parameters=invalid)


def _parameters(spec: Mapping) -> str | None:
    """Why ``spec.infrastructure.parametersRef`` cannot be used (ingressd reads no parameters
    kind: any reference is unsupported), None without one."""
    ref = (spec.get("infrastructure") or {}).get("parametersRef")
    if ref is None:
        return None
    if not isinstance(ref, dict):
        return "infrastructure.parametersRef is not an object"
    return (f"infrastructure.parametersRef {ref.get('group') or 'core'}/{ref.get('kind')} {ref.get('name')}: "
            "ingressd reads no parameters kind")


def parent_of_listener_set(listener_set: Mapping) -> tuple[str, str] | None:
    """The (namespace, name) of the Gateway a ListenerSet names, None when it names another kind."""
    meta = listener_set.get("metadata") or {}
    parent = (listener_set.get("spec") or {}).get("parentRef") or {}
    if not isinstance(parent, dict) or (parent.get("group") or GROUP) != GROUP \
            or (parent.get("kind") or "Gateway") != "Gateway":
        return None
    return str(parent.get("namespace") or meta.get("namespace") or "default"), str(parent.get("name") or "")


def judge_listener_set(listener_set: Mapping, generation: int, gateway: JudgedGateway, labels: Mapping,
                       earlier: list[Listener], grants: Grants, secrets: Mapping) -> JudgedGateway:
    """A ListenerSet of ``gateway`` (``labels``: its namespace's), its listeners judged after
    ``earlier`` (the usable listeners before it: the Gateway's, older ListenerSets'), which a
    conflicting listener of its own yields to."""
    meta = listener_set.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    ref = ObjectRef(LISTENER_SET, namespace, meta.get("name") or "")
    judged = JudgedGateway(ref, generation, [], [], [], [])
    judged.backend_certificate = gateway.backend_certificate  # its routes' TLS backends get the Gateway's
    if not gateway.accepted:
        judged.refused = ("ParentNotAccepted", f"{gateway.ref} is not accepted")
    elif not gateway.admits_listener_set(namespace, labels):
        judged.refused = ("NotAllowed", f"the allowedListeners of {gateway.ref} do not admit ListenerSets "
                                        f"from namespace {namespace}")
    if judged.refused is not None:
        return judged
    for raw in (listener_set.get("spec") or {}).get("listeners") or []:
        if not isinstance(raw, dict):
            continue
        listener = Listener(str(raw.get("name") or ""), str(raw.get("protocol") or ""),
                            raw.get("port") if isinstance(raw.get("port"), int) else 0,
                            str(raw["hostname"]).lower() if raw.get("hostname") else None)
        judged.listeners.append(listener)
        _judge_listener(listener, raw, ref, generation, grants, secrets, judged.tls_hosts, judged.secrets,
                        gateway.frontend)
    _conflicts(judged.listeners, generation, earlier)
    judged.accepted = any(listener.usable for listener in judged.listeners)
    return judged


def _judge_listener(listener: Listener, raw: Mapping, gateway: ObjectRef, generation: int, grants: Grants,
                    secrets: Mapping, tls_hosts: list, used: list, frontend: Frontend | None = None) -> None:
    accepted, resolved = ("Accepted", ""), ("ResolvedRefs", "")
    allowed = raw.get("allowedRoutes") or {}
    namespaces = allowed.get("namespaces") or {}
    listener.from_ = str(namespaces.get("from") or "Same")
    listener.selector = namespaces.get("selector") if isinstance(namespaces.get("selector"), dict) else None
    served_kinds = TLS_ROUTE_KINDS if listener.protocol == "TLS" else ROUTE_KINDS
    listener.kinds = served_kinds
    if listener.protocol not in _PROTOCOLS:
        listener.usable = False
        accepted = ("UnsupportedProtocol", f"protocol {listener.protocol} is not served (HTTP, HTTPS, TLS)")
        listener.kinds = ()
    kinds = allowed.get("kinds")
    if kinds is not None and listener.usable:
        wanted = [(str(k.get("group") if k.get("group") is not None else GROUP), str(k.get("kind") or ""))
                  for k in kinds if isinstance(k, dict)]
        listener.kinds = tuple(kind for group, kind in wanted if group == GROUP and kind in served_kinds)
        if len(listener.kinds) != len(wanted):
            resolved = ("InvalidRouteKinds", f"only {' and '.join(served_kinds)} are served on a "
                                             f"{listener.protocol} listener")
    if listener.protocol == "TLS" and listener.usable:
        mode = (raw.get("tls") or {}).get("mode") or ""
        if mode != "Passthrough":
            listener.usable = False
            accepted = ("UnsupportedValue", f"tls.mode {mode or '(none)'} is not served on a TLS listener "
                                            "(Passthrough is)")
    if listener.protocol == "HTTPS" and listener.usable:
        tls = raw.get("tls") or {}
        if (tls.get("mode") or "Terminate") != "Terminate":
            listener.usable = False
            accepted = ("UnsupportedValue", "tls.mode Passthrough is not served on an HTTPS listener")
        else:
            problem = _certificates(listener, tls.get("certificateRefs") or [], gateway, grants, secrets,
                                    tls_hosts, used)
            if problem is not None:
                resolved = problem
                listener.usable = False
            elif frontend is not None:
                validation = frontend.for_port(listener.port)
                resolved = validation.resolved or resolved
                if validation.refused is not None:
                    accepted, listener.usable = validation.refused, False
                elif validation.validation is not None:
                    listener.filters = (validation.validation,)
    conditions = [
        condition("Accepted", not accepted[1], accepted[0], accepted[1] or "listener accepted", generation),
        condition("ResolvedRefs", not resolved[1], resolved[0], resolved[1] or "references resolved", generation),
    ]
    listener.conditions = conditions


def _certificates(listener: Listener, refs, gateway: ObjectRef, grants: Grants, secrets: Mapping,
                  tls_hosts: list, used: list) -> tuple[str, str] | None:
    if not refs:
        return ("InvalidCertificateRef", "an HTTPS listener needs a certificateRef")
    for ref in refs:
        if not isinstance(ref, dict):
            return ("InvalidCertificateRef", "a certificateRef is not an object")
        group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Secret")
        name, namespace = str(ref.get("name") or ""), str(ref.get("namespace") or gateway.namespace)
        if group or kind != "Secret":
            return ("InvalidCertificateRef", f"{kind} {name} is not a Secret")
        if not grants.permits(GROUP, gateway.kind, gateway.namespace, "", "Secret", namespace, name):
            return ("RefNotPermitted", f"Secret {namespace}/{name} is in another namespace and no ReferenceGrant "
                                       "permits it")
        packed = secrets.get((namespace, name))
        data = secret_data(unpack(packed)) if packed is not None else None
        if data is None or not data.get("tls.crt") or not data.get("tls.key"):
            return ("InvalidCertificateRef", f"Secret {namespace}/{name} is missing or has no tls.crt and tls.key")
        used.append(data)
        tls_hosts.append(TLSHost(listener.hostname or "", data.ref, gateway))
    return None


def _conflicts(listeners: list[Listener], generation: int, earlier: list[Listener] = ()) -> None:
    """Listeners on one port with two protocols, or one port and one hostname, are Conflicted (all
    of them); one that conflicts with an ``earlier`` listener (a ListenerSet's with its Gateway's
    or an older set's) yields: it alone is Conflicted, and not Accepted."""
    seen: dict[tuple[int, str], list[Listener]] = {}
    by_port: dict[int, set[str]] = {}
    for listener in listeners:
        if listener.protocol in _PROTOCOLS:
            seen.setdefault((listener.port, listener.hostname or ""), []).append(listener)
            by_port.setdefault(listener.port, set()).add(_PORT_SHARING[listener.protocol])
    before_port: dict[int, set[str]] = {}
    before_host: set[tuple[int, str]] = set()
    for listener in earlier:
        if listener.usable:
            before_port.setdefault(listener.port, set()).add(_PORT_SHARING[listener.protocol])
            before_host.add((listener.port, listener.hostname or ""))
    for listener in listeners:
        conflicted = ""
        if listener.protocol in _PROTOCOLS and len(by_port[listener.port]) > 1:
            conflicted = "ProtocolConflict"
        elif listener.protocol in _PROTOCOLS and len(seen[(listener.port, listener.hostname or "")]) > 1:
            conflicted = "HostnameConflict"
        elif listener.protocol in _PROTOCOLS and before_port.get(listener.port, {_PORT_SHARING[listener.protocol]}) \
                != {_PORT_SHARING[listener.protocol]}:
            conflicted = "ProtocolConflict"
        elif listener.protocol in _PROTOCOLS and (listener.port, listener.hostname or "") in before_host:
            conflicted = "HostnameConflict"
        elif listener.protocol not in _PROTOCOLS and listener.port in before_port:
            # A ListenerSet's listener of a protocol not served (TCP, UDP) on the port of an
            # earlier listener: a protocol conflict first, as ListenerSetProtocolConflict expects.
            conflicted = "ProtocolConflict"
        if conflicted and earlier and (listener.usable or listener.protocol not in _PROTOCOLS):
            listener.conditions[0] = condition("Accepted", False, conflicted,
                                               "conflicts with a listener before it", generation)
        if conflicted:
            listener.usable = False
        listener.conditions.append(condition("Conflicted", bool(conflicted), conflicted or "NoConflicts",
                                             "conflicts with another listener" if conflicted else "no conflicts",
                                             generation))
        ok = listener.usable
        listener.conditions.append(condition("Programmed", ok, "Programmed" if ok else
                                             conflicted if conflicted and earlier else "Invalid",
                                             "served" if ok else "not served", generation))
