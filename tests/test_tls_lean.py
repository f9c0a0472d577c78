"""The lean TLS protocol (ingressd.tls.lean) against Twisted's, case by case and differentially.

Each case runs on both ``LeanTLSProtocol`` and Twisted's ``TLSMemoryBIOProtocol`` and expects the
same outcome: a server made by the real certificate store (its self-signed default), a client
from the standard library's ``ssl`` (or pyOpenSSL where a case needs what ``ssl`` cannot do, such
as asking for a renegotiation), records moved by hand between ``StringTransport``s, in memory.
"""

from __future__ import annotations

import os
import ssl

import certs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ingressd.features import BackendTLS
from ingressd.proxy.backend_tls import BackendConnectionCreator, make_context
from ingressd.tls import lean
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.lean import LeanTLSFactory, LeanTLSProtocol, PythonLeanTLSProtocol

KINDS = [LeanTLSProtocol, TLSMemoryBIOProtocol]
if lean.ACCELERATED:  # LeanTLSProtocol has the C steps (_lean_steps): the pure-Python ones too
    KINDS.append(PythonLeanTLSProtocol)


@pytest.fixture(scope="module")
def store() -> CertificateStore:
    return CertificateStore(alpn=True)


def test_lean_steps_are_in_use_with_this_pyopenssl():
    assert lean.LEAN, "pyOpenSSL's private fields changed: the lean steps fell back to Twisted's"
    assert LeanTLSProtocol._flushReceiveBIO is not TLSMemoryBIOProtocol._flushReceiveBIO


class Recorder(Protocol):
    """Keeps what it receives; ``answer`` (when set) is written back for each read."""

    def __init__(self, answer: bytes | None = None):
        self.received = bytearray()
        self.reads = 0
        self.lost: Failure | None = None
        self.answer = answer

    def dataReceived(self, data: bytes) -> None:
        assert type(data) is bytes
        self.received += data
        self.reads += 1
        if self.answer is not None:
            self.transport.write(self.answer)

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


class CountingTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


class Client:
    """A standard-library TLS client over memory BIOs."""

    def __init__(self, maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = maximum
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="lean.test")

    def handshake(self) -> bool:
        try:
            self.tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def records(self, data: bytes = b"") -> bytes:
        if data:
            self.tls.write(data)
        return self.outgoing.read()

    def read_all(self, data: bytes) -> bytes:
        self.incoming.write(data)
        out = bytearray()
        for _ in range(100_000):  # bounded: each pass reads one record at most
            try:
                chunk = self.tls.read(1 << 20)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)


def serve(store: CertificateStore, kind: type, app: Protocol, transport: StringTransport | None = None,
          maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3):
    """(server TLS protocol, its transport, a client that finished its handshake)."""
    factory = TLSMemoryBIOFactory(store.server_options(), False, Factory.forProtocol(lambda: app))
    factory.protocol = kind
    server = factory.buildProtocol(None)
    transport = transport if transport is not None else StringTransport()
    server.makeConnection(transport)
    client = Client(maximum)
    for _ in range(10):  # bounded
        done = client.handshake()
        records = client.records()
        if records:
            server.dataReceived(records)
        client.incoming.write(transport.value())
        transport.clear()
        if done:
            break
    assert client.handshake()
    client.read_all(b"")  # TLS 1.3 session tickets
    return server, transport, client


@pytest.mark.parametrize("kind", KINDS)
def test_records_split_across_reads_arrive_whole(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    records = client.records(b"GET / HTTP/1.1\r\n") + client.records(b"Host: a\r\n\r\n") + client.records(b"x" * 3000)
    for at in range(len(records)):  # one byte a read
        server.dataReceived(records[at:at + 1])
    assert bytes(app.received) == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + b"x" * 3000
    assert transport.value() == b""  # nothing to answer: no empty writes either
    assert not transport.disconnecting


@pytest.mark.parametrize("kind", KINDS)
def test_a_large_upload_in_full_records_arrives_intact(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    body = os.urandom(300_000)
    records = client.records(body)
    for at in range(0, len(records), 70_000):  # reads larger than a record and than our buffer
        server.dataReceived(records[at:at + 70_000])
    assert bytes(app.received) == body


@pytest.mark.parametrize("kind", KINDS)
def test_many_records_in_one_read_are_all_delivered(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    messages = [b"%d:" % n + b"y" * n for n in range(60)]
    server.dataReceived(b"".join(client.records(m) for m in messages))
    assert bytes(app.received) == b"".join(messages)
    assert app.reads == len(messages)  # one record, one read: as Twisted


@pytest.mark.parametrize("kind", KINDS)
def test_a_large_write_arrives_intact(store, kind):
    app = Recorder()
    transport = CountingTransport()
    server, transport, client = serve(store, kind, app, transport)
    body = os.urandom(1 << 20) + b"tail"
    transport.writes = 0
    app.transport.write(body)
    assert client.read_all(transport.value()) == body
    if kind is LeanTLSProtocol:
        assert transport.writes == 1  # one round, one write (Twisted: one per 16 KiB record)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", [bytearray(b"abc" * 7000), memoryview(b"def" * 7000)])
def test_writes_of_other_buffers(store, kind, data):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    app.transport.write(data)
    assert client.read_all(transport.value()) == bytes(data)


@pytest.mark.parametrize("kind", KINDS)
def test_each_read_answered(store, kind):
    app = Recorder(answer=b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    server, transport, client = serve(store, kind, app)
    for _ in range(5):
        server.dataReceived(client.records(b"GET / HTTP/1.1\r\n\r\n"))
        assert client.read_all(transport.value()) == app.answer
        transport.clear()


@pytest.mark.parametrize("kind", KINDS)
def test_close_notify_is_answered_and_the_connection_ends_cleanly(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    server.dataReceived(client.records(b"last words"))
    with pytest.raises(ssl.SSLWantReadError):
        client.tls.unwrap()  # sends close_notify, waits for the server's
    server.dataReceived(client.outgoing.read())
    assert bytes(app.received) == b"last words"
    assert transport.disconnecting  # the server closes the TCP connection
    client.incoming.write(transport.value())
    client.tls.unwrap()  # the server's close_notify arrived: no error
    server.connectionLost(Failure(ConnectionDone()))
    assert app.lost is not None and app.lost.check(ConnectionDone)


@pytest.mark.parametrize("kind", KINDS)
def test_close_notify_right_after_a_record_in_the_same_read_ends_the_connection(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    records = client.records(b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        client.tls.unwrap()
    server.dataReceived(records + client.outgoing.read())  # the record and the alert together
    assert bytes(app.received) == b"last words"
    assert transport.disconnecting


@pytest.mark.parametrize("kind", KINDS)
def test_a_record_and_the_start_of_the_next_in_one_read(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    first, second = client.records(b"one"), client.records(b"two")
    for cut in (1, 5, 6, len(second) - 1):  # inside the next record's header, just past it, its last byte
        del app.received[:]
        server.dataReceived(first + second[:cut])
        assert bytes(app.received) == b"one"
        server.dataReceived(second[cut:])
        assert bytes(app.received) == b"onetwo"
        first, second = client.records(b"one"), client.records(b"two")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", ["read", "write"])
def test_an_exception_a_callback_left_waiting_is_raised_by_the_next_step(store, kind, step):
    # pyOpenSSL raises a callback's exception after the next OpenSSL call, before its result.
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    helper = server._tlsConnection._context._alpn_select_helper
    assert helper is not None  # the listener's contexts select ALPN
    transport.clear()
    helper._problems.append(ValueError("from a callback"))
    with pytest.raises(ValueError, match="from a callback"):
        if step == "read":
            server.dataReceived(client.records(b"lost"))
        else:
            server.write(b"lost")
    assert not helper._problems and bytes(app.received) == b"" and client.read_all(transport.value()) == b""
    server.dataReceived(client.records(b"then"))  # nothing waits any more
    assert bytes(app.received) == b"then"


class _CountingLib:
    """``lean._lib`` with its ``SSL_read`` calls counted."""

    def __init__(self, lib):
        self._lib = lib
        self.reads = 0

    def SSL_read(self, *args):
        self.reads += 1
        return self._lib.SSL_read(*args)

    def __getattr__(self, name):
        return getattr(self._lib, name)


def test_one_ssl_read_a_record_when_nothing_is_left_unread(store, monkeypatch):
    app = Recorder()
    server, transport, client = serve(store, PythonLeanTLSProtocol, app)
    counting = _CountingLib(lean._lib)
    monkeypatch.setattr(lean, "_lib", counting)
    server.dataReceived(client.records(b"GET / HTTP/1.1\r\n\r\n"))
    assert counting.reads == 1  # the record's; none more to learn that nothing is left
    server.dataReceived(b"".join(client.records(b"r%d" % n) for n in range(3)))
    assert counting.reads == 4
    records = client.records(b"whole") + client.records(b"cut")
    server.dataReceived(records[:-2])  # a record, then most of the next: a read that wants more
    assert counting.reads == 6
    server.dataReceived(records[-2:])
    assert counting.reads == 7
    assert bytes(app.received) == b"GET / HTTP/1.1\r\n\r\nr0r1r2wholecut"


class _CallCounts:
    """``lean._lib`` with every OpenSSL call counted by name."""

    def __init__(self, lib):
        self._lib = lib
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        value = getattr(self._lib, name)
        if not callable(value):
            return value

        def counted(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return value(*args)
        return counted


def test_a_keep_alive_round_trip_makes_these_openssl_calls_and_no_more(store, monkeypatch):
    # The read: the records in, one SSL_read (it returned less than the buffer: nothing of the
    # record is left, no SSL_pending), the memory BIO seen empty, one BIO_read that finds
    # nothing to send. The answer: one SSL_write taking all of it, one BIO_read, one write.
    app = Recorder(answer=b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    transport = CountingTransport()
    server, transport, client = serve(store, PythonLeanTLSProtocol, app, transport)
    server.dataReceived(client.records(b"GET / HTTP/1.1\r\n\r\n"))  # the helpers are kept from here
    client.read_all(transport.value())
    transport.clear()
    transport.writes = 0
    counting = _CallCounts(lean._lib)
    monkeypatch.setattr(lean, "_lib", counting)
    server.dataReceived(client.records(b"GET /again HTTP/1.1\r\n\r\n"))
    assert counting.calls == {"BIO_write": 1, "SSL_read": 1, "BIO_get_mem_data": 1, "BIO_read": 2, "SSL_write": 1}
    assert transport.writes == 1
    assert client.read_all(transport.value()) == app.answer
    assert bytes(app.received) == b"GET / HTTP/1.1\r\n\r\nGET /again HTTP/1.1\r\n\r\n"


def test_a_read_that_fills_the_buffer_asks_openssl_what_is_left(store, monkeypatch):
    # SSL_read returning a whole buffer may have left part of the record in OpenSSL: SSL_pending.
    monkeypatch.setattr(lean, "_CHUNK", 1000)
    app = Recorder()
    server, transport, client = serve(store, PythonLeanTLSProtocol, app)
    counting = _CallCounts(lean._lib)
    monkeypatch.setattr(lean, "_lib", counting)
    body = os.urandom(2500)
    server.dataReceived(client.records(body))  # one record, read 1000 bytes at a time
    assert bytes(app.received) == body
    assert app.reads == 3
    assert counting.calls["SSL_pending"] == 2  # after each full read; not after the last, short one


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_write_sends_nothing(store, kind):
    app = Recorder()
    transport = CountingTransport()
    server, transport, client = serve(store, kind, app, transport)
    transport.writes = 0
    app.transport.write(b"")
    assert transport.value() == b"" and not transport.disconnecting
    app.transport.write(b"after")
    assert client.read_all(transport.value()) == b"after"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("producer", [False, True])
def test_writes_after_lose_connection(store, kind, producer):
    # Dropped after loseConnection, unless a producer is registered: then written (Twisted's rule).
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    if producer:
        app.transport.registerProducer(Producer(), True)
    app.transport.write(b"before")
    app.transport.loseConnection()
    app.transport.write(b"after")
    expected = b"beforeafter" if producer else b"before"
    assert client.read_all(transport.value()) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_records_left_in_the_bio_when_the_connection_is_lost_are_delivered(store, kind):
    # connectionLost reads what the memory BIO still holds (Twisted's _flushReceiveBIO step).
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    server.dataReceived(client.records(b"first"))
    connection = server._tlsConnection
    connection.bio_write(client.records(b"second"))  # in the BIO, not read yet
    server.connectionLost(Failure(ConnectionDone()))
    assert bytes(app.received) == b"firstsecond"
    assert app.lost is not None


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_closed_without_close_notify_is_lost(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    records = client.records(b"cut ")
    server.dataReceived(records + client.records(b"short")[:-3])  # the second record truncated
    server.connectionLost(Failure(ConnectionDone()))
    assert bytes(app.received) == b"cut "
    assert app.lost is not None and app.lost.check(ConnectionLost)


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupt_record_mid_stream_ends_the_connection_with_an_alert(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    good = client.records(b"fine")
    bad = bytearray(client.records(b"tampered"))
    bad[-1] ^= 0x55  # the AEAD tag no longer matches
    server.dataReceived(good + bytes(bad))
    assert bytes(app.received) == b"fine"
    assert transport.disconnecting
    alert = transport.value()
    assert alert[:1] == b"\x17" or alert[:1] == b"\x15"  # an (encrypted, in 1.3) alert record
    with pytest.raises(ssl.SSLError):
        client.read_all(alert)
    server.connectionLost(Failure(ConnectionDone()))
    assert app.lost is not None and app.lost.check(SSL.Error)


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_after_the_handshake_ends_the_connection(store, kind):
    app = Recorder()
    server, transport, client = serve(store, kind, app)
    server.dataReceived(b"GET / HTTP/1.1\r\n\r\n")  # plaintext on a TLS connection
    assert transport.disconnecting
    server.connectionLost(Failure(ConnectionDone()))
    assert app.received == b""
    assert app.lost is not None and app.lost.check(SSL.Error)


@pytest.mark.parametrize("kind", KINDS)
def test_a_renegotiation_is_refused_and_the_connection_stays(store, kind):
    app = Recorder(answer=b"pong")
    factory = TLSMemoryBIOFactory(store.server_options(), False, Factory.forProtocol(lambda: app))
    factory.protocol = kind
    server = factory.buildProtocol(None)
    transport = StringTransport()
    server.makeConnection(transport)
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)  # TLS 1.3 has no renegotiation
    client = SSL.Connection(context, None)
    client.set_connect_state()

    def step(action) -> Exception | None:
        try:
            action()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            return exc
        for _ in range(10):  # bounded
            try:
                server.dataReceived(client.bio_read(1 << 16))
            except SSL.WantReadError:
                pass
            answer = transport.value()
            transport.clear()
            if not answer:
                return None
            client.bio_write(answer)
        return None

    step(client.do_handshake)
    assert step(client.do_handshake) is None
    step(lambda: client.send(b"ping"))
    assert client.recv(100) == b"pong"
    assert client.renegotiate()
    step(client.do_handshake)
    refused = step(client.do_handshake)
    assert isinstance(refused, SSL.Error) and "no renegotiation" in str(refused)
    assert not transport.disconnecting and app.lost is None
    assert bytes(app.received) == b"ping"


@implementer(IPushProducer)
class Producer:
    def __init__(self):
        self.events: list[str] = []

    def pauseProducing(self):
        self.events.append("pause")

    def resumeProducing(self):
        self.events.append("resume")

    def stopProducing(self):
        self.events.append("stop")


class EarlyWriter(Protocol):
    """A client application that registers a producer and writes before the handshake ends."""

    def __init__(self):
        self.producer = Producer()
        self.received = bytearray()

    def connectionMade(self):
        self.transport.registerProducer(self.producer, True)
        self.transport.write(b"GET /early HTTP/1.1\r\n\r\n")

    def dataReceived(self, data):
        self.received += data


@pytest.mark.parametrize("factory_class,protocol", [(LeanTLSFactory, LeanTLSProtocol),
                                                    (TLSMemoryBIOFactory, TLSMemoryBIOProtocol)])
def test_client_side_writes_wait_for_the_handshake_and_pause_the_producer(factory_class, protocol, tmp_path):
    leaf = certs.make_leaf("backend.test")
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem())
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    backend = server_context.wrap_bio(incoming, outgoing, server_side=True)

    settings = BackendTLS(verify=False)
    creator = BackendConnectionCreator(settings, make_context(settings), {}, ("backend.test", 443))
    app = EarlyWriter()
    factory = factory_class(creator, True, Factory.forProtocol(lambda: app), clock=_Clock())
    assert factory.protocol is protocol or factory_class is TLSMemoryBIOFactory
    factory.protocol = protocol  # Twisted's default buffers small writes instead (BufferingTLSTransport)
    client = factory.buildProtocol(None)
    transport = StringTransport()
    client.makeConnection(transport)
    assert app.producer.events == ["pause"]  # buffered until the handshake: the producer waits
    request = b""
    for _ in range(10):  # bounded
        incoming.write(transport.value())
        transport.clear()
        try:
            backend.do_handshake()
        except ssl.SSLWantReadError:
            pass
        records = outgoing.read()
        if records:
            client.dataReceived(records)
        factory._clock.run()
        try:
            request += backend.read(1 << 16)
        except ssl.SSLWantReadError:
            pass
        if request:
            break
    assert request == b"GET /early HTTP/1.1\r\n\r\n"
    assert app.producer.events == ["pause", "resume"]
    backend.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    client.dataReceived(outgoing.read())
    assert bytes(app.received) == b"HTTP/1.1 204 No Content\r\n\r\n"
    # The session is kept once a connection (its first response), not read again for each one.
    creator.remember(client)
    kept = creator.sessions[("backend.test", 443)]
    assert isinstance(kept, SSL.Session)
    creator.sessions[("backend.test", 443)] = "another connection's"
    creator.remember(client)
    assert creator.sessions[("backend.test", 443)] == "another connection's"


class _Clock:
    """Twisted's buffering client transport batches writes to the next turn: run them by hand."""

    def __init__(self):
        self.calls = []

    def callLater(self, delay, f, *args):
        call = _Call(f, args)
        self.calls.append(call)
        return call

    def run(self):
        calls, self.calls = self.calls, []
        for call in calls:
            if call.active:
                call.active = False
                call.f(*call.args)


class _Call:
    def __init__(self, f, args):
        self.f, self.args, self.active = f, args, True

    def cancel(self):
        self.active = False


# -- differential: the same bytes in the same pieces give the same results -------------------

def _outcome(store, kind, pieces: list[bytes], cuts: list[int], corrupt: int | None, answer: bytes | None):
    app = Recorder(answer=answer)
    server, transport, client = serve(store, kind, app)
    stream = b"".join(client.records(piece) for piece in pieces if piece)
    if corrupt is not None and stream:
        damaged = bytearray(stream)
        damaged[corrupt % len(damaged)] ^= 0xA5
        stream = bytes(damaged)
    at = 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        if cut > at and not transport.disconnecting:
            server.dataReceived(stream[at:cut])
            at = cut
    disconnecting = transport.disconnecting
    try:
        answered = client.read_all(transport.value())
    except ssl.SSLError as exc:
        answered = type(exc).__name__.encode()
    server.connectionLost(Failure(ConnectionDone()))
    lost = app.lost.type if app.lost is not None else None
    return bytes(app.received), disconnecting, answered, lost


_PATTERN = bytes(range(256)) * 200
# Small random pieces, and large ones (up to 2.5 records; every byte value) that random bytes rarely reach.
_PIECES = st.one_of(st.binary(max_size=300),
                    st.tuples(st.integers(0, 40_000), st.integers(0, 255)).map(lambda t: _PATTERN[t[1]:t[1] + t[0]]))


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(_PIECES, min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=250000), max_size=12),
       corrupt=st.one_of(st.none(), st.integers(min_value=0, max_value=250000)),
       answer=st.one_of(st.none(), st.binary(min_size=1, max_size=20000)))
def test_lean_and_twisted_agree(store, pieces, cuts, corrupt, answer):
    lean_result = _outcome(store, LeanTLSProtocol, pieces, cuts, corrupt, answer)
    twisted_result = _outcome(store, TLSMemoryBIOProtocol, pieces, cuts, corrupt, answer)
    assert lean_result[0] == twisted_result[0]  # the same plaintext reached the application
    assert lean_result[1:] == twisted_result[1:]
