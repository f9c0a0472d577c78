"""Finished connections leave no reference cycles: they are freed at once, not by the collector.

A full garbage collection walks every object of the process and holds up every request
meanwhile (20-30 ms with one Ingress, measured under bench.py new-connection). The real
server is built in memory (MemoryReactorClock, StringTransports), requests are proxied to a
backend connection, then both sides close; with ``gc.DEBUG_SAVEALL`` whatever only the
collector could free is kept in ``gc.garbage`` for us to look at.
"""

from __future__ import annotations

import gc
import platform

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ingressd.testing import one_route_objects, serve_in_memory

CLIENT = IPv4Address("TCP", "127.0.0.1", 40000)


@pytest.mark.skipif(platform.python_implementation() != "CPython",
                    reason="a CPython cost (reference counting frees everything else at once); "
                           "PyPy's collector has no gc.set_debug")
def test_closed_connections_leave_no_cycles(tmp_path):
    service, reactor = serve_in_memory(tmp_path, one_route_objects("web.test"), "--access-log", "off")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            client = service.http_factory.buildProtocol(CLIENT)
            client_transport = StringTransport(peerAddress=CLIENT)
            client.makeConnection(client_transport)
            client.dataReceived(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
            host, port, factory, _, _ = reactor.tcpClients[-1]
            backend = factory.buildProtocol(IPv4Address("TCP", host, port))
            backend_transport = StringTransport()
            backend.makeConnection(backend_transport)
            backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            assert client_transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
            # What a Twisted TCP transport does when its connection is lost: it forgets its
            # producer, then tells its protocol.
            for transport, protocol in ((backend_transport, backend), (client_transport, client)):
                if transport.producer is not None:
                    transport.unregisterProducer()
                protocol.connectionLost(Failure(ConnectionDone()))
            del client, client_transport, backend, backend_transport, factory, transport, protocol
        reactor.advance(120)  # idle timers, the pool's sweeper
        gc.collect()
        ours = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("ingressd")]
        assert ours == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        service.stopService()
