"""ingressd.h1parse (pure-Python HTTP/1.1 parser) against httptools/llhttp.

A differential fuzzer feeds the same byte streams, split at random points, to both parsers and
compares the callbacks (consecutive on_url/on_status/on_body pieces joined: the two split them
differently), the getters at on_headers_complete, and the outcome (ok, error class, upgrade at
which offset). Then focused request-smuggling cases, and ingressd's own protocol tests re-run with
the Python parser.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressd import h1parse

LIBS = {"llhttp": httptools, "python": h1parse}


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
    got = run(h1parse, chunks, response)
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
    rec = Recorder(h1parse, False)
    with pytest.raises(h1parse.HttpParserUpgrade) as info:
        rec.parser.feed_data(data + b"GET")
    assert info.value.args[0] == len(data)
    assert rec.parser.should_upgrade()
    rec.parser.feed_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert rec.events[-1] == ("complete",)


def test_callback_exception_is_the_context():
    class Boom(Exception):
        pass

    for lib in (httptools, h1parse):
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

    parser = h1parse.HttpRequestParser(Proto())
    try:
        raise KeyError("the caller is handling something")
    except KeyError:
        with pytest.raises(h1parse.HttpParserCallbackError) as info:
            parser.feed_data(b"GET / HTTP/1.1\r\n")
    assert isinstance(info.value.__context__, Boom)


def test_initial_getters_like_httptools():
    for lib in (httptools, h1parse):
        p = lib.HttpRequestParser(object())
        assert (p.get_method(), p.get_http_version(), p.should_keep_alive(), p.should_upgrade()) == \
            (b"DELETE", "0.0", False, False)
        r = lib.HttpResponseParser(object())
        assert (r.get_status_code(), r.get_http_version(), r.should_keep_alive()) == (0, "0.0", False)


def test_long_line_is_bounded():
    """Deliberate difference: llhttp has no line limit; h1parse stops at MAX_LINE."""
    parser = h1parse.HttpResponseParser(object())
    parser.feed_data(b"HTTP/1.1 200 OK\r\nX: ")
    with pytest.raises(h1parse.HttpParserError):
        for _ in range(h1parse.MAX_LINE // 65536 + 2):
            parser.feed_data(b"a" * 65536)


def test_url_pieces_reach_ingressd_limits():
    """A request line that never ends still reaches on_url piece by piece (ingressd counts them)."""
    got = []

    class Proto:
        def on_url(self, url):
            got.append(url)

    parser = h1parse.HttpRequestParser(Proto())
    parser.feed_data(b"GET /")
    for _ in range(10):
        parser.feed_data(b"a" * 1000)
    assert sum(map(len, got)) == 10001


# -- ingressd's own protocol tests, with the Python parser ------------------------------------


def test_ingressd_protocol_tests_with_python_parser():
    env = dict(os.environ, INGRESSD_HTTP_PARSER="python", PYTHONDONTWRITEBYTECODE="1")
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         os.path.join(here, "test_http1.py"), os.path.join(here, "test_upstream.py")],
        cwd=os.path.dirname(here), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
