"""Fuzzing the client side: random and mutated request streams, in memory and on a socket.

In memory (hypothesis): ``HTTP1ServerProtocol`` with a ``StringTransport`` and a ``Clock``
must never raise, must answer only with well-formed responses, and must never leave a
connection without a timer that will end it. Against the real process: a bounded number
of mutated streams over loopback must each end with a response or a close within the
timeouts, without a traceback in ingressd's log and without its memory growing unbounded.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.python import log

from test_http1 import connect
from ingressd.http.http1 import REASONS

VALID = [
    b"GET / HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"GET /a/b?c=d HTTP/1.1\r\nHost: fuzz.test\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: fuzz.test\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /c HTTP/1.1\r\nHost: fuzz.test\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"POST /e HTTP/1.1\r\nHost: fuzz.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"OPTIONS * HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
    b"GET http://fuzz.test/abs HTTP/1.1\r\nHost: fuzz.test\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"\x00", b"\x7f", b"\xff", b"%", b"%2e", b"/..", b"//",
          b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 99999999999\r\n",
          b"Host: x\r\n", b"Upgrade: h2c\r\n", b"Connection: close\r\n", b"fffffffffffffff\r\n", b"0\r\n\r\n",
          b"GET / HTTP/1.1\r\n", b"HTTP/1.1", b"\r\n\r\n", b"Expect: 100-continue\r\n", b" chunked"]


def mutate(rng: random.Random, data: bytes, count: int) -> bytes:
    buf = bytearray(data)
    for _ in range(count):
        op = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            del buf[min(at, len(buf) - 1)]
        elif op == 1:
            buf[at:at] = rng.choice(TOKENS)
        elif op == 2 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 3:
            end = min(len(buf), at + rng.randrange(1, 40))
            buf[at:at] = buf[at:end]  # duplicate a slice
        else:
            buf[at:at] = rng.choice(VALID)
    return bytes(buf)


def check_output(output: bytes) -> int:
    """Every response ingressd wrote starts with a valid status line; return their count."""
    count = 0
    for line in output.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            status = int(line[9:12])
            assert status in REASONS, line
            count += 1
    assert not output or output.startswith(b"HTTP/1.1 "), output[:80]
    return count


@st.composite
def streams(draw):
    """(pieces, clock steps): a random or mutated request stream, split at random points."""
    if draw(st.booleans()):
        data = draw(st.binary(max_size=600))
    else:
        base = b"".join(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=4)))
        rng = random.Random(draw(st.integers(0, 2**32)))
        data = mutate(rng, base, draw(st.integers(0, 8)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    steps = draw(st.lists(st.floats(0, 30), max_size=len(pieces)))
    return pieces, steps


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_fuzz_in_memory_protocol(stream):
    """No input crashes the protocol, every answer is a well-formed response, and every
    connection ends by itself (after the header, body or keep-alive timeout at most)."""
    pieces, steps = stream
    errors = []

    def observer(event):
        if event.get("isError"):
            errors.append(event)

    log.addObserver(observer)
    try:
        protocol, transport, clock, handled = connect(header_timeout=10, body_timeout=10, keepalive_timeout=10)
        for index, piece in enumerate(pieces):
            protocol.dataReceived(piece)
            if index < len(steps):
                clock.advance(steps[index])
        clock.advance(11)
        clock.advance(11)
        clock.advance(11)
    finally:
        log.removeObserver(observer)
    assert not errors
    responses = check_output(transport.value())
    assert responses <= len(handled) + 1
    assert transport.disconnecting or protocol.closed, transport.value()[-200:]


# -- against the real process -----------------------------------------------------------------


@pytest.mark.slow
def test_fuzz_real_process(tmp_path):
    """150 mutated request streams (fixed seed), 25 connections at a time, against a real
    ingressd with 1 s client timeouts: each connection ends (a response or a close) within
    10 s, the log has no traceback, ingressd still serves, and its memory stays bounded."""
    from backends import Backend
    from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
    from rawclient import exchange, rss_kib

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    backend = Backend("fuzz")
    write_manifests(manifests / "main.yaml", [
        INGRESS_CLASS, *service("fuzz", [("http", 80, backend.port)]),
        ingress("fuzz", [("fuzz.test", [("/", "Prefix", "fuzz", 80)]), ("x", [("/", "Prefix", "fuzz", 80)])]),
    ])
    proc = Ingressd(manifests, ["--client-header-timeout", "1", "--client-body-timeout", "1",
                                "--keepalive-timeout", "1", "--proxy-read-timeout", "2"])
    try:
        rss_start = rss_kib(proc.process.pid)
        rng = random.Random(20261127)
        cases = []
        for _ in range(150):
            base = b"".join(rng.choice(VALID) for _ in range(rng.randint(1, 3)))
            cases.append(mutate(rng, base, rng.randint(0, 6)) if rng.random() < 0.9 else rng.randbytes(rng.randint(1, 400)))
        hung: list = []
        replies: list = []
        lock = threading.Lock()

        def worker(batch):
            for data in batch:
                reply = exchange(proc.http_port, data, timeout=10)
                with lock:
                    replies.append(reply)
                    if not reply.closed:
                        hung.append(data)

        threads = [threading.Thread(target=worker, args=(cases[i::25],)) for i in range(25)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(replies) == len(cases)
        assert not hung, hung[:3]
        for reply in replies:
            assert not reply.data or reply.data.startswith(b"HTTP/1.1 "), reply.data[:100]
        assert proc.get("/", host="fuzz.test").status == 200
        assert rss_kib(proc.process.pid) - rss_start < 100 * 1024
    finally:
        proc.stop()
        backend.stop()
    text = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]
