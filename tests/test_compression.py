"""Response compression (use-gzip, enable-brotli and their keys) in memory: which responses nginx's
gzip and ngx_brotli filters compress, the headers they change, the body compressed as it streams
through the real Exchange (each piece decodable as it arrives), and the ConfigMap keys."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from ingressd.compat.configmap_catalogue import IMPLEMENTED, lookup
from ingressd.config.nginx_configmap import read_configmap
from ingressd.features import BuildContext, LocalResponse, Phase
from ingressd.testing import exchange as fake_exchange
from ingressd_plugins import compression
from test_exchange import entry, proxy_for, request, send

GZIP = {"use_gzip": True}
BOTH = {"use_gzip": True, "enable_brotli": True}
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


def feature(settings):
    return compression.feature_for(settings)


def respond(settings, status=200, headers=TEXT, length=1000, accept=b"gzip, deflate, br", method=b"GET",
            version=b"1.1", agent=None):
    headers = list(headers)
    request_headers = {"accept-encoding": accept.decode()} if accept is not None else {}
    if agent is not None:
        request_headers["user-agent"] = agent
    ex = fake_exchange(request_headers, method=method)
    ex.version, ex.response_length, ex.body_filter = version, length, None
    feature(settings).response(ex, status, headers)
    return ex, headers


def encoding(settings, **kwargs):
    ex, headers = respond(settings, **kwargs)
    values = [value for name, value in headers if name == b"content-encoding"]
    if ex.body_filter is None:
        return None
    assert len(values) == 1
    return values[0]


def test_off_by_default_and_no_feature_without_a_switch():
    assert feature({}) is None and feature({"use_gzip": False, "enable_brotli": "false"}) is None
    context = BuildContext(settings={}, reactor=None)
    assert compression.ingressd_route_features(route=None, values={}, context=context) is None


def test_gzip_compresses_what_nginx_compresses():
    assert encoding(GZIP) == b"gzip"
    assert encoding(GZIP, status=404) == b"gzip" and encoding(GZIP, status=403) == b"gzip"
    for status in (201, 204, 206, 301, 304, 500, 502):
        assert encoding(GZIP, status=status) is None
    assert encoding(GZIP, method=b"HEAD") is None
    assert encoding(GZIP, length=255) is None and encoding(GZIP, length=256) == b"gzip"
    assert encoding(GZIP, length=None) == b"gzip"  # unknown: streamed, compressed
    assert encoding(GZIP, headers=[(b"content-type", b"image/png")]) is None
    assert encoding(GZIP, headers=[(b"content-type", b"text/html")]) == b"gzip"  # always, as nginx
    assert encoding(GZIP, headers=[(b"content-type", b"Application/JSON; charset=utf-8")]) == b"gzip"
    assert encoding(GZIP, headers=[]) is None  # no type: not in the list
    assert encoding(GZIP, headers=[*TEXT, (b"content-encoding", b"br")]) is None  # the backend's own
    _, headers = respond(GZIP, headers=[*TEXT, (b"content-encoding", b"br")])
    assert headers == [*TEXT, (b"content-encoding", b"br")]  # as it is, no Vary either
    assert encoding({**GZIP, "gzip_types": "*"}, headers=[(b"content-type", b"image/png")]) == b"gzip"


@pytest.mark.parametrize("accept, expected", [
    (b"gzip", b"gzip"), (b"GZIP", b"gzip"), (b"deflate, gzip;q=0.5", b"gzip"), (b"gzip;q=0", None),
    (b"gzip; q=0.000", None), (b"x-gzip", None), (b"*", None), (b"identity", None), (None, None), (b"", None),
    (b"br;q=1, gzip;q=0", None),
])
def test_the_client_must_accept_gzip(accept, expected):
    assert encoding(GZIP, accept=accept) == expected


def test_gzip_needs_http_1_1_and_a_user_agent_gzip_disable_does_not_match():
    assert encoding(GZIP, version=b"1.0") is None and encoding(GZIP, version=b"2") == b"gzip"
    disable = {**GZIP, "gzip_disable": "curl|wget"}
    assert encoding(disable, agent="curl/8.5.0") is None and encoding(disable, agent="Wget/1.21") is None
    assert encoding(disable, agent="Mozilla/5.0") == b"gzip"
    msie6 = {**GZIP, "gzip_disable": "msie6"}
    assert encoding(msie6, agent="Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)") is None
    assert encoding(msie6, agent="Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)") == b"gzip"
    assert encoding(msie6, agent="Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)") == b"gzip"
    assert encoding(msie6, agent="msie6") == b"gzip"  # the special value is not a regular expression


def test_brotli_is_preferred_when_both_are_on_and_accepted():
    assert encoding(BOTH) == b"br"
    assert encoding(BOTH, accept=b"gzip") == b"gzip"
    assert encoding(BOTH, accept=b"br") == b"br"
    assert encoding({"enable_brotli": True}, accept=b"gzip") is None
    assert encoding(BOTH, length=100) == b"br"  # brotli-min-length 20, gzip-min-length 256
    assert encoding(BOTH, length=100, accept=b"gzip") is None
    assert encoding(BOTH, version=b"1.0") == b"br"  # gzip_http_version is gzip's alone
    assert encoding({**BOTH, "brotli_types": "text/css"}, accept=b"br, gzip") == b"gzip"  # text/plain: gzip's only


def test_the_headers_of_a_compressed_answer():
    headers = [*TEXT, (b"etag", b'"abc"'), (b"accept-ranges", b"bytes"), (b"x-keep", b"1")]
    _, headers = respond(GZIP, headers=headers)
    assert headers == [*TEXT, (b"etag", b'W/"abc"'), (b"x-keep", b"1"), (b"vary", b"Accept-Encoding"),
                       (b"content-encoding", b"gzip")]
    _, headers = respond(GZIP, headers=[*TEXT, (b"etag", b'W/"abc"')])
    assert (b"etag", b'W/"abc"') in headers
    _, headers = respond(GZIP, headers=[*TEXT, (b"etag", b"abc")])  # not an entity tag: removed
    assert not [pair for pair in headers if pair[0] == b"etag"]


def test_vary_on_every_answer_that_could_be_compressed_once_only():
    _, headers = respond(GZIP, accept=b"identity")
    assert headers == [*TEXT, (b"vary", b"Accept-Encoding")]
    _, headers = respond(GZIP, headers=[*TEXT, (b"vary", b"Origin, accept-encoding")])
    assert [value for name, value in headers if name == b"vary"] == [b"Origin, accept-encoding"]
    _, headers = respond(GZIP, headers=[*TEXT, (b"vary", b"Origin")])
    assert [value for name, value in headers if name == b"vary"] == [b"Origin", b"Accept-Encoding"]
    _, headers = respond(GZIP, length=10)
    assert headers == TEXT  # too short: untouched


def test_the_filters_stream_each_piece_decodable_as_it_arrives():
    body = compression.GzipBody(1)
    decoder = zlib.decompressobj(16 + 15)
    assert body.write(b"") == b""
    for piece in (b"data: one\n\n", b"data: two\n\n"):
        assert decoder.decompress(body.write(piece)) == piece  # flushed: an SSE event arrives whole
    assert decoder.decompress(body.finish()) == b"" and decoder.eof
    brotli_body = compression.BrotliBody(4)
    decoder = brotli.Decompressor()
    for piece in (b"data: one\n\n", b"data: two\n\n"):
        assert decoder.process(brotli_body.write(piece)) == piece
    decoder.process(brotli_body.finish())
    assert decoder.is_finished()


@pytest.mark.parametrize("text, error", [
    ("0", "from 1 to 9"), ("10", "from 1 to 9"), ("x", "from 1 to 9")])
def test_bad_levels_are_refused(text, error):
    (option,) = [o for o in compression.ingressd_options() if o.name == "gzip-level"]
    with pytest.raises(ValueError, match=error):
        option.coerce(text)


def test_options_parse_as_nginx_reads_them():
    options = {option.name: option for option in compression.ingressd_options()}
    assert options["brotli-level"].coerce("11") == 11 and options["brotli-level"].coerce("0") == 0
    with pytest.raises(ValueError):
        options["brotli-level"].coerce("12")
    assert options["gzip-types"].coerce("text/css  application/json") == {"text/css", "application/json"}
    with pytest.raises(ValueError):
        options["gzip-types"].coerce("text")
    with pytest.raises(ValueError, match="not a regular expression ingressd can match"):
        options["gzip-disable"].coerce("(?<=x)y")
    assert options["gzip-disable"].coerce(" msie6 ") == "msie6"
    with pytest.raises(ValueError):
        options["gzip-min-length"].coerce("-1")
    assert options["use-gzip"].coerce("true") is True
    with pytest.raises(ValueError):
        options["use-gzip"].coerce("yes please")
    assert options["gzip-types"].default == compression.GZIP_TYPES
    assert compression.BROTLI_TYPES.startswith("application/xml+rss ")


# -- through the real Exchange -------------------------------------------------------------------------


def test_a_backend_answer_is_compressed_as_it_streams_and_sent_without_a_length():
    proxy, pool, _ = proxy_for(entry([feature(GZIP)]))
    client, exchange = send(proxy, request(headers=[(b"accept-encoding", b"gzip")]))
    connection = pool.connect()
    exchange.upstream_head(connection, 200, [(b"content-type", b"text/event-stream"), (b"content-length", b"999")],
                           None)
    assert client.head[2] is None  # chunked
    proxy2, pool2, _ = proxy_for(entry([feature({**GZIP, "gzip_types": "text/event-stream"})]))
    client, exchange = send(proxy2, request(headers=[(b"accept-encoding", b"gzip")]))
    connection = pool2.connect()
    exchange.upstream_head(connection, 200, [(b"content-type", b"text/event-stream")], 2000)
    assert client.head[2] is None and client.header(b"content-encoding") == [b"gzip"]
    decoder = zlib.decompressobj(16 + 15)
    exchange.upstream_body(b"data: 1\n\n")
    assert decoder.decompress(client.body) == b"data: 1\n\n"  # at once, before the next piece
    seen = len(client.body)
    exchange.upstream_body(b"data: 2\n\n" * 100)
    assert decoder.decompress(client.body[seen:]) == b"data: 2\n\n" * 100
    exchange.upstream_done(connection, True)
    assert client.finished and gzip.decompress(client.body) == b"data: 1\n\n" + b"data: 2\n\n" * 100
    assert exchange.bytes_sent == len(client.body)  # $body_bytes_sent: the compressed bytes


def test_an_uncompressed_answer_keeps_its_length():
    proxy, pool, _ = proxy_for(entry([feature(GZIP)]))
    client, exchange = send(proxy, request())  # no Accept-Encoding
    pool.connect().respond(200, TEXT, b"x" * 1000)
    assert client.head[2] == 1000 and client.body == b"x" * 1000 and client.header(b"vary") == [b"Accept-Encoding"]


class Page:
    phase = Phase.ACCESS

    def request(self, exchange):
        return LocalResponse(404, [(b"content-type", b"text/html")], b"<html>" + b"not here " * 50 + b"</html>")


def test_ingressd_s_own_answers_are_compressed_too():
    proxy, pool, _ = proxy_for(entry([Page(), feature(BOTH)]))
    client, exchange = send(proxy, request(headers=[(b"accept-encoding", b"br")]))
    assert client.head[0] == 404 and client.head[2] is None and client.header(b"content-encoding") == [b"br"]
    assert brotli.decompress(client.body).startswith(b"<html>not here") and client.finished


def test_a_head_request_gets_the_headers_untouched():
    proxy, pool, _ = proxy_for(entry([feature(GZIP)]))
    client, exchange = send(proxy, request(method=b"HEAD", headers=[(b"accept-encoding", b"gzip")]))
    connection = pool.connect()
    exchange.upstream_head(connection, 200, list(TEXT), 1000)
    assert client.head[2] == 1000 and not client.header(b"content-encoding")


# -- the ConfigMap -----------------------------------------------------------------------------------


def _read(data):
    options = {option.name: option.coerce for option in compression.ingressd_options()}
    return read_configmap("a/b", data, (), options)


def test_the_keys_are_live_settings():
    reading = _read({"use-gzip": "true", "gzip-level": "6", "gzip-min-length": "100", "gzip-types": "text/css",
                     "gzip-disable": "msie6", "enable-brotli": "true", "brotli-level": "5",
                     "brotli-min-length": "30", "brotli-types": "text/css text/plain"})
    assert reading.usable and not reading.warnings, (reading.refusals, reading.warnings)
    settings = dict(reading.settings)
    assert settings["use-gzip"] is True and settings["gzip-level"] == 6 and settings["gzip-types"] == {"text/css"}
    compressor = feature({name.replace("-", "_"): value for name, value in settings.items()})
    assert [encoder.token for encoder in compressor._encoders] == [b"br", b"gzip"]
    for key in settings:
        assert lookup(key).status == IMPLEMENTED, key


@pytest.mark.parametrize("key, value", [("gzip-level", "0"), ("brotli-level", "12"), ("use-gzip", "yes"),
                                        ("gzip-disable", "(?<=a)b"), ("gzip-types", "text"),
                                        ("gzip-min-length", "many")])
def test_a_bad_value_refuses_the_configmap(key, value):
    reading = _read({key: value})
    assert not reading.usable and key in reading.refusals[0]


def test_the_feature_is_the_servers_one_shared_by_its_routes():
    context = BuildContext(settings={"use_gzip": True}, reactor=None)
    first = compression.ingressd_route_features(route=None, values={}, context=context)
    second = compression.ingressd_route_features(route=None, values={}, context=context)
    assert first is second and first.phase > Phase.PROXY
    context.settings = {"use_gzip": True, "gzip_level": 9}
    assert compression.ingressd_route_features(route=None, values={}, context=context) is not first
