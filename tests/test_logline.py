"""``ingressd.logline.join_line``: the C accelerator ``ingressd._logline`` against its pure-Python
twin ``join_line_py`` (every case run against both, Hypothesis fuzzing them against each other),
the twin against the escaping it replaces (``ingressd.logformat``'s writers), both ways of
compiling a ``log_format`` (joined, f-string) against ``render_slowly``, and the C code's
references (a bounded loop, error paths included, must not grow memory).
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from test_logformat_compiled import _template, exchanges
from twins import twins

from ingressd import accesslog, logformat, logformat_compile, logline
from ingressd.logline import (ESCAPED, JSON, JSON_SECONDS, PLAIN, SECONDS, STATUS, UTC_TIME, LineBufferPy,
                              join_line_into_py, join_line_py)

try:
    from ingressd._logline import LineBuffer as LineBufferC
    from ingressd._logline import join_line as join_line_c
    from ingressd._logline import join_line_into as join_line_into_c
except ImportError:
    join_line_c = join_line_into_c = LineBufferC = None

IMPLEMENTATIONS = twins(join_line_py, join_line_c)


INTO_IMPLEMENTATIONS = [pytest.param(join_line_into_py, id="python"),
                        pytest.param(join_line_into_c, id="c", marks=pytest.mark.skipif(
                            join_line_into_c is None, reason="the C accelerator was not built"))]


def into_of(join):
    """The ``join_line_into`` of the same implementation as ``join`` (C or twin)."""
    return join_line_into_py if join is join_line_py else join_line_into_c


def buffer_for(into):
    """An unbounded buffer of the same implementation as ``into``."""
    return LineBufferPy(1 << 60) if into is join_line_into_py else LineBufferC(1 << 60)


def test_join_line_is_the_accelerator_when_built():
    assert logline.join_line is (join_line_c if join_line_c is not None else join_line_py)
    assert logline.join_line_into is (join_line_into_c if join_line_into_c is not None else join_line_into_py)
    assert logline.accelerated is (join_line_c is not None)


def _form(literals, kinds, tail="\n", escape=0):
    return (tuple(literals), bytes(kinds), tail, escape)


CASES = [
    # (form, values, expected)
    (_form(["a ", " b "], [ESCAPED, ESCAPED]), ("x", b"y"), "a x b y\n"),
    (_form(["", ""], [ESCAPED, ESCAPED]), (None, None), "--\n"),
    (_form(["", ""], [ESCAPED, ESCAPED], escape=1), (None, None), "\n"),
    (_form(["", ""], [ESCAPED, ESCAPED], escape=2), (None, None), "\n"),
    (_form([""], [ESCAPED]), ('q"\\\x00\x1f\x7f',), "q\\x22\\x5C\\x00\\x1F\\x7F\n"),
    (_form([""], [ESCAPED]), (b'q"\\\x00\x1f\x7f\x80\xff',), "q\\x22\\x5C\\x00\\x1F\\x7F\\x80\\xFF\n"),
    (_form([""], [ESCAPED]), ("é\udcff",), "\\xC3\\xA9\\xFF\n"),
    (_form([""], [ESCAPED], escape=1), ('q"\\\n\r\t\b\f\x00\x1f\x7fé',), 'q\\"\\\\\\n\\r\\t\\b\\f\\u0000\\u001F\x7fé\n'),
    (_form([""], [ESCAPED], escape=1), (b"\xc3\xa9\xff\x01",), "é\udcff\\u0001\n"),
    (_form([""], [ESCAPED], escape=2), (b"\xc3\xa9\xff\x01\"",), "é\udcff\x01\"\n"),
    (_form([""], [ESCAPED], escape=2), ("\U0001F600\x00",), "\U0001F600\x00\n"),
    (_form(["é", "\U0001F600"], [ESCAPED, ESCAPED], tail="ü\n"), ("a", b"b"), "éa\U0001F600bü\n"),
    (_form(["", " ", " "], [PLAIN, PLAIN, PLAIN]), ("x\"", 12, None), 'x" 12 -\n'),
    (_form(["", " "], [PLAIN, PLAIN], escape=1), (None, 1.5), " 1.5\n"),
    (_form(["", " ", " ", " ", " "], [SECONDS] * 5), (0.0125, 3, -1.0, float("nan"), None), "0.013 3.000 0.000 0.000 -\n"),
    (_form(["", " ", " ", " "], [SECONDS] * 4), (-0.0, float("inf"), 1e300, True), "0.000 inf " + "%.3f" % 1e300 + " 1.000\n"),
    (_form(["", " ", " ", " ", " "], [SECONDS] * 5), (0.0, -0.0, -1e300, float("-nan"), 0), "0.000 0.000 0.000 0.000 0.000\n"),
    (_form(["", " ", " ", " ", " "], [STATUS] * 5), (200, 7, -5, 10**30, True), "200 007 -05 " + "%03d" % 10**30 + " 001\n"),
    (_form(["", ",", ",", ",", ",", ","], [JSON] * 6), (None, 'a"\\\n\x00\x7fé\U0001F600\udcff', b"\xff\xc3\xa9\x01", True, 7, 1.5),
     'null,"a\\"\\\\\\n\\u0000\\u007f\\u00e9\\ud83d\\ude00\\udcff","\\\\xff\\u00e9\\u0001",true,7,1.5\n'),
    (_form(["", ",", ",", ","], [JSON] * 4), (float("nan"), float("inf"), -float("inf"), False), "NaN,Infinity,-Infinity,false\n"),
    (_form(["", ",", ",", ",", ",", ",", ","], [JSON_SECONDS] * 7), (None, 0.0125, 12.0, 0.00005, 3, 1e6, float("nan")),
     "null,0.0125,12.0,5e-05,3,1000000.0,NaN\n"),
    (_form(["", ",", ",", ","], [JSON_SECONDS] * 4), (0.0, -0.0, 0, 1e-7), "0.0,-0.0,0,0.0\n"),
    (_form(["", " ", " "], [UTC_TIME] * 3), (1_790_000_000.2509, 0.0, -1.5), "2026-09-21T14:13:20.250 1970-01-01T00:00:00.000 "
     "1969-12-31T23:59:59.-500\n"),
    (_form([], []), (), "\n"),
    (_form([], [], tail=""), (), ""),
]


@pytest.mark.parametrize("join", IMPLEMENTATIONS)
@pytest.mark.parametrize("form, values, expected", CASES)
def test_cases(join, form, values, expected):
    assert join(form, values) == expected


@pytest.mark.parametrize("into", INTO_IMPLEMENTATIONS)
@pytest.mark.parametrize("form, values, expected", CASES)
def test_cases_into_a_buffer(into, form, values, expected):
    """The line's bytes as the access log's writer writes a str line (UTF-8, surrogateescape),
    appended after what the buffer holds; their count returned."""
    buffer = buffer_for(into)
    buffer.append(b"before\n")
    data = expected.encode("utf-8", "surrogateescape")
    assert into(form, values, buffer) is True
    assert buffer.take_lines() == [b"before\n", data]


class _Text(str):
    pass


class _Raw(bytes):
    pass


BAD = [
    ((), ()),  # not a 4-tuple
    (("a", b"", "\n", 0), ()),  # literals not a tuple
    (((), "", "\n", 0), ()),  # kinds not bytes
    (((), b"", b"\n", 0), ()),  # tail not str
    (((), b"", "\n", "0"), ()),  # escape not an int
    (((), b"", "\n", 3), ()),
    (((), b"", "\n", -1), ()),
    (((), b"", "\n", 2**80), ()),
    (((), b"", "\n", 0), []),  # values not a tuple
    ((("",), b"", "\n", 0), ("a",)),  # lengths differ
    ((("",), b"\x00", "\n", 0), ()),
    ((("", ""), b"\x00\x00", "\n", 0), ("a",)),
    (((b"",), b"\x00", "\n", 0), ("a",)),  # a literal that is not str
    ((("",), b"\x00", "\n", 0), (1,)),  # an escaped value that is not text
    ((("",), b"\x00", "\n", 1), (1.5,)),
    ((("",), b"\x00", "\n", 2), (bytearray(b"a"),)),
    ((("",), b"\x00", "\n", 0), ("\ud800",)),  # a lone surrogate UTF-8 cannot write
    ((("",), b"\x02", "\n", 0), ("1",)),  # seconds that are not a number
    ((("",), b"\x02", "\n", 0), (10**400,)),  # beyond a double
    ((("",), b"\x03", "\n", 0), (200.0,)),  # a status that is not an int
    ((("",), b"\x09", "\n", 0), ("a",)),  # an unknown kind
    ((("",), b"\x04", "\n", 0), (object(),)),  # not a JSON value
    ((("",), b"\x05", "\n", 0), ("1",)),  # seconds that are not a number
    ((("",), b"\x06", "\n", 0), (1,)),  # a time that is not a float
    ((("",), b"\x06", "\n", 0), (float("nan"),)),
    ((("",), b"\x06", "\n", 0), (1e300,)),  # beyond any year
]


@pytest.mark.parametrize("join", IMPLEMENTATIONS)
@pytest.mark.parametrize("form, values", BAD)
def test_bad_input_raises(join, form, values):
    with pytest.raises((TypeError, ValueError, OverflowError, UnicodeError, OSError)):
        join(form, values)


@pytest.mark.parametrize("into", INTO_IMPLEMENTATIONS)
@pytest.mark.parametrize("form, values", BAD)
def test_bad_input_raises_and_appends_nothing(into, form, values):
    buffer = buffer_for(into)
    buffer.append(b"kept\n")
    with pytest.raises((TypeError, ValueError, OverflowError, UnicodeError, OSError)):
        into(form, values, buffer)
    assert buffer.take() == (b"kept\n", 1) and buffer.dropped == 0


@pytest.mark.parametrize("into", INTO_IMPLEMENTATIONS)
def test_the_buffer_must_be_a_line_buffer(into):
    form, values = _form(["a"], [ESCAPED]), ("b",)
    for wrong in (bytearray(), [], None, SimpleNamespace(append=lambda line: True)):
        with pytest.raises(TypeError):
            into(form, values, wrong)


@pytest.mark.parametrize("into", INTO_IMPLEMENTATIONS)
def test_a_line_beyond_the_buffers_bound_is_dropped_whole_and_counted(into):
    buffer = LineBufferPy(6) if into is join_line_into_py else LineBufferC(6)
    form = _form(["a"], [ESCAPED])
    assert [into(form, (value,), buffer) for value in ("bcd", "e", "f")] == [True, True, False]
    assert buffer.take_lines() == [b"abcd\n", b"ae\n"] and buffer.dropped == 1


@pytest.mark.parametrize("join", IMPLEMENTATIONS)
def test_subclasses_are_their_text(join):
    form = _form(["", " ", " "], [ESCAPED, ESCAPED, PLAIN], tail=_Text("\n"))
    assert join(form, (_Text('a"'), _Raw(b"b\\"), _Text("c"))) == 'a\\x22 b\\x5C c\n'


def test_the_argument_count_is_checked():
    if join_line_c is None:
        pytest.skip("the C accelerator was not built")
    with pytest.raises(TypeError):
        join_line_c(_form([], []))
    with pytest.raises(TypeError):
        join_line_c(_form([], []), (), ())
    with pytest.raises(TypeError):
        join_line_into_c(_form([], []), ())
    with pytest.raises(TypeError):
        join_line_into_c(_form([], []), (), LineBufferC(9), LineBufferC(9))


# -- fuzzing: C against the twin --------------------------------------------------------------

every_byte = st.binary(max_size=40) | st.sampled_from([bytes(range(256)), bytes(range(256))[::-1], b"\xff" * 300])
any_text = (st.text(max_size=40) | st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40)
            | st.sampled_from(["".join(map(chr, range(256))), "\udc80\udcff", "é" * 500, "\U0001F600"]))
escaped_values = st.none() | every_byte | any_text
plain_values = st.none() | any_text | st.integers() | st.floats(allow_nan=True)
number_values = (st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20)
                 | st.sampled_from([-0.0, 0.0005, 0.0015, 2.5e-4, 10**400]))
status_values = st.none() | st.integers() | st.sampled_from([True, 200, 2**63, -2**63 - 1])
json_values = (st.none() | every_byte | any_text | st.text(alphabet=st.characters(), max_size=20) | st.booleans()
               | st.integers() | st.floats(allow_nan=True, allow_infinity=True))
time_values = (st.none() | st.floats(min_value=-1e10, max_value=1e11) | st.floats(min_value=1.6e9, max_value=2e9)
               | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.9999999, 1e17, 6e16, -0.0]))
json_seconds_values = (st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers()
                       | st.floats(min_value=0, max_value=0.001) | st.floats(min_value=1e5, max_value=2e6)
                       | st.sampled_from([0.0001, 0.00009999999, 999999.9999995, 1e6, 0.1234565, -0.0, 12.0]))
# Wrong types now and then: both must raise.
odd_values = st.sampled_from([1.5, 7, bytearray(b"x"), object(), [], "\ud800", b"\xed\xa0\x80"])


@st.composite
def forms_and_values(draw):
    escape = draw(st.sampled_from([0, 1, 2]))
    n = draw(st.integers(0, 10) | st.integers(45, 55))  # and past the C code's stack array (96 pieces = 2n + 1)
    kinds, values = [], []
    for _ in range(n):
        kind = draw(st.sampled_from([ESCAPED, PLAIN, SECONDS, STATUS, JSON, JSON_SECONDS, UTC_TIME]))
        strategy = {ESCAPED: escaped_values, PLAIN: plain_values, SECONDS: number_values,
                    STATUS: status_values, JSON: json_values, JSON_SECONDS: json_seconds_values,
                    UTC_TIME: time_values}[kind]
        if draw(st.integers(0, 30)) == 0:
            strategy = odd_values
        kinds.append(kind)
        values.append(draw(strategy))
    literals = draw(st.lists(any_text, min_size=n, max_size=n))
    tail = draw(any_text)
    return (tuple(literals), bytes(kinds), tail, escape), tuple(values)


def _outcome(join, form, values):
    try:
        return "ok", join(form, values)
    except (TypeError, ValueError, OverflowError, UnicodeError, OSError) as exc:
        return "raised", type(exc).__name__ if isinstance(exc, UnicodeError) else "error"


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@settings(max_examples=600)
@given(case=forms_and_values())
def test_fuzz_c_against_the_twin(case):
    form, values = case
    assert _outcome(join_line_c, form, values) == _outcome(join_line_py, form, values)


def _into_outcome(into, form, values):
    buffer = buffer_for(into)
    buffer.append(b"<")
    try:
        assert into(form, values, buffer) is True
    except (TypeError, ValueError, OverflowError, UnicodeError, OSError) as exc:
        assert buffer.take_lines() == [b"<"]  # nothing of a failed line
        return "raised", type(exc).__name__ if isinstance(exc, UnicodeError) else "error"
    lines = buffer.take_lines()
    assert len(lines) == 2 and lines[0] == b"<"
    return "ok", b"".join(lines)


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@settings(max_examples=600)
@given(case=forms_and_values())
def test_fuzz_c_into_a_buffer_against_the_twin_and_the_line(case):
    """The bytes C appends are the twin's, and the line's str encoded as the writer encodes it."""
    form, values = case
    outcome = _into_outcome(join_line_into_c, form, values)
    assert outcome == _into_outcome(join_line_into_py, form, values)
    line = _outcome(join_line_c, form, values)
    if outcome[0] == "ok":
        assert outcome[1] == b"<" + line[1].encode("utf-8", "surrogateescape")
    elif line[0] == "ok":  # the line is made, but UTF-8 cannot write it (a lone surrogate)
        with pytest.raises(UnicodeError):
            line[1].encode("utf-8", "surrogateescape")


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@settings(max_examples=200)
@given(case=forms_and_values(), cut=st.integers(0, 70), kind=st.integers(0, 255), escape=st.integers(-2, 5))
def test_fuzz_mutated_forms(case, cut, kind, escape):
    """Truncated values, a wrong kind byte, an escape out of range: the same result or both raise."""
    form, values = case
    literals, kinds, tail, _ = form
    for mutated in ((literals, kinds, tail, escape), (literals, kinds[:cut] + bytes([kind]) + kinds[cut + 1:], tail, 0),
                    (literals[:cut], kinds, tail, 0)):
        for vals in (values, values[:cut]):
            assert _outcome(join_line_c, mutated, vals) == _outcome(join_line_py, mutated, vals)
            assert _into_outcome(join_line_into_c, mutated, vals) == _into_outcome(join_line_into_py, mutated, vals)


# -- the twin against the escaping it replaces ----------------------------------------------

_OLD_WRITERS = {0: logformat._write_default, 1: logformat._write_json, 2: logformat._write_none}


@settings(max_examples=1000)
@given(value=escaped_values, escape=st.sampled_from([0, 1, 2]))
def test_the_twin_escapes_as_logformat_writes(value, escape):
    form = _form([""], [ESCAPED], tail="", escape=escape)
    try:
        expected = _OLD_WRITERS[escape](value)
    except UnicodeError:
        with pytest.raises(UnicodeError):
            join_line_py(form, (value,))
        return
    assert join_line_py(form, (value,)) == expected
    if join_line_c is not None:
        assert join_line_c(form, (value,)) == expected


@settings(max_examples=500)
@given(seconds=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**6, 10**6),
       status=st.integers(-10**6, 10**6))
def test_number_kinds_write_as_the_inline_expressions(seconds, status):
    form = _form(["", " "], [SECONDS, STATUS], tail="")
    expected = f"{'%.3f' % max(0.0, seconds)} {'%03d' % status}"
    assert join_line_py(form, (seconds, status)) == expected
    if join_line_c is not None:
        assert join_line_c(form, (seconds, status)) == expected


@settings(max_examples=1000)
@given(value=json_values)
def test_the_json_kind_is_the_access_logs_json(value):
    """``JSON``: what ``accesslog._json`` (json.dumps, built faster) writes."""
    form = _form([""], [JSON], tail="")
    expected = accesslog._json(value)
    assert join_line_py(form, (value,)) == expected
    if join_line_c is not None:
        assert join_line_c(form, (value,)) == expected


@settings(max_examples=1000)
@given(value=json_seconds_values)
def test_the_json_seconds_kind_is_the_access_logs_seconds(value):
    form = _form([""], [JSON_SECONDS], tail="")
    expected = "null" if value is None else accesslog._seconds(value)
    assert expected == ("null" if value is None else json.dumps(round(value, 6)))
    assert join_line_py(form, (value,)) == expected
    if join_line_c is not None:
        assert join_line_c(form, (value,)) == expected


@settings(max_examples=1000)
@given(now=st.floats(min_value=-1e10, max_value=1e11) | st.floats(min_value=1.6e9, max_value=2e9))
def test_the_utc_time_kind_is_the_json_lines_time(now):
    """``UTC_TIME``: what the f-string json line writes before ``+00:00`` (its second cached)."""
    second = int(now)
    expected = f"{accesslog._utc_second(second)}.{int((now - second) * 1000):03d}"
    for join in (join_line_py, join_line_c) if join_line_c is not None else (join_line_py,):
        assert join(_form([""], [UTC_TIME], tail=""), (now,)) == expected
        # Twice in the same second (the cached part), then in another one.
        assert join(_form([""], [UTC_TIME], tail=""), (now + 0.0001,)) == join_line_py(
            _form([""], [UTC_TIME], tail=""), (now + 0.0001,))


# Where the C code writes digits itself (an int within a long long, a status from 0 to 999, a
# time's milliseconds from 0 to 999) and where it hands over to Python's formatting.
_EDGE_INTS = (0, 1, -1, 9, 10, 99, 100, 999, 1000, 2**31, -2**31, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**30,
              -10**30, True, False)
_EDGE_TIMES = (0.0, 0.999, 0.9995, 1.0, 1_790_000_000.0, 1_790_000_000.999, 1_790_000_000.0009999, -0.001, -0.5,
               -1.0, -1.9999, 59.9999999)


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@pytest.mark.parametrize("escape", [0, 1, 2])
def test_the_c_codes_own_digits_at_their_edges_are_the_twins(escape):
    for value in _EDGE_INTS:
        for kind in (PLAIN, STATUS, JSON, JSON_SECONDS, SECONDS):
            form = _form(["<"], [kind], tail=">", escape=escape)
            assert _outcome(join_line_c, form, (value,)) == _outcome(join_line_py, form, (value,)), (kind, value)
    for now in _EDGE_TIMES:
        form = _form(["<"], [UTC_TIME], tail=">", escape=escape)
        assert join_line_c(form, (now,)) == join_line_py(form, (now,)), now
        # again, in the second the C code now remembers (written straight into the line), and its neighbours
        for again in (now, math.nextafter(now, -math.inf), math.nextafter(now, math.inf), now + 0.5, now - 0.5):
            assert join_line_c(form, (again,)) == join_line_py(form, (again,)), again
    assert join_line_c(_form(["", " ", " "], [PLAIN, JSON, STATUS]), (2**63 - 1, -2**63, 200)) == (
        f"{2**63 - 1} {-2**63} 200\n")


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@pytest.mark.parametrize("escape", [0, 1, 2])
def test_lines_past_the_c_codes_one_pass_are_the_twins(escape):
    """The C code writes an ASCII line of up to 4,096 characters in one pass and takes its two
    passes otherwise: a line around that length, a literal, value or tail that is not ASCII, an
    error after ASCII pieces."""
    kinds = [ESCAPED, PLAIN, JSON, STATUS, SECONDS]
    for size in (4000, 4060, 4080, 4085, 4086, 4087, 4088, 4089, 4090, 4096, 4097, 5000):
        for at in range(5):
            values = ["v", 7, "j", 200, 1.5]
            values[at] = {0: "x" * size, 1: "x" * size, 2: "x" * size, 3: 10 ** (size // 100), 4: 1.5}[at]
            for literals, tail in ((["a", " ", " ", " ", " "], "\n"), (["é", " ", " ", " ", " "], "\n"),
                                   (["a", " ", " ", " ", " "], "é\n"), (["a" * 4090, "", "", "", ""], "\n")):
                form = _form(literals, kinds, tail=tail, escape=escape)
                assert _outcome(join_line_c, form, tuple(values)) == _outcome(join_line_py, form, tuple(values))
    for values in (("é", 7, "j", 200, 1.5), ("v", 7, "\u20ac", 200, 1.5), ("v", 7, "j", "200", 1.5),
                   ("v", 7, "j", 200, "x"), ("v", "x\x00", "j", 200, 1.5)):
        form = _form(["a", " ", " ", " ", " "], kinds, escape=escape)
        assert _outcome(join_line_c, form, values) == _outcome(join_line_py, form, values), values


# Bytes the C code's eight-a-step scan (clean_prefix) must find wherever they sit in a word: each
# byte that needs escaping (or is the last that does not) and its neighbours.
_SCAN_BYTES = (0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xFE, 0xFF)


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@pytest.mark.parametrize("escape", [0, 1, 2])
def test_the_c_codes_scan_finds_every_escaped_byte_at_every_place(escape):
    """The one-pass line copies a printable value (and $request's parts) straight in after a scan
    of eight bytes a step: each byte that needs escaping, at each place of values of 1 to 24 bytes
    (str and bytes), is escaped as the twin escapes it; the others are copied."""
    form = _form(["<", "|"], [ESCAPED, JSON], tail=">", escape=escape)
    for size in range(1, 25):
        for at in range(size):
            for byte in _SCAN_BYTES:
                data = bytearray(b"a" * size)
                data[at] = byte
                for value in (bytes(data), bytes(data).decode("latin-1")):
                    assert _outcome(join_line_c, form, (value, value)) == _outcome(join_line_py, form, (value, value)), (
                        value, escape)


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@pytest.mark.parametrize("escape", [0, 1, 2])
def test_the_request_written_straight_in_is_the_twins(escape):
    """$request is written into the one-pass line from its three parts when they need no escaping,
    else made and escaped as before: parts with and without bytes to escape, HTTP/2's "2.0", empty
    parts, parts that are not bytes, and a line too long for the one pass."""
    form = _form(["<", ">"], [ESCAPED, logline.REQUEST], tail="\n", escape=escape)
    for method in (b"GET", b"", b"G\"T", b"\x80"):
        for uri in (b"/", b"/a?b=c", b"/a b", b"/\x00", b"/\\", b"/" + b"x" * 5000, b"/\xc3\xa9"):
            for version in (b"1.1", b"2", b"1.0", b"", b"\x7f"):
                exchange = SimpleNamespace(method=method, version=version, request=SimpleNamespace(target=uri))
                assert _outcome(join_line_c, form, ("v", exchange)) == _outcome(join_line_py, form, ("v", exchange)), (
                    method, uri, version)
    for odd in (SimpleNamespace(method="GET", version=b"1.1", request_uri=b"/"),
                SimpleNamespace(method=b"GET", version=1, request_uri=b"/"), None):
        assert _outcome(join_line_c, form, ("v", odd)) == _outcome(join_line_py, form, ("v", odd))


# Seconds the C code writes itself (fixed_text: 0 < x < 1e9, the exact binary value rounded to 3 or
# 6 places, ties to even): exact ties (x * 10^places ends in .5 exactly: dyadic multiples of 5^-places),
# their neighbours, and the ends of its range.
_TIES = tuple(k * 125 / 2 ** j for k in (1, 3, 5, 7, 9, 11, 1001) for j in range(1, 14)) + tuple(
    k * 15625 / 2 ** j for k in (1, 3, 5, 13, 99) for j in range(7, 24))
_SECONDS_EDGES = _TIES + tuple(math.nextafter(x, 0) for x in _TIES) + tuple(math.nextafter(x, 2e9) for x in _TIES) + (
    5e-324, 2.2250738585072014e-308, 1e-300, 1e-10, 0.0001, math.nextafter(0.0001, 0), 0.0005, 0.0015, 0.9995,
    999999.9999995, math.nextafter(1e6, 0), 1e6, math.nextafter(1e9, 0), 1e9, 2.0 ** 52, 2.0 ** 60)


@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
@pytest.mark.parametrize("kind", [SECONDS, JSON_SECONDS])
def test_seconds_the_c_code_writes_itself_are_pythons_at_ties_and_edges(kind):
    form = _form([""], [kind], tail="", escape=1 if kind == JSON_SECONDS else 0)
    for value in _SECONDS_EDGES:
        assert join_line_c(form, (value,)) == join_line_py(form, (value,)), value
    assert join_line_c(_form([""], [SECONDS], tail=""), (0.0625,)) == "0.062"  # the tie to even
    assert join_line_c(_form([""], [JSON_SECONDS], tail=""), (0.0078125,)) == "0.007812"


@settings(max_examples=2000)
@given(value=st.floats(min_value=0.0, max_value=1e9, exclude_min=True) | st.floats(min_value=1e-4, max_value=1e6)
       | st.integers(1, 2 ** 40).map(lambda k: k / 2 ** 20))
def test_seconds_in_the_c_codes_range_are_pythons(value):
    for kind in (SECONDS, JSON_SECONDS):
        form = _form([""], [kind], tail="")
        for join in (join_line_py, join_line_c) if join_line_c is not None else (join_line_py,):
            assert join(form, (value,)) == ("%.3f" % value if kind == SECONDS else json.dumps(round(value, 6)))


# JSON seconds below 10^-4 s (a request through a nearby backend: 5e-05), which the C code writes from
# round()'s count of microseconds (0..100) and a table of float.__repr__(k / 1e6): every count's value,
# its rounding edges (k ± 0.5 µs and their neighbours), the ends of the range, and values too small for
# the count (the round() path). Each through the one-pass line (ASCII) and the two passes (a non-ASCII
# literal), against json.dumps(round(value, 6)).
_SMALL_EDGES = tuple(
    x for k in range(0, 101) for centre in (k / 1e6, (k + 0.5) / 1e6, (k - 0.5) / 1e6) if centre > 0
    for x in (centre, math.nextafter(centre, 0), math.nextafter(centre, 1))) + (
    math.nextafter(0.0001, 0), 0.0001, 5e-7, 4.999999e-7, 1e-12, 1e-17, 1e-18, 1e-20, 1e-300,
    2.2250738585072014e-308, 5e-324, 0.0)
_SMALL_FORMS = (_form([""], [JSON_SECONDS], tail=""), _form(["é"], [JSON_SECONDS], tail=""))


@pytest.mark.parametrize("join", IMPLEMENTATIONS)
def test_json_seconds_below_a_tenth_of_a_millisecond_at_their_edges(join):
    for value in _SMALL_EDGES + tuple(-x for x in _SMALL_EDGES):
        expected = json.dumps(round(value, 6))
        assert join(_SMALL_FORMS[0], (value,)) == expected, value
        assert join(_SMALL_FORMS[1], (value,)) == "é" + expected, value
    assert join(_SMALL_FORMS[0], (0.00005,)) == "5e-05"
    assert join(_SMALL_FORMS[0], (0.0000994,)) == "9.9e-05"
    assert join(_SMALL_FORMS[0], (0.0000995,)) == "0.0001"  # the double nearest 99.5 µs is above it


@settings(max_examples=3000)
@given(value=st.floats(min_value=0.0, max_value=1e-4) | st.integers(0, 10**8).map(lambda k: k / 1e12))
def test_json_seconds_below_a_tenth_of_a_millisecond_are_pythons(value):
    expected = json.dumps(round(value, 6))
    for join in (join_line_py, join_line_c) if join_line_c is not None else (join_line_py,):
        assert join(_SMALL_FORMS[0], (value,)) == expected
        assert join(_SMALL_FORMS[1], (value,)) == "é" + expected


# -- the access log's json line, joined, against its reference --------------------------------

JOINS = twins(join_line_py, join_line_c)


@pytest.mark.parametrize("join", JOINS)
@settings(max_examples=300)
@given(case=exchanges())
def test_the_joined_json_line_is_the_reference_line(join, case):
    now, exchange = case
    line = accesslog._json_line_joined(exchange, now, accesslog._RouteParts(), join=join)
    assert line == accesslog._json_line(accesslog._record(exchange, now))
    assert line == accesslog._json_line_of(exchange, now, accesslog._RouteParts())


def test_the_access_log_uses_the_joined_json_line_when_accelerated():
    expected = accesslog._json_line_joined if logline.accelerated else accesslog._json_line_of
    assert accesslog._json_line_fast is expected


# -- both ways of compiling a log_format, every variable, against render_slowly ---------------

COMPILERS = [pytest.param("fstring", id="fstring"),
             *twins("joined-python", "joined-c", ids=("joined-python", "joined-c"), built=join_line_c is not None)]


_COMPILED: dict = {}


def _compiled(compiler: str, text: str, escape: str) -> logformat.LogFormat:
    """The template compiled as ``compiler`` says (the f-string, or joined by the twin or the C code)."""
    key = (compiler, text, escape)
    if key not in _COMPILED:
        saved = logline.accelerated, logline.join_line, logline.join_line_into
        try:
            logline.accelerated = compiler != "fstring"
            if compiler != "fstring":
                logline.join_line = join_line_py if compiler == "joined-python" else join_line_c
                logline.join_line_into = join_line_into_py if compiler == "joined-python" else join_line_into_c
            _COMPILED[key] = logformat.compile_log_format(text, escape)
        finally:
            logline.accelerated, logline.join_line, logline.join_line_into = saved
    return _COMPILED[key]


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("escape", ["default", "json", "none"])
@settings(max_examples=100)
@given(case=exchanges())
def test_every_compiled_line_is_the_slow_render(compiler, escape, case):
    now, exchange = case
    fmt = _compiled(compiler, _template(escape), escape)
    assert ("joined" in fmt.line.__code__.co_filename) is (compiler != "fstring")
    assert fmt.render(exchange, now) == fmt.render_slowly(exchange, now)


@pytest.mark.parametrize("compiler", COMPILERS)
@settings(max_examples=100)
@given(case=exchanges())
def test_the_upstreaminfo_line_is_the_slow_render(compiler, case):
    now, exchange = case
    for escape in ("default", "json", "none"):
        fmt = _compiled(compiler, logformat.DEFAULT_UPSTREAM, escape)
        assert fmt.render(exchange, now) == fmt.render_slowly(exchange, now)


def test_every_raw_variable_is_known():
    assert set(logformat._RAW) <= {name for name, getter in logformat.VARIABLES.items() if getter is not None}
    assert all(kind in (ESCAPED, PLAIN, SECONDS, STATUS) for _, kind in logformat._RAW.values())


@settings(max_examples=300)
@given(case=exchanges(), authorization=st.sampled_from([None, b"Basic dTpw", b"Basic !!", b"Bearer x"]),
       alternatives=st.booleans())
def test_raw_expressions_write_as_the_getters(case, authorization, alternatives):
    """Each ``_RAW`` expression, written with its kind, is its variable's getter written as the
    f-string line writes it (escaped, or as it is for the ``_PLAIN`` ones)."""
    now, exchange = case
    if authorization is not None:
        exchange.headers.add(b"authorization", authorization)
    if alternatives and exchange.route is not None:
        canary = SimpleNamespace(route=exchange.route)
        exchange.entry = SimpleNamespace(alternatives=((1, canary),))
        exchange.upstream_endpoint = None
    for name, (expression, kind) in logformat._RAW.items():
        getter = logformat.VARIABLES[name]
        scope = {"ex": exchange, "now": now, "_g": getter, "_time_local": logformat._time_local,
                 "_upstream_names": logformat._upstream_names}
        raw = eval(expression.replace("{getter}", "_g"), scope)  # noqa: S307 - our own expressions
        reference = getter(exchange, now)
        # Again, with what the getter remembered (``$proxy_upstream_name``'s route) in place:
        assert eval(expression.replace("{getter}", "_g"), scope) == raw, name  # noqa: S307
        plain = PLAIN if name in logformat._PLAIN else ESCAPED
        for escape in (0, 1, 2):
            expected = join_line_py(_form([""], [plain], tail="", escape=escape), (reference,))
            assert join_line_py(_form([""], [kind], tail="", escape=escape), (raw,)) == expected, name
            if join_line_c is not None:
                assert join_line_c(_form([""], [kind], tail="", escape=escape), (raw,)) == expected, name


class _NoRequest:
    """An exchange-like object without ``request``: its ``request_uri`` is read."""

    method, version = b"GET", b"1.1"

    def __init__(self, uri):
        self.request_uri = uri


@settings(max_examples=300)
@given(target=st.binary(max_size=30) | st.sampled_from([b"/a#b", b"#", b"/a?x#y#z", b"/\xff#\x00"]))
def test_the_request_kinds_uri_is_the_exchanges_request_uri(target):
    """``$request``'s URI is read from ``request.target`` in C and in the twin (``_request_uri``):
    an inline copy of ``Exchange.request_uri``'s lines, held to the property itself here; an object
    without a ``request`` (or whose target is not bytes) has its own ``request_uri`` read."""
    from ingressd.proxy.exchange import Exchange
    exchange = SimpleNamespace(method=b"GET", version=b"1.1", request=SimpleNamespace(target=target),
                               request_uri=b"/not-read")
    uri = Exchange.request_uri.fget(exchange)
    assert logline._request_uri(exchange) == uri
    form = _form([""], [logline.REQUEST], tail="", escape=2)
    expected = "GET " + uri.decode("utf-8", "surrogateescape") + " HTTP/1.1"
    assert join_line_py(form, (exchange,)) == expected
    others = (_NoRequest(target), SimpleNamespace(method=b"GET", version=b"1.1", request=SimpleNamespace(target="/s"),
                                                  request_uri=target))
    for other in others:
        assert join_line_py(form, (other,)) == "GET " + target.decode("utf-8", "surrogateescape") + " HTTP/1.1"
    if join_line_c is not None:
        assert join_line_c(form, (exchange,)) == expected
        for other in others:
            assert join_line_c(form, (other,)) == join_line_py(form, (other,))
        broken = SimpleNamespace(method=b"GET", version=b"1.1", request=SimpleNamespace())  # no target, no request_uri
        assert _outcome(join_line_c, form, (broken,)) == _outcome(join_line_py, form, (broken,)) == ("raised", "error")


def test_the_compile_module_uses_the_join_only_when_accelerated():
    assert logformat_compile.logline is logline


# -- the C code's references ------------------------------------------------------------------

@pytest.mark.skipif(join_line_c is None, reason="the C accelerator was not built")
def test_no_memory_grows_over_many_calls():
    """A bounded loop of calls, the error paths included: allocated memory must not grow (a
    reference leaked per call would leave ~50 bytes or more each time)."""
    good = [(form, values) for form, values, _ in CASES] + [
        (_form(["x"] * 60, [ESCAPED] * 60, escape=1), tuple([b"\xff\x01"] * 60)),  # past the stack array
        (_form(["", ""], [ESCAPED, PLAIN]), ("é\n", 10**30)),
    ]

    def once():
        buffer = LineBufferC(1 << 60)
        for form, values in good:
            join_line_c(form, values)
            join_line_into_c(form, values, buffer)
        for form, values in BAD:
            for call in (lambda: join_line_c(form, values), lambda: join_line_into_c(form, values, buffer)):
                try:
                    call()
                except (TypeError, ValueError, OverflowError, UnicodeError, OSError):
                    pass
        buffer.take()
        buffer.append(b"x\n")
        buffer.take_lines()

    def rounds(n):
        for _ in range(n):
            once()

    grown = traced_growth(rounds, warm=200, settle=200, measured=3000)
    calls = 3000 * 2 * (len(good) + len(BAD))
    assert grown < calls // 10, f"{grown} bytes grew over {calls} calls"
