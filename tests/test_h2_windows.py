"""h2_windows.ReceiveWindow against h2's WindowManager: the same calls, the same increments and errors."""

from __future__ import annotations

import pytest
from h2.exceptions import FlowControlError as H2FlowControlError
from h2.windows import WindowManager
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.http.h2_windows import LARGEST_WINDOW, FlowControlError, ReceiveWindow

_sizes = st.one_of(st.integers(0, 70000), st.sampled_from([0, 1, 1023, 1024, 1025, 16384, 32767, 32768, 65535]),
                   st.integers(0, 2**31))
_calls = st.lists(st.tuples(st.sampled_from(["consumed", "opened", "processed"]), _sizes), max_size=40)


def _drive(window, calls, names):
    out = []
    for name, size in calls:
        try:
            result = getattr(window, names[name])(size)
        except (FlowControlError, H2FlowControlError):
            out.append("FLOW_CONTROL_ERROR")
            break
        out.append(result or 0)  # h2 answers None or 0 for "nothing to send"
        current = window.size if isinstance(window, ReceiveWindow) else window.current_window_size
        largest = window.largest if isinstance(window, ReceiveWindow) else window.max_window_size
        out.append((current, largest))
    return out


_OURS = {"consumed": "consumed", "opened": "opened", "processed": "processed"}
_THEIRS = {"consumed": "window_consumed", "opened": "window_opened", "processed": "process_bytes"}


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([0, 1, 100, 65535, 1 << 20, 6553500, LARGEST_WINDOW]), _calls)
def test_same_as_h2(size, calls):
    assert _drive(ReceiveWindow(size), calls, _OURS) == _drive(WindowManager(size), calls, _THEIRS)


def test_the_policy():
    window = ReceiveWindow(65535)
    window.consumed(40000)
    assert window.processed(30000) == 0  # less than half the window handed on
    assert window.processed(2767) == 32767  # half: given back at once
    assert window.size == 65535 - 40000 + 32767
    window.consumed(window.size)
    assert window.processed(1024) == 0 and window.processed(1) == 1025  # shut: more than 1024 reopens
    with pytest.raises(FlowControlError):
        window.consumed(window.size + 1)
    with pytest.raises(FlowControlError):
        ReceiveWindow(LARGEST_WINDOW).opened(1)
    with pytest.raises(ValueError):
        ReceiveWindow(-1)
