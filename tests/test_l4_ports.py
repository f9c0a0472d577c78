"""TCP and UDP service ports without sockets (ingressd.l4.tcp, ingressd.l4.udp): limits,
timeouts, PROXY headers, sessions, log lines, on a test clock."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.config.model import Endpoint
from ingressd.drain import ConnectionSet
from ingressd.l4.stream_log import stream_line
from ingressd.l4.table import L4Service
from ingressd.l4.tcp import TCPPort
from ingressd.l4.stream_settings import StreamSettings
from ingressd.l4.udp import UDPPort


class Hub:
    """What a port asks of its manager."""

    def __init__(self, max_connections=10, idle_timeout=600.0, responses=1):
        self.clock = Clock()
        self.connect_timeout = 5.0
        self.idle_timeout = idle_timeout
        self.header_timeout = 5.0
        self.max_connections = max_connections
        self.responses = responses
        self.stream = StreamSettings(idle_timeout=idle_timeout, responses=responses)
        self.more: list[dict] = []
        self.connections = ConnectionSet()
        self.lines: list[tuple] = []
        self.said: list[str] = []
        self.connects: list[tuple] = []
        self.sockets: list[FakeDatagramSocket] = []

    def say(self, text):
        self.said.append(text)

    def connect(self, host, port, factory, timeout):
        self.connects.append((host, port, factory, timeout))

    def log_line(self, remote, protocol, status, sent, received, duration, **more):
        self.lines.append((remote, protocol, status, sent, received))
        self.more.append(more)

    def listen_udp(self, protocol):
        sock = FakeDatagramSocket(protocol)
        self.sockets.append(sock)
        return sock


class Client(StringTransport):
    def __init__(self, peer=("192.0.2.7", 40000)):
        super().__init__(hostAddress=IPv4Address("TCP", "10.0.0.1", 9000),
                         peerAddress=IPv4Address("TCP", *peer))
        self.aborted = False
        self.write_closed = False

    def abortConnection(self):
        self.aborted = True
        self.disconnecting = True

    def loseWriteConnection(self):
        self.write_closed = True


class FakeDatagramSocket:
    def __init__(self, protocol):
        self.protocol = protocol
        self.sent: list[bytes] = []
        self.peer = None
        self.stopped = False

    def connect(self, host, port):
        self.peer = (host, port)

    def write(self, data):
        self.sent.append(data)

    def stopListening(self):
        self.stopped = True


class ListeningSocket:
    def __init__(self):
        self.out: list[tuple[bytes, tuple]] = []

    def write(self, data, addr):
        self.out.append((data, addr))


def tcp_port(hub, decode=False, encode=False, endpoints=(Endpoint("10.1.0.1", 5432), Endpoint("10.1.0.2", 5432))):
    return TCPPort(L4Service("TCP", 9000, "default", "db", "5432", decode, encode, tuple(endpoints)), hub)


def accept(port, peer=("192.0.2.7", 40000)):
    protocol = port.buildProtocol(None)
    client = Client(peer)
    protocol.makeConnection(client)
    return protocol, client


def backend_connected(hub, index=-1):
    _, _, factory, _ = hub.connects[index]
    backend = Client(("10.1.0.1", 5432))
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(backend)
    return protocol, backend


def test_round_robin_and_the_next_endpoint_when_a_connect_fails():
    hub = Hub()
    port = tcp_port(hub)
    accept(port)
    accept(port)
    assert [c[:2] for c in hub.connects] == [("10.1.0.1", 5432), ("10.1.0.2", 5432)]
    hub.connects[0][2].clientConnectionFailed(None, None)  # the first connection's endpoint is down
    assert hub.connects[-1][:2] == ("10.1.0.2", 5432)
    hub.connects[-1][2].clientConnectionFailed(None, None)  # every endpoint tried once: closed, 502
    assert hub.lines == [("192.0.2.7", "TCP", 502, 0, 0)]
    assert port.counters.failed == 1 and port.counters.open == 1


def test_bytes_flow_and_the_line_counts_them():
    hub = Hub()
    port = tcp_port(hub)
    protocol, client = accept(port)
    protocol.dataReceived(b"early")  # before the backend is there: held
    backend_protocol, backend = backend_connected(hub)
    assert backend.value() == b"early"
    backend_protocol.dataReceived(b"reply!")
    assert client.value() == b"reply!"
    protocol.readConnectionLost()
    assert backend.write_closed  # the client's FIN passed on
    backend_protocol.readConnectionLost()
    assert hub.lines == [("192.0.2.7", "TCP", 200, 6, 5)]
    assert (port.counters.bytes_received, port.counters.bytes_sent, port.counters.open) == (5, 6, 0)
    assert not hub.connections.live


def test_the_proxy_header_sent_to_the_backend_is_not_counted_as_the_clients():
    hub = Hub()
    port = tcp_port(hub, encode=True)
    protocol, client = accept(port)
    _, backend = backend_connected(hub)
    protocol.dataReceived(b"hi")
    assert backend.value() == b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 9000\r\nhi"
    protocol.connectionLost()
    assert hub.lines[0][3:] == (0, 2)


def test_a_decoded_header_names_the_client_and_may_arrive_in_pieces():
    hub = Hub()
    port = tcp_port(hub, decode=True, encode=True)
    protocol, _ = accept(port)
    assert hub.connects == []  # nothing before the header
    header = b"PROXY TCP4 203.0.113.5 10.0.0.1 1234 9000\r\n"
    for at in range(0, len(header), 7):
        protocol.dataReceived(header[at:at + 7] + (b"data" if at + 7 >= len(header) else b""))
    _, backend = backend_connected(hub)
    assert backend.value() == b"PROXY TCP4 203.0.113.5 10.0.0.1 1234 9000\r\ndata"
    protocol.connectionLost()
    assert hub.lines[0][:3] == ("203.0.113.5", "TCP", 200)


def test_no_header_or_a_late_one_is_refused_with_400():
    hub = Hub()
    port = tcp_port(hub, decode=True)
    protocol, client = accept(port)
    protocol.dataReceived(b"GET / HTTP/1.1\r\n")
    assert client.aborted and hub.connects == []
    protocol.connectionLost()
    late, late_client = accept(port)
    hub.clock.advance(5)
    assert late_client.aborted
    late.connectionLost()
    assert [line[2] for line in hub.lines] == [400, 400]
    assert port.counters.open == 0 and port.counters.failed == 2


def test_the_connection_limit_refuses_with_503():
    hub = Hub(max_connections=1)
    port = tcp_port(hub)
    accept(port)
    _, second = accept(port)
    assert second.aborted and len(hub.connects) == 1
    assert hub.lines == [("192.0.2.7", "TCP", 503, 0, 0)] and port.counters.refused == 1


def test_an_idle_connection_is_closed_after_the_stream_timeout():
    hub = Hub(idle_timeout=600)
    port = tcp_port(hub)
    protocol, client = accept(port)
    backend_protocol, backend = backend_connected(hub)
    hub.clock.advance(599)
    backend_protocol.dataReceived(b"x")  # activity: the timer starts again
    hub.clock.advance(599)
    assert not client.disconnecting
    hub.clock.advance(2)
    assert client.disconnecting and backend.disconnecting
    assert hub.lines[0][2] == 200


def test_drain_shuts_open_connections():
    hub = Hub()
    port = tcp_port(hub)
    accept(port)
    _, backend = backend_connected(hub)
    hub.connections.drain_connections()
    assert not backend.disconnecting  # the grace first
    hub.connections.close_connections()
    assert backend.disconnecting and not hub.connections.live


def test_an_update_keeps_open_connections_and_changes_the_next():
    hub = Hub()
    port = tcp_port(hub, endpoints=(Endpoint("10.1.0.1", 5432),))
    accept(port)
    port.update(L4Service("TCP", 9000, "default", "db", "5432", endpoints=(Endpoint("10.9.9.9", 1),)))
    accept(port)
    assert [c[:2] for c in hub.connects] == [("10.1.0.1", 5432), ("10.9.9.9", 1)]


# -- UDP -------------------------------------------------------------------------------------


def udp_port(hub, endpoints=(Endpoint("10.2.0.1", 53), Endpoint("10.2.0.2", 53))):
    port = UDPPort(L4Service("UDP", 5353, "default", "dns", "53", endpoints=tuple(endpoints)), hub)
    port.transport = ListeningSocket()
    return port


def test_udp_sessions_per_client_with_their_own_socket_and_replies():
    hub = Hub(responses=1)
    port = udp_port(hub)
    port.datagramReceived(b"q1", ("192.0.2.1", 1000))
    port.datagramReceived(b"q2", ("192.0.2.2", 2000))
    one, two = hub.sockets
    assert (one.peer, two.peer) == (("10.2.0.1", 53), ("10.2.0.2", 53))
    assert one.sent == [b"q1"] and two.sent == [b"q2"]
    two.protocol.datagramReceived(b"a2", ("10.2.0.2", 53))
    assert port.transport.out == [(b"a2", ("192.0.2.2", 2000))]  # to the client that asked only
    assert two.stopped and ("192.0.2.2", 2000) not in port.sessions  # its one reply came: done
    assert hub.lines == [("192.0.2.2", "UDP", 200, 2, 2)]
    port.datagramReceived(b"q3", ("192.0.2.1", 1000))  # the first session goes on
    assert one.sent == [b"q1", b"q3"] and len(hub.sockets) == 2


def test_udp_session_idle_expiry_and_responses_zero():
    hub = Hub(responses=0, idle_timeout=30)
    port = udp_port(hub)
    port.datagramReceived(b"q", ("192.0.2.1", 1000))
    sock = hub.sockets[0]
    sock.protocol.datagramReceived(b"a", ("10.2.0.1", 53))
    sock.protocol.datagramReceived(b"b", ("10.2.0.1", 53))
    assert not sock.stopped  # responses 0: only the idle timeout ends it
    hub.clock.advance(30)
    assert sock.stopped and not port.sessions and hub.lines == [("192.0.2.1", "UDP", 200, 2, 1)]


def test_udp_sessions_are_bounded_and_a_refused_endpoint_is_502():
    hub = Hub(max_connections=1)
    port = udp_port(hub)
    port.datagramReceived(b"q", ("192.0.2.1", 1000))
    port.datagramReceived(b"q", ("192.0.2.2", 1000))
    assert len(hub.sockets) == 1 and hub.lines == [("192.0.2.2", "UDP", 503, 0, 1)]
    hub.sockets[0].protocol.connectionRefused()
    assert hub.lines[-1] == ("192.0.2.1", "UDP", 502, 0, 1) and not port.sessions
    empty = udp_port(Hub(), endpoints=())
    empty.datagramReceived(b"q", ("192.0.2.3", 1))
    assert empty.hub.lines == [("192.0.2.3", "UDP", 502, 0, 1)]


def test_stream_line_is_ingress_nginx_default_log_format_stream():
    line = stream_line("192.0.2.1", 0.0, "TCP", 200, 12, 34, 1.23456)
    assert line.startswith("[192.0.2.1] [") and line.endswith("] TCP 200 12 34 1.235\n")
    stamp = line.split("] [")[1].split("]")[0]
    day, month, rest = stamp.split("/")
    assert len(day) == 2 and month == "Jan" and rest[4] == ":" and rest[-5] in "+-"


def test_manager_opens_changes_and_closes_ports_as_the_store_changes(monkeypatch):
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.config.store import ObjectStore
    from ingressd.l4 import manager as manager_module
    from ingressd.l4.manager import L4Manager

    opened: list[int] = []

    class Listener:  # no sockets: the ports a TCPListener would open
        def __init__(self, number, factory, reactor, interface, reuse_port, option, description):
            self.number = number

        def startService(self):
            opened.append(self.number)

        def stopService(self):
            opened.remove(self.number)

    monkeypatch.setattr(manager_module, "TCPListener", Listener)

    class Closable:
        def stopListening(self):
            pass

    monkeypatch.setattr(L4Manager, "_listen_udp", lambda self, number, port: Closable())
    store = ObjectStore()
    reactor = MemoryReactorClock()
    said: list[str] = []
    manager = L4Manager(store, reactor, "ns/tcp", "ns/udp", reserved=(8080,), say=said.append)
    service = [{"kind": "Service", "metadata": {"namespace": "default", "name": "db"},
                "spec": {"ports": [{"name": "pg", "port": 5432}]}}]

    def publish(tcp, udp):
        store.replace("t", "Service", service)
        store.replace("t", "ConfigMap", [
            {"kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "tcp"}, "data": tcp},
            {"kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "udp"}, "data": udp}])
        store.set_synced("t")
        reactor.advance(1)

    manager.startService()
    publish({"0": "default/db:5432", "8080": "default/db:5432", "19000": "default/db:5432"}, {})
    assert opened == [19000]
    assert any("port 8080 cannot be used" in p for p in manager.problems)
    assert manager.describe()["ports"][0]["listening"]
    publish({"19001": "default/db:pg:PROXY"}, {"19002": "default/db:5432"})  # moved; UDP: wrong protocol
    assert set(manager.ports) == {("TCP", 19001), ("UDP", 19002)} and opened == [19001]
    assert manager.ports["TCP", 19001].service.decode_proxy
    assert any("removed" in line for line in said)
    assert any("has no UDP port 5432" in p for p in manager.problems)
    manager.stopService()
    assert opened == [] and not manager.describe()["ports"][0]["listening"]
    assert manager.schedule not in store.observers


def test_at_most_three_endpoints_are_tried():
    hub = Hub()
    port = tcp_port(hub, endpoints=[Endpoint(f"10.1.0.{n}", 5432) for n in range(1, 6)])
    accept(port)
    for _ in range(3):
        hub.connects[-1][2].clientConnectionFailed(None, None)
    assert len(hub.connects) == 3 and hub.lines[0][2] == 502
