"""ingressd.http.pyparser (pure-Python HTTP/1.1 parser) against httptools/llhttp.

A differential fuzzer feeds the same byte streams, split at random points, to both parsers and
compares the callbacks (consecutive on_url/on_status/on_body pieces joined: the two split them
differently), the getters at on_headers_complete, and the outcome (ok, error class, upgrade at
which offset). Then focused request-smuggling cases, tables of the framing rules (Content-Length,
Transfer-Encoding, chunks, head lines, message boundaries, request and status lines: each case
checked against llhttp as well), and ingressd's own protocol tests re-run with the Python parser.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressd.http import pyparser

LIBS = {"llhttp": httptools, "python": pyparser}


class Recorder:
    def __init__(self, lib, response):
        self.events = []
        self.parser = (lib.HttpResponseParser if response else lib.HttpRequestParser)(self)
        self.response = response

    def on_message_begin(self):
        self.events.append(("begin",))

    def on_url(self, url):
        self.events.append(("url", url))

    def on_status(self, status):
        self.events.append(("status", status))

    def on_header(self, name, value):
        self.events.append(("header", name, value))

    def on_headers_complete(self):
        p = self.parser
        if self.response:
            self.events.append(("headers", p.get_status_code(), p.get_http_version(), p.should_keep_alive()))
        else:
            self.events.append(("headers", p.get_method(), p.get_http_version(), p.should_keep_alive(),
                                p.should_upgrade()))

    def on_body(self, body):
        self.events.append(("body", body))

    def on_message_complete(self):
        self.events.append(("complete",))

    def on_chunk_header(self):
        self.events.append(("chunk",))

    def on_chunk_complete(self):
        self.events.append(("chunk_done",))


def run(lib, chunks, response=False):
    """Feed the chunks; an upgrade resumes after its offset (as ingressd does)."""
    rec = Recorder(lib, response)
    outcome = "ok"
    for index, chunk in enumerate(chunks):
        while True:
            try:
                rec.parser.feed_data(chunk)
            except lib.HttpParserUpgrade as exc:
                offset = exc.args[0]
                rec.events.append(("upgrade", index, offset))
                chunk = chunk[offset:]
                if chunk:
                    continue
            except lib.HttpParserError as exc:
                outcome = ("error", type(exc).__name__)
                try:  # stays in error
                    rec.parser.feed_data(b"x")
                except lib.HttpParserError as again:
                    assert type(again) is type(exc) or type(again).__name__ == "HttpParserCallbackError"
                else:
                    raise AssertionError("no error after an error")
            break
        if outcome != "ok":
            break
    return normalize(rec.events), outcome


def normalize(events):
    out = []
    for event in events:
        if event[0] in ("url", "status", "body"):
            if not event[1]:
                continue
            if out and out[-1][0] == event[0]:
                out[-1] = (event[0], out[-1][1] + event[1])
                continue
        out.append(event)
    return out


def split(data, cuts):
    cuts = sorted(set(c % (len(data) + 1) for c in cuts))
    pieces, last = [], 0
    for c in cuts:
        pieces.append(data[last:c])
        last = c
    pieces.append(data[last:])
    return [p for p in pieces if p] or [b""]


def check(data, cuts=(), response=False):
    chunks = split(data, cuts)
    expected = run(httptools, chunks, response)
    got = run(pyparser, chunks, response)
    assert got == expected, (data, chunks)
    return expected


# -- stream generators ------------------------------------------------------------------------

METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"PRI", b"M-SEARCH",
           b"DESCRIBE", b"SOURCE", b"GET_PARAMETER", b"get", b"GETX", b"G", b"", b"POS T", b"QUERY", b"PURGE"]
URLS = [b"/", b"/a/b?c=d#e", b"*", b"http://h.example/x", b"http://u@h:80/p?q", b"HTTPS://[::1]:8/", b"h:443",
        b"example.com:443", b"/a b", b"/\x00", b"/a\tb", b"/\x7f", b"/\xff", b"//x", b"/a?b?c#d#?", b"http:/x",
        b"ht1p://x/", b"http://a#b", b"/%zz", b"", b"http://", b"/" + b"a" * 70]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"RTSP/1.0", b"ICE/1.0",
            b"http/1.1", b"HTTP/11", b"HTTP/1.1 ", b"HTTP/1", b"HTTP/1.a"]
NAMES = [b"Host", b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b"Proxy-Connection",
         b"Upgrade", b"X-A", b"Expect", b"TRANSFER-ENCODING", b"Content-Length ", b"Host ", b" Host", b"X\x00",
         b"Ho\tst", b"X@Y", b"", b"Upgrade-Insecure-Requests", b"Connectionx", b"Cookie"]
VALUES = [b"a", b"bench.local", b"0", b"3", b"5", b"18446744073709551615", b"18446744073709551616", b"+1", b"-1",
          b"1 2", b"1, 1", b"3 ", b" 3\t", b"", b" ", b"chunked", b"CHUNKED", b"chunked ", b"chunked\t",
          b"gzip, chunked", b"chunked, gzip", b"chunked,chunked", b"gzip", b"identity", b"xchunked", b"close",
          b"keep-alive", b"upgrade", b"Upgrade", b"keep-alive, Upgrade", b"close x, upgrade", b"websocket",
          b"a\x00b", b"a\x7f", b"\xff\x80", b"a\rb", b"a\nb", b"a\r\n b", b"a\r\n\tb", b"100-continue", b"a b \t "]
EOLS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\r\n", b" \r\n", b"\r\n "]
DANGER = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b";", b"\"", b"\\", b"0", b"F", b"\x7f", b"\xff",
          b"Content-Length: 1\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n", b"\r\n ", b"0\r\n\r\n",
          b"GET / HTTP/1.1\r\n", b"Connection: close\r\n", b"HTTP/1.1 200 OK\r\n", b"Upgrade: x\r\nConnection: upgrade\r\n"]


def chunked_body(rng):
    out = []
    for _ in range(rng.randrange(0, 3)):
        size = rng.choice([1, 3, 10, 16])
        ext = rng.choice([b"", b"", b";a", b";a=b", b';a="x\\"y"', b";", b"; a", b";a=", b";=b", b";a;b=c",
                          b';a="\x01"', b";a=b c", b" ", b"\t"])
        hexsize = rng.choice([b"%x" % size, b"%X" % size, b"0%x" % size])
        out.append(hexsize + ext + b"\r\n" + bytes(rng.randrange(97, 123) for _ in range(size)) + b"\r\n")
    last = rng.choice([b"0", b"00", b"0;x=y", b"FFFFFFFFFFFFFFFFF", b"10000000000000000", b"-1", b"0x1", b""])
    trailers = b"".join(rng.choice([b"T: x\r\n", b"Content-Length: 1\r\n", b"Connection: close\r\n",
                                    b"Transfer-Encoding: chunked\r\n", b" X: y\r\n", b"X: a\r\n b\r\n"])
                        for _ in range(rng.choice([0, 0, 1, 2])))
    return b"".join(out) + last + b"\r\n" + trailers + b"\r\n"


def message(rng, response):
    if response:
        first = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"RTSP/1.0", b"HTTP/1.2", b"HTTP/11", b"HTP/1.1"])
        status = rng.choice([b"200", b"200", b"204", b"304", b"100", b"101", b"103", b"199", b"404", b"99", b"2000",
                             b"20"])
        reason = rng.choice([b" OK", b"", b" ", b" Not Found", b" a\x00b\x7f\xff", b"\tOK"])
        line = first + b" " + status + reason
    else:
        method = rng.choice(METHODS)
        url = rng.choice(URLS)
        version = rng.choice(VERSIONS)
        line = method + b" " * rng.choice([1, 1, 1, 2]) + url + rng.choice([b" ", b" ", b"  "]) + version
        if rng.random() < 0.05:
            line = method + b" " + url  # HTTP/0.9
    headers = []
    if not response and rng.random() < 0.8:
        headers.append((b"Host", b"bench.local"))
    framing = rng.choice(["none", "cl", "cl", "chunked", "chunked", "both", "te", "upgrade"])
    body = b""
    if framing in ("cl", "both"):
        size = rng.choice([0, 1, 3, 10])
        headers.append((b"Content-Length", b"%d" % size))
        body = bytes(rng.randrange(65, 91) for _ in range(size))
    if framing in ("chunked", "both"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = chunked_body(rng)
    if framing == "te":
        headers.append((b"Transfer-Encoding", rng.choice(VALUES)))
    if framing == "upgrade":
        headers.append((b"Upgrade", b"websocket"))
        headers.append((b"Connection", rng.choice([b"Upgrade", b"keep-alive, upgrade", b"close"])))
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        headers.insert(rng.randrange(len(headers) + 1), (rng.choice(NAMES), rng.choice(VALUES)))
    rng.shuffle(headers)
    sep = rng.choice([b": ", b": ", b":", b":\t", b" : ", b":  "])
    eol = b"\r\n" if rng.random() < 0.7 else rng.choice(EOLS)
    head = line + eol + b"".join(n + sep + v + (b"\r\n" if rng.random() < 0.9 else rng.choice(EOLS))
                                 for n, v in headers) + b"\r\n"
    if response and framing == "none" and rng.random() < 0.5:
        body = b"close-delimited body"
    return rng.choice([b"", b"", b"", b"\r\n"]) + head + body


def stream(rng, response):
    data = b"".join(message(rng, response) for _ in range(rng.choice([1, 1, 2, 3])))
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
        i = rng.randrange(len(data) + 1)
        action = rng.random()
        if action < 0.4:
            data = data[:i] + rng.choice(DANGER) + data[i:]
        elif action < 0.7:
            data = data[:i] + data[i + rng.randrange(1, 4):]
        else:
            data = data[:i] + rng.choice(DANGER) + data[i + 1:]
    return data


def random_cuts(rng, data):
    mode = rng.random()
    if mode < 0.3:
        return ()
    if mode < 0.4:
        return range(1, len(data))  # byte by byte
    return [rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 5))]


# -- the differential tests -------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32), response=st.booleans())
def test_differential_hypothesis(seed, response):
    rng = random.Random(seed)
    data = stream(rng, response)
    check(data, random_cuts(rng, data), response)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=80), cuts=st.lists(st.integers(0, 100), max_size=4), response=st.booleans(),
       prefix=st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                               b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]))
def test_differential_raw_bytes(data, cuts, response, prefix):
    check(prefix + data, cuts, response)


def test_differential_seeded_bulk():
    """Many more generated streams than hypothesis runs in the time (fixed seeds: reproducible)."""
    rng = random.Random(20261127)
    for _ in range(6000):
        response = rng.random() < 0.4
        data = stream(rng, response)
        check(data, random_cuts(rng, data), response)


# -- focused cases ----------------------------------------------------------------------------

REQ = b"GET / HTTP/1.1\r\nHost: a\r\n"

SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\t\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
]


@pytest.mark.parametrize("data", SMUGGLING)
def test_smuggling_rejected_like_llhttp(data):
    for cuts in ((), range(1, len(data))):
        events, outcome = check(data, cuts)
        assert outcome != "ok", events


@pytest.mark.parametrize("data", [
    REQ + b"\r\n",
    b"\r\n\r\n" + REQ + b"\r\n" + REQ + b"Content-Length: 3\r\n\r\nabc" + REQ + b"\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;a=b;c=\"d\\\"\"\r\nabc\r\n0\r\nT: x\r\n\r\n",
    REQ + b"X:  a b \t \r\nY:\t\r\nZ:\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
])
def test_valid_requests_like_llhttp(data):
    for cuts in ((), range(1, len(data)), (len(data) // 2,)):
        events, outcome = check(data, cuts)
        assert outcome == "ok", events


@pytest.mark.parametrize("data", [
    REQ + b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\nrest of the bytes",
    REQ + b"Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\nGET / HTTP/1.1\r\n\r\n",
])
def test_upgrades_like_llhttp(data):
    for cuts in ((), range(1, len(data)), (len(data) // 2,)):
        events, outcome = check(data, cuts)
        assert any(e[0] == "upgrade" for e in events), events


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nbody until the connection closes",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\na",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.0 200 OK\r\n\r\n",
])
def test_responses_like_llhttp(data):
    for cuts in ((), range(1, len(data)), (len(data) // 2,)):
        check(data, cuts, response=True)


def test_upgrade_offset_and_resume():
    data = REQ + b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n"
    rec = Recorder(pyparser, False)
    with pytest.raises(pyparser.HttpParserUpgrade) as info:
        rec.parser.feed_data(data + b"GET")
    assert info.value.args[0] == len(data)
    assert rec.parser.should_upgrade()
    rec.parser.feed_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert rec.events[-1] == ("complete",)


def test_callback_exception_is_the_context():
    class Boom(Exception):
        pass

    for lib in (httptools, pyparser):
        class Proto:
            def on_header(self, name, value):
                raise Boom()

        parser = lib.HttpRequestParser(Proto())
        with pytest.raises(lib.HttpParserCallbackError) as info:
            parser.feed_data(REQ + b"\r\n")
        assert isinstance(info.value.__context__, Boom)
        with pytest.raises(lib.HttpParserError):
            parser.feed_data(b"GET / HTTP/1.1\r\n\r\n")


def test_callback_exception_context_inside_an_except_block():
    class Boom(Exception):
        pass

    class Proto:
        def on_url(self, url):
            raise Boom()

    parser = pyparser.HttpRequestParser(Proto())
    try:
        raise KeyError("the caller is handling something")
    except KeyError:
        with pytest.raises(pyparser.HttpParserCallbackError) as info:
            parser.feed_data(b"GET / HTTP/1.1\r\n")
    assert isinstance(info.value.__context__, Boom)


def test_initial_getters_like_httptools():
    for lib in (httptools, pyparser):
        p = lib.HttpRequestParser(object())
        assert (p.get_method(), p.get_http_version(), p.should_keep_alive(), p.should_upgrade()) == \
            (b"DELETE", "0.0", False, False)
        r = lib.HttpResponseParser(object())
        assert (r.get_status_code(), r.get_http_version(), r.should_keep_alive()) == (0, "0.0", False)


def test_long_line_is_bounded():
    """Deliberate difference: llhttp has no line limit; pyparser stops at MAX_LINE."""
    parser = pyparser.HttpResponseParser(object())
    parser.feed_data(b"HTTP/1.1 200 OK\r\nX: ")
    with pytest.raises(pyparser.HttpParserError):
        for _ in range(pyparser.MAX_LINE // 65536 + 2):
            parser.feed_data(b"a" * 65536)


def test_url_pieces_reach_ingressd_limits():
    """A request line that never ends still reaches on_url piece by piece (ingressd counts them)."""
    got = []

    class Proto:
        def on_url(self, url):
            got.append(url)

    parser = pyparser.HttpRequestParser(Proto())
    parser.feed_data(b"GET /")
    for _ in range(10):
        parser.feed_data(b"a" * 1000)
    assert sum(map(len, got)) == 10001


# -- framing, table by table ------------------------------------------------------------------
# Each case is fed whole, byte by byte and cut in two, to pyparser and to llhttp: the two must
# agree (``check``) and give the reading in the table: the body of each message begun, and how
# the stream ends: "done" (between messages), "more" (inside a message), "upgrade", or the
# error message (llhttp's wording, which ingressd gives as the reason of its 400).


def _reading(lib, chunks, response):
    rec = Recorder(lib, response)
    end = None
    for chunk in chunks:
        try:
            rec.parser.feed_data(chunk)
        except lib.HttpParserUpgrade:
            end = "upgrade"
        except lib.HttpParserError as exc:
            end = str(exc)
        if end is not None:
            break
    bodies, open_ = [], False
    for event in rec.events:
        if event[0] == "begin":
            bodies.append(b"")
            open_ = True
        elif event[0] == "body":
            bodies[-1] += event[1]
        elif event[0] == "complete":
            open_ = False
    return bodies, end or ("more" if open_ else "done")


# pyparser's message where llhttp words the same refusal differently (a bare LF)
LLHTTP_WORDING = {
    "Expected LF after chunk size": "Missing expected CR after chunk size",
    "Missing expected LF after header value": "Missing expected CR after header value",
}


def reading(data, response=False):
    """(bodies, end) for ``data``, the same whole, byte by byte and cut in two, and from llhttp."""
    readings = []
    for cuts in ((), range(1, len(data)), (len(data) // 2,)):
        check(data, cuts, response)
        chunks = split(data, cuts)
        readings.append(_reading(pyparser, chunks, response))
        bodies, end = _reading(httptools, chunks, response)
        readings.append((bodies, {v: k for k, v in LLHTTP_WORDING.items()}.get(end, end)))
    assert all(r == readings[0] for r in readings), readings
    return readings[0]


POST = b"POST / HTTP/1.1\r\nHost: a\r\n"
NEXT = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"  # a pipelined request after the one under test
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
BODY = b"3\r\nabc\r\n0\r\n\r\n"

CONTENT_LENGTH = [
    (b"Content-Length: 3\r\n\r\nabc" + NEXT, [b"abc", b""], "done"),
    (b"Content-Length: 0\r\n\r\n" + NEXT, [b"", b""], "done"),
    (b"content-length: 3\r\n\r\nabc" + NEXT, [b"abc", b""], "done"),
    (b"CONTENT-LENGTH: 3\r\n\r\nabc" + NEXT, [b"abc", b""], "done"),
    (b"Content-Length:3\r\n\r\nabc" + NEXT, [b"abc", b""], "done"),
    (b"Content-Length: \t3 \t \r\n\r\nabc" + NEXT, [b"abc", b""], "done"),  # spaces and tabs around
    (b"Content-Length: 003\r\n\r\nabc" + NEXT, [b"abc", b""], "done"),
    (b"Content-Length: 10\r\n\r\n0123456789" + NEXT, [b"0123456789", b""], "done"),
    (b"Content-Length: 5\r\n\r\nabc", [b"abc"], "more"),
    (b"Content-Length: 18446744073709551615\r\n\r\nabc", [b"abc"], "more"),  # 2**64-1: the largest
    (b"Content-Length: 18446744073709551616\r\n\r\n", [b""], "Content-Length overflow"),
    (b"Content-Length: 99999999999999999999999\r\n\r\n", [b""], "Content-Length overflow"),
    (b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", [b""], "Duplicate Content-Length"),
    (b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", [b""], "Duplicate Content-Length"),
    (b"Content-Length: 3\r\ncontent-length: 3\r\n\r\nabc", [b""], "Duplicate Content-Length"),
    (b"Content-Length: 3\r\nX: y\r\nContent-Length: 3\r\n\r\nabc", [b""], "Duplicate Content-Length"),
    (b"Content-Length: 3\r\n" + CHUNKED + BODY, [b""], "Transfer-Encoding can't be present with Content-Length"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + BODY, [b""],
     "Content-Length can't be present with Transfer-Encoding"),
    (b"Transfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", [b""],
     "Content-Length can't be present with Transfer-Encoding"),
    (b"Content-Length:\r\n\r\n", [b""], "Empty Content-Length"),
    (b"Content-Length:   \r\n\r\n", [b""], "Empty Content-Length"),
    (b"Content-Length: +3\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: -3\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 0x3\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 3 3\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 3,3\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 3a\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 3X\r\n\r\nabc", [b""], "Invalid character in Content-Length"),
    (b"Content-Length: 3\r\n 4\r\n\r\nabcd", [b""], "Unexpected whitespace after header value"),  # obs-fold
    (b"Content-Length: 3\r\n\t4\r\n\r\nabcd", [b""], "Unexpected whitespace after header value"),
    (b"Content-Length:\r\n 3\r\n\r\nabc", [b""], "Invalid header value char"),
    (b"Content-Length : 3\r\n\r\nabc", [b""], "Invalid header field char"),
    (b"Content-Length\t: 3\r\n\r\nabc", [b""], "Invalid header token"),
    (b"Content-Length 3\r\n\r\nabc", [b""], "Invalid header field char"),
]


@pytest.mark.parametrize("head, bodies, end", CONTENT_LENGTH)
def test_content_length_framing(head, bodies, end):
    assert reading(POST + head) == (bodies, end)


TRANSFER_ENCODING = [
    # chunked when the last coding is exactly "chunked" (any case, spaces after it)
    (b"Transfer-Encoding: chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: Chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"transfer-encoding: CHUNKED\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding:chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: chunked   \r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: gzip, chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: gzip,chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: gzip ,\t chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: ,chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    (b"Transfer-Encoding: chunked\r\nX: y\r\n\r\n" + BODY + NEXT, [b"abc", b""], "done"),
    # chunked, then another coding: refused in requests
    (b"Transfer-Encoding: chunked, gzip\r\n\r\n" + BODY, [b""], "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: chunked,\r\n\r\n" + BODY, [b""], "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: chunked , \r\n\r\n" + BODY, [b""], "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: chunked,chunked\r\n\r\n" + BODY, [b""], "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: gzip, chunked, gzip\r\n\r\n" + BODY, [b""], "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + BODY, [b""],
     "Invalid `Transfer-Encoding` header value"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n" + BODY, [b""],
     "Invalid `Transfer-Encoding` header value"),
    # a last coding that is not exactly "chunked": no framing a request can have
    (b"Transfer-Encoding: chunked\t\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunked\x0b\r\n\r\n" + BODY, [b""], "Invalid header value char"),
    (b"Transfer-Encoding: chunked x\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunkedx\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: xchunked\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunkedX\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: Xchunked\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: Xchunked, gzip\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunke\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: \"chunked\"\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunked;q=1\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: identity\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: gzip\r\n\r\n" + BODY, [b""], "Request has invalid `Transfer-Encoding`"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n\r\n" + BODY, [b""], "Empty Transfer-Encoding"),
    (b"Transfer-Encoding:\r\n\r\n" + BODY, [b""], "Empty Transfer-Encoding"),
    (b"Transfer-Encoding:\r\n chunked\r\n\r\n" + BODY, [b""], "Invalid header value char"),  # obs-fold
    (b"Transfer-Encoding: gzip\r\n chunked\r\n\r\n" + BODY, [b""], "Unexpected whitespace after header value"),
    (b"Transfer-Encoding: chunked\r\n\tgzip\r\n\r\n" + BODY, [b""], "Unexpected whitespace after header value"),
    (b"Transfer-Encoding : chunked\r\n\r\n" + BODY, [b""], "Invalid header field char"),
    (b"Transfer-Encoding\t: chunked\r\n\r\n" + BODY, [b""], "Invalid header token"),
    (b"Transfer_Encoding: chunked\r\n\r\n" + BODY, [b"", b""], "Invalid method encountered"),  # not framing
]


@pytest.mark.parametrize("head, bodies, end", TRANSFER_ENCODING)
def test_transfer_encoding_framing(head, bodies, end):
    assert reading(POST + head) == (bodies, end)


CHUNKED_BODY = [
    (b"3\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"0\r\n\r\n" + NEXT, [b"", b""], "done"),
    (b"00\r\n\r\n" + NEXT, [b"", b""], "done"),
    (b"A\r\n0123456789\r\n0\r\n\r\n" + NEXT, [b"0123456789", b""], "done"),  # hex, either case
    (b"a\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n" + NEXT, [b"0123456789" + b"0123456789abcde", b""], "done"),
    (b"0a\r\n0123456789\r\n0\r\n\r\n" + NEXT, [b"0123456789", b""], "done"),
    (b"10\r\n0123456789abcdef\r\n0\r\n\r\n" + NEXT, [b"0123456789abcdef", b""], "done"),
    (b"00000000000000003\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),  # 17 digits, small value
    (b"0FFFFFFFFFFFFFFFF\r\nabc", [b"abc"], "more"),  # 17 digits, 2**64-1
    (b"FFFFFFFFFFFFFFFF\r\nabc", [b"abc"], "more"),  # 2**64-1: the largest
    (b"3\r\nab", [b"ab"], "more"),
    (b"3\r\nabc\r\n", [b"abc"], "more"),
    (b"3\r\nabc\r\n0\r\n", [b"abc"], "more"),
    # chunk extensions (ignored), as llhttp checks them
    (b"3;a\r\nabc\r\n0;b\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=b\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=b;c=d\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a;b;c\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a;;b\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;=b\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=;b\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=b\"x\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"x\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"x\";b\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"x\";b=\"y\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"x;y\\\"z\\\\\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"\\\xff\xfe\t \"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3;a=\"\\\t\"\r\nabc\r\n0\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    # trailers
    (b"3\r\nabc\r\n0\r\nT: x\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3\r\nabc\r\n0\r\nT: x\r\nU:\r\n\r\n" + NEXT, [b"abc", b""], "done"),
    (b"3\r\nabc\r\n0\r\nT: x\r\n", [b"abc"], "more"),
    # sizes
    (b"10000000000000000\r\nabc", [b""], "Chunk size overflow"),  # 2**64
    (b"1FFFFFFFFFFFFFFFF\r\nabc", [b""], "Chunk size overflow"),
    (b"FFFFFFFFFFFFFFFFF\r\nabc", [b""], "Chunk size overflow"),
    (b"3\r\nabc\r\n10000000000000001\r\n", [b"abc"], "Chunk size overflow"),
    (b"0x3\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"-3\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"+3\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b" 3\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"3 \r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"3\t\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"g\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk size"),
    (b"3\nabc\r\n0\r\n\r\n", [b""], "Expected LF after chunk size"),
    (b"3\rabc\r\n0\r\n\r\n", [b""], "Expected LF after chunk size"),
    (b"3;a\rb\r\nabc\r\n0\r\n\r\n", [b""], "Expected LF after chunk size"),
    # the CRLF after the data
    (b"3\r\nabcd\r\n0\r\n\r\n", [b"abc"], "Expected LF after chunk data"),
    (b"3\r\nabc\n0\r\n\r\n", [b"abc"], "Missing expected CR after chunk data"),
    (b"3\r\nabc\rx0\r\n\r\n", [b"abc"], "Expected LF after chunk data"),
    (b"3\r\nabc\r\r\n0\r\n\r\n", [b"abc"], "Expected LF after chunk data"),
    # extensions llhttp refuses
    (b"3;\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions"),
    (b"3;;\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions"),
    (b"3;a;\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions"),
    (b"3;a=b;\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions"),
    (b"3; a\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions"),
    (b"3;\ta\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions name"),
    (b"3;a b\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions name"),
    (b"3;a =b\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions name"),
    (b"3;a=b c\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions value"),
    (b"3;a=\"x\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions quoted value"),
    (b"3;a=\"\x01\"\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions quoted value"),
    (b"3;a=\"x\\\r\nabc\r\n0\r\n\r\n", [b""], "Invalid quoted-pair in chunk extensions quoted value"),
    (b"3;a=\"\\\x01\"\r\nabc\r\n0\r\n\r\n", [b""], "Invalid quoted-pair in chunk extensions quoted value"),
    (b"3;a=\"\\\x7f\"\r\nabc\r\n0\r\n\r\n", [b""], "Invalid quoted-pair in chunk extensions quoted value"),
    (b"3;a=\"x\"y\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions quote value"),
    (b"3;a=\"x\" \r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions quote value"),
    (b"3;a=\"x\"\"\r\nabc\r\n0\r\n\r\n", [b""], "Invalid character in chunk extensions quote value"),
    # trailers llhttp refuses
    (b"3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n", [b"abc"], "Content-Length can't be present with Transfer-Encoding"),
    (b"3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", [b"abc"], "Invalid `Transfer-Encoding` header value"),
    (b"3\r\nabc\r\n0\r\nT: x\r\n y\r\n\r\n", [b"abc"], "Unexpected whitespace after header value"),
    (b"3\r\nabc\r\n0\r\n T: x\r\n\r\n", [b"abc"], "Invalid header token"),
    (b"3\r\nabc\r\n0\r\nT : x\r\n\r\n", [b"abc"], "Invalid header token"),
    (b"3\r\nabc\r\n0\r\nT: a\x00\r\n\r\n", [b"abc"], "Invalid header value char"),
    (b"3\r\nabc\r\n0\r\nT: x\n\r\n", [b"abc"], "Missing expected LF after header value"),
    (b"3\r\nabc\r\n0\r\nT: x\r\n\n", [b"abc"], "Invalid header field char"),
    (b"3\r\nabc\r\n0\r\n\n", [b"abc"], "Invalid header field char"),
    (b"3\r\nabc\r\n0\r\n\rx", [b"abc"], "Expected LF after headers"),
]


@pytest.mark.parametrize("body, bodies, end", CHUNKED_BODY)
def test_chunked_framing(body, bodies, end):
    assert reading(POST + CHUNKED + body) == (bodies, end)


HEAD = [
    # CR and LF between messages are skipped
    (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"\n\nGET / HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"\r\rGET / HTTP/1.1\r\n\r\n", [b""], "done"),
    # every line ends with CRLF: a bare LF or a CR followed by anything else is refused
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", [b""], "Expected CRLF after version"),
    (b"GET / HTTP/1.1\rHost: a\r\n\r\n", [b""], "Expected CRLF after version"),
    (b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", [b""], "Expected CRLF after version"),
    (b"GET / HTTP/1.1\r\nHost: a\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nX: a\r\nY: b\rZ: c\r\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nX: a\r\x10\r\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nX: a\rXX\nXX: b\r\n\r\n", [b""], "Missing expected LF after header value"),
    (b"GET / HTTP/1.1\r\nX: a\x0e\nY: b\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\n", [b""], "Invalid header field char"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\rX", [b""], "Expected LF after headers"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", [b""], "Expected LF after headers"),
    (b"GET / HTTP/1.1\r\n\n", [b""], "Invalid header field char"),
    # obs-fold, and whitespace before the first header
    (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\nX: a\r\n \r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n X: b\r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\nConnection:\r\n close\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n x\r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n x\r\n\r\n", [b""], "Unexpected whitespace after header value"),
    (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", [b""], "Unexpected space after start line"),
    (b"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", [b""], "Invalid header token"),
    # header names: tchar only, a colon right after
    (b"GET / HTTP/1.1\r\nHost\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\n: a\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\nX Y: a\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\nX@Y: a\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\nX\x00: a\r\n\r\n", [b""], "Invalid header token"),
    (b"GET / HTTP/1.1\r\nContent-Length  : 3\r\n\r\nabc", [b""], "Invalid header field char"),
    (b"GET / HTTP/1.1\r\nX: a\r\nContent-Length  : 3\r\n\r\nabc", [b""], "Invalid header field char"),
    (b"GET / HTTP/1.1\r\nContent-Lengthx: 3\r\n\r\n", [b""], "done"),  # not Content-Length: no body
    (b"GET / HTTP/1.1\r\nX-Content-Length: 3\r\n\r\nabc", [b"", b""], "Invalid method encountered"),
    # header values: HT, visible ASCII, obs-text; no other control byte
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nX: \x0ca\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nX:\rY: b\r\n\r\n", [b""], "Expected LF after CR"),
    (b"GET / HTTP/1.1\r\nUpgrade: \x00\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nConnection: \x00\r\n\r\n", [b""], "Invalid header value char"),
    (b"GET / HTTP/1.1\r\nX: a\x80\xffb\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nX: a\tb \t\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nX:\r\nY: \r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nX: \t\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nAXX:XX\r\nA: Xb\r\nB: X\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 30) for i in range(12)) + b"\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nConnection:\r\nUpgrade:\r\n\r\n", [b""], "done"),
]


@pytest.mark.parametrize("data, bodies, end", HEAD)
def test_head_lines(data, bodies, end):
    assert reading(data) == (bodies, end)


PIPELINING = [
    (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b"", b""], "done"),
    (b"GET / HTTP/1.1\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n", [b"", b""], "more"),
    # after a message that closes the connection, only CR/LF may follow
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n  ", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n\r\n\t", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nX", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: x, CLOSE \r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: x,\tclose\r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\nG",
     [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nConnection: close x\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nConnection: Xclose\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nKeep-Alive: close\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),  # not Connection
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcGET / HTTP/1.1\r\n\r\n", [b"abc"],
     "Data after `Connection: close`"),
    (b"POST / HTTP/1.1\r\n" + CHUNKED + b"3\r\nabc\r\n0\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"abc"],
     "Data after `Connection: close`"),  # a Connection trailer counts
    # HTTP/1.0 (and 2.0, and 0.9): keep-alive only when asked for
    (b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/1.0\r\n\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\nG", [b"", b""], "more"),
    (b"POST / HTTP/1.0\r\n" + b"Connection: keep-alive\r\n" + CHUNKED + b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
     [b"abc", b""], "done"),
    (b"GET / HTTP/2.0\r\n\r\nG", [b""], "Data after `Connection: close`"),
    (b"GET / HTTP/2.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET /\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b""], "Data after `Connection: close`"),
    (b"GET /\r\n\r\n", [b""], "done"),
    # upgrades: the head is the whole message, its body is not read
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxyz", [b""], "upgrade"),
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, upgrade\r\nContent-Length: 3\r\n\r\nabc",
     [b""], "upgrade"),
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nUpgrade:\r\nConnection: upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrades\r\n\r\nGET / HTTP/1.1\r\n\r\n", [b"", b""], "done"),
    (b"CONNECT h:443 HTTP/1.1\r\n\r\nxyz", [b""], "upgrade"),
    (b"CONNECT h:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", [b""], "upgrade"),
    # PRI: the HTTP/2 preface, then an error anyway
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [b""], "Pause on PRI/Upgrade"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n", [b""], "more"),
    (b"PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n", [b""], "Expected HTTP/2 Connection Preface"),
    (b"PRI * HTTP/2.0\r\r\n", [b""], "Expected HTTP/2 Connection Preface"),
    (b"PRI * HTTP/2.0\n\r\nSM\r\n\r\n", [b""], "Expected HTTP/2 Connection Preface"),
]


@pytest.mark.parametrize("data, bodies, end", PIPELINING)
def test_message_boundaries(data, bodies, end):
    assert reading(data) == (bodies, end)


REQUEST_LINE = [
    # URLs (llhttp's strict URL mode)
    (b"GET /a/b?c=d#e HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET /a?\"b\" HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET /a{b}|c^d`e HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET //h HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET * HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET */x HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://h.example/x HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://u:p@h:80/p?q HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET HTTPS://[::1]:8/ HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://h?q=/ HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://h HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://h/a?b#c HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http://h/# HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET http:// HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET /\x00 HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET /\x7f HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET /\xff HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET *\x01 HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET http://h/\x01 HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET http://h/a\x7f HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"GET http: HTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET http:\t HTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET http HTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET http\t://x/ HTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET \t/ HTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET \r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET http:/x HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET http:x HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET ht1p://x/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET http\x01://x/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET http:X\tY HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET h:443 HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url schema"),
    (b"GET 1http://x/ HTTP/1.1\r\n\r\n", [b""], "Unexpected start char in url"),
    (b"GET \x01 HTTP/1.1\r\n\r\n", [b""], "Unexpected start char in url"),
    (b"GET http://h\x01/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    (b"GET http://h\"/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    (b"GET http://h{}/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    (b"GET http://h#x HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    (b"GET http://\x01h/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    (b"GET http://\"h/ HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    # CONNECT: an authority (the upgrade hands the connection over)
    (b"CONNECT h:443 HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT /x HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT h:443/x HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT h:443?x HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT http://h/ HTTP/1.1\r\n\r\n", [b""], "upgrade"),
    (b"CONNECT h:443/\x01 HTTP/1.1\r\n\r\n", [b""], "Invalid char in url path"),
    (b"CONNECT h\x01 HTTP/1.1\r\n\r\n", [b""], "Unexpected char in url server"),
    # spaces, HT and FF around the URL
    (b"GET  / HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET /  HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GET / \tHTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    (b"GET / \x0cHTTP/1.1\r\n\r\n", [b""], "Invalid characters in url"),
    # HTTP/0.9: the URL ends the line
    (b"GET /\r\n\r\n", [b""], "done"),
    (b"GET /\r\nHost: a\r\n\r\n", [b""], "done"),
    (b"GET /\n\r\n", [b""], "done"),
    (b"GET /\r\n\t\r\n", [b""], "Invalid characters in url"),
    (b"GET /\r\n\x0c\r\n", [b""], "Invalid characters in url"),
    (b"GET /\rx\r\n", [b""], "Expected CRLF"),
    # methods
    (b"M-SEARCH * HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"OPTIONS * HTTP/1.1\r\n\r\n", [b""], "done"),
    (b"GE\r\n\r\n", [b""], "Invalid method encountered"),
    (b"get / HTTP/1.1\r\n\r\n", [b""], "Invalid method encountered"),
    (b"XYZ / HTTP/1.1\r\n\r\n", [b""], "Invalid method encountered"),
    # protocols and versions
    (b"DESCRIBE / RTSP/1.0\r\n\r\n", [b""], "done"),
    (b"GET / RTSP/1.0\r\n\r\n", [b""], "done"),
    (b"SOURCE / ICE/1.0\r\n\r\n", [b""], "done"),
    (b"GET / HTTP/0.9\r\n\r\n", [b""], "done"),
    (b"DESCRIBE / HTTP/1.1\r\n\r\n", [b""], "Invalid method for HTTP/x.x request"),
    (b"PUT / RTSP/1.0\r\n\r\n", [b""], "Invalid method for RTSP/x.x request"),
    (b"GET / HTTP/1.2\r\n\r\n", [b""], "Invalid HTTP version"),
    (b"GET / HTTP/3.0\r\n\r\n", [b""], "Invalid HTTP version"),
    (b"GET / HTTP/11\r\n\r\n", [b""], "Expected dot"),
    (b"GET / HTTP/1,1\r\n\r\n", [b""], "Expected dot"),
    (b"GET / HTTP/a.1\r\n\r\n", [b""], "Invalid major version"),
    (b"GET / HTTP/1.a\r\n\r\n", [b""], "Invalid minor version"),
    (b"GET / http/1.1\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / HTTPS/1.1\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / H\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / X\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / HTTPX1.1\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / RTSPX1.0\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / HTTP/1X1\r\n\r\n", [b""], "Expected dot"),
    # refused as soon as the bytes are wrong, not at the end of the line
    (b"GET / XTTP/1.1", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"GET / HTTP/1.1x", [b""], "Expected CRLF after version"),
    (b"GET / HTTP/1.1 ", [b""], "Expected CRLF after version"),
    (b"GET / H", [b""], "more"),
    (b"GET / HTTP/1.1 \r\n\r\n", [b""], "Expected CRLF after version"),
    (b"GET / HTTP/1.1x\r\n\r\n", [b""], "Expected CRLF after version"),
]


@pytest.mark.parametrize("data, bodies, end", REQUEST_LINE)
def test_request_line(data, bodies, end):
    assert reading(data) == (bodies, end)


RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n", [b"abc", b""], "done"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", [b"", b""], "more"),
    (b"HTTP/1.1 200 OK\r\n" + CHUNKED + BODY + b"HTTP/1.1 204 No Content\r\n\r\n", [b"abc", b""], "done"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + BODY, [b"abc"], "done"),
    (b"HTTP/1.1 200 OK\r\n" + CHUNKED + b"3;a=\"x\"\r\nabc\r\n0\r\nT: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
     [b"abc", b""], "more"),
    # no length: the body runs to the end of the connection
    (b"HTTP/1.1 200 OK\r\n\r\nabc", [b"abc"], "more"),
    (b"HTTP/1.1 200 OK\r\n\r\n\r\n", [b"\r\n"], "more"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", [b"abc"], "more"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", [b"abc"], "more"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\nabc", [b"abc"], "more"),
    (b"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 1\r\n\r\na"
     b"HTTP/1.1 200 OK\r\n\r\n", [b"a", b""], "more"),
    # framing conflicts
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", [b""],
     "Content-Length can't be present with Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", [b""],
     "Transfer-Encoding can't be present with Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", [b""], "Duplicate Content-Length"),
    # 1xx, 204 and 304 have no body whatever the headers say
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"", b"a"], "done"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"", b"a"], "done"),
    (b"HTTP/1.1 304 Not Modified\r\n" + CHUNKED + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"", b"a"], "done"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", [b"", b"a"], "done"),
    (b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", [b"", b"a"], "done"),
    (b"HTTP/1.1 102 Processing\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"", b"a"], "done"),
    (b"HTTP/1.1 103 Early Hints\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"", b"a"], "done"),
    (b"HTTP/1.1 199 X\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", [b"", b"a"], "done"),
    (b"HTTP/1.1 199 X\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
     [b"a", b"a"], "done"),
    # 101
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
     [b""], "upgrade"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", [b""], "Pause on CONNECT/Upgrade"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", [b""], "Pause on CONNECT/Upgrade"),
    # keep-alive
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n", [b"a"],
     "Data after `Connection: close`"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.0 200 OK\r\n\r\n", [b"a"], "Data after `Connection: close`"),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\naHTTP/1.0 200 OK\r\n\r\n",
     [b"a", b""], "more"),
    (b"HTTP/2.0 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n", [b"a"], "Data after `Connection: close`"),
    # status lines
    (b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [b""], "done"),
    (b"RTSP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", [b""], "done"),
    (b"ICE/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", [b""], "done"),
    (b"HTTP/1.1 200\r\n\r\n", [b""], "more"),
    (b"HTTP/1.1 200 \r\n\r\n", [b""], "more"),
    (b"HTTP/1.1 200 a\x00b\x7f\xff\r\n\r\n", [b""], "more"),
    (b"HTTP/1.1 200\tOK\r\n\r\n", [b""], "Invalid response status"),
    (b"HTTP/1.1 200OK\r\n\r\n", [b""], "Invalid response status"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", [b""], "Invalid response status"),
    (b"HTTP/1.1 200\n\r\n", [b""], "Invalid response status"),
    (b"HTTP/1.1  200 OK\r\n\r\n", [b""], "Invalid status code"),
    (b"HTTP/1.1 20 OK\r\n\r\n", [b""], "Invalid status code"),
    (b"HTTP/1.1 20x OK\r\n\r\n", [b""], "Invalid status code"),
    (b"HTTP/1.1 200\rx\r\n", [b""], "Expected LF after CR"),
    (b"HTTP/1.1 200 OK\rx\r\n", [b""], "Expected LF after CR"),
    (b"HTTP/1.1 200 OK\n\r\n", [b""], "Missing expected CR after response line"),
    (b"HTTP/1.1\r\n\r\n", [b""], "Expected space after version"),
    (b"HTTP/1.1x200 OK\r\n\r\n", [b""], "Expected space after version"),
    (b"HTTP/1.2 200 OK\r\n\r\n", [b""], "Invalid HTTP version"),
    (b"HTP/1.1 200 OK\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"HTTPX1.1 200 OK\r\n\r\n", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"HTTP/1X1 200 OK\r\n\r\n", [b""], "Expected dot"),
    (b"XTTP/1.1", [b""], "Expected HTTP/, RTSP/ or ICE/"),
    (b"HTTP/1.1 2x", [b""], "Invalid status code"),
    (b"HTTP/1.1 2", [b""], "more"),
]


@pytest.mark.parametrize("data, bodies, end", RESPONSES)
def test_responses(data, bodies, end):
    assert reading(data, response=True) == (bodies, end)


@pytest.mark.parametrize("data, keep_alive", [
    (b"GET / HTTP/1.1\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", True),  # the flags go with the message
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\na", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
])
def test_keep_alive_getter_after_the_message_like_httptools(data, keep_alive):
    for lib in (httptools, pyparser):
        parser = (lib.HttpResponseParser if data.startswith(b"HTTP") else lib.HttpRequestParser)(object())
        parser.feed_data(data)
        assert parser.should_keep_alive() is keep_alive, lib


@pytest.mark.parametrize("callback", ["on_url", "on_header", "on_headers_complete", "on_body", "on_message_complete",
                                      "on_chunk_header", "on_chunk_complete", None])
def test_every_feed_after_an_error_raises(callback):
    """Once a stream is refused (or a callback failed), nothing more is parsed from it."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    if callback is None:
        data = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"

    class Boom(Exception):
        pass

    class Proto:
        pass

    def fail(*args):
        raise Boom()

    if callback is not None:
        setattr(Proto, callback, staticmethod(fail))
    for lib in (httptools, pyparser):
        for follow in (b"", b"1", b"0\r\n", b"\r\n", b"GET / HTTP/1.1\r\n\r\n"):
            parser = lib.HttpRequestParser(Proto())
            with pytest.raises(lib.HttpParserError) as first:
                parser.feed_data(data)
            if callback is not None:
                assert isinstance(first.value, lib.HttpParserCallbackError)
                assert isinstance(first.value.__context__, Boom)
            with pytest.raises(type(first.value)) as again:
                parser.feed_data(follow)
            assert str(again.value) == str(first.value)


def test_pieces_are_never_empty():
    """Deliberate difference: llhttp may call on_url/on_status/on_body with b"" at feed boundaries."""
    got = []

    class Proto:
        def on_url(self, url):
            got.append(url)

        def on_status(self, status):
            got.append(status)

        def on_body(self, body):
            got.append(body)

    for parser, data in ((pyparser.HttpRequestParser(Proto()), REQ + b"Content-Length: 3\r\n\r\nabc"),
                         (pyparser.HttpResponseParser(Proto()), b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")):
        for byte in range(len(data)):
            parser.feed_data(data[byte:byte + 1])
    assert got and all(got), got
    assert b"".join(got) == b"/" + b"abc" + b"OK" + b"abc"


def test_line_limit_boundary():
    """MAX_LINE bytes of an unfinished line are kept; one more is refused."""
    parser = pyparser.HttpRequestParser(object())
    parser.feed_data(b"GET / HTTP/1.1\r\nX: " + b"a" * (pyparser.MAX_LINE - 3))
    with pytest.raises(pyparser.HttpParserError):
        parser.feed_data(b"a")


def test_a_failing_callback_is_named_in_the_error():
    """Deliberate difference: llhttp says "User callback error"; pyparser names the callback
    (ingressd gives the message as the reason of its 400), "?" when it has no name."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

    def failing(name):
        def callback(*args):
            raise KeyError()
        callback.__name__ = name
        return callback

    cases = [(callback, failing(callback), callback) for callback in (
        "on_message_begin", "on_url", "on_header", "on_headers_complete", "on_body", "on_chunk_header",
        "on_chunk_complete", "on_message_complete")]
    cases += [("on_url", functools.partial(failing("x")), "?"), ("on_body", functools.partial(failing("x")), "?"),
              ("on_header", functools.partial(failing("x")), "on_header")]
    for callback, function, name in cases:
        parser = pyparser.HttpRequestParser(type("Proto", (), {callback: staticmethod(function)})())
        with pytest.raises(pyparser.HttpParserCallbackError) as info:
            parser.feed_data(data)
        assert str(info.value) == "`%s` callback error" % name
        with pytest.raises(pyparser.HttpParserCallbackError) as again:
            parser.feed_data(b"0\r\n")
        assert str(again.value) == str(info.value)
    parser = pyparser.HttpResponseParser(type("Proto", (), {"on_status": staticmethod(failing("on_status"))})())
    with pytest.raises(pyparser.HttpParserCallbackError, match="^`on_status` callback error$"):
        parser.feed_data(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_other_buffers_are_parsed_like_bytes(kind):
    data = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"
    expected, _ = run(pyparser, split(data, (5, 40)))
    rec = Recorder(pyparser, False)
    for piece in split(data, (5, 40)):
        rec.parser.feed_data(kind(piece))
    assert normalize(rec.events) == expected
    assert all(type(value) is bytes for event in rec.events for value in event[1:]
               if not isinstance(value, (int, str, bool)))


# -- ingressd's own protocol tests, with the Python parser ------------------------------------


def test_ingressd_protocol_tests_with_python_parser():
    env = dict(os.environ, INGRESSD_HTTP_PARSER="python", PYTHONDONTWRITEBYTECODE="1")
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         os.path.join(here, "test_http1.py"), os.path.join(here, "test_upstream.py")],
        cwd=os.path.dirname(here), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
