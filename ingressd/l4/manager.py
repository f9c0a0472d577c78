"""The TCP/UDP services' listeners, kept in step with the two ConfigMaps.

On every store change (coalesced) the table is built again (``table.build_l4_table``); a
port that appears is opened, one that goes away is closed (its open TCP connections go on
until they end, or the drain closes them; its UDP sessions end with it, as their replies
would have no socket to leave by), one whose Service or endpoints changed serves its next
connections with the new ones. A port that cannot be bound is
reported (and tried again at the next change), never a crash. Listeners bind the address
the HTTP listener binds, and with ``--workers`` use SO_REUSEPORT, so every worker serves
every port. Each problem (a bad key, a missing Service, a port that cannot be bound) is
logged once, until it goes away and comes back.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.python import log

from ingressd.drain import ConnectionSet
from ingressd.l4.stream_log import StreamRecord, stream_line
from ingressd.l4.stream_settings import StreamSettings, stream_settings_from
from ingressd.l4.table import L4Service, L4Table, build_l4_table, parse_ref
from ingressd.l4.tcp import TCPPort
from ingressd.l4.udp import UDPPort
from ingressd.proxy.transport import TCPListener, connect_tcp
from ingressd.startup import ListenError

DEFAULT_TIMEOUT = 600.0  # ingress-nginx's proxy-stream-timeout (nginx's proxy_timeout)
DEFAULT_MAX_CONNECTIONS = 10000  # per port: open TCP connections, or UDP sessions


class L4Manager(Service):
    """Owns the TCP and UDP service listeners of one server process (a drainable group)."""

    def __init__(self, store: Any, reactor: Any, tcp: str | None, udp: str | None, *,
                 interface: str = "", reuse_port: bool = False, reserved: tuple[int, ...] = (),
                 connect_timeout: float = 5.0, idle_timeout: float = DEFAULT_TIMEOUT,
                 header_timeout: float = 5.0, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 responses: int = 1, say: Callable[[str], None] = log.msg):
        self.store = store
        self.clock = reactor
        self.reactor = reactor
        self.tcp_ref = parse_ref(tcp)
        self.udp_ref = parse_ref(udp)
        self.interface = interface
        self.reuse_port = reuse_port
        self.reserved = reserved
        self.connect_timeout = connect_timeout
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        # proxy-stream-timeout, -responses, -next-upstream*, log-format-stream: swapped live by ``apply``
        self.stream = StreamSettings(idle_timeout=idle_timeout, responses=responses)
        self.say = say
        self.access_log: Any = None  # set by observability: has ``append_line``
        self.connections = ConnectionSet()  # every open TCP connection and UDP session
        self.table = L4Table()
        self.ports: dict[tuple[str, int], Any] = {}  # (protocol, port) → TCPPort or UDPPort
        self._listeners: dict[tuple[str, int], Any] = {}
        self._reported: set[str] = set()
        self._pending = None
        self.built = False

    # -- the hub the ports use -----------------------------------------------------------

    def connect(self, host: str, port: int, factory: Any, timeout: float):
        return connect_tcp(self.reactor, host, port, factory, timeout)

    def listen_udp(self, protocol: Any):
        return self.reactor.listenUDP(0, protocol, interface=_any_address(self.interface))

    @property
    def idle_timeout(self) -> float:
        return self.stream.idle_timeout

    @property
    def responses(self) -> int:
        return self.stream.responses

    def apply(self, settings: dict) -> None:
        """The stream settings of ``settings`` (options with the ConfigMap laid over them), from the
        next connection, datagram, connect attempt and log line; ValueError leaves them as they are."""
        self.stream = stream_settings_from(settings)

    def log_line(self, remote: str, protocol: str, status: int, sent: int, received: int, duration: float,
                 **more: Any) -> None:
        """A connection's access-log line; ``more``: the other ``StreamRecord`` fields known."""
        if self.access_log is None:
            return
        template = self.stream.log_format
        now = self.clock.seconds()
        if template is None:
            line = stream_line(remote, now, protocol, status, sent, received, duration)
        else:
            line = template.render(StreamRecord(remote, now, protocol, status, sent, received, duration, **more))
        self.access_log.append_line(line)

    # -- following the store ---------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.store.observers.append(self.schedule)
        self.update()

    def stopService(self):
        super().stopService()
        if self.schedule in self.store.observers:
            self.store.observers.remove(self.schedule)
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        for key in list(self._listeners):
            self._close(key)
        return None

    def schedule(self) -> None:
        if self._pending is None and self.running:
            self._pending = self.clock.callLater(0.05, self.update)

    def update(self) -> None:
        self._pending = None
        if not self.store.synced and not self.built:
            return  # the first table waits for every source's first full read
        self.built = True
        table = build_l4_table(self.store.snapshot(), self.tcp_ref, self.udp_ref, self.reserved)
        wanted = table.by_key()
        problems = list(table.problems)
        for key in [key for key in self.ports if key not in wanted]:
            self._close(key)
            removed = self.ports.pop(key)
            if key[0] == "UDP":  # replies can no longer reach the clients: the sessions end now
                removed.close_sessions()
            self.say(f"ingressd: {key[0]} service port {key[1]} removed")
        for key, service in wanted.items():
            port = self.ports.get(key)
            if port is None:
                port = self.ports[key] = (TCPPort if key[0] == "TCP" else UDPPort)(service, self)
                self.say(f"ingressd: {key[0]} service port {key[1]} → {service.namespace}/{service.service}:"
                         f"{service.service_port} ({len(service.endpoints)} endpoint(s))")
            elif port.service != service:
                port.update(service)
            if key not in self._listeners:
                problem = self._open(key, port)
                if problem:
                    problems.append(problem)
        self.table = table
        self._report(problems)

    def _report(self, problems: list[str]) -> None:
        current = set(problems)
        for text in sorted(current - self._reported):
            log.msg(f"ingressd: warning: {text}")
        self._reported = current

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(sorted(self._reported))

    def describe(self) -> dict:
        """For the admin endpoint's ``/routes`` and page: each port, and the problems."""
        ports = []
        for key, port in sorted(self.ports.items()):
            service = port.service
            ports.append({
                "protocol": key[0], "port": key[1],
                "backend": f"{service.namespace}/{service.service}:{service.service_port}",
                "decode_proxy": service.decode_proxy, "encode_proxy": service.encode_proxy,
                "endpoints": [f"{e.address}:{e.port}" for e in service.endpoints],
                "listening": key in self._listeners, "open": port.counters.open,
            })
        return {"ports": ports, "problems": list(self.problems)}

    # -- listeners -------------------------------------------------------------------------

    def _open(self, key: tuple[str, int], port: Any) -> str:
        protocol, number = key
        option = f"--{protocol.lower()}-services-configmap"
        try:
            if protocol == "TCP":
                listener = TCPListener(number, port, self.reactor, self.interface, reuse_port=self.reuse_port,
                                       option=option, description=f"port {number}")
                listener.startService()
            else:
                listener = self._listen_udp(number, port)
        except (ListenError, CannotListenError, OSError) as exc:
            return f"{option}: {protocol} port {number} cannot be opened: {exc}"
        self._listeners[key] = listener
        return ""

    def _listen_udp(self, number: int, port: UDPPort):
        interface = _any_address(self.interface)
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((interface, number))
            sock.setblocking(False)
            return self.reactor.adoptDatagramPort(sock.fileno(), family, port)
        finally:
            sock.close()  # the reactor holds its own duplicate

    def _close(self, key: tuple[str, int]) -> None:
        listener = self._listeners.pop(key, None)
        if listener is None:
            return
        if key[0] == "TCP":
            listener.stopService()
        else:
            listener.stopListening()

    # -- drain (interfaces.DrainableGroup) ---------------------------------------------------

    def open_connections(self) -> int:
        return self.connections.open_connections()

    def drain_connections(self) -> None:
        self.connections.drain_connections()

    def close_connections(self) -> None:
        self.connections.close_connections()


def _any_address(interface: str) -> str:
    return interface or "0.0.0.0"


def l4_manager(settings: dict, store: Any, reactor: Any, *, interface: str, reuse_port: bool,
               reserved: tuple[int, ...], connect_timeout: float) -> L4Manager | None:
    """The manager ``settings`` ask for (``--tcp-services-configmap``, ``--udp-services-configmap``), or None."""
    tcp, udp = settings.get("tcp_services_configmap"), settings.get("udp_services_configmap")
    if not tcp and not udp:
        return None
    manager = L4Manager(
        store, reactor, tcp, udp, interface=interface, reuse_port=reuse_port, reserved=reserved,
        connect_timeout=connect_timeout,
        idle_timeout=float(settings.get("proxy_stream_timeout") or DEFAULT_TIMEOUT),
        max_connections=int(settings.get("l4_max_connections") or DEFAULT_MAX_CONNECTIONS),
        responses=int(settings.get("proxy_stream_responses") if settings.get("proxy_stream_responses")
                      not in (None, "") else 1),
    )
    manager.apply(settings)
    return manager


__all__ = ["L4Manager", "L4Service", "l4_manager"]
