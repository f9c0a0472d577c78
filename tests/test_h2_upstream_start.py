"""What ``H2Stream.start`` takes from the request's fields: the last ``host`` is the
``:authority`` (none: the endpoint's name), the last ``grpc-timeout`` the call's deadline;
the fields HTTP/2 forbids are left out and every ``grpc-timeout`` field is sent, in order."""

from __future__ import annotations

from test_h2_upstream import SETTINGS, FakeExchange, connect, setup


def _start(headers):
    clock, upstream = setup()
    exchange = FakeExchange()
    upstream.acquire("127.0.0.1", 50051, SETTINGS, lambda s: s.start(
        exchange, b"POST", b"/x", headers, None, 60.0, 60.0), lambda e: None)
    server = connect(clock, upstream)
    (request,) = server.requests()
    return clock, exchange, request.headers


def test_the_last_host_and_the_last_grpc_timeout_count():
    clock, exchange, sent = _start([(b"host", b"first"), (b"grpc-timeout", b"100m"), (b"connection", b"x"),
                                    (b"x-a", b"1"), (b"host", b"second"), (b"grpc-timeout", b"5S"),
                                    (b"transfer-encoding", b"chunked"), (b"content-length", b"3")])
    assert [(n, v) for n, v in sent if n == b":authority"] == [(b":authority", b"second")]
    assert [(n, v) for n, v in sent if not n.startswith(b":")] == [
        (b"grpc-timeout", b"100m"), (b"x-a", b"1"), (b"grpc-timeout", b"5S"), (b"te", b"trailers")]
    clock.advance(4.9)
    assert exchange.events == []  # 5 s, not 100 ms
    clock.advance(0.1)
    assert exchange.events == [("failed", "grpc_deadline", False, True)]


def test_without_a_host_the_authority_is_the_endpoint_and_a_bad_timeout_is_none():
    clock, exchange, sent = _start([(b"grpc-timeout", b"5S"), (b"grpc-timeout", b"soon")])
    assert dict(sent)[b":authority"] == b"127.0.0.1"
    clock.advance(59.9)
    assert exchange.events == []  # no deadline: the read timeout (60 s) is next
    clock.advance(0.1)
    assert exchange.events == [("failed", "read_timeout", False, True)]
