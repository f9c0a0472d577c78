"""A zero proxy timeout through the real server, in memory: over at once, as nginx's is.

ingress-nginx renders ``proxy_read_timeout 0s;``; nginx arms the timer for 0 ms, and the
request ends with 504 at the next turn of its event loop. It is not "no timeout".
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from ingressd.testing import one_route_objects, serve_in_memory

CLIENT = IPv4Address("TCP", "127.0.0.1", 40000)


def _request(tmp_path, annotations):
    objects = one_route_objects("web.test", annotations={
        f"nginx.ingress.kubernetes.io/{name}": value for name, value in annotations.items()})
    service, reactor = serve_in_memory(tmp_path, objects, "--access-log", "off")
    client = service.http_factory.buildProtocol(CLIENT)
    client_transport = StringTransport(peerAddress=CLIENT)
    client.makeConnection(client_transport)
    client.dataReceived(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
    return service, reactor, client_transport


def _backend_connects(reactor):
    host, port, factory, timeout, _ = reactor.tcpClients[-1]
    backend = factory.buildProtocol(IPv4Address("TCP", host, port))
    backend_transport = StringTransport()
    backend.makeConnection(backend_transport)
    return backend, backend_transport


def test_zero_read_timeout_is_a_504_at_once(tmp_path):
    service, reactor, client_transport = _request(tmp_path, {"proxy-read-timeout": "0"})
    try:
        # proxy-next-upstream's default (error timeout, 3 tries): each try times out at once
        for _ in range(3):
            _backend, backend_transport = _backend_connects(reactor)
            assert backend_transport.value().startswith(b"GET / HTTP/1.1\r\n")  # the request went out
            assert client_transport.value() == b""
            reactor.advance(0)  # the next turn of the loop: no time passes
        assert client_transport.value().startswith(b"HTTP/1.1 504 ")
        assert len(reactor.tcpClients) == 3
    finally:
        service.stopService()


def test_default_read_timeout_waits(tmp_path):
    service, reactor, client_transport = _request(tmp_path, {})
    try:
        backend, _ = _backend_connects(reactor)
        reactor.advance(59)
        assert client_transport.value() == b""
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert client_transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        service.stopService()


def test_zero_connect_timeout_is_handed_to_the_connect(tmp_path):
    # Twisted's connector turns timeout 0 into a callLater(0) after the connect attempt: a
    # connection not made at once fails, as nginx's 0 ms connect timer does.
    service, reactor, _ = _request(tmp_path, {"proxy-connect-timeout": "0"})
    try:
        assert reactor.tcpClients[-1][3] == 0
    finally:
        service.stopService()
