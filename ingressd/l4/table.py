"""The TCP/UDP services ConfigMaps → an immutable ``L4Table``, as ingress-nginx reads them.

ingress-nginx's format (internal/ingress/controller/controller.go, ``getStreamServices``):
each key is the port to listen on, each value ``namespace/service:port[:PROXY][:PROXY]``;
``port`` is the Service port's number or name, of the right protocol. The third field
``PROXY`` means the client sends a PROXY protocol header (nginx's ``listen … proxy_protocol``:
decode), the fourth that one is sent to the backend (``proxy_protocol on``: encode); both
only for TCP. A port that is not a number, reserved (the server's own listeners), or whose
reference is malformed is reported and skipped; so is a Service without ready endpoints
(ingress-nginx leaves those ports out too; ingressd keeps listening and closes connections
to them instead, so a port does not come and go with its endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ingressd.config.model import Endpoint
from ingressd.config.store import unpack


@dataclass(frozen=True, slots=True)
class L4Service:
    """One listed port and where its traffic goes."""

    protocol: str  # "TCP" or "UDP"
    port: int  # the port ingressd listens on
    namespace: str
    service: str
    service_port: str  # the Service port's number or name, as written
    decode_proxy: bool = False  # the client sends a PROXY protocol header
    encode_proxy: bool = False  # a PROXY protocol v1 header is sent to the backend
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def upstream_name(self) -> str:
        """ingress-nginx's ``$proxy_upstream_name`` for the port: ``tcp-NS-NAME-PORT``."""
        return f"{self.protocol.lower()}-{self.namespace}-{self.service}-{self.service_port}"


@dataclass(frozen=True, slots=True)
class L4Table:
    services: tuple[L4Service, ...] = ()
    problems: tuple[str, ...] = ()  # one line each: a key skipped, and why

    def by_key(self) -> dict[tuple[str, int], L4Service]:
        return {(service.protocol, service.port): service for service in self.services}


def parse_ref(value: str | None) -> tuple[str, str] | None:
    """``NAMESPACE/NAME`` → (namespace, name); None when ``value`` is empty. ValueError if malformed."""
    if not value:
        return None
    namespace, sep, name = str(value).partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"{value!r} is not NAMESPACE/NAME")
    return namespace, name


def build_l4_table(objects: Mapping[str, Mapping], tcp: tuple[str, str] | None, udp: tuple[str, str] | None,
                   reserved: Iterable[int] = ()) -> L4Table:
    """The services the two ConfigMaps (``(namespace, name)`` or None) list, resolved against
    the store's snapshot ``objects`` (packed, by kind)."""
    reserved = set(reserved)
    services: list[L4Service] = []
    problems: list[str] = []
    taken: set[tuple[str, int]] = set()
    for protocol, ref in (("TCP", tcp), ("UDP", udp)):
        if ref is None:
            continue
        where = f"{protocol.lower()}-services ConfigMap {ref[0]}/{ref[1]}"
        packed = objects.get("ConfigMap", {}).get(ref)
        if packed is None:
            problems.append(f"{where}: not found")
            continue
        data = unpack(packed).get("data") or {}
        if not isinstance(data, dict):
            problems.append(f"{where}: data is not a mapping")
            continue
        for key in sorted(data, key=str):
            service, problem = _entry(protocol, str(key), str(data[key]), objects, reserved)
            if problem:
                problems.append(f"{where}: {problem}")
            if service is None:
                continue
            if (protocol, service.port) in taken:
                problems.append(f"{where}: port {service.port} is listed twice")
                continue
            taken.add((protocol, service.port))
            services.append(service)
    services.sort(key=lambda s: (s.protocol, s.port))
    return L4Table(tuple(services), tuple(problems))


def _entry(protocol: str, key: str, value: str, objects, reserved) -> tuple[L4Service | None, str]:
    try:
        port = int(key.strip())
    except ValueError:
        return None, f"{key!r} is not a valid {protocol} port number"
    if not 0 < port < 65536:
        return None, f"{key!r} is not a valid {protocol} port number"
    if port in reserved:
        return None, f"port {port} cannot be used for {protocol} stream services: it is one of ingressd's own"
    fields = value.strip().split(":")
    if len(fields) < 2 or len(fields) > 4:
        return None, f"invalid Service reference {value!r} for {protocol} port {port}"
    try:
        namespace, name = parse_ref(fields[0]) or ("", "")
    except ValueError as exc:
        return None, f"port {port}: {exc}"
    service_port = fields[1]
    if not namespace or not service_port:
        return None, f"invalid Service reference {value!r} for {protocol} port {port}"
    extra = [field.upper() for field in fields[2:]]
    if any(field not in ("PROXY", "") for field in extra):
        return None, f"port {port}: {value!r}: the 3rd and 4th fields may only be PROXY"
    decode = protocol == "TCP" and len(extra) >= 1 and extra[0] == "PROXY"
    encode = protocol == "TCP" and len(extra) == 2 and extra[1] == "PROXY"
    problem = ""
    if protocol == "UDP" and "PROXY" in extra:
        problem = f"port {port}: PROXY protocol is only for TCP services; ignored"
    service = L4Service(protocol, port, namespace, name, service_port, decode, encode)
    endpoints, missing = _endpoints(objects, service)
    if missing:
        problem = f"port {port}: {missing}" if not problem else f"{problem}; {missing}"
    return L4Service(protocol, port, namespace, name, service_port, decode, encode, endpoints), problem


def _endpoints(objects, service: L4Service) -> tuple[tuple[Endpoint, ...], str]:
    label = f"{service.namespace}/{service.service}"
    packed = objects.get("Service", {}).get((service.namespace, service.service))
    if packed is None:
        return (), f"Service {label} not found (connections are closed until it exists)"
    spec = unpack(packed).get("spec") or {}
    wanted = None
    for port in spec.get("ports") or []:
        if str(port.get("protocol") or "TCP").upper() != service.protocol:
            continue
        if service.service_port.isdigit() and port.get("port") == int(service.service_port):
            wanted = port
            break
        if port.get("name") == service.service_port:
            wanted = port
            break
    if wanted is None:
        return (), f"Service {label} has no {service.protocol} port {service.service_port}"
    if spec.get("type") == "ExternalName":
        external = str(spec.get("externalName") or "")
        return (Endpoint(external, int(wanted.get("port") or 0)),), ""
    name = wanted.get("name") or ""
    found: dict[tuple[str, int], Endpoint] = {}
    for (namespace, _), packed_slice in objects.get("EndpointSlice", {}).items():
        if namespace != service.namespace:
            continue
        obj = unpack(packed_slice)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get("kubernetes.io/service-name") != service.service:
            continue
        number = None
        for slice_port in obj.get("ports") or []:
            if (slice_port.get("name") or "") == name and \
                    str(slice_port.get("protocol") or "TCP").upper() == service.protocol:
                number = slice_port.get("port")
                break
        if number is None:
            continue
        for endpoint in obj.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                found[(str(address), int(number))] = Endpoint(str(address), int(number))
    if not found:
        return (), f"Service {label} does not have any active endpoint for {service.protocol} port " \
                   f"{service.service_port}"
    return tuple(found[key] for key in sorted(found)), ""
