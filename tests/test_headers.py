"""Header lists: the container, hop-by-hop stripping and serialisation, table by table.

Names arrive lower-cased (the parser's job); these tests use lower-case names as the proxy does.
"""

import pytest

from ingressd.http.headers import HOP_BY_HOP, Headers, connection_tokens, serialize, without_hop_by_hop

PAIRS = [(b"host", b"a"), (b"x-a", b"1"), (b"cookie", b"c=1"), (b"x-a", b"2")]


# -- the container ----------------------------------------------------------------------------


def test_new_headers_are_empty_and_not_shared():
    first, second = Headers(), Headers()
    assert first.pairs == [] and len(first) == 0 and list(first) == []
    first.add(b"x-a", b"1")
    assert second.pairs == [] and len(second) == 0


def test_given_pairs_are_kept_as_they_are():
    headers = Headers(list(PAIRS))
    assert headers.pairs == PAIRS
    assert Headers([]).pairs == []
    assert len(headers) == 4
    assert list(headers) == PAIRS


@pytest.mark.parametrize(
    "name, first, every",
    [
        (b"host", b"a", [b"a"]),
        (b"x-a", b"1", [b"1", b"2"]),  # repeated: the first, and all in order
        (b"cookie", b"c=1", [b"c=1"]),
        (b"x-b", None, []),  # absent
        (b"X-A", None, []),  # names are compared as given (lower-cased at parse time)
        (b"x-", None, []),
    ],
)
def test_get_and_get_all(name, first, every):
    headers = Headers(list(PAIRS))
    assert headers.get(name) == first
    assert headers.get_all(name) == every


def test_get_of_an_empty_value_is_not_absent():
    headers = Headers([(b"x-a", b""), (b"x-a", b"2")])
    assert headers.get(b"x-a") == b""


@pytest.mark.parametrize(
    "action, name, value, expected",
    [
        ("add", b"x-a", b"3", PAIRS + [(b"x-a", b"3")]),  # appended, the others kept
        ("add", b"x-b", b"", PAIRS + [(b"x-b", b"")]),
        ("set", b"x-a", b"3", [(b"host", b"a"), (b"cookie", b"c=1"), (b"x-a", b"3")]),  # every x-a replaced
        ("set", b"host", b"b", [(b"x-a", b"1"), (b"cookie", b"c=1"), (b"x-a", b"2"), (b"host", b"b")]),
        ("set", b"x-b", b"3", PAIRS + [(b"x-b", b"3")]),  # absent: added
        ("remove", b"x-a", None, [(b"host", b"a"), (b"cookie", b"c=1")]),  # every x-a
        ("remove", b"host", None, [(b"x-a", b"1"), (b"cookie", b"c=1"), (b"x-a", b"2")]),
        ("remove", b"x-b", None, PAIRS),  # absent: nothing happens
        ("remove", b"X-A", None, PAIRS),
    ],
)
def test_add_set_remove(action, name, value, expected):
    headers = Headers(list(PAIRS))
    if value is None:
        getattr(headers, action)(name)
    else:
        getattr(headers, action)(name, value)
    assert headers.pairs == expected
    assert list(headers) == expected and len(headers) == len(expected)


@pytest.mark.parametrize(
    "pairs, name, expected",
    [
        ([(b"x-a", b"1")], b"x-a", []),  # the only header
        ([(b"x-a", b"1"), (b"x-a", b"2")], b"x-a", []),  # all of them
        ([], b"x-a", []),
    ],
)
def test_remove_when_every_header_has_the_name(pairs, name, expected):
    headers = Headers(pairs)
    headers.remove(name)
    assert headers.pairs == expected


def test_set_on_a_header_that_is_the_only_one():
    headers = Headers([(b"x-a", b"1")])
    headers.set(b"x-a", b"2")
    assert headers.pairs == [(b"x-a", b"2")]
    assert headers.get(b"x-a") == b"2" and headers.get_all(b"x-a") == [b"2"]


def test_repr():
    assert repr(Headers([(b"x-a", b"1")])) == "Headers([(b'x-a', b'1')])"
    assert repr(Headers()) == "Headers([])"


# -- Connection and hop-by-hop headers --------------------------------------------------------


@pytest.mark.parametrize(
    "pairs, tokens",
    [
        ([], set()),
        ([(b"host", b"a")], set()),
        ([(b"connection", b"close")], {b"close"}),
        ([(b"connection", b"Keep-Alive, X-Secret")], {b"keep-alive", b"x-secret"}),  # lower-cased
        ([(b"connection", b"  X-A ,\tX-B\t, ,,x-c")], {b"x-a", b"x-b", b"x-c"}),  # spaces, tabs, empty tokens
        ([(b"connection", b"")], set()),
        ([(b"connection", b", ,")], set()),
        ([(b"connection", b"x-a"), (b"host", b"h"), (b"connection", b"X-B, x-a")], {b"x-a", b"x-b"}),  # every one
        ([(b"proxy-connection", b"x-a"), (b"x-connection", b"x-b")], set()),  # only Connection lists names
        ([(b"x-a", b"connection")], set()),
    ],
)
def test_connection_tokens(pairs, tokens):
    assert connection_tokens(pairs) == tokens


HOP_NAMES = [b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
             b"upgrade", b"http2-settings", b"content-length"]


def test_hop_by_hop_names():
    assert HOP_BY_HOP == frozenset(HOP_NAMES)


@pytest.mark.parametrize("name", HOP_NAMES)
def test_each_hop_by_hop_header_is_dropped(name):
    pairs = [(b"x-a", b"1"), (name, b"v"), (b"x-b", b"2")]
    assert without_hop_by_hop(pairs) == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert without_hop_by_hop([(name, b"v")]) == []


@pytest.mark.parametrize(
    "pairs, kept",
    [
        ([], []),
        ([(b"x-a", b"1"), (b"server", b"s"), (b"x-a", b"2")],  # nothing to drop: all kept, in order
         [(b"x-a", b"1"), (b"server", b"s"), (b"x-a", b"2")]),
        # names listed in Connection go with it, every occurrence, whatever the case in the list
        ([(b"connection", b"X-Secret"), (b"x-secret", b"s"), (b"x-a", b"1"), (b"x-secret", b"t")],
         [(b"x-a", b"1")]),
        ([(b"x-secret", b"s"), (b"x-a", b"1"), (b"connection", b"x-secret")], [(b"x-a", b"1")]),  # listed after
        ([(b"connection", b" x-b ,\tX-C"), (b"x-a", b"1"), (b"x-b", b"2"), (b"x-c", b"3")], [(b"x-a", b"1")]),
        ([(b"connection", b"x-b"), (b"connection", b"x-c"), (b"x-b", b"2"), (b"x-c", b"3"), (b"x-d", b"4")],
         [(b"x-d", b"4")]),
        # with other hop-by-hop headers before or after the Connection header
        ([(b"keep-alive", b"timeout=5"), (b"connection", b"x-b"), (b"x-b", b"2"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        ([(b"connection", b"x-b"), (b"te", b"trailers"), (b"x-b", b"2"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        # a name only in a Proxy-Connection or other header is not dropped for that
        ([(b"proxy-connection", b"x-b"), (b"x-b", b"2")], [(b"x-b", b"2")]),
        ([(b"keep-alive", b"x-b"), (b"x-b", b"2")], [(b"x-b", b"2")]),
        ([(b"x-connection", b"x-b"), (b"x-b", b"2")], [(b"x-connection", b"x-b"), (b"x-b", b"2")]),
        # a header whose name merely contains a listed one stays
        ([(b"connection", b"x-b"), (b"x-bb", b"2"), (b"x-", b"3")], [(b"x-bb", b"2"), (b"x-", b"3")]),
        # Connection abuse (CVE-2024-45410 style): listing end-to-end headers drops them here; the
        # proxy adds its own forwarding headers after this, so a client cannot remove those
        ([(b"connection", b"close, X-Forwarded-For, Set-Cookie"), (b"x-forwarded-for", b"1.2.3.4"),
          (b"set-cookie", b"a=1"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        # empty tokens remove nothing (no header has an empty name)
        ([(b"connection", b",,"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        # listing only hop-by-hop names (a backend's "keep-alive"): every other header stays, in order
        ([(b"x-a", b"1"), (b"connection", b"Keep-Alive"), (b"keep-alive", b"timeout=5"), (b"x-b", b"2")],
         [(b"x-a", b"1"), (b"x-b", b"2")]),
        ([(b"connection", b"keep-alive, upgrade, te"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        # hop-by-hop names and another: the other goes too
        ([(b"connection", b"keep-alive, X-B"), (b"x-b", b"2"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        ([(b"connection", b"keep-alive"), (b"connection", b"x-b"), (b"x-b", b"2"), (b"x-a", b"1")],
         [(b"x-a", b"1")]),
    ],
)
def test_without_hop_by_hop(pairs, kept):
    original = list(pairs)
    assert without_hop_by_hop(pairs) == kept
    assert pairs == original  # the input list is left alone


def test_without_hop_by_hop_takes_headers():
    headers = Headers([(b"connection", b"x-b"), (b"x-b", b"2"), (b"x-a", b"1")])
    assert without_hop_by_hop(headers) == [(b"x-a", b"1")]


# -- serialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs, text",
    [
        ([], b""),
        (Headers(), b""),
        ([(b"x-a", b"1")], b"x-a: 1\r\n"),
        ([(b"x-a", b"")], b"x-a: \r\n"),
        ([(b"host", b"a"), (b"x-a", b"1"), (b"x-a", b"2")], b"host: a\r\nx-a: 1\r\nx-a: 2\r\n"),
        (Headers([(b"host", b"a"), (b"x-b", b"b c")]), b"host: a\r\nx-b: b c\r\n"),
        (((b"x-a", b"1"), (b"x-b", b"2")), b"x-a: 1\r\nx-b: 2\r\n"),
    ],
)
def test_serialize(pairs, text):
    out = serialize(pairs)
    assert type(out) is bytes and out == text


# -- what ingressd hides of a backend's response, and what it adds to every response -------------

from ingressd.http.headers import HIDDEN_FROM_BACKEND, ResponseIdentity, from_backend, http_date, server_name  # noqa: E402


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([(b"server", b"gunicorn"), (b"date", b"x"), (b"x-a", b"1")], [(b"x-a", b"1")]),
        ([(b"x-pad", b"avoid"), (b"x-accel-redirect", b"/internal"), (b"x-accel-buffering", b"no"),
          (b"x-accel-expires", b"1"), (b"x-accel-limit-rate", b"1"), (b"x-accel-charset", b"utf-8")], []),
        ([(b"connection", b"x-b"), (b"x-b", b"2"), (b"content-length", b"3"), (b"x-server", b"kept")],
         [(b"x-server", b"kept")]),  # hop-by-hop rules still apply; only the exact names are hidden
        ([(b"x-a", b"1"), (b"x-a", b"2")], [(b"x-a", b"1"), (b"x-a", b"2")]),
        # a backend's usual head: Connection lists only names dropped anyway
        ([(b"server", b"nginx"), (b"content-type", b"text/plain"), (b"content-length", b"3"),
          (b"connection", b"keep-alive"), (b"x-a", b"1")], [(b"content-type", b"text/plain"), (b"x-a", b"1")]),
        # ... or a hidden one: it stays hidden, the rest kept
        ([(b"connection", b"server, date"), (b"x-a", b"1")], [(b"x-a", b"1")]),
    ],
)
def test_from_backend_hides_what_nginx_hides(pairs, expected):
    assert from_backend(pairs) == expected


def test_hidden_names_are_nginx_proxy_hide_header_defaults():
    assert HIDDEN_FROM_BACKEND == {b"date", b"server", b"x-pad", b"x-accel-expires", b"x-accel-redirect",
                                   b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"}


def test_without_hop_by_hop_keeps_server_and_date():
    assert without_hop_by_hop([(b"server", b"s"), (b"date", b"d")]) == [(b"server", b"s"), (b"date", b"d")]


@pytest.mark.parametrize(
    "second, text",
    [
        (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, b"Sun, 06 Nov 1994 08:49:37 GMT"),  # RFC 9110's example
        (1709251199, b"Thu, 29 Feb 2024 23:59:59 GMT"),
        (1735689600, b"Wed, 01 Jan 2025 00:00:00 GMT"),
        (1718536622, b"Sun, 16 Jun 2024 11:17:02 GMT"),
        (1696118400, b"Sun, 01 Oct 2023 00:00:00 GMT"),
        (1701388800, b"Fri, 01 Dec 2023 00:00:00 GMT"),
        (1683158400, b"Thu, 04 May 2023 00:00:00 GMT"),
        (1690848000, b"Tue, 01 Aug 2023 00:00:00 GMT"),
        (1694131200, b"Fri, 08 Sep 2023 00:00:00 GMT"),
        (1686960000, b"Sat, 17 Jun 2023 00:00:00 GMT"),
        (1689206400, b"Thu, 13 Jul 2023 00:00:00 GMT"),
        (1675987200, b"Fri, 10 Feb 2023 00:00:00 GMT"),
        (1679875200, b"Mon, 27 Mar 2023 00:00:00 GMT"),
        (1680307200, b"Sat, 01 Apr 2023 00:00:00 GMT"),
        (1699401600, b"Wed, 08 Nov 2023 00:00:00 GMT"),
        (1704153600, b"Tue, 02 Jan 2024 00:00:00 GMT"),
    ],
)
def test_http_date_is_imf_fixdate(second, text):
    assert http_date(second) == text


def test_the_identity_lines_change_with_the_second_only():
    identity = ResponseIdentity(b"ingressd")
    assert identity.lines(0.2) == b"server: ingressd\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    assert identity.lines(0.9) is identity.lines(0.5)  # made once per second
    assert identity.lines(1.0) == b"server: ingressd\r\ndate: Thu, 01 Jan 1970 00:00:01 GMT\r\n"
    assert identity.pairs(61.5) == [(b"server", b"ingressd"), (b"date", b"Thu, 01 Jan 1970 00:01:01 GMT")]
    assert identity.lines(61.0).endswith(b"00:01:01 GMT\r\n")
    bare = ResponseIdentity()  # ingress-nginx's default: no Server header at all
    assert bare.server is None and bare.lines(0) == b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    assert bare.pairs(0) == [(b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")]


def test_server_name_with_and_without_tokens():
    assert server_name(False, "1.2.3") is None
    assert server_name(True, "1.2.3") == b"ingressd/1.2.3"


def test_the_first_answer_in_any_second_gets_that_seconds_date():
    """Second 1 is formatted on the first call too (a first call is not taken for "no change")."""
    for second in (0.5, 1.5, 2.0):
        identity = ResponseIdentity()
        assert identity.lines(second) == b"date: " + http_date(int(second)) + b"\r\n"
