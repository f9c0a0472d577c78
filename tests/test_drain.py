"""The graceful drain in memory: its steps on a Clock, and what each kind of connection does."""

import signal
import struct

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.drain import ConnectionSet, Drain
from ingressd.http.http1 import HTTP1Factory, ServerSettings
from ingressd.proxy.tunnel import FrameCursor, Tunnel, close_frame
from ingressd.signals import SignalHandlers


class FakeConnection:
    def __init__(self, group, finishes_on_drain=False):
        self.group = group
        self.finishes_on_drain = finishes_on_drain
        self.drained = self.shut_down = False
        group.add(self)

    def drain(self):
        self.drained = True
        if self.finishes_on_drain:
            self.group.discard(self)

    def shut(self):
        self.shut_down = True
        self.group.discard(self)


def make_drain(delay=5.0, grace=60.0, groups=()):
    clock = Clock()
    said = []
    events = []
    drain = Drain(clock, delay, grace, not_ready=lambda: events.append("not ready"),
                  stop_listening=lambda: events.append("listeners closed"), groups=groups, say=said.append)
    return drain, clock, events, said


def test_not_ready_at_once_listeners_close_after_the_delay():
    group = ConnectionSet()
    busy = FakeConnection(group)
    drain, clock, events, said = make_drain(groups=[group])
    done = drain.start()
    assert events == ["not ready"] and drain.phase == "delaying"
    assert not busy.drained
    clock.advance(4.9)
    assert events == ["not ready"]
    clock.advance(0.1)
    assert events == ["not ready", "listeners closed"]
    assert busy.drained and not busy.shut_down and drain.phase == "draining"
    assert not done.called
    group.discard(busy)  # its response finished
    clock.advance(0.1)
    assert done.called and drain.phase == "done"
    assert any("every response finished" in line for line in said)


def test_what_is_left_after_the_grace_is_closed():
    group = ConnectionSet()
    stream = FakeConnection(group)
    quick = FakeConnection(group, finishes_on_drain=True)
    drain, clock, events, said = make_drain(delay=1, grace=10, groups=[group])
    done = drain.start()
    clock.advance(1)
    assert quick.drained and group.open_connections() == 1
    clock.pump([0.1] * 99)
    assert not stream.shut_down and not done.called
    clock.pump([0.1] * 2)
    assert stream.shut_down
    assert done.called
    assert any("--shutdown-grace over: closing 1 connection" in line for line in said)


def test_a_connection_made_during_the_drain_is_told_at_once():
    group = ConnectionSet()
    drain, clock, _, _ = make_drain(delay=0, groups=[group])
    drain.start()
    clock.advance(0)
    late = FakeConnection(group)
    assert late.drained


def test_second_signal_closes_everything_now():
    group = ConnectionSet()
    stream = FakeConnection(group)
    drain, clock, events, said = make_drain(delay=30, groups=[group])
    done = drain.start()
    drain.force()
    assert done.called and stream.shut_down
    assert events == ["not ready", "listeners closed"]
    assert not clock.getDelayedCalls()


def test_start_twice_is_one_drain():
    drain, clock, events, _ = make_drain(delay=0)
    first = drain.start()
    assert drain.start() is first
    clock.advance(0)
    assert first.called and events == ["not ready", "listeners closed"]


def test_stop_listening_deferred_failure_does_not_stop_the_drain():
    clock = Clock()
    drain = Drain(clock, 0, 1, lambda: None, lambda: defer.fail(RuntimeError("x")), [], say=lambda _: None)
    done = drain.start()
    clock.advance(0)
    assert done.called
    flushed = []
    done.addCallback(flushed.append)
    assert flushed == [None]


# -- HTTP/1 connections ------------------------------------------------------------------


class Slow:
    """A handler that answers only when told to."""

    def __init__(self, protocol, request, log):
        self.protocol = protocol
        log.append(self)
        self.lost = False

    def body_data(self, data):
        pass

    def body_done(self):
        pass

    def answer(self):
        self.protocol.write_head(200, [], 2)
        self.protocol.write_body(b"ok")
        self.protocol.finish_response()

    def client_lost(self):
        self.lost = True

    def wants_tunnel(self):
        return False


def http1_connection(factory, log):
    protocol = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    return protocol, transport


def http1_factory():
    log = []
    factory = HTTP1Factory(lambda p, r: Slow(p, r, log), ServerSettings(), Clock())
    return factory, log


def test_http1_busy_connection_answers_with_connection_close_then_closes():
    factory, log = http1_factory()
    protocol, transport = http1_connection(factory, log)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    factory.live.drain_connections()
    assert not transport.disconnecting
    log[0].answer()
    assert b"connection: close\r\n" in transport.value()
    assert transport.value().endswith(b"ok")
    assert transport.disconnecting


def test_http1_idle_keepalive_connection_closes_at_once():
    factory, log = http1_factory()
    protocol, transport = http1_connection(factory, log)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    log[0].answer()
    assert b"connection: close" not in transport.value() and not transport.disconnecting
    factory.live.drain_connections()
    assert transport.disconnecting


def test_http1_response_head_sent_before_the_drain_closes_after_it():
    factory, log = http1_factory()
    protocol, transport = http1_connection(factory, log)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.write_head(200, [], 2)
    factory.live.drain_connections()
    protocol.write_body(b"ok")
    protocol.finish_response()
    assert transport.disconnecting


def test_http1_fresh_connection_gets_its_first_request_answered():
    factory, log = http1_factory()
    factory.live.drain_connections()
    protocol, transport = http1_connection(factory, log)
    assert not transport.disconnecting
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    log[0].answer()
    assert b"connection: close\r\n" in transport.value() and transport.disconnecting


def test_http1_shut_cuts_the_response_and_tells_the_exchange():
    factory, log = http1_factory()
    protocol, transport = http1_connection(factory, log)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.write_head(200, [], 100)
    factory.live.close_connections()
    assert transport.disconnecting and log[0].lost
    protocol.connectionLost(None)
    assert factory.live.open_connections() == 0


# -- WebSocket tunnels ---------------------------------------------------------------------


def ws_frame(payload: bytes, masked: bool) -> bytes:
    length = len(payload)
    head = bytes((0x82,))
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes((mask_bit | length,))
    elif length < 65536:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", length)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack("!Q", length)
    if masked:
        head += b"\x01\x02\x03\x04"
    return head + payload


def test_frame_cursor_follows_boundaries_across_reads():
    cursor = FrameCursor()
    assert cursor.at_boundary
    data = ws_frame(b"a" * 300, masked=True) + ws_frame(b"b" * 70000, masked=False) + ws_frame(b"", False)
    for size in (1, 7, 4096):
        cursor = FrameCursor()
        for start in range(0, len(data), size):
            cursor.feed(data[start:start + size])
        assert cursor.at_boundary
    cursor = FrameCursor()
    cursor.feed(data[:150])
    assert not cursor.at_boundary
    cursor.feed(data[150:])
    assert cursor.at_boundary


class RawEnd:
    def __init__(self):
        self.written = []
        self.closed = False

    def divert(self, receiver):
        pass

    def resume_reading(self):
        pass

    def write_raw(self, data):
        self.written.append(data)

    def lose_connection(self):
        self.closed = True

    def close(self):
        self.closed = True


def open_tunnel():
    client, backend = RawEnd(), RawEnd()
    closed = []
    tunnel = Tunnel(client, backend, Clock(), 60, 60, lambda: closed.append(True))
    tunnel.start(None, b"")
    return tunnel, client, backend, closed


def test_tunnel_going_away_sends_1001_both_ways():
    tunnel, client, backend, closed = open_tunnel()
    tunnel.client_data(ws_frame(b"hi", masked=True))
    tunnel.backend_data(ws_frame(b"hi", masked=False))
    tunnel.going_away()
    assert client.written[-1] == close_frame(1001) == b"\x88\x02\x03\xe9"
    to_backend = backend.written[-1]
    assert to_backend[:2] == b"\x88\x82"
    mask = to_backend[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(to_backend[6:])) == b"\x03\xe9"
    assert client.closed and backend.closed and closed == [True]


def test_tunnel_going_away_never_splits_a_frame():
    tunnel, client, backend, _ = open_tunnel()
    frame = ws_frame(b"x" * 1000, masked=False)
    tunnel.backend_data(frame[:500])  # half a frame relayed to the client
    tunnel.going_away()
    assert client.written == [frame[:500]]  # no close frame inside the half frame
    assert backend.written[-1][:2] == b"\x88\x82"  # the other direction was between frames
    assert client.closed and backend.closed


# -- signals -------------------------------------------------------------------------------


class FakeReactor:
    def __init__(self):
        self.clock = Clock()
        self.stopped = 0

    def callFromThread(self, f, *args):
        f(*args)

    def callLater(self, *args):
        return self.clock.callLater(*args)

    def stop(self):
        self.stopped += 1


def test_signals_first_stops_second_forces_hup_and_usr1_never_stop():
    reactor = FakeReactor()
    calls = []
    exits = []
    handlers = SignalHandlers(reactor, on_force=lambda: calls.append("force"),
                              on_reload=lambda: calls.append("reload"), on_reopen=lambda: calls.append("reopen"),
                              exit_now=exits.append)
    handlers.handle(signal.SIGHUP)
    handlers.handle(signal.SIGUSR1)
    assert reactor.stopped == 0 and calls == ["reload", "reopen"]
    handlers.handle(signal.SIGTERM)
    assert reactor.stopped == 1 and calls == ["reload", "reopen"]
    handlers.handle(signal.SIGINT)
    assert reactor.stopped == 1 and calls[-1] == "force"
    assert exits == []
    reactor.clock.advance(10)  # still running long after a forced stop: exit
    assert exits == [1]


def test_a_failing_reload_does_not_escape_the_handler():
    reactor = FakeReactor()

    def broken():
        raise RuntimeError("bad")

    handlers = SignalHandlers(reactor, on_force=lambda: None, on_reload=broken)
    handlers.handle(signal.SIGHUP)  # logged, not raised
    assert reactor.stopped == 0


# -- HTTP/2 connections ---------------------------------------------------------------------


def test_http2_goaway_names_the_last_stream_which_is_still_answered():
    import h2.events
    from h2.errors import ErrorCodes
    from h2.connection import ConnectionState
    from test_http2 import Pair

    pair = Pair()
    first = pair.request(b"/long")
    pair.server.drain()
    pair.receive()
    goaway = pair.of(h2.events.ConnectionTerminated)
    assert [(g.last_stream_id, g.error_code) for g in goaway] == [(first, ErrorCodes.NO_ERROR)]
    assert not pair.transport.disconnecting
    pair.client.state_machine.state = ConnectionState.CLIENT_OPEN  # h2 stops at any GOAWAY
    later = pair.request(b"/later")  # sent before the client saw the GOAWAY: refused
    assert [e.error_code for e in pair.of(h2.events.StreamReset, later)] == [ErrorCodes.REFUSED_STREAM]
    assert len(pair.exchanges) == 1
    pair.exchanges[0].respond(body=b"done")
    pair.receive()
    assert pair.body(first) == b"done" and pair.of(h2.events.StreamEnded, first)
    assert pair.transport.disconnecting  # its last stream answered: the connection closes


def test_http2_shut_resets_what_is_open():
    from h2.errors import ErrorCodes
    from hyperframe.frame import Frame
    from test_http2 import Pair

    pair = Pair()
    stream = pair.request(b"/stream")
    pair.transport.clear()
    pair.server.shut()
    frames, data = [], pair.transport.value()
    while data:  # read the frames by hand: h2 ignores what follows a GOAWAY
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    assert [(type(f).__name__, f.error_code) for f in frames if hasattr(f, "error_code")] == [
        ("GoAwayFrame", ErrorCodes.NO_ERROR), ("RstStreamFrame", ErrorCodes.CANCEL)]
    assert frames[-1].stream_id == stream
    assert pair.exchanges[0].lost
    assert pair.transport.disconnecting


def test_connections_are_drained_once_the_listeners_have_closed():
    # A port closes its socket a reactor turn after stopListening: until its Deferred fires,
    # a new connection would still be taken, so neither the drain nor its message may come first.
    group = ConnectionSet()
    busy = FakeConnection(group)
    closed = defer.Deferred()
    clock, said = Clock(), []
    drain = Drain(clock, 1.0, 60.0, lambda: None, lambda: closed, [group], say=said.append)
    drain.start()
    clock.advance(1.0)
    assert drain.phase == "draining" and not busy.drained
    assert not any("listeners closed" in line for line in said)
    closed.callback(None)
    assert busy.drained
    assert any("listeners closed" in line for line in said)


def test_a_second_signal_before_the_listeners_have_closed_finishes_the_drain_once():
    group = ConnectionSet()
    busy = FakeConnection(group)
    closed = defer.Deferred()
    clock, said = Clock(), []
    drain = Drain(clock, 0.0, 60.0, lambda: None, lambda: closed, [group], say=said.append)
    done = drain.start()
    clock.advance(0)
    drain.force()
    assert done.called and busy.shut_down
    closed.callback(None)  # the listeners' Deferred fires after the forced end: nothing more
    assert not busy.drained and drain.phase == "done"
    assert not any("listeners closed" in line for line in said)
