"""The json lines of a round read in C (``ingressd._logline.json_lines``) against their pure-Python
twin, ``accesslog._json_lines_joined``: for any round of exchanges (odd ones among them: missing
attributes, values of the wrong type, a WebSocket's tunnel bytes, TLS facts, routes whose part
cannot be made) the same lines in the same order and the same count of lines left out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd import accesslog, logline

from test_logformat_compiled import exchanges

pytestmark = pytest.mark.skipif(logline.json_lines is None, reason="the C accelerator was not built")


def _c(held, route_parts, out):
    return logline.json_lines(accesslog._JSON_CONTEXT, held, route_parts, out)


def _outcome(lines, held, route_parts):
    out: list = []
    try:
        failed = lines(held, route_parts, out)
    except Exception as exc:  # noqa: BLE001 - both must raise alike
        return "raised", type(exc).__name__, out
    return "ok", failed, out


class _Odd:
    """A value whose truth, comparison or arithmetic raises."""

    def __bool__(self):
        raise RuntimeError("no truth")

    def __eq__(self, other):
        raise RuntimeError("no comparison")

    __hash__ = None

    def __sub__(self, other):
        raise RuntimeError("no arithmetic")

    __rsub__ = __radd__ = __add__ = __sub__


_ODD_FIELDS = {
    "status": [101, "101", _Odd(), None], "bytes_sent": ["1", None, 2**70], "request_bytes": [1.5, None],
    "tunnel_bytes": [(1,), (1, 2, 3), [3, 4], None, (_Odd(), 1)], "protocol": [None, SimpleNamespace(scheme="https")],
    "upstream_started": [_Odd(), 1.0, 2], "upstream_ended": [_Odd(), 3.5, True], "headers": [None, {}],
    "version": [[], b"3", "1.1", b""], "route": [SimpleNamespace(ingress=None, backend=None), 7],
    "request_id": [None, 7, b"r"], "client_ip": [None, b"\xff"], "method": [None, "GET"], "host": [None, 3],
    "request": [None, SimpleNamespace()], "scheme": [None, 4], "started": [None, "1", _Odd()],
    "upstream_address": [None, 0, _Odd()], "upstream_statuses": [None, "", _Odd(), 502], "proxy": [None],
}


@st.composite
def odd_exchanges(draw):
    now, exchange = draw(exchanges())
    for name in draw(st.lists(st.sampled_from(sorted(_ODD_FIELDS)), max_size=3)):
        if draw(st.booleans()):
            delattr(exchange, name) if hasattr(exchange, name) else None
        else:
            setattr(exchange, name, draw(st.sampled_from(_ODD_FIELDS[name])))
    return now, exchange


@st.composite
def rounds(draw):
    cases = draw(st.lists(st.one_of(exchanges(), odd_exchanges()), max_size=6))
    later = draw(st.sampled_from([0.0, 0.5, 3.25]))
    held = []
    for now, exchange in cases:
        clock = getattr(getattr(exchange, "proxy", None), "clock", None)
        end = clock.seconds() + later if clock is not None else draw(st.sampled_from([1.0, "x"]))
        held.append((exchange, now, end))
    return held


@settings(max_examples=400, deadline=None)
@given(held=rounds())
def test_the_c_rounds_json_lines_are_the_twins(held):
    twin = _outcome(accesslog._json_lines_joined, held, accesslog._RouteParts())
    assert _outcome(_c, held, accesslog._RouteParts()) == twin


@settings(max_examples=100, deadline=None)
@given(held=rounds())
def test_a_shared_route_cache_gives_the_same_lines(held):
    """The route parts cached by one round are read by the next (``_RouteParts``'s id-keyed cache)."""
    parts_c, parts_py = accesslog._RouteParts(limit=3), accesslog._RouteParts(limit=3)
    for _ in range(2):
        assert _outcome(_c, held, parts_c) == _outcome(accesslog._json_lines_joined, held, parts_py)


def test_held_items_that_are_not_three_values_raise_in_both():
    for held in ([(1, 2)], [None], [(SimpleNamespace(), 1.0, 2.0, 3)]):
        c, twin = _outcome(_c, held, accesslog._RouteParts()), _outcome(accesslog._json_lines_joined, held,
                                                                       accesslog._RouteParts())
        assert c[0] == twin[0] == "raised"


def test_an_out_that_is_not_a_list_is_appended_to():
    now, exchange = 1_790_000_000.5, SimpleNamespace()
    seen: list = []
    out = SimpleNamespace(append=seen.append)
    assert logline.json_lines(accesslog._JSON_CONTEXT, [(exchange, now, 1.0)], accesslog._RouteParts(), out) == 1
    assert seen == []


def test_the_access_log_reads_its_json_rounds_in_c_when_accelerated():
    assert accesslog._json_lines_fast.func is logline.json_lines
    assert accesslog._json_lines_fast.args == (accesslog._JSON_CONTEXT,)
