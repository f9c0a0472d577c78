"""nginx log formats (``ingressd.logformat``): parsing, each variable, escaping, the default line.

The expected lines are written by hand from nginx's semantics (ngx_http_log_module): a
variable not found is ``-`` (nothing with escape=json/none), a set-but-empty one prints
nothing, values are escaped as ``\\xHH`` by default.
"""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd import logformat
from ingressd.accesslog import AccessLog
from ingressd.http.headers import Headers
from ingressd.logformat import (DEFAULT_UPSTREAM, LogSettings, compile_log_format, escape_default, escape_json,
                                log_settings_from, parse_escape, parse_skip_urls)

NOW = 1_790_000_000.25


class _Clock:
    def __init__(self, now):
        self.now = now

    def seconds(self):
        return self.now


class _Protocol:
    scheme = "http"
    transport = None

    def tls(self):
        return ("", "")


def exchange(**changes):
    """A finished exchange as the access log sees it: GET /a?b=1 routed to shop/web (svc:8080)."""
    route = SimpleNamespace(host="shop.example", path="/",
                            ingress=SimpleNamespace(namespace="shop", name="web"),
                            backend=SimpleNamespace(service="svc", port=8080))
    headers = [(b"host", b"shop.example"), (b"user-agent", b"curl/8.5.0"), (b"accept", b"*/*")]
    values = dict(
        method=b"GET", request_uri=b"/a?b=1", path="/a", version=b"1.1", host="shop.example",
        headers=Headers(headers + list(changes.pop("extra_headers", []))),
        client_ip="203.0.113.7", peer_ip="10.0.0.2", status=200, bytes_sent=612, request_bytes=78,
        started=NOW - 0.0125, proxy=SimpleNamespace(clock=_Clock(NOW)), route=route, entry=None,
        upstream_address="10.1.0.5:8080", upstream_statuses=200, upstream_status=200, upstream_trail="",
        upstream_started=NOW - 0.010, upstream_ended=NOW - 0.001, upstream_connected=NOW - 0.009,
        upstream_headed=NOW - 0.004, request_id="0123456789abcdef0123456789abcdef", server_port=80,
        protocol=_Protocol(), tunnel_bytes=(0, 0), response_headers=[(b"content-type", b"text/html")],
        upstream_endpoint=SimpleNamespace(address="10.1.0.5", port=8080),
    )
    values.update(changes)
    return SimpleNamespace(**values)


def local(now=NOW):
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(int(now)))


def render(text, ex=None, escape="default"):
    return compile_log_format(text, escape).render(ex or exchange(), NOW)


def test_the_default_format_is_ingress_nginxs_upstreaminfo_line():
    assert DEFAULT_UPSTREAM == (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
        '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
        '[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time '
        '$upstream_status $req_id')
    line = render(DEFAULT_UPSTREAM)
    assert line == (f'203.0.113.7 - - [{local()}] "GET /a?b=1 HTTP/1.1" 200 612 "-" "curl/8.5.0" 78 0.013 '
                    '[shop-svc-8080] [] 10.1.0.5:8080 612 0.009 200 0123456789abcdef0123456789abcdef\n')


def test_the_default_line_for_a_request_no_backend_answered():
    ex = exchange(route=None, status=404, upstream_address="", upstream_statuses=0, upstream_status=0,
                  upstream_started=0.0, upstream_ended=0.0, bytes_sent=146,
                  extra_headers=[(b"referer", b"https://a.example/"),
                                 (b"authorization", b"Basic " + base64.b64encode(b"alice:pw"))])
    assert render(DEFAULT_UPSTREAM, ex) == (
        f'203.0.113.7 - alice [{local()}] "GET /a?b=1 HTTP/1.1" 404 146 "https://a.example/" "curl/8.5.0" 78 '
        '0.013 [upstream-default-backend] [] - - - - 0123456789abcdef0123456789abcdef\n')


def test_the_upstream_name_remembered_is_each_routes_own():
    """$proxy_upstream_name is remembered by route: a second request of a route reads it, another
    route (or an entry left under a route's id by another object) gets its own name."""
    first, second = exchange(), exchange()
    second.route.backend = SimpleNamespace(service="other", port=81)
    fmt = compile_log_format("[$proxy_upstream_name]", "default")
    for _ in range(2):
        assert fmt.render(first, NOW) == "[shop-svc-8080]\n" and fmt.render(second, NOW) == "[shop-other-81]\n"
        assert fmt.render(exchange(route=None, status=404), NOW) == "[upstream-default-backend]\n"
    logformat._upstream_names[id(first.route)] = (second.route, "stale")
    assert fmt.render(first, NOW) == "[shop-svc-8080]\n"
    assert logformat._upstream_names[id(first.route)] == (first.route, "shop-svc-8080")
    for _ in range(logformat._UPSTREAM_NAMES_BOUND + 1):  # bounded: emptied when full
        fmt.render(exchange(), NOW)
    assert len(logformat._upstream_names) <= logformat._UPSTREAM_NAMES_BOUND


def test_http2_requests_show_http_2_0_as_nginx_does():
    assert render('"$request" $server_protocol', exchange(version=b"2")) == '"GET /a?b=1 HTTP/2.0" HTTP/2.0\n'


@pytest.mark.parametrize("variable, expected", [
    ("remote_addr", "203.0.113.7"), ("realip_remote_addr", "10.0.0.2"), ("remote_user", "-"),
    ("request_method", "GET"), ("request_uri", "/a?b=1"), ("uri", "/a"), ("document_uri", "/a"),
    ("args", "b=1"), ("query_string", "b=1"), ("is_args", "?"), ("server_protocol", "HTTP/1.1"),
    ("scheme", "http"), ("status", "200"), ("body_bytes_sent", "612"), ("request_length", "78"),
    ("request_time", "0.013"), ("msec", f"{NOW:.3f}"), ("proxy_upstream_name", "shop-svc-8080"),
    ("proxy_alternative_upstream_name", ""), ("upstream_addr", "10.1.0.5:8080"),
    ("upstream_response_length", "612"), ("upstream_response_time", "0.009"),
    ("upstream_connect_time", "0.001"), ("upstream_header_time", "0.006"), ("upstream_status", "200"),
    ("req_id", "0123456789abcdef0123456789abcdef"), ("request_id", "0123456789abcdef0123456789abcdef"),
    ("host", "shop.example"), ("server_name", "shop.example"), ("server_port", "80"), ("pipe", "."),
    ("namespace", "shop"), ("ingress_name", "web"), ("service_name", "svc"), ("service_port", "8080"),
    ("ssl_protocol", "-"), ("ssl_cipher", "-"), ("ssl_server_name", "-"), ("proxy_protocol_addr", "-"),
    ("http_user_agent", "curl/8.5.0"), ("http_x_missing", "-"), ("HTTP_USER_AGENT", "curl/8.5.0"),
    ("sent_http_content_type", "text/html"), ("sent_http_x_none", "-"), ("arg_b", "1"), ("arg_c", "-"),
    ("cookie_s", "-"), ("content_length", "-"), ("bytes_sent", str(17 + 12 + 9 + 4 + 2 + 612)),
    ("time_local", local()),
])
def test_each_variable(variable, expected):
    assert render(f"${variable}") == expected + "\n"
    assert render(f"${{{variable}}}|") == expected + "|\n"  # ${name} spelling


def test_time_iso8601_is_local_time_with_a_colon_in_the_offset():
    value = render("$time_iso8601").strip()
    assert value[:19] == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(NOW)))
    assert value[-3] == ":" and value[-6] in "+-"


def test_cookies_and_arguments():
    ex = exchange(request_uri=b"/p?x=1&Y=2&z", extra_headers=[(b"cookie", b"a=1; session=abc; b=2")])
    assert render("$cookie_session $cookie_none $arg_x $arg_y $arg_z $arg_w", ex) == "abc - 1 2  -\n"


def test_proxy_add_x_forwarded_for_appends_the_client_to_the_chain_sent():
    assert render("$proxy_add_x_forwarded_for") == "203.0.113.7\n"
    ex = exchange(extra_headers=[(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"10.0.0.9")])
    assert render("$proxy_add_x_forwarded_for", ex) == "198.51.100.1, 10.0.0.9, 203.0.113.7\n"


def test_no_query_is_not_found_and_an_empty_one_is_empty():
    assert render("[$args][$is_args]", exchange(request_uri=b"/p")) == "[-][]\n"
    assert render("[$args][$is_args]", exchange(request_uri=b"/p?")) == "[][?]\n"


def test_retries_show_every_try_as_nginx_does():
    ex = exchange(upstream_address="10.1.0.5:8080, 10.1.0.6:8080", upstream_statuses="502, 200",
                  upstream_trail="502, ")
    assert render("$upstream_addr $upstream_status") == "10.1.0.5:8080 200\n"
    assert render("$upstream_addr $upstream_status", ex) == "10.1.0.5:8080, 10.1.0.6:8080 502, 200\n"


def test_websocket_bytes_count_as_sent_and_received():
    ex = exchange(status=101, bytes_sent=0, request_bytes=300, tunnel_bytes=(40, 90))
    assert render("$status $body_bytes_sent $request_length", ex) == "101 90 340\n"


def test_default_escaping_is_nginxs_hex():
    ex = exchange(extra_headers=[(b"referer", b'a"b\\c\x01\x7f\xc3\xa9 d')])
    assert render('"$http_referer"', ex) == '"a\\x22b\\x5Cc\\x01\\x7F\\xC3\\xA9 d"\n'


def test_json_escaping_is_ngx_escape_json_and_not_found_is_empty():
    ex = exchange(extra_headers=[(b"referer", b'a"b\\c\n\x01\xc3\xa9')])
    line = render('{"ref":"$http_referer","user":"$remote_user","status":$status}', ex, escape="json")
    assert line == '{"ref":"a\\"b\\\\c\\n\\u0001\xe9","user":"","status":200}\n'
    assert json.loads(line) == {"ref": 'a"b\\c\n\x01\xe9', "user": "", "status": 200}


def test_escape_none_writes_values_as_they_are():
    ex = exchange(extra_headers=[(b"referer", b'a"b')])
    assert render("$http_referer|$remote_user|", ex, escape="none") == 'a"b||\n'


def test_invalid_utf8_survives_to_the_written_bytes():
    ex = exchange(extra_headers=[(b"referer", b"\xff\xfe")])
    line = render("$http_referer", ex, escape="none")
    assert line.encode("utf-8", "surrogateescape") == b"\xff\xfe\n"
    assert render("$http_referer", ex) == "\\xFF\\xFE\n"


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_default_escaping_matches_a_byte_by_byte_reference(data):
    expected = "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02X}" for b in data)
    assert escape_default(data) == expected
    assert escape_default(data.decode("utf-8", "surrogateescape")) == expected


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_json_escaping_gives_what_a_json_parser_reads_back(text):
    assert json.loads('"' + escape_json(text) + '"') == text


@pytest.mark.parametrize("template, message", [
    ("$nosuchvariable", "unknown log variable $nosuchvariable"),
    ("a $ b", "invalid variable name"),
    ("${unclosed", "invalid variable name"),
    ("$binary_remote_addr", "not supported"),
    ("$http_", "unknown log variable $http_"),
    ("line\nbreak", "one line"),
])
def test_a_bad_template_is_refused_with_the_reason(template, message):
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        compile_log_format(template)


def test_literal_text_is_kept_as_written():
    assert render('%s {} %(x)s "$status" ' + "\\x") == '%s {} %(x)s "200" \\x\n'


def test_escape_options():
    assert parse_escape(False, False) == "default"
    assert parse_escape("true", False) == "json"
    assert parse_escape("true", "true") == "none"  # as ingress-nginx's template: none first
    with pytest.raises(ValueError):
        compile_log_format("$status", "xml")


def test_settings_from_options():
    assert log_settings_from({}).format == "json" and log_settings_from({}).template is None
    nginx = log_settings_from({"access_log_format": "nginx"})
    assert nginx.template.text == DEFAULT_UPSTREAM and nginx.template.escape == "default"
    custom = log_settings_from({"log_format_upstream": "$status", "log_format_escape_json": 1})
    assert (custom.format, custom.template.text, custom.template.escape) == ("nginx", "$status", "json")
    assert log_settings_from({"disable_access_log": 1}).enabled is False
    assert log_settings_from({"skip_access_log_urls": "/healthz, /ping"}).skip_urls == {b"/healthz", b"/ping"}
    assert parse_skip_urls("") == frozenset()
    with pytest.raises(ValueError, match="--log-format-upstream: unknown log variable \\$bogus"):
        log_settings_from({"log_format_upstream": "$bogus"})
    with pytest.raises(ValueError, match="--access-log-format"):
        log_settings_from({"access_log_format": "xml"})
    # With the ingress-nginx ConfigMap, its upstreaminfo line unless a format is given explicitly.
    assert log_settings_from({"nginx_configmap": "ns/cm"}).template.text == DEFAULT_UPSTREAM
    assert log_settings_from({"nginx_configmap": "ns/cm", "access_log_format": "json"}).format == "json"


def test_the_access_log_reads_its_settings_per_line_and_takes_new_ones():
    log = AccessLog("-", settings=log_settings_from({"log_format_upstream": "$status $request_uri"}))
    log(exchange())
    log.apply(log_settings_from({"log_format_upstream": "[$remote_addr]", "skip_access_log_urls": "/skip"}))
    log(exchange())
    log(exchange(request_uri=b"/skip"))
    log.apply(LogSettings(enabled=False))
    log(exchange())
    log.apply(log_settings_from({}))
    assert log.queued_lines() == ["200 /a?b=1\n", "[203.0.113.7]\n"]
    assert log.format == "json"


def test_the_options_accept_and_check_the_format(tmp_path):
    from twisted.python import usage

    from ingressd.tap import Options

    options = Options()
    options.parseOptions(["--manifests", str(tmp_path), "--log-format-upstream", "$remote_addr $status", "--log-format-escape-json",
                          "--skip-access-log-urls", "/healthz", "--disable-access-log"])
    settings = log_settings_from({k.replace("-", "_"): v for k, v in dict(options).items()})
    assert settings.format == "nginx" and settings.template.escape == "json"
    assert settings.skip_urls == {b"/healthz"} and not settings.enabled
    with pytest.raises(usage.UsageError, match="unknown log variable \\$nope"):
        Options().parseOptions(["--manifests", str(tmp_path), "--log-format-upstream", "$nope"])


# ingress-nginx's own e2e test (test/e2e/settings/log-format.go): the ConfigMap value, the
# request's header and the text its nginx wrote.
_E2E_TEMPLATE = '"{"my_header1":"$http_header1", "my_header2":"$http_header2"}"'


@pytest.mark.parametrize("options, value, expected", [
    ({"log_format_escape_json": "true"}, b'Here is "header1" with json escape',
     '{"my_header1":"Here is \\"header1\\" with json escape", "my_header2":""}'),
    ({"log_format_escape_json": "false"}, b'Here is "header1" with default escape',
     '{"my_header1":"Here is \\x22header1\\x22 with default escape", "my_header2":"-"}'),
    ({"log_format_escape_none": "true"}, b'Here is "header1" with none escape',
     '{"my_header1":"Here is "header1" with none escape", "my_header2":""}'),
])
def test_ingress_nginxs_e2e_lines(options, value, expected):
    settings = log_settings_from({"log_format_upstream": _E2E_TEMPLATE, **options})
    line = settings.template.render(exchange(extra_headers=[(b"header1", value)]), NOW)
    assert expected in line


def test_the_template_is_read_as_nginx_reads_its_quoted_string():
    settings = log_settings_from({"log_format_upstream": r"$status\t$request_method \"x\" \'y\' \\ \d"})
    assert settings.template.render(exchange(), NOW) == '200\tGET "x" \'y\' \\ \\d\n'
    with pytest.raises(ValueError, match="not escaped"):
        log_settings_from({"log_format_upstream": "$status 'x'"})
    with pytest.raises(ValueError, match="one line"):
        log_settings_from({"log_format_upstream": r"$status\n$status"})
    assert compile_log_format(r"$status\t").render(exchange(), NOW) == "200\\t\n"  # not quoted: as written


def test_the_alternative_upstream_is_named_when_the_canary_answered():
    main_endpoint = SimpleNamespace(address="10.1.0.5", port=8080)
    canary_endpoint = SimpleNamespace(address="10.2.0.9", port=8080)
    canary = SimpleNamespace(route=SimpleNamespace(
        ingress=SimpleNamespace(namespace="shop", name="web-canary"),
        backend=SimpleNamespace(service="svc-v2", port=8080, endpoints=(canary_endpoint,))))
    entry = SimpleNamespace(alternatives=((object(), canary),))
    template = "[$proxy_upstream_name] [$proxy_alternative_upstream_name]"
    assert render(template, exchange(entry=entry, upstream_endpoint=main_endpoint)) == "[shop-svc-8080] []\n"
    assert render(template, exchange(entry=entry, upstream_endpoint=canary_endpoint)) == (
        "[shop-svc-8080] [shop-svc-v2-8080]\n")
    assert render(template, exchange(entry=entry, upstream_endpoint=None)) == "[shop-svc-8080] []\n"
