"""A backend request's head in one call (``ingressd.proxy.backend_request``): the C accelerator and
its pure-Python twin give the same bytes on every case and on fuzzed input, the bytes the steps
it replaces gave (``Exchange._upstream_headers``'s filter, ``headers.serialize``,
``HTTP1Connection.start``'s framing); the extension leaks nothing; under CI=true it must have been
built (test_accelerators.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from twins import twins

from ingressd.http.headers import serialize
from ingressd.proxy import backend_request
from ingressd.proxy.backend_request import backend_request_head_py
from ingressd.proxy.exchange import _NOT_FORWARDED

try:
    from ingressd.proxy._backend_request import backend_request_head as head_c
except ImportError:
    head_c = None

IMPLEMENTATIONS = twins(backend_request_head_py, head_c)


def replaced(method, target, version, pairs, drop, extra, body_length) -> bytes:
    """What the exchange and ``HTTP1Connection.start`` did before: a list, a filter, serialize."""
    lines = [(name, value) for name, value in pairs if name not in drop]
    lines.extend(extra)
    if body_length is not None:
        lines.append((b"content-length", b"%d" % body_length))
    return b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, serialize(lines))


def test_the_module_picks_the_extension_when_built():
    assert backend_request.ACCELERATED == (head_c is not None)
    assert backend_request.backend_request_head is (head_c or backend_request_head_py)


FORWARDED = [(b"x-request-id", b"0123456789abcdef0123456789abcdef"), (b"x-real-ip", b"127.0.0.1"),
             (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-host", b"bench.local")]
CASES = [
    ((b"GET", b"/", b"1.1", [(b"host", b"bench.local"), (b"accept", b"*/*")], _NOT_FORWARDED, FORWARDED, None),
     b"GET / HTTP/1.1\r\nhost: bench.local\r\naccept: */*\r\nx-request-id: 0123456789abcdef0123456789abcdef\r\n"
     b"x-real-ip: 127.0.0.1\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-host: bench.local\r\n\r\n"),
    # hop-by-hop and the client's own forwarding headers dropped; Content-Length: 0 re-made
    ((b"POST", b"/p?q", b"1.1", [(b"host", b"x"), (b"connection", b"keep-alive"), (b"x-real-ip", b"6.6.6.6"),
                                 (b"content-length", b"0"), (b"cookie", b"a=b")],
      _NOT_FORWARDED, [(b"x-real-ip", b"1.1.1.1")], 0),
     b"POST /p?q HTTP/1.1\r\nhost: x\r\ncookie: a=b\r\nx-real-ip: 1.1.1.1\r\ncontent-length: 0\r\n\r\n"),
    # nothing at all, an HTTP/1.0 request line, a length
    ((b"HEAD", b"/", b"1.0", [], frozenset(), [], 12), b"HEAD / HTTP/1.0\r\ncontent-length: 12\r\n\r\n"),
    ((b"GET", b"/", b"1.1", (), (), (), None), b"GET / HTTP/1.1\r\n\r\n"),
    # a drop set with Connection's own tokens; tuples as well as lists; repeated names kept in order
    ((b"GET", b"/", b"1.1", ((b"a", b"1"), (b"x-drop", b"y"), (b"a", b"2")), {b"x-drop"}, ((b"b", b""),), None),
     b"GET / HTTP/1.1\r\na: 1\r\na: 2\r\nb: \r\n\r\n"),
]


@pytest.mark.parametrize("build", IMPLEMENTATIONS)
@pytest.mark.parametrize("args, expected", CASES)
def test_the_head_is_the_request_line_the_kept_headers_the_forwarded_ones_and_the_length(build, args, expected):
    assert build(*args) == expected
    assert replaced(*args) == expected


@pytest.mark.parametrize("build", IMPLEMENTATIONS)
def test_lengths_are_written_as_b_percent_d_writes_them(build):
    for length in (0, 1, 9, 10, 65536, 2 ** 63, 10 ** 40, True, False, -1):
        assert build(b"PUT", b"/", b"1.1", [], (), [], length) == replaced(b"PUT", b"/", b"1.1", [], (), [], length)


@pytest.mark.parametrize("build", IMPLEMENTATIONS)
def test_wrong_types_are_refused(build):
    good = [b"GET", b"/", b"1.1", [(b"a", b"b")], (), [], None]
    for at, bad in ((0, "GET"), (1, None), (2, 1.1), (3, [(b"a", "b")]), (3, [("a", b"b")]), (3, None),
                    (5, [(b"a", 1)]), (5, 7), (6, "0"), (4, None)):
        args = list(good)
        args[at] = bad
        with pytest.raises(TypeError):
            build(*args)
    with pytest.raises((TypeError, ValueError)):
        build(b"GET", b"/", b"1.1", [(b"a", b"b", b"c")], (), [], None)
    with pytest.raises(TypeError):
        build(b"GET", b"/", b"1.1", [], (), [])


# -- differential fuzzing: C against its twin and against the steps it replaces ---------------

_NAMES = [b"host", b"connection", b"x-forwarded-for", b"x-real-ip", b"keep-alive", b"te", b"upgrade",
          b"content-length", b"accept", b"a", b""]
_DROPS = [_NOT_FORWARDED, frozenset(), _NOT_FORWARDED | {b"accept", b"a"}, frozenset({b""})]
_pair = st.tuples(st.one_of(st.sampled_from(_NAMES), st.binary(max_size=8)), st.binary(max_size=16))
_args = st.tuples(
    st.one_of(st.sampled_from([b"GET", b"HEAD", b"POST"]), st.binary(max_size=8)),
    st.binary(max_size=40), st.sampled_from([b"1.1", b"1.0", b""]),
    st.lists(_pair, max_size=12), st.sampled_from(_DROPS), st.lists(_pair, max_size=10),
    st.one_of(st.none(), st.integers(min_value=-10, max_value=2 ** 70)))


def _same(args) -> bytes:
    expected = replaced(*args)
    assert backend_request_head_py(*args) == expected
    if head_c is not None:
        assert head_c(*args) == expected
    return expected


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(_args)
def test_c_python_and_the_replaced_steps_agree_on_generated_heads(args):
    _same(args)
    method, target, version, pairs, drop, extra, length = args
    _same((method, target, version, tuple(pairs), drop, tuple(extra), length))  # tuples too


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_value_in_every_place(byte):
    b = bytes([byte])
    _same((b, b, b, [(b, b)], _NOT_FORWARDED, [(b, b)], None))
    _same((b"G" + b, b"/" + b + b"x", b"1." + b, [(b + b"a", b"v" + b), (b"h", b)], {b}, [(b"x" + b, b)], byte))


def test_oversize_heads():
    for size in (0, 100, 8192, 65536, 10 ** 6):
        big = b"v" * size
        _same((b"GET", b"/" + big, b"1.1", [(b"n", big)] * 3, _NOT_FORWARDED, [(big, b"")], size))
        _same((b"GET", b"/", b"1.1", [(b"h%d" % i, b"v") for i in range(size // 100)], _NOT_FORWARDED,
               [(b"x", b"y")] * (size // 1000), None))


@pytest.mark.skipif(head_c is None, reason="the extension is not built")
def test_a_drop_that_changes_the_list_is_refused_not_read_past():
    pairs = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]

    class Shrinking:
        def __contains__(self, name):
            if pairs:
                pairs.pop()
            return False

    with pytest.raises(RuntimeError):
        head_c(b"GET", b"/", b"1.1", pairs, Shrinking(), [], None)


# -- the extension's references ------------------------------------------------------------------

@pytest.mark.skipif(head_c is None, reason="the extension is not built")
def test_the_extension_does_not_leak():
    """A bounded loop over the cases and every error path: the memory the allocator holds for
    Python objects does not grow with the number of calls."""
    class Raising:
        def __contains__(self, name):
            raise KeyError(name)

    bad_calls = [(b"GET", b"/", b"1.1", [(b"a", "b")], (), [], None), ("GET", b"/", b"1.1", [], (), [], None),
                 (b"GET", b"/", b"1.1", [(b"a", b"b")], Raising(), [], None),
                 (b"GET", b"/", b"1.1", None, (), [], None), (b"GET", b"/", b"1.1", [], (), None, None),
                 (b"GET", b"/", b"1.1", [], (), [(b"a", 1)], 5), (b"GET", b"/", b"1.1", [], (), [], "5"),
                 (b"GET",)]

    def rounds(n):
        for _ in range(n):
            for args, _ in CASES:
                head_c(*args)
            head_c(b"GET", b"/", b"1.1", [], (), [], 10 ** 30)
            for bad in bad_calls:
                try:
                    head_c(*bad)
                except (TypeError, KeyError):
                    pass

    grown = traced_growth(rounds)
    # 1000 rounds of ~14 calls: a leaked object per call would be megabytes
    assert grown < 64 * 1024, grown
