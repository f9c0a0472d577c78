"""A round's lines in one call (``LogFormat.lines``, ``accesslog._json_lines_joined``,
``accesslog._lines_of``): each the line its one-line function writes, in order, a line whose
reads fail skipped and counted; the round's lines are bytes in one buffer with each line's byte
count; the round's end queues them as the one-by-one byte bound would; a settings change within a round writes each exchange's line with its own settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressd import accesslog, logline
from ingressd.accesslog import AccessLog
from ingressd.logformat import DEFAULT_UPSTREAM, log_settings_from

from test_accesslog_rounds import RoundReactor, _exchange, wall  # noqa: F401 - wall: a fixture
from test_logformat_compiled import _template, exchanges
from test_logline import COMPILERS, JOINS, _compiled, buffer_for, into_of

TEMPLATES = [DEFAULT_UPSTREAM, _template("default")]


def round_lines(lines_of, held, *args, **kwargs):
    """A round loop's result: the count of lines skipped and the lines, as text, read back from the
    buffer it wrote them into (of the ``into`` given, else the C one when built)."""
    out = buffer_for(kwargs.get("into", logline.join_line_into))
    failed = lines_of(held, *args, out, **kwargs)
    lines = out.take_lines()
    assert len(lines) + failed == len(held) and out.dropped == 0
    return failed, [line.decode("utf-8", "surrogateescape") for line in lines]


def _held(cases, later):
    """(exchange, now, end) triples, ``end`` the exchange's end on its proxy's clock (or later)."""
    return [(exchange, now, exchange.proxy.clock.seconds() + later) for now, exchange in cases]


def _broken():
    """An exchange no line can be read from (no attributes at all)."""
    return SimpleNamespace()


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("escape", ["default", "json", "none"])
@pytest.mark.parametrize("text", TEMPLATES, ids=["upstreaminfo", "every-variable"])
@settings(max_examples=12, deadline=None)
@given(cases=st.lists(exchanges(), max_size=4), later=st.sampled_from([0.0, 0.5, 3.25]),
       broken_at=st.lists(st.integers(0, 6), max_size=3))
def test_a_templates_round_lines_are_its_lines_in_order(compiler, escape, text, cases, later, broken_at):
    fmt = _compiled(compiler, text, escape)
    held = _held(cases, later)
    expected = [fmt.line(exchange, now, end) for exchange, now, end in held]
    for at in sorted(broken_at, reverse=True):
        held.insert(min(at, len(held)), (_broken(), 1_790_000_000.0, 1.0))
    assert round_lines(fmt.lines, held) == (len(broken_at), expected)


@pytest.mark.parametrize("join", JOINS)
@settings(max_examples=60, deadline=None)
@given(cases=st.lists(exchanges(), max_size=5), later=st.sampled_from([0.0, 0.5]),
       broken_at=st.lists(st.integers(0, 6), max_size=3))
def test_the_json_round_lines_are_the_joined_json_lines_in_order(join, cases, later, broken_at):
    held = _held(cases, later)
    route_parts = accesslog._RouteParts()
    expected = [accesslog._json_line_joined(exchange, now, accesslog._RouteParts(), join=join, end=end)
                for exchange, now, end in held]
    for at in sorted(broken_at, reverse=True):
        held.insert(min(at, len(held)), (_broken(), 1_790_000_000.0, 1.0))
    assert round_lines(accesslog._json_lines_joined, held, route_parts, into=into_of(join)) == (len(broken_at),
                                                                                                expected)


@pytest.mark.parametrize("line_of", [accesslog._json_line_of, accesslog._combined_line_of])
@settings(max_examples=40, deadline=None)
@given(cases=st.lists(exchanges(), max_size=5), broken_at=st.lists(st.integers(0, 6), max_size=3))
def test_the_python_round_lines_are_the_lines_in_order(line_of, cases, broken_at):
    held = _held(cases, 0.25)
    expected = [line_of(exchange, now, accesslog._RouteParts(), end) for exchange, now, end in held]
    for at in sorted(broken_at, reverse=True):
        held.insert(min(at, len(held)), (_broken(), 1_790_000_000.0, 1.0))
    assert round_lines(accesslog._lines_of(line_of), held, accesslog._RouteParts()) == (len(broken_at), expected)


def test_the_access_log_uses_the_joined_json_round_lines_when_accelerated():
    from ingressd import logline
    if logline.accelerated:
        assert accesslog._json_lines_fast is accesslog._json_lines_joined
    else:
        assert accesslog._json_lines_fast is not accesslog._json_lines_joined


def _one_by_one(lengths, queued, limit):
    """Which lines the round's end queues when each is checked against the bound in turn."""
    kept = []
    for index, length in enumerate(lengths):
        if queued >= limit:
            continue
        queued += length
        kept.append(index)
    return kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=12), waiting=st.integers(0, 120),
       bound=st.integers(1, 200))
def test_the_round_queues_what_checking_each_line_against_the_byte_bound_would(wall, lengths, waiting, bound):
    reactor = RoundReactor()
    log = AccessLog("-", max_pending_bytes=bound, settings=log_settings_from({"log_format_upstream": "$request_uri"}),
                    reactor=reactor)
    if waiting:
        log.append_line("x" * (waiting - 1) + "\n")  # bytes already waiting for the writer (a stream line)
    targets = [b"/" + b"x" * length for length in lengths]
    for target in targets:
        log(_exchange(target))
    reactor.end_round()
    kept = _one_by_one([len(target) + 1 for target in targets], waiting, bound)
    assert log.queued_lines() == [targets[index].decode() + "\n" for index in kept]
    assert log.dropped == len(targets) - len(kept)
    assert log._pending.size == sum(len(targets[index]) + 1 for index in kept)
    assert log.counts()["pending"] == len(kept) + (waiting > 0)


def test_settings_changed_and_changed_back_within_a_round_write_each_line_with_its_own(wall):
    reactor = RoundReactor()
    one = log_settings_from({"log_format_upstream": "one $request_uri"})
    two = log_settings_from({"log_format_upstream": "two $request_uri"})
    log = AccessLog("-", settings=one, reactor=reactor)
    for target, now in ((b"/a", one), (b"/b", two), (b"/c", one), (b"/d", one)):
        log.apply(now)
        log(_exchange(target))
    assert len(reactor.ends) == 1  # one round end asked
    reactor.end_round()
    assert log.queued_lines() == ["one /a\n", "two /b\n", "one /c\n", "one /d\n"] and log.dropped == 0
    assert not log._round and log.counts()["pending"] == 4


@pytest.mark.parametrize("options", [{"access_log_format": "json"}, {"access_log_format": "combined"},
                                     {"access_log_format": "nginx"}])
def test_a_failing_line_in_a_round_of_each_format_is_counted_and_the_others_written(wall, options):
    reactor = RoundReactor()
    log = AccessLog("-", settings=log_settings_from(options), reactor=reactor)
    at_once = AccessLog("-", settings=log_settings_from(options))
    for target in (b"/a", None, b"/c"):
        exchange = _exchange(target or b"/b")
        exchange.upstream_status = 0  # read by the upstreaminfo line
        if target is None:
            exchange.status = "not a status"  # no line can be written for it in any format
            del exchange.headers
        log(exchange)
        at_once(exchange)
    reactor.end_round()
    assert log.queued_lines() == at_once.queued_lines() and len(log.queued_lines()) == 2
    assert log.dropped == at_once.dropped == 1


def _route(namespace, service="svc", port=80):
    return SimpleNamespace(host="", path="/", ingress=SimpleNamespace(namespace=namespace, name="ing", kind="Ingress"),
                           backend=SimpleNamespace(service=service, port=port, endpoints=()))


@pytest.mark.parametrize("compiler", COMPILERS)
@settings(max_examples=60, deadline=None)
@given(picks=st.lists(st.tuples(st.sampled_from(["a", "b", "none", "odd"]), st.sampled_from([200, 404, 502])),
                      max_size=10))
def test_the_round_loops_upstream_name_is_each_exchanges_own(compiler, picks):
    """``$proxy_upstream_name`` in the round's loop, each exchange's own: for exchanges sharing
    routes, with no route (the name then depends on the status) and with a route whose name cannot
    be read (that line fails and is counted; the next ones are still right)."""
    routes = {"a": _route("one"), "b": _route("two", "other", 8080), "none": None,
              "odd": SimpleNamespace(ingress=SimpleNamespace(), backend=None)}
    fmt = _compiled(compiler, "[$proxy_upstream_name] $status", "default")
    held = []
    for name, status in picks:
        exchange = _exchange()
        exchange.route, exchange.status = routes[name], status
        held.append((exchange, 1_790_000_000.0, 1.5))
    expected = []
    for exchange, now, end in held:
        try:
            expected.append(fmt.line(exchange, now, end))
        except AttributeError:
            pass
    assert round_lines(fmt.lines, held) == (sum(name == "odd" for name, _ in picks), expected)


@pytest.mark.parametrize("join", JOINS)
@settings(max_examples=60, deadline=None)
@given(picks=st.lists(st.sampled_from(["a", "b", "none", "odd"]), max_size=10))
def test_the_json_round_loops_route_part_is_each_exchanges_own(join, picks):
    """The json line's route part in the round's loop, each exchange's own: exchanges sharing
    routes, without one, and with a route whose part cannot be made (that line counted)."""
    routes = {"a": _route("one"), "b": _route("two", "other", 8080), "none": None,
              "odd": SimpleNamespace(ingress=SimpleNamespace(), backend=None)}
    held = []
    for name in picks:
        exchange = _exchange()
        exchange.route = routes[name]
        exchange.version, exchange.host, exchange.scheme, exchange.upstream_statuses = b"1.1", "h", "http", 200
        exchange.upstream_status, exchange.upstream_trail = 200, ""
        held.append((exchange, 1_790_000_000.0, 1.5))
    expected = []
    for exchange, now, end in held:
        try:
            expected.append(accesslog._json_line_joined(exchange, now, accesslog._RouteParts(), join=join, end=end))
        except AttributeError:
            pass
    assert round_lines(accesslog._json_lines_joined, held, accesslog._RouteParts(), into=into_of(join)) == (
        picks.count("odd"), expected)
