"""The plain lane's timers as a keep-alive request moves them: the client connection's
keep-alive timeout is off while its request waits for the backend, and back on (from the
response's end) after it; the backend connection's read timeout runs while the response is
awaited and is off once it came whole (a pooled connection waits for its next request
without one). ``Deadline.at`` set to None directly by the request path is ``clear``."""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ingressd.http.deadline import Deadline
from test_flat_path import Rig, get

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    # Idle backend connections kept for an hour (not the sweep's doing below), reads given 30 s,
    # clients' keep-alive timeout 20 s.
    rig = Rig(tmp_path_factory.mktemp("timers"), "--keepalive-requests", "0", "--keepalive-timeout", "20",
              "--upstream-keepalive-timeout", "3600", "--proxy-read-timeout", "30")
    yield rig
    rig.service.stopService()


def test_at_set_to_none_is_clear():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()), horizon=5)
    deadline.set(5)
    deadline.at = None  # what the request path writes in place of clear()
    clock.advance(10)  # the pending call fires and does nothing
    assert fired == [] and deadline.at is None
    deadline.set(3)
    clock.advance(3)
    assert fired == [13]


def test_keep_alive_requests_and_their_timers(rig):
    backend, backend_transport = rig.pooled()
    client, client_transport = rig.client()
    for _ in range(3):
        client.dataReceived(get())
        assert backend_transport.value()  # the request went to the pooled connection
        backend_transport.clear()
        rig.reactor.advance(25)  # past the client's keep-alive timeout: its request is waiting
        assert not client_transport.disconnecting
        backend.dataReceived(OK)
        assert client_transport.value().endswith(b"\r\n\r\nok\n")
        client_transport.clear()
        rig.reactor.advance(40)  # past the read timeout: the idle backend connection is kept
        assert backend.connected and not backend_transport.disconnecting and rig.pool.idle_count() == 1
        assert client_transport.disconnecting  # the client's keep-alive timeout ran from the response
        client.connectionLost(Failure(ConnectionDone()))
        client, client_transport = rig.client()
    client.connectionLost(Failure(ConnectionDone()))


def test_the_read_timeout_still_runs_while_the_response_is_awaited(rig):
    backend, backend_transport = rig.pooled()
    client, client_transport = rig.client()
    client.dataReceived(get())
    rig.reactor.advance(29)
    assert client_transport.value() == b"" and not backend_transport.disconnecting
    rig.reactor.advance(2)
    assert backend_transport.disconnecting  # timed out: the connection closes (then the next try or a 504)
    backend.connectionLost(Failure(ConnectionDone()))  # (a StringTransport does not say so itself)
    assert rig.pool.idle_count() == 0
    client.connectionLost(Failure(ConnectionDone()))
