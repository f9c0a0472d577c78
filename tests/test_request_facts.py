"""What the request path needs of a request head, in one call (``ingressd.proxy.request_facts``):
the C accelerator and its pure-Python twin give the same results on every case and on fuzzed
input, the results of the steps they replace (``pathnorm.split_target`` and ``normalize``, the
upstream target, ``Exchange.begin``'s pass over the headers), and None for every target those
steps would change or refuse; the extension leaks nothing; under CI=true it must have been built
(test_accelerators.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_growth import traced_growth
from twins import twins

from ingressd.http.pathnorm import BadPath, normalize, split_target
from ingressd.proxy import request_facts as module
from ingressd.proxy.forwarding import FORWARDED, SPOOFABLE, is_spoofable
from ingressd.proxy.request_facts import request_facts_py

try:
    from ingressd.proxy._request_facts import request_facts as facts_c
except ImportError:
    facts_c = None

IMPLEMENTATIONS = twins(request_facts_py, facts_c)


def replaced(target: bytes, pairs) -> tuple | None:
    """The steps ``request_facts`` replaces, for a target they leave as it is (else None)."""
    raw_path, query = split_target(target)
    try:
        path, upstream = normalize(raw_path)
    except BadPath:
        return None
    if upstream is not raw_path or b"#" in target or path.encode("ascii") != raw_path:
        return None
    host = rid = upgrade = None
    connection = spoofed = forwarded = False
    for name, value in pairs:
        if name == b"host":
            host = value
        elif name == b"x-request-id":
            rid = value
        elif name == b"upgrade":
            upgrade = value
        elif name == b"connection":
            connection = True
        else:
            forwarded = forwarded or name.startswith(b"x-forwarded-")
            spoofed = spoofed or is_spoofable(name)
    return path, query, target, host, rid, upgrade, connection, spoofed, forwarded


def test_the_module_picks_the_extension_when_built():
    assert module.ACCELERATED == (facts_c is not None)
    assert module.request_facts is (facts_c or request_facts_py)


HEADERS = [(b"host", b"Bench.Local:80"), (b"user-agent", b"t"), (b"accept", b"*/*")]
ACCEPTED = [
    ((b"/", HEADERS), ("/", b"", b"/", b"Bench.Local:80", None, None, False, False, False)),
    ((b"/a/b?c=d&e", []), ("/a/b", b"c=d&e", b"/a/b?c=d&e", None, None, None, False, False, False)),
    ((b"/x?", [(b"x-request-id", b"r1"), (b"x-request-id", b"r2")]), ("/x", b"", b"/x?", None, b"r2", None,
                                                                       False, False, False)),
    # after '?' anything goes (it is not routed); '.' not after '/' is a plain path
    ((b"/a.b/c.?%zz#/./", []), None),  # a fragment: the general steps
    ((b"/a.b/c.?%zz/./", []), ("/a.b/c.", b"%zz/./", b"/a.b/c.?%zz/./", None, None, None, False, False, False)),
    ((b"/;A\\b", [(b"upgrade", b"websocket"), (b"connection", b"upgrade")]),
     ("/;A\\b", b"", b"/;A\\b", None, None, b"websocket", True, False, False)),
    ((b"/", [(b"x-forwarded-for", b"1"), (b"x-forwarded-proto", b"https")]),
     ("/", b"", b"/", None, None, None, False, False, True)),
    ((b"/", [(b"x-forwarded-prefix", b"/p")]), ("/", b"", b"/", None, None, None, False, True, True)),
    ((b"/", [(b"forwarded", b"for=1"), (b"x-original-uri", b"/")]),
     ("/", b"", b"/", None, None, None, False, True, False)),
    ((b"/", [(b"x-real-ip", b"1"), (b"x-forwarded-", b"")]), ("/", b"", b"/", None, None, None, False, True, True)),
]
GENERAL = [b"", b"*", b"a", b"http://x/", b"/%41", b"/a/./b", b"/a/../b", b"//a", b"/a//b", b"/.", b"/x/.",
           b"/caf\xc3\xa9", b"/\x80", b"/a#f", b"/a?b#c"]


@pytest.mark.parametrize("facts", IMPLEMENTATIONS)
@pytest.mark.parametrize("args, expected", ACCEPTED)
def test_plain_targets_and_the_headers_are_read_in_one_call(facts, args, expected):
    assert facts(*args, FORWARDED, SPOOFABLE) == expected
    assert replaced(*args) == expected


@pytest.mark.parametrize("facts", IMPLEMENTATIONS)
@pytest.mark.parametrize("target", GENERAL)
def test_targets_that_normalising_changes_or_refuses_take_the_general_steps(facts, target):
    assert facts(target, HEADERS, FORWARDED, SPOOFABLE) is None


@pytest.mark.parametrize("facts", IMPLEMENTATIONS)
def test_wrong_types_are_refused(facts):
    with pytest.raises(TypeError):
        facts("/", [], FORWARDED, SPOOFABLE)
    with pytest.raises(TypeError):
        facts(b"/", None, FORWARDED, SPOOFABLE)
    with pytest.raises(TypeError):
        facts(b"/", [("host", b"x")], FORWARDED, SPOOFABLE)
    with pytest.raises((TypeError, ValueError)):
        facts(b"/", [(b"host", b"x", b"y")], FORWARDED, SPOOFABLE)
    with pytest.raises(TypeError):
        facts(b"/", [(b"x-forwarded-a", b"1")], None, SPOOFABLE)
    with pytest.raises(TypeError):
        facts(b"/", [])


# -- differential fuzzing: C against its twin and against the steps they replace --------------

_NAMES = [b"host", b"x-request-id", b"upgrade", b"connection", b"x-forwarded-for", b"x-forwarded-host",
          b"x-forwarded-prefix", b"x-forwarded-", b"forwarded", b"x-original-url", b"x-real-ip", b"accept", b""]
_pair = st.tuples(st.one_of(st.sampled_from(_NAMES), st.binary(max_size=14)), st.binary(max_size=8))
_target = st.one_of(
    st.lists(st.sampled_from([b"/", b"a", b".", b"..", b"?", b"#", b"%", b"%2e", b"%41", b"\\", b";", b"\x80", b"x=y"]),
             max_size=10).map(b"".join),
    st.binary(max_size=30), st.binary(max_size=30).map(lambda b: b"/" + b))


def _same(target, pairs):
    """C and the twin agree exactly; their facts are the replaced steps' results, and they
    leave to the general steps (None) every target those would change or refuse (and may leave
    others, e.g. ``/.a``, which normalising keeps as it is)."""
    expected = replaced(target, pairs)
    got = request_facts_py(target, pairs, FORWARDED, SPOOFABLE)
    assert got is None or got == expected
    if facts_c is not None:
        assert facts_c(target, pairs, FORWARDED, SPOOFABLE) == got
        assert facts_c(target, tuple(pairs), FORWARDED, SPOOFABLE) == got
    if got is None and target.startswith(b"/") and b"#" not in target:
        path = target.split(b"?", 1)[0]
        assert b"%" in path or b"/." in path or b"//" in path or not path.isascii()


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_target, st.lists(_pair, max_size=10))
def test_c_python_and_the_replaced_steps_agree_on_generated_heads(target, pairs):
    _same(target, pairs)


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_value_in_every_place(byte):
    b = bytes([byte])
    base = b"/ab/c?d"
    for at in range(len(base) + 1):
        _same(base[:at] + b + base[at:], [(b, b), (b"x-forwarded-" + b, b), (b"host" + b, b)])
        if at < len(base):
            _same(base[:at] + b + base[at + 1:], [(b"host", b)])


def test_oversize_heads():
    for size in (0, 100, 8192, 10 ** 6):
        _same(b"/" + b"a" * size, [(b"h%d" % i, b"v") for i in range(size // 100)])
        _same(b"/" + b"a" * size + b"?" + b"%" * size, [(b"x-forwarded-for", b"v" * size)])
        _same(b"/" + b"a/" * (size // 2) + b"/", [])


@pytest.mark.skipif(facts_c is None, reason="the extension is not built")
def test_containers_that_change_the_list_are_not_read_past():
    pairs = [(b"a", b"1"), (b"b", b"2"), (b"host", b"3")]

    class Shrinking:
        def __contains__(self, name):
            if pairs:
                pairs.pop()
            return False

    facts = facts_c(b"/", pairs, FORWARDED, Shrinking())
    assert facts is not None and facts[3] is None  # the host pair was gone before it was read


# -- the extension's references ------------------------------------------------------------------

@pytest.mark.skipif(facts_c is None, reason="the extension is not built")
def test_the_extension_does_not_leak():
    """A bounded loop over the cases, the general targets and every error path: the memory the
    allocator holds for Python objects does not grow with the number of calls."""
    class Raising:
        def __contains__(self, name):
            raise KeyError(name)

    bad_calls = [("/", [], FORWARDED, SPOOFABLE), (b"/", None, FORWARDED, SPOOFABLE),
                 (b"/", [(b"host", b"x"), ("a", b"b")], FORWARDED, SPOOFABLE),
                 (b"/", [(b"host", b"x"), (b"upgrade", b"y"), (b"x-request-id", b"z"), (b"q", b"1")], FORWARDED,
                  Raising()), (b"/",)]

    def rounds(n):
        for _ in range(n):
            for args, _ in ACCEPTED:
                facts_c(*args, FORWARDED, SPOOFABLE)
            for target in GENERAL:
                facts_c(target, HEADERS, FORWARDED, SPOOFABLE)
            for bad in bad_calls:
                try:
                    facts_c(*bad)
                except (TypeError, KeyError):
                    pass

    grown = traced_growth(rounds)
    # 1000 rounds of ~30 calls: a leaked object per call would be megabytes
    assert grown < 64 * 1024, grown
