"""``logline.LineBuffer``, the access log's waiting lines as bytes in one buffer: the C type
against its twin ``LineBufferPy`` (every case on both, Hypothesis running the same operations on
each), the byte bound by whole lines with a shared partner's bytes, and the C type's memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth

from ingressd import logline
from ingressd.logline import LineBufferPy

try:
    from ingressd._logline import LineBuffer as LineBufferC
except ImportError:
    LineBufferC = None

TYPES = [pytest.param(LineBufferPy, id="python"),
         pytest.param(LineBufferC, id="c", marks=pytest.mark.skipif(LineBufferC is None, reason="not built"))]


def test_the_line_buffer_is_the_accelerators_when_built():
    assert logline.LineBuffer is (LineBufferC if LineBufferC is not None else LineBufferPy)


@pytest.mark.parametrize("kind", TYPES)
def test_lines_are_kept_whole_in_order_and_taken_at_once(kind):
    buffer = kind(100)
    assert len(buffer) == 0 and buffer.size == 0 and buffer.take() == (b"", 0) and buffer.take_lines() == []
    assert buffer.append(b"one\n") and buffer.append(b"") and buffer.append(b"t\nwo\n")
    assert len(buffer) == 3 and buffer.size == 9
    assert buffer.take_lines() == [b"one\n", b"", b"t\nwo\n"]
    assert len(buffer) == 0 and buffer.size == 0
    buffer.append(b"\xff\x00\n")
    assert buffer.take() == (b"\xff\x00\n", 1) and buffer.take() == (b"", 0)


@pytest.mark.parametrize("kind", TYPES)
def test_a_line_is_taken_while_the_bytes_before_it_are_below_the_bound(kind):
    buffer = kind(10)
    assert [buffer.append(line) for line in (b"12345678\n", b"ab\n", b"c\n")] == [True, True, False]
    assert buffer.dropped == 1 and buffer.size == 12 and len(buffer) == 2
    buffer.take()
    assert buffer.append(b"c\n") and buffer.dropped == 1
    buffer.max_bytes = 0
    assert not buffer.append(b"d\n") and buffer.dropped == 2 and buffer.max_bytes == 0


@pytest.mark.parametrize("kind", TYPES)
def test_the_shared_partners_bytes_count_toward_the_bound(kind):
    stream = kind(10)
    http = kind(10, stream)
    stream.append(b"123456789\n")
    assert not http.append(b"x\n") and http.dropped == 1 and stream.dropped == 0
    stream.take()
    assert http.append(b"x\n") and len(http) == 1


@pytest.mark.parametrize("kind", TYPES)
def test_wrong_arguments_raise_and_change_nothing(kind):
    buffer = kind(10)
    buffer.append(b"a\n")
    for wrong in ("a\n", bytearray(b"a"), memoryview(b"a"), None, 1):
        with pytest.raises(TypeError):
            buffer.append(wrong)
    assert buffer.take_lines() == [b"a\n"] and buffer.dropped == 0
    with pytest.raises(TypeError):
        kind(10, object())
    with pytest.raises(TypeError):
        kind("10")
    with pytest.raises(TypeError):
        buffer.max_bytes = "1"


@st.composite
def operations(draw):
    steps = []
    for _ in range(draw(st.integers(0, 40))):
        step = draw(st.sampled_from(["append", "append", "append", "take", "take_lines", "bound", "partner"]))
        if step in ("append", "partner"):
            steps.append((step, draw(st.binary(max_size=30) | st.sampled_from([b"\n", b"x" * 5000]))))
        elif step == "bound":
            steps.append((step, draw(st.integers(-5, 20_000))))
        else:
            steps.append((step, None))
    return draw(st.integers(0, 20_000)), steps


def _run(kind, bound, steps):
    partner = kind(1 << 60)
    buffer = kind(bound, partner)
    seen = []
    for step, argument in steps:
        if step == "append":
            seen.append(buffer.append(argument))
        elif step == "partner":
            seen.append(partner.append(argument))
        elif step == "take":
            seen.append(buffer.take())
        elif step == "take_lines":
            seen.append(buffer.take_lines())
        else:
            buffer.max_bytes = argument
        seen.append((len(buffer), buffer.size, buffer.dropped, partner.size))
    return seen


@pytest.mark.skipif(LineBufferC is None, reason="the C accelerator was not built")
@settings(max_examples=500)
@given(case=operations())
def test_fuzz_c_against_the_twin(case):
    bound, steps = case
    assert _run(LineBufferC, bound, steps) == _run(LineBufferPy, bound, steps)


@pytest.mark.skipif(LineBufferC is None, reason="the C accelerator was not built")
def test_no_memory_grows_over_many_uses():
    """A bounded loop of buffers made, filled past their memory kept (1 MiB), taken and dropped:
    allocated memory must not grow."""
    line = b"x" * 200 + b"\n"
    big = b"y" * (1 << 19)

    def rounds(n):
        for _ in range(n):
            partner = LineBufferC(1 << 30)
            buffer = LineBufferC(1 << 30, partner)
            for _ in range(20):
                buffer.append(line)
            buffer.take()
            buffer.append(line)
            buffer.take_lines()
            buffer.append(big)
            buffer.append(big)
            buffer.append(big)
            buffer.take()
            try:
                buffer.append("not bytes")
            except TypeError:
                pass

    grown = traced_growth(rounds, warm=50, settle=50, measured=500)
    assert grown < 500 * 10, f"{grown} bytes grew over 500 rounds"
