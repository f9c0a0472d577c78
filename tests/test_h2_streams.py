"""h2_streams.StreamState against h2's H2StreamStateMachine: the same inputs, states and errors."""

from __future__ import annotations

from h2.events import RequestReceived, StreamReset, TrailersReceived
from h2.exceptions import ProtocolError, StreamClosedError
from h2.stream import H2StreamStateMachine, StreamInputs
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.http import h2_streams
from ingressd.http.h2_streams import StreamClosed, StreamProtocolError, StreamState

# Each input a server's connection gives a stream: ours, and h2's.
INPUTS = {
    "received_headers": StreamInputs.RECV_HEADERS,
    "received_data": StreamInputs.RECV_DATA,
    "received_end_stream": StreamInputs.RECV_END_STREAM,
    "received_reset": StreamInputs.RECV_RST_STREAM,
    "received_window_update": StreamInputs.RECV_WINDOW_UPDATE,
    "sent_headers": StreamInputs.SEND_HEADERS,
    "sent_informational": StreamInputs.SEND_INFORMATIONAL_HEADERS,
    "sent_data": StreamInputs.SEND_DATA,
    "sent_end_stream": StreamInputs.SEND_END_STREAM,
    "sent_reset": StreamInputs.SEND_RST_STREAM,
    "sent_window_update": StreamInputs.SEND_WINDOW_UPDATE,
}
_CLOSED_BY = {None: None, 0: h2_streams.SENT_END_STREAM, 1: h2_streams.RECEIVED_END_STREAM,
              2: h2_streams.SENT_RST_STREAM, 3: h2_streams.RECEIVED_RST_STREAM}


def _theirs(machine: H2StreamStateMachine, name: str):
    try:
        events = machine.process_input(INPUTS[name])
    except StreamClosedError as error:
        reset = [type(event) for event in error._events] == [StreamReset]
        outcome = ("closed", reset)
    except ProtocolError:
        outcome = ("protocol",)
    else:
        kinds = [type(event) for event in events]
        outcome = ("ok", h2_streams.REQUEST if RequestReceived in kinds else
                   h2_streams.TRAILERS if TrailersReceived in kinds else None)
    closed_by = None if machine.stream_closed_by is None else _CLOSED_BY[machine.stream_closed_by.value]
    return outcome, int(machine.state), closed_by


def _ours(stream: StreamState, name: str):
    try:
        result = getattr(stream, name)()
    except StreamClosed as error:
        outcome = ("closed", error.reset)
    except StreamProtocolError:
        outcome = ("protocol",)
    else:
        outcome = ("ok", result if name == "received_headers" else None)
    return outcome, stream.state, stream.closed_by


def _run(names):
    theirs, ours = H2StreamStateMachine(1), StreamState(1)
    for name in names:
        if theirs.state == 0 and name.startswith("sent_headers"):
            continue  # a server never sends a header block on a stream the client has not opened
        assert _ours(ours, name) == _theirs(theirs, name), (names, name)
        assert ours.open == (theirs.state in (3, 4, 5))


def test_every_pair_and_triple_of_inputs():
    names = sorted(INPUTS)
    for first in names:
        for second in names:
            for third in names:
                _run([first, second, third])


def test_a_request_and_its_answer():
    stream = StreamState(1)
    assert stream.received_headers() == h2_streams.REQUEST
    stream.received_end_stream()
    assert stream.state == h2_streams.HALF_CLOSED_REMOTE
    assert stream.sent_headers() == h2_streams.REQUEST
    stream.sent_data()
    stream.sent_end_stream()
    assert (stream.state, stream.closed_by) == (h2_streams.CLOSED, h2_streams.SENT_END_STREAM)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(sorted(INPUTS)), max_size=12))
def test_sequences_against_h2(names):
    _run(["received_headers"] + names)
    _run(names)
