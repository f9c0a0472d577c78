"""What ``ingressd.logline`` reads off the exchange for a line: ``header_values`` (several headers
in one pass) and the ``REQUEST`` kind (``$request`` read and joined in C). The C accelerator
against its pure-Python twins (every case run against both, Hypothesis fuzzing them against each
other with every byte value, truncations and odd inputs) and against what they replace
(``Headers.get``, the inline ``$request`` expression); the compiled lines read each header once;
the C code's references (a bounded loop, error paths included, must not grow memory).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from test_logformat_compiled import exchanges
from twins import twins

from ingressd import accesslog, logformat, logline
from ingressd.http.headers import Headers
from ingressd.logline import ESCAPED, REQUEST, header_values_py, join_line_py

try:
    from ingressd._logline import header_values as header_values_c
    from ingressd._logline import join_line as join_line_c
except ImportError:
    header_values_c = join_line_c = None

BUILT = pytest.mark.skipif(header_values_c is None, reason="the C accelerator was not built")
HEADER_VALUES = twins(header_values_py, header_values_c)
JOINS = twins(join_line_py, join_line_c)


def test_the_accelerator_is_used_when_built():
    assert logline.header_values is (header_values_c if header_values_c is not None else header_values_py)
    if os.environ.get("CI") == "true" and not hasattr(__import__("sys"), "pypy_version_info"):
        assert header_values_c is not None, "CI installs with a compiler: ingressd._logline must be built"


def _outcome(call, *args):
    try:
        return "ok", call(*args)
    except Exception as exc:  # noqa: BLE001 - the same kind of failure on both sides
        return "raised", type(exc).__name__


# -- header_values -----------------------------------------------------------------------------

class _GetOnly:
    """A headers object without ingressd's ``pairs`` list: read through its ``get``."""

    def __init__(self, values):
        self.values = values

    def get(self, name):
        return self.values.get(name)


HEADER_CASES = [
    # (headers, names, expected)
    (Headers([(b"host", b"h"), (b"referer", b"r"), (b"user-agent", b"u")]), (b"referer", b"user-agent"), (b"r", b"u")),
    (Headers([(b"referer", b"1"), (b"referer", b"2")]), (b"referer",), (b"1",)),  # the first one, as get()
    (Headers([]), (b"referer", b"user-agent"), (None, None)),
    (Headers([(b"a", b"")]), (b"a", b"a"), (b"", b"")),  # a name asked twice
    (Headers([(b"a", b"x")]), (), ()),
    (Headers([("a", b"str key")]), (b"a", "a"), (None, b"str key")),  # compared as == compares
    (Headers([(b"a", 1)]), (b"a",), (1,)),
    (Headers([(b"a", b"1"), [b"b", b"2"]]), (b"a", b"b"), (b"1", b"2")),  # a list pair: through get()
    (_GetOnly({b"referer": b"r"}), (b"referer", b"x"), (b"r", None)),
    (SimpleNamespace(pairs=((b"a", b"1"),), get=lambda name: b"got"), (b"a",), (b"got",)),  # not a list
]


@pytest.mark.parametrize("read", HEADER_VALUES)
@pytest.mark.parametrize("headers,names,expected", HEADER_CASES)
def test_header_cases(read, headers, names, expected):
    assert read(headers, names) == expected


HEADER_BAD = [
    (Headers([]), [b"a"]),  # names not a tuple
    (Headers([]), b"a"),
    (object(), (b"a",)),  # neither pairs nor get
    (SimpleNamespace(pairs=None), (b"a",)),
]


@pytest.mark.parametrize("read", HEADER_VALUES)
@pytest.mark.parametrize("headers,names", HEADER_BAD)
def test_header_bad_input_raises(read, headers, names):
    with pytest.raises((TypeError, AttributeError)):
        read(headers, names)
    assert _outcome(header_values_py, headers, names)[0] == "raised"


@BUILT
def test_header_argument_count_is_checked():
    with pytest.raises(TypeError):
        header_values_c(Headers([]))  # type: ignore[call-arg]


names_ = st.sampled_from([b"referer", b"user-agent", b"authorization", b"a", b"", b"\xff", b"Referer"])
pair_lists = st.lists(st.tuples(names_ | st.binary(max_size=4), st.binary(max_size=8)), max_size=12)


@settings(max_examples=500)
@given(pairs=pair_lists, names=st.lists(names_, max_size=5).map(tuple))
def test_header_values_are_what_get_gives(pairs, names):
    """Both implementations against ``Headers.get``, name by name."""
    headers = Headers(list(pairs))
    expected = tuple(headers.get(name) for name in names)
    assert header_values_py(headers, names) == expected
    if header_values_c is not None:
        assert header_values_c(headers, names) == expected


odd_items = st.one_of(st.tuples(names_, st.binary(max_size=4)), st.tuples(names_), st.just([b"a", b"b"]),
                      st.tuples(names_, names_, names_), st.text(max_size=2), st.none(), st.integers())


@BUILT
@settings(max_examples=500)
@given(items=st.lists(odd_items, max_size=8), names=st.lists(names_ | st.text(max_size=2), max_size=4),
       as_tuple=st.booleans(), cut=st.integers(0, 8))
def test_fuzz_header_values_c_against_the_twin(items, names, as_tuple, cut):
    """Odd pairs (short, long, lists, not pairs at all), names of any type, truncated: the same result
    or both raise."""
    for pairs in (items, items[:cut], tuple(items)):
        headers = SimpleNamespace(pairs=pairs, get=lambda name: ("got", name))
        chosen = tuple(names) if as_tuple else list(names)
        assert _outcome(header_values_c, headers, chosen) == _outcome(header_values_py, headers, chosen)


# -- the REQUEST kind ----------------------------------------------------------------------------

def _request(method=b"GET", uri=b"/a?b", version=b"1.1"):
    return SimpleNamespace(method=method, request_uri=uri, version=version)


def _form(kinds, escape=0):
    return (("",) * len(kinds), bytes(kinds), "", escape)


REQUEST_CASES = [
    (_request(), 0, "GET /a?b HTTP/1.1"),
    (_request(version=b"2"), 0, "GET /a?b HTTP/2.0"),
    (_request(version=b"1.0"), 1, "GET /a?b HTTP/1.0"),
    (_request(b"M\xffX", b'/"q"\\\x01', b"9\x01"), 0, "M\\xFFX /\\x22q\\x22\\x5C\\x01 HTTP/9\\x01"),
    (_request(b"G", b'/"\xc3\xa9\xff\n', b"2"), 1, 'G /\\"é\udcff\\n HTTP/2.0'),
    (_request(b"G", b'/"\xc3\xa9\xff\n', b"22"), 2, 'G /"é\udcff\n HTTP/22'),
    (_request(b"", b"", b""), 0, "  HTTP/"),
    (None, 0, "-"),
    (None, 1, ""),
]


@pytest.mark.parametrize("join", JOINS)
@pytest.mark.parametrize("value,escape,expected", REQUEST_CASES)
def test_request_cases(join, value, escape, expected):
    assert join(_form([REQUEST], escape), (value,)) == expected


REQUEST_BAD = [
    _request(method="GET"),  # parts that are not bytes
    _request(uri=None),
    _request(version=bytearray(b"1.1")),
    SimpleNamespace(method=b"GET", version=b"1.1"),  # no request_uri
    "GET / HTTP/1.1",  # not an exchange
    b"GET / HTTP/1.1",
    1,
]


@pytest.mark.parametrize("join", JOINS)
@pytest.mark.parametrize("value", REQUEST_BAD)
def test_request_bad_values_raise_type_error(join, value):
    """A wrong value is a TypeError (as a wrong value of any kind is), the line then not written."""
    with pytest.raises(TypeError):
        join(_form([REQUEST]), (value,))


@settings(max_examples=1000)
@given(method=st.binary(max_size=12), uri=st.binary(max_size=40), version=st.binary(max_size=4) | st.just(b"2"),
       escape=st.sampled_from([0, 1, 2]))
def test_the_request_kind_is_the_inline_expression(method, uri, version, escape):
    """Every byte value: what the f-string line's ``$request`` expression gives, written as ESCAPED."""
    ex = _request(method, uri, version)
    inline = ex.method + b" " + ex.request_uri + (b" HTTP/2.0" if ex.version == b"2" else b" HTTP/" + ex.version)
    expected = join_line_py(_form([ESCAPED], escape), (inline,))
    assert join_line_py(_form([REQUEST], escape), (ex,)) == expected
    if join_line_c is not None:
        assert join_line_c(_form([REQUEST], escape), (ex,)) == expected


@BUILT
@settings(max_examples=500)
@given(parts=st.lists(st.binary(max_size=8) | st.text(max_size=3) | st.none() | st.integers(), min_size=3,
                      max_size=3), drop=st.integers(0, 4), escape=st.integers(-1, 3))
def test_fuzz_request_c_against_the_twin(parts, drop, escape):
    """Parts of any type, one of them missing, escapes out of range: the same line or both raise."""
    fields = dict(zip(("method", "request_uri", "version"), parts))
    fields.pop(("method", "request_uri", "version", "none", "none")[drop], None)
    form = _form([REQUEST], escape)
    value = SimpleNamespace(**fields)
    assert _outcome(join_line_c, form, (value,)) == _outcome(join_line_py, form, (value,))


# -- the compiled lines ------------------------------------------------------------------------

def test_the_upstreaminfo_line_reads_its_headers_once_when_accelerated():
    fmt = logformat.compile_log_format(logformat.DEFAULT_UPSTREAM)
    names = fmt.line.__code__.co_names
    if logline.accelerated:
        assert "_headers" in names and fmt.line.__globals__["_header_names"] == (b"authorization", b"referer",
                                                                                  b"user-agent")
        assert "_join" in names and "request_uri" not in names  # $request read in C
    else:
        assert "_headers" not in names


def test_a_template_without_headers_reads_none():
    fmt = logformat.compile_log_format("$status $request_time")
    assert "_headers" not in fmt.line.__code__.co_names


@settings(max_examples=200)
@given(case=exchanges(), http_headers=st.lists(st.sampled_from(["referer", "user_agent", "authorization",
                                                                "x_missing", "cookie"]), max_size=5))
def test_templates_with_repeated_headers_are_the_slow_render(case, http_headers):
    """A header named twice, ``$remote_user``'s Authorization also as ``$http_authorization``."""
    now, exchange = case
    text = " ".join(["$remote_user", "$request"] + [f'"$http_{name}"' for name in http_headers])
    for escape in ("default", "json", "none"):
        fmt = logformat.compile_log_format(text, escape)
        assert fmt.render(exchange, now) == fmt.render_slowly(exchange, now)


@pytest.mark.parametrize("read", HEADER_VALUES)
@settings(max_examples=200)
@given(case=exchanges())
def test_the_joined_json_line_with_either_reader_is_the_reference_line(read, case):
    now, exchange = case
    line = accesslog._json_line_joined(exchange, now, accesslog._RouteParts(), header_values=read)
    assert line == accesslog._json_line(accesslog._record(exchange, now))


# -- the C code's references ---------------------------------------------------------------------

@BUILT
def test_no_memory_grows_over_many_calls():
    """A bounded loop of calls, the error paths included: allocated memory must not grow."""
    headers_good = [(headers, names) for headers, names, _ in HEADER_CASES]
    request_good = [value for value, _, _ in REQUEST_CASES]
    long_request = _request(b"GET", b"/" + b"\xff" * 300, b"2")

    def once():
        for headers, names in headers_good:
            header_values_c(headers, names)
        for headers, names in HEADER_BAD:
            try:
                header_values_c(headers, names)
            except (TypeError, AttributeError):
                pass
        for escape in (0, 1, 2):
            for value in request_good + [long_request]:
                join_line_c(_form([REQUEST, REQUEST], escape), (value, value))
            for value in REQUEST_BAD:
                try:
                    join_line_c(_form([ESCAPED, REQUEST], escape), ("x", value))
                except TypeError:
                    pass

    def rounds(n):
        for _ in range(n):
            once()

    grown = traced_growth(rounds, warm=200, settle=200, measured=2000)
    calls = 2000 * (len(headers_good) + len(HEADER_BAD) + 3 * (len(request_good) + 1 + len(REQUEST_BAD)))
    assert grown < calls // 10, f"{grown} bytes grew over {calls} calls"
