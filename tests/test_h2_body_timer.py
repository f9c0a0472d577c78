"""The client side's HTTP/2 request-body timer (``client_body_timeout``) starts when the read
that brought the request's head ends: a request whose body ended in that same read (a gRPC
unary call: HEADERS, then DATA with END_STREAM) makes no reactor call for it; one whose body is
still coming has its timer, as before, and is answered 408 when it passes."""

from __future__ import annotations

import h2.events

from test_http2 import FakeExchange, Pair


class BodyFinishing(FakeExchange):
    """As ``proxy.Exchange`` does: the body's end ends its timer (``body_finished``)."""

    def body_done(self):
        super().body_done()
        self.stream.body_finished()


def _pair(**settings) -> Pair:
    pair = Pair(**settings)

    def handler(stream, request):
        exchange = BodyFinishing(stream, request)
        pair.exchanges.append(exchange)
        return exchange

    pair.server.handler = handler
    return pair


def _counting_calls(pair: Pair) -> list:
    """Every reactor call the protocol asks for from now on (their functions' names)."""
    asked = []
    call_later = pair.clock.callLater

    def counted(delay, func, *args, **kwargs):
        asked.append(getattr(func, "__name__", ""))
        return call_later(delay, func, *args, **kwargs)

    pair.clock.callLater = counted
    return asked


def _body_timers(pair: Pair) -> list:
    return [call for call in pair.clock.getDelayedCalls() if getattr(call.func, "__name__", "") == "_body_timed_out"]


def _headers(pair: Pair, stream_id: int) -> None:
    pair.client.send_headers(stream_id, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example.com"),
                                         (b":path", b"/pkg.Svc/Call"), (b"content-type", b"application/grpc")])


def test_a_body_that_ends_in_the_read_of_its_head_starts_no_timer():
    pair = _pair(body_timeout=3)
    asked = _counting_calls(pair)
    _headers(pair, 1)
    pair.client.send_data(1, b"\0\0\0\0\x01x", end_stream=True)
    pair.send()  # one read: HEADERS and DATA with END_STREAM
    (exchange,) = pair.exchanges
    assert exchange.done and b"".join(exchange.body) == b"\0\0\0\0\x01x"
    assert _body_timers(pair) == [] and "_body_timed_out" not in asked


def test_every_call_of_a_read_starts_none():
    pair = _pair(body_timeout=3)
    asked = _counting_calls(pair)
    for stream_id in (1, 3, 5):
        _headers(pair, stream_id)
        pair.client.send_data(stream_id, b"m", end_stream=True)
    pair.send()
    assert len(pair.exchanges) == 3 and all(exchange.done for exchange in pair.exchanges)
    assert _body_timers(pair) == [] and "_body_timed_out" not in asked


def test_a_body_still_coming_when_the_read_ends_has_its_timer():
    pair = _pair(body_timeout=3)
    _headers(pair, 1)
    pair.client.send_data(1, b"part")
    pair.send()  # HEADERS and DATA without END_STREAM
    (timer,) = _body_timers(pair)
    assert timer.getTime() == pair.clock.seconds() + 3
    pair.clock.advance(3)
    pair.receive()
    (response,) = pair.of(h2.events.ResponseReceived)
    assert dict(response.headers)[b":status"] == b"408"


def test_a_head_alone_has_its_timer_until_the_body_ends():
    pair = _pair(body_timeout=3)
    _headers(pair, 1)
    pair.send()
    assert len(_body_timers(pair)) == 1
    pair.clock.advance(2)
    pair.client.send_data(1, b"m", end_stream=True)
    pair.send()
    assert _body_timers(pair) == [] and pair.exchanges[0].done
    pair.clock.advance(5)
    pair.receive()
    assert pair.of(h2.events.ResponseReceived) == []  # the exchange answers, not a 408
