"""A compiled ``log_format``'s round lines read in C (``ingressd._logline.template_lines``, each
variable's raw value read by its op, ``logformat._OPS``) against their pure-Python twin, the compiled
``lines`` (``LogFormat.lines.twin``): for any round of exchanges (odd ones among them), ingress-nginx's
upstreaminfo line and a template of every variable, each escape, the same lines in the same order and
the same count of lines left out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd import logformat, logline
from ingressd.logformat import DEFAULT_UPSTREAM, compile_log_format

from test_logformat_compiled import _template
from test_logline_json_lines import _outcome, rounds

pytestmark = pytest.mark.skipif(logline.template_lines is None, reason="the C accelerator was not built")

TEMPLATES = {"upstreaminfo": DEFAULT_UPSTREAM, "every-variable": _template("default"),
             "headers": '$http_referer "$http_x_a" $remote_user $http_authorization $http_referer'}
_FORMATS: dict = {}


def _format(name: str, escape: str) -> logformat.LogFormat:
    if (name, escape) not in _FORMATS:
        _FORMATS[name, escape] = compile_log_format(TEMPLATES[name], escape)
    return _FORMATS[name, escape]


def _c(fmt):
    return lambda held, _, out: fmt.lines(held, out)


def _twin(fmt):
    return lambda held, _, out: fmt.lines.twin(held, out)


@pytest.mark.parametrize("escape", ["default", "json", "none"])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
@settings(max_examples=150, deadline=None)
@given(held=rounds(), authorization=st.sampled_from([None, b"Basic dTpw", b"Basic !!", b"Bearer x"]),
       alternatives=st.booleans())
def test_the_c_rounds_template_lines_are_the_twins(name, escape, held, authorization, alternatives):
    fmt = _format(name, escape)
    for exchange, _, _ in held:
        headers = getattr(exchange, "headers", None)
        if authorization is not None and hasattr(headers, "add"):
            headers.add(b"authorization", authorization)
        route = getattr(exchange, "route", None)
        if alternatives and route is not None and hasattr(route, "backend"):
            exchange.entry = SimpleNamespace(alternatives=((1, SimpleNamespace(route=route)),))
    twin = _outcome(_twin(fmt), held, None)
    assert _outcome(_c(fmt), held, None) == twin
    assert _outcome(_c(fmt), held, None) == twin  # again, with what the getters remembered in place


def test_the_access_log_reads_template_rounds_in_c_when_accelerated():
    fmt = compile_log_format(DEFAULT_UPSTREAM)
    assert fmt.lines.func is logline.template_lines
    ops = fmt.lines.program[2]
    assert all(op[0] != logline.OP_CALL for op in ops)  # upstreaminfo's variables each have their op
    assert fmt.lines.program[1] == (b"authorization", b"referer", b"user-agent")


def test_every_op_is_of_a_known_variable():
    assert set(logformat._OPS) <= {name for name, getter in logformat.VARIABLES.items() if getter is not None}


@pytest.mark.parametrize("program", [
    "not a program", (None, None), (None, None, [()]),
])
def test_a_malformed_program_raises(program):
    with pytest.raises(TypeError):
        logline.template_lines(program, [], [])


def test_a_malformed_op_is_a_line_left_out():
    form = (("",), bytes((logline.ESCAPED,)), "\n", 0)
    exchange = SimpleNamespace(a="x")
    for op in [(), ("1",), (99, "a"), (logline.OP_ATTR,), (logline.OP_HEADER, 0)]:
        out: list = []
        assert logline.template_lines((form, None, (op,)), [(exchange, 1.0, 2.0)], out) == 1 and out == []
    out = []
    assert logline.template_lines((form, None, ((logline.OP_ATTR, "a"),)), [(exchange, 1.0, 2.0)], out) == 0
    assert out == ["x\n"]


@settings(max_examples=200, deadline=None)
@given(trail=st.sampled_from(["", "502, ", "502, 504, "]), upstream_status=st.sampled_from([0, 200, 503]),
       status=st.sampled_from([0, 200, 502, 504]))
def test_the_statuses_op_is_the_exchanges_upstream_statuses(trail, upstream_status, status):
    """``OP_STATUSES`` (the C code's ``statuses_of``: ``upstream_status`` while ``upstream_trail`` is
    empty) is an inline copy of ``Exchange.upstream_statuses``: held to the property itself, on
    ingressd's own Exchange (its class defaults and slots as on the request path)."""
    from ingressd.proxy.exchange import Exchange
    exchange = object.__new__(Exchange)
    if trail:
        exchange.upstream_trail = trail
    exchange.upstream_status = upstream_status
    exchange.status = status
    expected = exchange.upstream_statuses or None
    form = (("",), bytes((logline.PLAIN,)), "", 2)
    out: list = []
    assert logline.template_lines((form, None, ((logline.OP_STATUSES,),)), [(exchange, 1.0, 2.0)], out) == 0
    assert out == ["" if expected is None else str(expected)]
    # Without upstream_trail (a stand-in exchange): its upstream_statuses as it is.
    other = SimpleNamespace(upstream_statuses=expected, upstream_status="not read")
    out = []
    assert logline.template_lines((form, None, ((logline.OP_STATUSES,),)), [(other, 1.0, 2.0)], out) == 0
    assert out == ["" if expected is None else str(expected)]
