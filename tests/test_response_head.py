"""``ingressd.proxy.response_head``: the C accelerator and its pure-Python twin give the same
results for every input (cases, then Hypothesis: generated, mutated, truncated, oversize
heads and every byte value), and whatever they accept llhttp reads the same way (status,
version, headers as ``HTTP1Connection`` collects them, keep-alive, where the head ends).
Under ``CI=true`` the C accelerator must have been built (test_accelerators.py); its memory must not grow."""

from __future__ import annotations

import gc
import sys

import httptools
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twins import twins

from ingressd.http.headers import HIDDEN_FROM_BACKEND, HOP_BY_HOP, from_backend, serialize, without_hop_by_hop
from ingressd.proxy import response_head
from ingressd.proxy.response_head import MAX_HEAD, parse_response_head_py, parse_response_relay_py

try:
    from ingressd.proxy._response_head import parse_response_head as parse_response_head_c
    from ingressd.proxy._response_head import parse_response_relay as parse_response_relay_c
except ImportError:
    parse_response_head_c = parse_response_relay_c = None

IMPLEMENTATIONS = twins(parse_response_head_py, parse_response_head_c)
RELAYS = twins(parse_response_relay_py, parse_response_relay_c)


def test_the_module_picks_the_accelerator_when_built():
    """(Under CI=true it must have been built: tests/test_accelerators.py.)"""
    assert response_head.ACCELERATED == (parse_response_head_c is not None)
    assert response_head.parse_response_head is (parse_response_head_c or parse_response_head_py)
    assert response_head.parse_response_relay is (parse_response_relay_c or parse_response_relay_py)


class _Llhttp:
    """What llhttp makes of a head, through the callbacks HTTP1Connection uses."""

    def __init__(self, data: bytes):
        self.headers: list = []
        self.complete = None
        self.error = None
        self.parser = httptools.HttpResponseParser(self)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = exc
        except httptools.HttpParserUpgrade:
            self.error = "upgrade"

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        if self.complete is None:
            parser = self.parser
            self.complete = (parser.get_status_code(), parser.get_http_version(), parser.should_keep_alive(),
                             list(self.headers))


DROP = HOP_BY_HOP | HIDDEN_FROM_BACKEND  # what HTTP1Connection passes: headers.from_backend's
DROPS = [DROP, frozenset(), frozenset((b"connection",)), frozenset((b"connection", b"close")), HOP_BY_HOP,
         {b"connection", b"x-a", b"keep-alive"}]


def agrees_with_llhttp(buffer: bytes, result) -> None:
    """An accepted head is what llhttp reads in ``buffer[:head_end]``, and not before."""
    end, minor, status, _reason, headers, length, keep_alive, _kept = result
    whole = _Llhttp(buffer[:end])
    assert whole.error is None and whole.complete is not None, (buffer, whole.error)
    assert whole.complete == (status, f"1.{minor}", keep_alive, headers)
    assert _Llhttp(buffer[:end - 1]).complete is None
    lengths = [int(value) for name, value in headers if name == b"content-length"]
    assert lengths == ([] if length is None else [length])


def same(buffer: bytes, drop=DROP):
    """Both implementations' answer (the same) and, when accepted, llhttp's agreement and
    the kept headers ``without_hop_by_hop``'s."""
    expected = parse_response_head_py(buffer, drop)
    if parse_response_head_c is not None:
        assert parse_response_head_c(buffer, drop) == expected
    if expected is not None:
        agrees_with_llhttp(buffer, expected)
        assert expected[7] == without_hop_by_hop(expected[4], drop)
    # parse_response_relay: the same, and the kept headers serialised, in both implementations
    relay = None if expected is None else (*expected, serialize(expected[7]))
    assert parse_response_relay_py(buffer, drop) == relay
    if parse_response_relay_c is not None:
        assert parse_response_relay_c(buffer, drop) == relay
    return expected


OK = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("buffer, expected", [
    (OK, (79, 1, 200, b"OK", [(b"server", b"nginx"), (b"content-type", b"text/plain"), (b"content-length", b"3")],
          3, True)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", (38, 0, 200, b"OK", [(b"content-length", b"0")], 0, False)),
    (b"HTTP/1.0 204 \r\nA:  x \r\nConnection: Keep-Alive\r\n\r\n",
     (49, 0, 204, b"", [(b"a", b"x "), (b"connection", b"Keep-Alive")], None, True)),
    (b"HTTP/1.1 200\r\n\r\n", (16, 1, 200, b"", [], None, False)),  # until the close: not kept
    (b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", (40, 1, 304, b"Not Modified", [(b"etag", b'"x"')], None,
                                                          True)),
    (b"HTTP/1.1 404 N\x80t\tF\r\nX-A:\r\nX-B: \t \r\nCONTENT-LENGTH: 007\r\nConnection: close\r\n\r\n",
     (77, 1, 404, b"N\x80t\tF", [(b"x-a", b""), (b"x-b", b""), (b"content-length", b"007"), (b"connection", b"close")],
      7, False)),
    (b"HTTP/1.1 200 OK\r\nV: \x80\xff \"q\"\t\r\nContent-Length: 1\r\n\r\n",
     (50, 1, 200, b"OK", [(b"v", b"\x80\xff \"q\"\t"), (b"content-length", b"1")], 1, True)),
])
def test_accepted_heads(parse, buffer, expected):
    expected = (*expected, from_backend(expected[4]))
    assert parse(buffer, DROP) == expected
    agrees_with_llhttp(buffer, expected)


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("drop", DROPS, ids=range(len(DROPS)))
def test_kept_headers(parse, drop):
    """What is kept for the client: without the names in ``drop``, and without those the
    Connection header lists when it is dropped itself."""
    for connection in (b"close", b"Keep-Alive"):
        buffer = (b"HTTP/1.1 200 OK\r\nServer: s\r\nClose: 1\r\nKeep-Alive: timeout=5\r\nConnection: %s\r\n"
                  b"X-A: a\r\nDate: d\r\nContent-Length: 0\r\nX-B: b\r\n\r\n" % connection)
        result = parse(buffer, drop)
        assert result[7] == without_hop_by_hop(result[4], drop)
    assert parse(buffer, DROP)[7] == [(b"close", b"1"), (b"x-a", b"a"), (b"x-b", b"b")]
    assert parse(buffer.replace(b"Keep-Alive\r\n", b"close\r\n"), DROP)[7] == [(b"x-a", b"a"), (b"x-b", b"b")]


DECLINED = {
    "incomplete": OK[:60],
    "no blank line": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
    "100 continue": b"HTTP/1.1 100 Continue\r\n\r\n",
    "101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "199": b"HTTP/1.1 199 X\r\nContent-Length: 0\r\n\r\n",
    "600": b"HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n",
    "099": b"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n",
    "two-digit status": b"HTTP/1.1 20 X\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.2": b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/2.0": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "lower-case version": b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "leading CRLF": b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
    "bare LF at the end": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
    "bare CR in a value": b"HTTP/1.1 200 OK\r\nA: x\ry\r\nContent-Length: 0\r\n\r\n",
    "DEL in a value": b"HTTP/1.1 200 OK\r\nA: \x7f\r\nContent-Length: 0\r\n\r\n",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nA: \x00\r\nContent-Length: 0\r\n\r\n",
    "control in the reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nA: x\r\n y\r\nContent-Length: 0\r\n\r\n",
    "space before the colon": b"HTTP/1.1 200 OK\r\nA : x\r\nContent-Length: 0\r\n\r\n",
    "no colon": b"HTTP/1.1 200 OK\r\nA x\r\nContent-Length: 0\r\n\r\n",
    "empty name": b"HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n",
    "non-token name": b"HTTP/1.1 200 OK\r\nA\"b: x\r\nContent-Length: 0\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "length and chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
    "length with a space after": b"HTTP/1.1 200 OK\r\nContent-Length: 3 \r\n\r\n",
    "length not a number": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "empty length": b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
    "19-digit length": b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n",
    "connection upgrade": b"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
    "connection list": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
    "close and keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "upgrade": b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    "proxy-connection": b"HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n",
    "too many fields": b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 101 + b"\r\n",
    "too long": b"HTTP/1.1 200 OK\r\nA: " + b"x" * MAX_HEAD + b"\r\n\r\n",
    "empty": b"",
}


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_heads(parse, name):
    assert parse(DECLINED[name], DROP) is None


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
def test_the_limits_are_inclusive(parse):
    hundred = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 100 + b"\r\n"
    assert len(parse(hundred, DROP)[4]) == 100
    filler = MAX_HEAD - len(b"HTTP/1.1 200 OK\r\nA: \r\n\r\n")
    longest = b"HTTP/1.1 200 OK\r\nA: " + b"x" * filler + b"\r\n\r\n"
    assert parse(longest, DROP)[0] == MAX_HEAD and parse(longest + b"body", DROP)[0] == MAX_HEAD
    assert parse(b"HTTP/1.1 200 OK\r\nA: " + b"x" * (filler + 1) + b"\r\n\r\n", DROP) is None
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n", DROP)[5] == 999999999999999999


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("wrong", ["text", bytearray(OK), memoryview(OK), None, 3])
def test_only_bytes(parse, wrong):
    with pytest.raises(TypeError):
        parse(wrong, DROP)
    with pytest.raises(TypeError):
        parse(OK, wrong)
    with pytest.raises(TypeError):
        parse(OK, [b"connection"])


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_in_every_place(byte):
    """Each byte value in the reason, a name, a value, the version and the status."""
    b = bytes([byte])
    for buffer in (b"HTTP/1.1 200 O" + b + b"K\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nA" + b + b"b: c\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nAb: c" + b + b"d\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nAb: " + b + b"\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1." + b + b" 200 OK\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 2" + b + b"0 OK\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 200" + b + b"OK\r\nContent-Length: 0\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 1" + b + b"\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 0\r" + b + b"\r\n"):
        same(buffer)


# -- Hypothesis ------------------------------------------------------------------------------

_NAME = st.one_of(
    st.sampled_from([b"Content-Length", b"content-length", b"Connection", b"Transfer-Encoding", b"Upgrade",
                     b"Proxy-Connection", b"Server", b"Date", b"Set-Cookie", b"X-Accel-Buffering", b"Keep-Alive",
                     b"ETag", b"X-A", b"content-type"]),
    st.binary(min_size=1, max_size=8),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~",
            min_size=1, max_size=12).map(str.encode),
)
_VALUE = st.one_of(
    st.sampled_from([b"close", b"keep-alive", b"Keep-Alive", b"CLOSE", b"chunked", b"0", b"3", b"007", b" 3", b"3 ",
                     b"-1", b"", b"  ", b"\t", b"x, close", b"upgrade", b"\x80\xff", b"a\tb"]),
    st.binary(max_size=16),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ,;=/:*-_\t\"", max_size=24).map(str.encode),
    st.integers(min_value=0, max_value=10 ** 20).map(lambda n: b"%d" % n),
)
_SEPARATOR = st.sampled_from([b": ", b":", b":  ", b":\t", b" : ", b": \t "])
_EOL = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b"\n\r"])
_STATUS_LINE = st.one_of(
    st.tuples(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.1", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1",
                               b"HTTP/1.1 ", b"HTTP/0.9"]),
              st.sampled_from([b"200", b"204", b"304", b"404", b"500", b"599", b"100", b"101", b"199", b"600",
                               b"099", b"2x0", b"20"]),
              st.one_of(st.sampled_from([b" OK", b" ", b"", b" Not Found", b" N\x80t\tF"]),
                        st.binary(max_size=10).map(lambda b: b" " + b))).map(b"".join).map(
        lambda line: line[:8] + b" " + line[8:] if not line[8:9] == b" " else line),
    st.binary(max_size=20),
)


@st.composite
def heads(draw):
    line = draw(_STATUS_LINE)
    fields = draw(st.lists(st.tuples(_NAME, _SEPARATOR, _VALUE, _EOL), max_size=8))
    head = line + draw(_EOL) + b"".join(n + s + v + e for n, s, v, e in fields) + draw(_EOL)
    return head + draw(st.binary(max_size=8))


@st.composite
def plain_heads(draw):
    """Heads mostly accepted (the interesting side of the comparison with llhttp)."""
    status = draw(st.sampled_from([b"200", b"204", b"304", b"404", b"503"]))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    fields = draw(st.lists(st.tuples(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~", min_size=1,
                max_size=10).map(str.encode),
        st.binary(max_size=12).map(lambda v: bytes(c for c in v if c >= 0x20 and c != 0x7f))), max_size=6))
    fields = [(n, v) for n, v in fields if n.lower() not in (b"content-length", b"connection", b"transfer-encoding",
                                                              b"upgrade", b"proxy-connection")]
    length = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10 ** 6)))
    if length is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"Content-Length", b"%d" % length))
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive"]))
    if connection is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"Connection", connection))
    head = b"HTTP/%s %s %s\r\n" % (version, status, draw(st.sampled_from([b"OK", b"", b"Whatever It Is"])))
    head += b"".join(n + b":" + draw(st.sampled_from([b" ", b"", b"\t "])) + v + b"\r\n" for n, v in fields)
    return head + b"\r\n" + draw(st.binary(max_size=8))


_CHECKED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_CHECKED
@given(heads(), st.sampled_from(DROPS))
def test_generated_heads(buffer, drop):
    same(buffer, drop)


@_CHECKED
@given(plain_heads())
def test_generated_plain_heads(buffer):
    assert same(buffer) is not None  # all plain: accepted, and read as llhttp reads them


@_CHECKED
@given(plain_heads(), st.data())
def test_mutated_heads(buffer, data):
    """One byte replaced, inserted or removed; or the buffer cut anywhere."""
    at = data.draw(st.integers(0, len(buffer) - 1))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
    if kind == "replace":
        buffer = buffer[:at] + bytes([data.draw(st.integers(0, 255))]) + buffer[at + 1:]
    elif kind == "insert":
        buffer = buffer[:at] + bytes([data.draw(st.integers(0, 255))]) + buffer[at:]
    elif kind == "delete":
        buffer = buffer[:at] + buffer[at + 1:]
    else:
        buffer = buffer[:at]
    same(buffer)


@settings(max_examples=50, deadline=None)
@given(plain_heads(), st.integers(0, 200))
def test_oversize_heads(buffer, padding):
    """Heads at and past the 64 KiB bound: the same answer from both."""
    filler = MAX_HEAD - len(buffer) + padding - 100
    assume(filler > 0)
    same(buffer[:17] + b"X-Pad: " + b"p" * filler + b"\r\n" + buffer[17:])


# -- memory ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["parse_response_head", "parse_response_relay"])
def test_no_memory_grows_in_c(name):
    """A bounded number of calls on every path (accepted, each kind of decline, TypeError), of the
    head and of the relay (its lines too): the interpreter's allocated blocks do not grow."""
    parse = {"parse_response_head": parse_response_head_c, "parse_response_relay": parse_response_relay_c}[name]
    if parse is None:
        pytest.skip("the C accelerator was not built")
    inputs = [OK, *DECLINED.values(), b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 100 + b"\r\n"]

    def round_() -> None:
        for buffer in inputs:
            for drop in DROPS:
                parse(buffer, drop)
        for wrong in ("text", None, bytearray(b"x")):
            for call in ((wrong, DROP), (OK, wrong), (OK,), (OK, DROP, 1)):
                try:
                    parse(*call)
                except TypeError:
                    pass

    for _ in range(200):  # warm-up: caches, free lists
        round_()
    assert parse(OK, DROP) is not None
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(3000):
        round_()
    gc.collect()
    assert sys.getallocatedblocks() - before < 200


# -- parse_response_relay: the head and its kept headers' lines -------------------------------

@pytest.mark.parametrize("relay", RELAYS)
def test_the_relay_adds_the_client_lines(relay):
    result = relay(OK, DROP)
    assert result[:8] == parse_response_head_py(OK, DROP)
    assert result[8] == b"content-type: text/plain\r\n"
    assert relay(b"HTTP/1.1 204 No Content\r\nServer: x\r\nDate: d\r\n\r\n", DROP)[8] == b""
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"H%d: %s\r\n" % (i, b"v" * i) for i in range(100)) + b"\r\n"
    assert relay(many, DROP)[8] == b"".join(b"h%d: %s\r\n" % (i, b"v" * i) for i in range(100))


@pytest.mark.parametrize("relay", RELAYS)
@pytest.mark.parametrize("name", sorted(DECLINED))
def test_the_relay_declines_what_the_head_declines(relay, name):
    assert relay(DECLINED[name], DROP) is None


@pytest.mark.parametrize("relay", RELAYS)
@pytest.mark.parametrize("wrong", ["text", bytearray(OK), None])
def test_the_relay_takes_only_bytes(relay, wrong):
    with pytest.raises(TypeError):
        relay(wrong, DROP)
    with pytest.raises(TypeError):
        relay(OK, wrong)


