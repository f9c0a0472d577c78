"""``ServerConnection._open_count`` against the walk h2 makes (and ``h2_server`` made until it
noted the streams that may close): at every count, the same number of open streams, the same
streams moved out of ``streams``, and the closed streams' memory the same, in the same order.

Every frame sequence of ``test_h2_server``'s Hypothesis strategy (valid and invalid frames,
resets, trailers, windows, SETTINGS, GOAWAY, refused streams) is driven through the protocol
with the count checked each time it is taken; the whole connection is compared with h2's as
there too."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import HealthCheck, given, settings

from ingressd.http import h2_frames, h2_server
from ingressd.http.h2_streams import CLOSED, HALF_CLOSED_LOCAL, OPEN

from test_h2_server import PREFACE, _frame, _request, compare, connections

_counted = [0]


def _walk(streams: dict, closed: dict) -> int:
    """The walk as it was: count the open streams, move the closed ones (in ``streams``' order)."""
    count = 0
    gone = []
    for stream_id, stream in streams.items():
        if OPEN <= stream.state <= HALF_CLOSED_LOCAL:
            count += 1
        elif stream.state == CLOSED:
            gone.append(stream_id)
    for stream_id in gone:
        closed[stream_id] = streams.pop(stream_id).closed_by
        if len(closed) > h2_server._MAX_CLOSED_STREAMS:
            del closed[next(iter(closed))]
    return count


@pytest.fixture(autouse=True)
def _checked_count(monkeypatch):
    real = h2_server.ServerConnection._open_count

    def checked(self) -> int:
        streams, closed = dict(self.streams), dict(self._closed)
        want = _walk(streams, closed)
        got = real(self)
        assert got == want
        assert list(self.streams) == list(streams)
        assert list(self._closed.items()) == list(closed.items())
        _counted[0] += 1
        return got

    monkeypatch.setattr(h2_server.ServerConnection, "_open_count", checked)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(connections())
def test_the_count_is_the_walks(chunks):
    compare(chunks)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(connections())
def test_the_count_is_the_walks_few_streams_allowed(chunks):
    compare(chunks, rapid_reset_bound=False, http2_max_concurrent_streams=2, keepalive_requests=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(connections())
def test_the_count_is_the_walks_without_the_rapid_reset_bound(chunks):
    compare(chunks, rapid_reset_bound=False)


def test_the_check_runs_and_moves_the_closed_streams():
    """Requests answered at once and one left waiting: each new stream is counted (the check is
    not idle), the answered ones are moved to the closed streams' memory, the waiting one stays."""
    encoder = hpack.Encoder()
    before = _counted[0]
    chunks = [PREFACE + _frame(h2_frames.SETTINGS, 0, 0, b""), _request(encoder, 1), _request(encoder, 3, b"/wait"),
              _request(encoder, 5), _request(encoder, 7, b"/reset"), _request(encoder, 9)]
    _, after = compare(chunks)
    assert _counted[0] - before == 5  # each new stream, the first too
    connection = after.protocol.h2
    assert list(connection._closed) == [1, 5, 7]
    assert sorted(connection.streams) == [3, 9]


def test_the_closed_streams_memory_drops_the_oldest_when_full(monkeypatch):
    """Past its bound the memory keeps the newest closed streams, in order, the oldest dropped
    one at a time (h2's SizeLimitDict); ``_walk`` checks each count against a dict doing it."""
    monkeypatch.setattr(h2_server, "_MAX_CLOSED_STREAMS", 2)
    encoder = hpack.Encoder()
    chunks = [PREFACE + _frame(h2_frames.SETTINGS, 0, 0, b""), _request(encoder, 1), _request(encoder, 3),
              _request(encoder, 5), _request(encoder, 7), _request(encoder, 9)]
    _, after = compare(chunks)
    connection = after.protocol.h2
    assert list(connection._closed) == [5, 7]  # 9 is moved at the next count
    assert sorted(connection.streams) == [9]
