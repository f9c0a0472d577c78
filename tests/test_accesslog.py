"""The access log's line formats, field by field, against straightforward reference versions.

The formatters are written for speed (C string escaping, the clock part cached per
second); these tests hold them to what ``json.dumps`` of the same fields, and nginx's
escaping byte by byte, give for any input.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ingressd.accesslog import _combined_line, _escaped, _json_line

texts = st.text(max_size=40)
raw = st.binary(max_size=40)


@st.composite
def records(draw):
    now = draw(st.floats(min_value=1_600_000_000, max_value=2_000_000_000, allow_nan=False))
    return (
        now, draw(texts), draw(st.sampled_from(["127.0.0.1", "::1", ""])), draw(raw), draw(texts),
        draw(raw), draw(st.sampled_from([b"1.0", b"1.1", b"2"])), draw(st.integers(100, 599)),
        draw(st.integers(0, 10**12)), draw(st.integers(0, 10**12)),
        draw(st.floats(min_value=0, max_value=1e5, allow_nan=False)), draw(texts), draw(texts), draw(texts),
        draw(st.one_of(st.integers(1, 65535), texts)), draw(st.sampled_from(["", "10.0.0.1:80", None])),
        draw(st.sampled_from([0, None, 200, 502])),
        draw(st.one_of(st.none(), st.floats(min_value=0, max_value=1e5, allow_nan=False))),
        draw(st.sampled_from(["", "TLSv1.3"])), draw(st.sampled_from(["", "a.example"])),
        draw(st.one_of(st.none(), raw)), draw(st.one_of(st.none(), raw)), draw(st.sampled_from(["http", "https"])),
    )


def _text(value):
    return None if value is None else value.decode("utf-8", "backslashreplace")


def reference_json(record) -> dict:
    (now, rid, client, method, host, target, version, status, sent, received, duration, namespace, ingress,
     service, port, upstream_address, upstream_status, upstream, tls_version, sni, referer, agent, scheme) = record
    return {
        "request_id": rid, "client": client, "method": _text(method), "host": host, "uri": _text(target),
        "protocol": f"HTTP/{_text(version)}", "scheme": scheme, "status": status, "bytes_sent": sent,
        "request_bytes": received, "duration": round(duration, 6), "namespace": namespace, "ingress": ingress,
        "service": service, "service_port": port, "upstream_address": upstream_address or None,
        "upstream_status": upstream_status or None,
        "upstream_duration": round(upstream, 6) if upstream is not None else None,
        "tls_version": tls_version or None, "sni": sni or None, "referer": _text(referer),
        "user_agent": _text(agent),
    }


@settings(max_examples=300)
@given(records())
def test_json_line_is_the_document_json_dumps_would_write(record):
    line = _json_line(record)
    assert line.endswith("}\n") and "\n" not in line[:-1]
    assert line.isascii()
    document = json.loads(line)
    when = datetime.fromisoformat(document.pop("time"))
    assert when.tzinfo is not None and when.utcoffset().total_seconds() == 0
    assert abs(when.timestamp() - record[0]) < 0.0011
    assert document == reference_json(record)
    assert list(document) == list(reference_json(record))  # the same field order


def test_json_line_time_is_utc_with_milliseconds():
    now = 1_790_000_000.25
    line = _json_line((now, "id", "127.0.0.1", b"GET", "h", b"/", b"1.1", 200, 1, 2, 0.5, "ns", "ing", "svc", 80,
                       "", 0, None, "", "", None, None, "http"))
    assert json.loads(line)["time"] == "2026-09-21T14:13:20.250+00:00"


def reference_escaped(value):
    if value is None:
        return "-"
    data = value.encode("utf-8") if isinstance(value, str) else value
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02X}" for b in data)


@settings(max_examples=300)
@given(st.one_of(st.none(), raw, texts))
def test_escaping_is_nginx_byte_by_byte(value):
    assert _escaped(value) == reference_escaped(value)


def test_escaping_examples():
    assert _escaped(b'a "quoted" \\ path\x01\xff') == 'a \\x22quoted\\x22 \\x5C path\\x01\\xFF'
    assert _escaped(b"Mozilla/5.0 (X11; Linux x86_64)") == "Mozilla/5.0 (X11; Linux x86_64)"


def test_combined_line_fields():
    now = time.time()
    line = _combined_line((now, "rid1", "10.1.2.3", b"GET", "h", b"/a?b", b"1.1", 404, 12, 80, 0.0123, "ns", "ing",
                           "svc", 80, "10.0.0.1:80", 404, 0.01, "TLSv1.3", "a.example", b"http://r/", b"UA \"x\"",
                           "https"))
    local = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(int(now)))
    assert line == (f'10.1.2.3 - - [{local}] "GET /a?b HTTP/1.1" 404 12 "http://r/" "UA \\x22x\\x22" 80 0.012 '
                    '[ns-svc-80] [] 10.0.0.1:80 - 0.010 404 rid1 ns/ing TLSv1.3 a.example\n')
