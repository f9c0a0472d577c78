"""The plain request head in one call (``ingressd.http.request_head``): the C accelerator and its
pure-Python twin give the same answers on every case and on fuzzed input, and decline what is
not plain; the extension leaks nothing; under CI=true it must have been built (test_accelerators.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from twins import twins

from ingressd.http import request_head
from ingressd.http.request_head import parse_request_head_py

try:
    from ingressd.http._request_head import parse_request_head as parse_c
except ImportError:
    parse_c = None

IMPLEMENTATIONS = twins(parse_request_head_py, parse_c)
LIMITS = (8192, 100, True)  # one buffer of "4 8k", max_headers, underscores dropped


def test_the_module_picks_the_extension_when_built():
    assert request_head.ACCELERATED == (parse_c is not None)
    assert request_head.parse_request_head is (parse_c or parse_request_head_py)


ACCEPTED = [
    (b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n",
     (b"GET", b"/a?b", b"1.1", [(b"host", b"x")], True, 30, 30, None)),
    # names lower-cased, values after the colon's blanks as llhttp gives them (trailing blanks kept),
    # an underscored name dropped but counted in $request_length, an empty value
    (b"HEAD / HTTP/1.1\r\nHOST:x\r\nUser-Agent: \t ua \r\nX_Y: 1\r\nEmpty:\r\n\r\n",
     (b"HEAD", b"/", b"1.1", [(b"host", b"x"), (b"user-agent", b"ua "), (b"empty", b"")], True, 62, 62, None)),
    (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n",
     (b"POST", b"/p", b"1.1", [(b"host", b"x"), (b"content-length", b"0"), (b"connection", b"Keep-Alive")],
      True, 72, 72, 0)),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     (b"GET", b"/", b"1.1", [(b"host", b"x"), (b"connection", b"close")], False, 46, 46, None)),
    (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", (b"GET", b"/", b"1.0", [(b"host", b"x")], False, 27, 27, None)),
    (b"DELETE /x#frag HTTP/1.0\r\nHost: x\r\nconnection: KEEP-ALIVE\r\n\r\n",
     (b"DELETE", b"/x#frag", b"1.0", [(b"host", b"x"), (b"connection", b"KEEP-ALIVE")], True, 60, 60, None)),
    (b"OPTIONS /\"{}|\\^`~ HTTP/1.1\r\nHost: x\r\nX: \x80\xff\tv\r\n\r\n",
     (b"OPTIONS", b"/\"{}|\\^`~", b"1.1", [(b"host", b"x"), (b"x", b"\x80\xff\tv")], True, 48, 48, None)),
]


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("raw, expected", ACCEPTED)
def test_plain_heads_are_read_in_one_call(parse, raw, expected):
    assert parse(raw, 0, *LIMITS) == expected
    # at an offset, with what follows (a pipelined request) left alone
    assert parse(b"xx" + raw + b"GET / HT", 2, *LIMITS) == expected[:5] + (expected[5] + 2,) + expected[6:]


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
def test_underscored_names_are_kept_when_the_setting_says_so(parse):
    head = parse(b"GET / HTTP/1.1\r\nHost: x\r\nX_Y: 1\r\n\r\n", 0, 8192, 100, False)
    assert head[3] == [(b"host", b"x"), (b"x_y", b"1")]


DECLINED = [
    b"GET / HTTP/1.1\r\nHost: x\r\n",  # incomplete
    b"GET / HTTP/1.1\r\nHost: x\r\n\r",
    b"",
    b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",  # llhttp skips the blank line: left to it
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close \r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET / HTTP/0.9\r\nHost: x\r\n\r\n",
    b"GET / http/1.1\r\nHost: x\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\ny: z\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHo\x80st: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",  # outgrows one buffer
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",  # 101 lines
]


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
@pytest.mark.parametrize("raw", DECLINED)
def test_anything_not_plain_is_declined(parse, raw):
    assert parse(raw, 0, *LIMITS) is None


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
def test_the_limits_are_those_of_the_protocol(parse):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"
    size = 3 + 1 + 14 + (4 + 1 + 4) + 2 * (1 + 1 + 4)  # method, target, 14; each header: name, value, 4
    assert parse(raw, 0, size, 3, True)[6] == size
    assert parse(raw, 0, size - 1, 3, True) is None  # more than one buffer: llhttp packs it
    assert parse(raw, 0, size, 2, True) is None  # more header lines than max_headers
    # the same count whether a line is kept or dropped (the protocol's 431 counts both)
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\nA_1: 1\r\n\r\n", 0, 8192, 1, True) is None


@pytest.mark.parametrize("parse", IMPLEMENTATIONS)
def test_out_of_range_arguments_are_declined_and_wrong_types_refused(parse):
    raw = ACCEPTED[0][0]
    assert parse(raw, -1, *LIMITS) is None
    assert parse(raw, len(raw) + 1, *LIMITS) is None
    assert parse(raw, len(raw), *LIMITS) is None
    assert parse(raw, 0, -1, 100, True) is None
    assert parse(raw, 0, 8192, -1, True) is None
    assert parse(raw, 0, 2 ** 62, 2 ** 62, True)[0] == b"GET"
    with pytest.raises(TypeError):
        parse(bytearray(raw), 0, *LIMITS)
    with pytest.raises(TypeError):
        parse(raw, "0", *LIMITS)


# -- differential fuzzing: C against its twin ---------------------------------------------------

_NAMES = [b"Host", b"host", b"HOST", b"User-Agent", b"Accept", b"X_Under", b"Content-Length", b"Connection",
          b"Transfer-Encoding", b"Upgrade", b"Expect", b"Proxy-Connection", b"X-Empty", b"Cookie", b"A"]
_VALUES = [b"x", b"", b"0", b"3", b"close", b"keep-alive", b"Keep-Alive", b"chunked", b"websocket",
           b"100-continue", b" padded ", b"\ttab", b"a,b", b"\x80\xff", b"v\x00", b"v\x7f", b"v\rw", b"v\nw"]


@st.composite
def heads(draw):
    method = draw(st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                                   b"TRACE", b"CONNECT", b"get", b"PRI", b"GE"]))
    target = draw(st.one_of(st.sampled_from([b"/", b"/a?b=c", b"/x#f", b"*", b"http://h/", b"", b"/\x7f"]),
                            st.binary(max_size=12).map(lambda b: b"/" + b)))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"http/1.1"]))
    lines = [method + draw(st.sampled_from([b" ", b"  ", b"\t"])) + target + b" " + version]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.one_of(st.sampled_from(_NAMES), st.binary(max_size=6)))
        sep = draw(st.sampled_from([b": ", b":", b":  \t", b" : "]))
        value = draw(st.one_of(st.sampled_from(_VALUES), st.binary(max_size=10)))
        lines.append(name + sep + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, at, byte in edits:
        if not out:
            break
        at %= len(out)
        if kind == 0:
            out[at] = byte
        elif kind == 1:
            out.insert(at, byte)
        else:
            del out[at]
    return bytes(out)


_EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=3)
_LIMITS = st.tuples(st.sampled_from([0, 20, 40, 64, 8192, 2 ** 40]), st.sampled_from([0, 1, 2, 3, 100]),
                    st.booleans())


def _same(data, start, limits):
    expected = parse_request_head_py(data, start, *limits)
    assert parse_c(data, start, *limits) == expected
    return expected


@pytest.mark.skipif(parse_c is None, reason="the extension is not built")
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(heads(), _EDITS, st.integers(0, 4), _LIMITS, st.binary(max_size=8))
def test_c_and_python_agree_on_generated_and_mutated_heads(head, edits, cut, limits, tail):
    data = mutate(head, edits) + tail
    _same(data, 0, limits)
    _same(data, min(cut, len(data)), limits)
    _same(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + data, 29, limits)  # pipelined after another
    for end in range(len(data)):  # every truncation
        _same(data[:end], 0, limits)


@pytest.mark.skipif(parse_c is None, reason="the extension is not built")
@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200), st.integers(-2, 210), _LIMITS)
def test_c_and_python_agree_on_random_bytes(data, start, limits):
    _same(data, start, limits)
    _same(b"GET / HTTP/1.1\r\nHost: " + data + b"\r\n\r\n", 0, limits)
    _same(b"GET /" + data + b" HTTP/1.1\r\nHost: x\r\n\r\n", 0, limits)
    _same(b"GET / HTTP/1.1\r\nHost: x\r\n" + data + b"\r\n\r\n", 0, limits)


@pytest.mark.skipif(parse_c is None, reason="the extension is not built")
@pytest.mark.parametrize("byte", range(256))
def test_c_and_python_agree_on_every_byte_value_in_every_place(byte):
    b = bytes([byte])
    base = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Name: value\r\n\r\n"
    for at in range(len(base) + 1):
        _same(base[:at] + b + base[at:], 0, LIMITS)  # inserted
        if at < len(base):
            _same(base[:at] + b + base[at + 1:], 0, LIMITS)  # replaced


@pytest.mark.skipif(parse_c is None, reason="the extension is not built")
def test_c_and_python_agree_on_oversize_heads():
    for size in (100, 8000, 8200, 20000, 200000):
        for raw in (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * size + b"\r\n\r\n",
                    b"GET /" + b"p" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: 1\r\n" * (size // 6) + b"\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nX:" + b" " * size + b"v\r\n\r\n"):
            for limits in ((8192, 100, True), (2 ** 20, 10 ** 6, False), (64, 100, True)):
                _same(raw, 0, limits)


# -- the extension's references ------------------------------------------------------------------

@pytest.mark.skipif(parse_c is None, reason="the extension is not built")
def test_the_extension_does_not_leak():
    """A bounded loop over accepted heads, declines and every error path: the memory the
    allocator holds for Python objects does not grow with the number of calls."""
    cases = [raw for raw, _ in ACCEPTED] + DECLINED

    def rounds(n):
        for _ in range(n):
            for raw in cases:
                parse_c(raw, 0, *LIMITS)
            for bad in ((bytearray(b"x"), 0, 1, 1, True), (b"x", "0", 1, 1, True), (b"x", 0, None, 1, True),
                        (b"x", 0, 1, 2 ** 80, True), (b"x",)):
                try:
                    parse_c(*bad)
                except (TypeError, OverflowError):
                    pass

    grown = traced_growth(rounds)
    # 1000 rounds of ~60 calls: a leaked object per call would be megabytes
    assert grown < 64 * 1024, grown
