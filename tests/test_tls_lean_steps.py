"""The TLS layer's read and write in one C call each (``ingressd.tls._lean_steps``) and their
pure-Python twins (``ingressd.tls.lean_steps``): the same results case by case and on fuzzed
record streams (truncated, corrupted, garbage, every byte value, more than a record); the protocol
built on them (``lean._AcceleratedSteps``) against the pure-Python steps and Twisted's; the
extension leaks nothing; under CI=true it must have been built (test_accelerators.py).

Each step runs on a real server connection (the certificate store's, its handshake done by the
protocol in ``test_tls_lean.serve``) driven directly, with the standard library's ``ssl`` as the
client, in memory.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from OpenSSL import SSL
from OpenSSL._util import lib
from test_tls_lean import Recorder, _outcome, serve
from twisted.protocols.tls import TLSMemoryBIOProtocol

from ingressd.tls import lean, lean_steps
from ingressd.tls.certificates import CertificateStore
from ingressd.tls.lean import LeanTLSProtocol, PythonLeanTLSProtocol

try:
    from ingressd.tls import _lean_steps as extension
except ImportError:
    extension = None

needs_c = pytest.mark.skipif(not lean_steps.ACCELERATED, reason="the extension is not built (or not bound)")
PY = (lean_steps.read_step_py, lean_steps.write_step_py, lean_steps.drain_py)
C = (extension.read_step, extension.write_step, extension.drain) if extension is not None else None
IMPLEMENTATIONS = [pytest.param(PY, id="python"), pytest.param(C, id="c", marks=needs_c)]


@pytest.fixture(scope="module")
def store() -> CertificateStore:
    return CertificateStore(alpn=True)


class Side:
    """A handshaken server connection to drive by hand, and its client."""

    def __init__(self, store: CertificateStore):
        self.app = Recorder()
        self.protocol, self.transport, self.client = serve(store, PythonLeanTLSProtocol, self.app)
        self.connection = self.protocol._tlsConnection
        self.ssl, self.into, self.source = lean_steps.addresses(self.connection)
        self.helpers = lean._helpers(self.connection)


def _plain(result):
    """A step's result without the errno (see lean_steps' docstring: it may differ)."""
    if type(result) is tuple and len(result) == 4:
        return result[:3]
    if type(result) is tuple and len(result) == 2:
        return result[0]
    return result


# -- the selection -----------------------------------------------------------------------------

def test_the_steps_in_use_are_the_extension_when_it_is_bound():
    if lean_steps.ACCELERATED:
        assert lean_steps.read_step is extension.read_step and lean.LeanTLSProtocol.__mro__[1] is lean._AcceleratedSteps
    else:
        assert lean_steps.read_step is lean_steps.read_step_py
        assert not issubclass(LeanTLSProtocol, lean._AcceleratedSteps)  # the pure-Python steps, as before


@needs_c
def test_the_extension_calls_the_library_pyopenssl_uses():
    from cryptography.hazmat.bindings._rust import _openssl
    from OpenSSL._util import lib
    assert all(getattr(lib, name) is getattr(_openssl.lib, name) for name in lean_steps._NAMES)


# -- case by case, both implementations --------------------------------------------------------

@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_a_record_is_read_whole(store, steps):
    read, _, drain = steps
    side = Side(store)
    assert read(side.ssl, side.into, side.client.records(b"GET / HTTP/1.1\r\n\r\n"), side.helpers) \
        == b"GET / HTTP/1.1\r\n\r\n"
    assert read(side.ssl, side.into, b"", side.helpers) is None  # nothing more: want read
    assert drain(side.source) is None


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_a_record_split_across_reads(store, steps):
    read, _, _ = steps
    side = Side(store)
    records = side.client.records(b"split")
    assert read(side.ssl, side.into, records[:7], side.helpers) is None
    assert read(side.ssl, side.into, records[7:], side.helpers) == b"split"


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_records_left_in_the_bio_ask_for_another_call(store, steps):
    read, _, _ = steps
    side = Side(store)
    records = side.client.records(b"one") + side.client.records(b"two") + side.client.records(b"three")
    assert read(side.ssl, side.into, records, side.helpers) == (3, b"one", False, 0)
    assert read(side.ssl, side.into, b"", side.helpers) == (3, b"two", False, 0)
    assert read(side.ssl, side.into, b"", side.helpers) == b"three"


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_a_large_record_in_one_read(store, steps):
    read, _, _ = steps
    side = Side(store)
    body = os.urandom(40_000)  # three records
    records = side.client.records(body)
    got, result = [], read(side.ssl, side.into, records, side.helpers)
    for _ in range(10):
        if type(result) is bytes:
            got.append(result)
            break
        assert result[2] is False
        got.append(result[1])
        result = read(side.ssl, side.into, b"", side.helpers)
    assert b"".join(got) == body and len(got) == 3


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_a_corrupt_record_is_left_to_pyopenssl(store, steps):
    read, _, drain = steps
    side = Side(store)
    bad = bytearray(side.client.records(b"tampered"))
    bad[-1] ^= 0x55
    count, plain, fallback, _ = read(side.ssl, side.into, bytes(bad), side.helpers)
    assert count <= 0 and plain is None and fallback is True
    with pytest.raises(SSL.Error):
        side.connection._raise_ssl_error(side.connection._ssl, count)
    assert drain(side.source)[:1] in (b"\x15", b"\x17")  # the alert OpenSSL has to send


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_garbage_is_left_to_pyopenssl(store, steps):
    read, _, _ = steps
    side = Side(store)
    count, plain, fallback, _ = read(side.ssl, side.into, b"GET / HTTP/1.1\r\n\r\n", side.helpers)
    assert (count <= 0, plain, fallback) == (True, None, True)
    with pytest.raises(SSL.Error):
        side.connection._raise_ssl_error(side.connection._ssl, count)


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_close_notify_is_left_to_pyopenssl(store, steps):
    read, _, _ = steps
    side = Side(store)
    try:
        side.client.tls.unwrap()
    except Exception:  # noqa: BLE001 - the ssl module wants the peer's close_notify too
        pass
    count, plain, fallback, _ = read(side.ssl, side.into, side.client.outgoing.read(), side.helpers)
    assert (count, plain, fallback) == (0, None, True)
    with pytest.raises(SSL.ZeroReturnError):
        side.connection._raise_ssl_error(side.connection._ssl, count)


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_an_exception_waiting_in_a_helper_is_left_to_pyopenssl(store, steps):
    read, write, _ = steps
    side = Side(store)
    problems = side.connection._context._alpn_select_helper._problems
    problems.append(ValueError("from a callback"))
    try:
        count, plain, fallback, _ = read(side.ssl, side.into, side.client.records(b"kept"), side.helpers)
        assert (count, plain, fallback) == (4, b"kept", True)  # decrypted, then handed over
        assert read(side.ssl, side.into, b"", side.helpers)[2] is True
        count, _ = write(side.ssl, side.source, b"answer", side.helpers)
        assert count == 6  # written, but the exception comes first
    finally:
        problems.clear()


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_a_write_is_sealed_and_drained(store, steps):
    _, write, drain = steps
    side = Side(store)
    records = write(side.ssl, side.source, b"HTTP/1.1 200 OK\r\n\r\n", side.helpers)
    assert type(records) is bytes and side.client.read_all(records) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert drain(side.source) is None
    body = os.urandom(100_000)  # partial writes: SSL_write takes one record
    count, _ = write(side.ssl, side.source, body, side.helpers)
    assert count == 16384
    assert side.client.read_all(drain(side.source)) == body[:16384]


@pytest.mark.parametrize("steps", IMPLEMENTATIONS)
def test_bad_arguments_raise(store, steps):
    read, write, drain = steps
    side = Side(store)
    for call in (lambda: read("1", side.into, b"", side.helpers), lambda: read(side.ssl, 0, b"", side.helpers),
                 lambda: read(side.ssl, side.into, bytearray(b"x"), side.helpers),
                 lambda: read(side.ssl, side.into, b"", [[]]),
                 lambda: write(side.ssl, None, b"x", side.helpers), lambda: write(side.ssl, side.source, "x", ()),
                 lambda: write(side.ssl, side.source, b"x", None), lambda: drain(0), lambda: drain(b"1"),
                 lambda: read(side.ssl, side.into, b""), lambda: drain()):
        with pytest.raises((TypeError, ValueError)):
            call()
    assert read(side.ssl, side.into, side.client.records(b"still"), side.helpers) == b"still"


# -- fuzzed: the same record streams give the same results -------------------------------------

def _trace(side: Side, steps, stream: bytes, cuts: list[int], answer: bytes | None) -> list:
    read, write, drain = steps
    trace: list = []
    at = 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        if cut <= at:
            continue
        result, at = read(side.ssl, side.into, stream[at:cut], side.helpers), cut
        for _ in range(100):  # bounded: a record a call
            trace.append(_plain(result))
            if type(result) is not tuple or result[2]:
                break
            result = read(side.ssl, side.into, b"", side.helpers)
        if type(result) is tuple and result[2]:  # pyOpenSSL's answer ends the stream
            try:
                side.connection._raise_ssl_error(side.connection._ssl, result[0])
            except SSL.Error as exc:
                trace.append(type(exc).__name__)
            records = drain(side.source)
            trace.append(None if records is None else len(records))
            return trace
        if answer is not None:
            written = write(side.ssl, side.source, answer, side.helpers)
            if type(written) is bytes:
                trace.append(side.client.read_all(written))
            else:
                trace.append(_plain(written))
                trace.append(side.client.read_all(drain(side.source) or b""))
    return trace


_PATTERN = bytes(range(256)) * 200
_PIECES = st.one_of(st.binary(max_size=300),
                    st.tuples(st.integers(0, 40_000), st.integers(0, 255)).map(lambda t: _PATTERN[t[1]:t[1] + t[0]]))


@needs_c
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=0, max_value=250_000), max_size=10),
       corrupt=st.one_of(st.none(), st.integers(min_value=0, max_value=250_000)),
       garbage=st.one_of(st.none(), st.binary(min_size=1, max_size=400)),
       truncate=st.one_of(st.none(), st.integers(min_value=0, max_value=250_000)),
       answer=st.one_of(st.none(), st.binary(min_size=1, max_size=20_000)))
def test_the_extension_and_its_twin_agree(store, pieces, cuts, corrupt, garbage, truncate, answer):
    traces = []
    for steps in (C, PY):
        side = Side(store)
        stream = b"".join(side.client.records(piece) for piece in pieces if piece)
        if corrupt is not None and stream:
            damaged = bytearray(stream)
            damaged[corrupt % len(damaged)] ^= 0xA5
            stream = bytes(damaged)
        if garbage is not None:  # random bytes (every value) in the middle of the records
            middle = len(stream) // 2
            stream = stream[:middle] + garbage + stream[middle:]
        if truncate is not None:
            stream = stream[:truncate % (len(stream) + 1)]
        traces.append(_trace(side, steps, stream, cuts, answer))
    assert traces[0] == traces[1]


# -- the protocol on these steps ---------------------------------------------------------------

@pytest.fixture
def twins(monkeypatch):
    """``_AcceleratedSteps`` running the pure-Python twins (as the extension's stand-in)."""
    monkeypatch.setattr(lean, "_read_step", lean_steps.read_step_py)
    monkeypatch.setattr(lean, "_write_step", lean_steps.write_step_py)
    monkeypatch.setattr(lean, "_drain", lean_steps.drain_py)


class TwinTLSProtocol(lean._AcceleratedSteps):
    pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=0, max_value=250_000), max_size=10),
       corrupt=st.one_of(st.none(), st.integers(min_value=0, max_value=250_000)),
       answer=st.one_of(st.none(), st.binary(min_size=1, max_size=20_000)))
def test_the_protocol_on_the_twins_agrees_with_the_pure_python_steps_and_twisted(store, twins, pieces, cuts,
                                                                                 corrupt, answer):
    results = [_outcome(store, kind, pieces, cuts, corrupt, answer)
               for kind in (TwinTLSProtocol, PythonLeanTLSProtocol, TLSMemoryBIOProtocol)]
    assert results[0] == results[1] == results[2]


@needs_c
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=0, max_value=250_000), max_size=10),
       corrupt=st.one_of(st.none(), st.integers(min_value=0, max_value=250_000)),
       answer=st.one_of(st.none(), st.binary(min_size=1, max_size=20_000)))
def test_the_protocol_on_the_extension_agrees_with_the_pure_python_steps(store, pieces, cuts, corrupt, answer):
    assert _outcome(store, LeanTLSProtocol, pieces, cuts, corrupt, answer) \
        == _outcome(store, PythonLeanTLSProtocol, pieces, cuts, corrupt, answer)


def test_a_keep_alive_round_trip_is_one_read_step_one_drain_and_one_write_step(store, monkeypatch):
    calls: list[str] = []

    def counted(name, step):
        def call(*args):
            calls.append(name)
            return step(*args)
        return call

    for name in ("read_step", "write_step", "drain"):
        monkeypatch.setattr(lean, "_" + name, counted(name, getattr(lean_steps, name + "_py")))
    app = Recorder(answer=b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    server, transport, client = serve(store, TwinTLSProtocol, app)
    server.dataReceived(client.records(b"GET / HTTP/1.1\r\n\r\n"))  # the first: the handles are taken
    client.read_all(transport.value())
    transport.clear()
    calls.clear()
    server.dataReceived(client.records(b"GET /again HTTP/1.1\r\n\r\n"))
    assert calls == ["read_step", "write_step", "drain"]
    assert client.read_all(transport.value()) == app.answer
    server.connectionLost(None)
    assert server._c_handles is None  # the connection is not held past its end


# -- the extension's references ----------------------------------------------------------------

@needs_c
def test_the_extension_does_not_leak(store):
    side = Side(store)
    read, write, drain = C
    stale = Side(store)
    bad = bytearray(stale.client.records(b"tampered"))
    bad[-1] ^= 0x55
    failed = Side(store)
    read(failed.ssl, failed.into, bytes(bad), failed.helpers)  # a connection in error: every call fails
    lib.ERR_clear_error()
    bad_calls = [("1", side.into, b"", side.helpers), (side.ssl, 0, b"", side.helpers),
                 (side.ssl, side.into, bytearray(b"x"), side.helpers), (side.ssl, side.into, b"", [[]]),
                 (side.ssl, side.into, b"")]

    def rounds(n):
        for _ in range(n):
            assert read(side.ssl, side.into, side.client.records(b"ping"), side.helpers) == b"ping"
            records = side.client.records(b"a") + side.client.records(b"b")
            assert read(side.ssl, side.into, records, side.helpers)[1] == b"a"
            assert read(side.ssl, side.into, b"", side.helpers) == b"b"
            assert read(side.ssl, side.into, b"", side.helpers) is None
            side.client.read_all(write(side.ssl, side.source, b"pong", side.helpers))
            assert drain(side.source) is None
            assert read(failed.ssl, failed.into, b"x", failed.helpers)[2] is True
            assert type(write(failed.ssl, failed.source, b"x", failed.helpers)) is tuple
            drain(failed.source)
            lib.ERR_clear_error()  # what the failed calls left in the thread's error queue
            for args in bad_calls:
                try:
                    read(*args)
                except (TypeError, ValueError):
                    pass
            for args in ((side.ssl, side.source, "x", ()), (side.ssl, None, b"x", ())):
                try:
                    write(*args)
                except (TypeError, ValueError):
                    pass
            try:
                drain(0)
            except ValueError:
                pass

    try:
        grown = traced_growth(rounds, measured=500)
    finally:
        lib.ERR_clear_error()
    # 500 rounds of ~20 calls: a leaked object per call would be hundreds of kilobytes
    assert grown < 64 * 1024, grown
