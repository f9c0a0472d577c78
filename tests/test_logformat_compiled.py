"""A compiled ``log_format`` line (``LogFormat.line``, ``ingressd.logformat_compile``) against
``render_slowly`` (one getter and one escaping call per variable), for any request, every
variable and every escape; and that nothing of the template is ever compiled as source.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.http.headers import Headers
from ingressd.logformat import DEFAULT_UPSTREAM, VARIABLES, compile_log_format
from ingressd.proxy.exchange import Exchange

texts = st.text(max_size=30)
raw = st.binary(max_size=30)
# Header values and request targets as a client may send them: mostly ASCII, sometimes quotes,
# backslashes, control bytes and bytes that are not UTF-8.
wild = st.one_of(st.binary(max_size=30),
                 st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.encode),
                 st.sampled_from([b'a"b', b"a\\b", b"\x00\x1f\x7f", "é".encode(), b"\xff\xfe", b""]))


class _Clock:
    def __init__(self, now):
        self.now = now

    def seconds(self):
        return self.now


class _Protocol:
    def __init__(self, scheme, tls):
        self.scheme = scheme
        self._tls = tls
        self.transport = None

    def tls(self):
        return self._tls


@st.composite
def exchanges(draw):
    now = draw(st.floats(min_value=1_600_000_000, max_value=2_000_000_000, allow_nan=False))
    route = draw(st.one_of(st.none(), st.builds(
        lambda ns, name, service, port, host: SimpleNamespace(
            host=host, path="/", ingress=SimpleNamespace(namespace=ns, name=name, kind="Ingress"),
            backend=SimpleNamespace(service=service, port=port, endpoints=())),
        texts, texts, texts, st.one_of(st.integers(1, 65535), texts), st.sampled_from(["", "a.example"]))))
    scheme = draw(st.sampled_from(["http", "https"]))
    started = draw(st.floats(min_value=0, max_value=1e6, allow_nan=False))
    duration = draw(st.one_of(st.floats(min_value=0, max_value=1e5, allow_nan=False),
                              st.sampled_from([0.0, 0.00005, 0.0001, 0.0000004, 1e-9])))
    upstream_started = draw(st.sampled_from([0.0, 5.0, started]))
    upstream_ended = draw(st.one_of(st.just(0.0), st.floats(min_value=5.0, max_value=1e6, allow_nan=False)))
    pairs = [(b"host", b"h")]
    for name in (b"referer", b"user-agent", b"authorization", b"x-forwarded-for", b"cookie", b"content-type"):
        value = draw(st.one_of(st.none(), wild))
        if value is not None:
            pairs.append((name, value))
    target = draw(wild.map(lambda value: b"/" + value))
    status = draw(st.sampled_from([101, 200, 204, 404, 499, 502]))
    exchange = SimpleNamespace(
        method=draw(st.sampled_from([b"GET", b"POST", b"M\xffX", b'A"B'])), request=SimpleNamespace(target=target),
        request_uri=target.partition(b"#")[0], path=draw(st.sampled_from(["", "/a", '/"q"'])),
        version=draw(st.sampled_from([b"1.0", b"1.1", b"2", b"9\x01"])), host=draw(texts), scheme=scheme,
        headers=Headers(pairs), client_ip=draw(st.sampled_from(["127.0.0.1", "::1", "", 'a"b'])),
        peer_ip="10.0.0.2", status=status, bytes_sent=draw(st.integers(0, 10**12)),
        request_bytes=draw(st.integers(0, 10**12)), started=started,
        proxy=SimpleNamespace(clock=_Clock(started + duration)), route=route, entry=None,
        upstream_address=draw(st.sampled_from(["", "10.0.0.1:80", "10.0.0.1:80, 10.0.0.2:80", None])),
        # the tries passed over and the last one's status (0: it failed, or none was made)
        upstream_trail=draw(st.sampled_from(["", "502, ", "502, 504, "])),
        upstream_status=draw(st.sampled_from([0, 200, 502, 503])),
        upstream_started=upstream_started, upstream_ended=upstream_ended, upstream_connected=upstream_started,
        upstream_headed=upstream_ended, request_id=draw(st.one_of(texts, st.sampled_from(["", "0f" * 16]))),
        server_port=draw(st.sampled_from([80, 443])),
        protocol=_Protocol(scheme, draw(st.sampled_from([("", ""), ("TLSv1.3", "a.example"), ("TLSv1.2", 'x"y')]))),
        tunnel_bytes=(draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))),
        response_headers=[(b"content-type", draw(wild))], upstream_endpoint=None,
    )
    # $upstream_status as the exchange's own property makes it of these (the compiled line reads the
    # fields it combines; the slow render reads the property)
    exchange.upstream_statuses = Exchange.upstream_statuses.fget(exchange)
    return now, exchange


def _template(escape: str) -> str:
    """Every text variable, each in quotes and between brackets, and a few prefixed ones."""
    names = sorted(name for name, getter in VARIABLES.items() if getter is not None)
    extra = ["http_referer", "http_user_agent", "HTTP_X_FORWARDED_FOR", "sent_http_content_type", "cookie_s",
             "arg_b", "http_x_missing"]
    return " ".join(f'"${name}"[${{{name}}}]' for name in names + extra)


@pytest.mark.parametrize("escape", ["default", "json", "none"])
@settings(max_examples=150)
@given(case=exchanges())
def test_the_compiled_line_is_the_slow_render_for_every_variable(escape, case):
    now, exchange = case
    fmt = compile_log_format(_template(escape), escape)
    assert fmt.render(exchange, now) == fmt.render_slowly(exchange, now)


@pytest.mark.parametrize("escape", ["default", "json", "none"])
def test_the_compiled_default_line(escape):
    now = 1_790_000_000.25
    exchange = SimpleNamespace(
        method=b"GET", request_uri=b'/a?"b"', path="/a", version=b"1.1", host="h", headers=Headers(
            [(b"user-agent", b"curl/8\\x"), (b"referer", "é".encode())]), client_ip="203.0.113.7", peer_ip="10.0.0.2",
        status=200, bytes_sent=612, request_bytes=78, started=now - 0.0125, proxy=SimpleNamespace(clock=_Clock(now)),
        route=None, entry=None, upstream_address="", upstream_statuses=0, upstream_status=0, upstream_trail="", upstream_started=0.0,
        upstream_ended=0.0, request_id="rid", server_port=80, protocol=_Protocol("http", ("", "")),
        tunnel_bytes=(0, 0), response_headers=[], upstream_endpoint=None)
    fmt = compile_log_format(DEFAULT_UPSTREAM, escape)
    line = fmt.render(exchange, now)
    assert line == fmt.render_slowly(exchange, now)
    if escape == "default":
        local = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(int(now)))
        assert line == (f'203.0.113.7 - - [{local}] "GET /a?\\x22b\\x22 HTTP/1.1" 200 612 "\\xC3\\xA9" '
                        '"curl/8\\x5Cx" 78 0.013 [-] [] - - - - rid\n')


def test_the_compiled_line_holds_no_template_text_as_source():
    """The template's literal text and header names reach the line as values: text that would be
    Python source does nothing but appear in the line."""
    hostile = '"}{__import__("os").system("false")}\'"\'"\'{ex}'
    fmt = compile_log_format(f"{hostile}$status{hostile}$http_x_a{hostile}", "none")
    exchange = SimpleNamespace(status=200, headers=Headers([(b"x-a", b"v")]))
    assert fmt.render(exchange, 0.0) == f"{hostile}200{hostile}v{hostile}\n"
