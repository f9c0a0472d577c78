"""The response head's own lines as ``HTTP1ServerProtocol.write_response`` makes them: the
Content-Length line taken from a bounded table of lines made once per length, and the head and
body joined in one bytes object, byte for byte what formatting them gave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ingressd.http import http1
from ingressd.http.headers import ResponseIdentity, http_date
from ingressd.http.http1 import HTTP1ServerProtocol, ServerSettings

from test_write_response import Holds


def _answer(length: int | None, body: bytes, lines: bytes = b"x-a: 1\r\n", request: bytes = b"GET") -> bytes:
    clock = Clock()
    clock.advance(1_700_000_000)
    protocol = HTTP1ServerProtocol(ServerSettings(identity=ResponseIdentity(b"ingressd/1")), Holds, clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.write_response(200, [(b"x-a", b"1")], lines, length, body)
    return transport.value()


def _expected(length: int | None, body: bytes, lines: bytes = b"x-a: 1\r\n") -> bytes:
    framing = b"content-length: %d\r\n" % length if length is not None else b"transfer-encoding: chunked\r\n"
    if length is None and body:
        body = b"%x\r\n%s\r\n" % (len(body), body)
    return (b"HTTP/1.1 200 OK\r\n" + framing + b"server: ingressd/1\r\ndate: " + http_date(1_700_000_000)
            + b"\r\n" + lines + b"\r\n" + body)


@settings(max_examples=200, deadline=None)
@given(length=st.one_of(st.none(), st.integers(0, 10_000), st.integers(0, 2**63)), body=st.binary(max_size=40),
       lines=st.sampled_from([b"", b"x-a: 1\r\n", b"content-type: text/plain\r\nx-b: 2\r\n"]))
def test_head_and_body_as_formatting_made_them(length, body, lines):
    assert _answer(length, body, lines) == _expected(length, body, lines)


def test_the_length_lines_table_is_bounded_and_right_past_its_bound(monkeypatch):
    monkeypatch.setattr(http1, "_LENGTH_LINES", {})
    monkeypatch.setattr(http1, "_LENGTH_LINES_HELD", 8)
    for length in list(range(20)) + [3, 7, 19, 2**40]:  # past the bound: formatted each time, still right
        assert _answer(length, b"") == _expected(length, b"")
        assert len(http1._LENGTH_LINES) <= 8
    assert http1._LENGTH_LINES == {n: b"content-length: %d\r\n" % n for n in range(8)}


def test_a_head_request_and_a_body_less_status_keep_their_framing():
    head = _answer(5, b"hello", request=b"HEAD")
    assert head == _expected(5, b"")  # HEAD: the length line, no body
    assert _answer(0, b"") == _expected(0, b"")
