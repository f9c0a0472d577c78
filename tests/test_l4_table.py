"""TCP/UDP services ConfigMaps → the L4 table (ingressd.l4.table), and PROXY protocol headers."""

from __future__ import annotations

import struct

import pytest

from ingressd.config.model import Endpoint
from ingressd.config.store import ObjectStore
from ingressd.http.proxy_protocol import MORE, V2_SIGNATURE, InvalidHeader, parse
from ingressd.l4.proxy_protocol import v1_header
from ingressd.l4.table import build_l4_table, parse_ref


def _objects(tcp=None, udp=None, services=()):
    store = ObjectStore()
    items = []
    if tcp is not None:
        items.append({"kind": "ConfigMap", "metadata": {"namespace": "ingress-nginx", "name": "tcp"}, "data": tcp})
    if udp is not None:
        items.append({"kind": "ConfigMap", "metadata": {"namespace": "ingress-nginx", "name": "udp"}, "data": udp})
    store.replace("t", "ConfigMap", items)
    store.replace("t", "Service", [s for s in services if s["kind"] == "Service"])
    store.replace("t", "EndpointSlice", [s for s in services if s["kind"] == "EndpointSlice"])
    return store.snapshot()


def _service(name, ports, addresses=("10.0.0.1",), ready=True):
    return [
        {"kind": "Service", "metadata": {"namespace": "default", "name": name},
         "spec": {"ports": [{"name": n, "port": p, "protocol": proto} for n, p, _, proto in ports]}},
        {"kind": "EndpointSlice", "metadata": {"namespace": "default", "name": f"{name}-x",
                                               "labels": {"kubernetes.io/service-name": name}},
         "ports": [{"name": n, "port": t, "protocol": proto} for n, _, t, proto in ports],
         "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses]},
    ]


TCP = ("ingress-nginx", "tcp")
UDP = ("ingress-nginx", "udp")


def test_ports_by_number_and_name_with_proxy_fields():
    objects = _objects(
        tcp={"9000": "default/db:5432", "9001": "default/db:pg:PROXY", "9002": "default/db:5432::PROXY",
             "9003": "default/db:5432:PROXY:PROXY"},
        udp={"53": "default/dns:53"},
        services=_service("db", [("pg", 5432, 15432, "TCP")]) + _service("dns", [("dns", 53, 1053, "UDP")]))
    table = build_l4_table(objects, TCP, UDP)
    assert table.problems == ()
    by = table.by_key()
    assert by["TCP", 9000].endpoints == (Endpoint("10.0.0.1", 15432),)
    assert (by["TCP", 9000].decode_proxy, by["TCP", 9000].encode_proxy) == (False, False)
    # ingress-nginx: the 3rd field is the client's header (decode), the 4th the backend's (encode)
    assert (by["TCP", 9001].decode_proxy, by["TCP", 9001].encode_proxy) == (True, False)
    assert (by["TCP", 9002].decode_proxy, by["TCP", 9002].encode_proxy) == (False, True)
    assert (by["TCP", 9003].decode_proxy, by["TCP", 9003].encode_proxy) == (True, True)
    assert by["UDP", 53].endpoints == (Endpoint("10.0.0.1", 1053),)
    assert by["TCP", 9000].upstream_name == "tcp-default-db-5432"


def test_bad_entries_are_reported_and_skipped():
    objects = _objects(
        tcp={"http": "default/db:5432", "8080": "default/db:5432", "9000": "default/db", "9001": "nope:1",
             "9002": "default/db:5432:SOCKS", "9003": "default/missing:1", "9004": "default/db:9999",
             "9005": "default/db:5432"},
        services=_service("db", [("pg", 5432, 15432, "TCP")]))
    table = build_l4_table(objects, TCP, None, reserved=(8080,))
    assert [s.port for s in table.services] == [9003, 9004, 9005]  # listened on, closed until resolvable
    text = "\n".join(table.problems)
    for needle in ("'http' is not a valid TCP port", "port 8080 cannot be used", "invalid Service reference",
                   "9001", "may only be PROXY", "default/missing not found", "has no TCP port 9999"):
        assert needle in text


def test_wrong_protocol_unready_endpoints_and_missing_configmap():
    objects = _objects(udp={"53": "default/dns:53", "54": "default/down:53"},
                       services=_service("dns", [("dns", 53, 1053, "TCP")])
                       + _service("down", [("dns", 53, 1053, "UDP")], ready=False))
    table = build_l4_table(objects, TCP, UDP)
    text = "\n".join(table.problems)
    assert "ConfigMap ingress-nginx/tcp: not found" in text
    assert "has no UDP port 53" in text
    assert "does not have any active endpoint for UDP port 53" in text
    assert all(not s.endpoints for s in table.services)


def test_parse_ref():
    assert parse_ref("a/b") == ("a", "b")
    assert parse_ref(None) is None
    for bad in ("a", "/b", "a/", "a/b/c"):
        with pytest.raises(ValueError):
            parse_ref(bad)


def test_v1_header_written():
    assert v1_header(("192.0.2.1", 5555), ("10.0.0.2", 9000)) == b"PROXY TCP4 192.0.2.1 10.0.0.2 5555 9000\r\n"
    assert v1_header(("2001:db8::1", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
    assert v1_header(("192.0.2.1", 1), ("::1", 2)) == b"PROXY TCP6 ::ffff:c000:201 ::1 1 2\r\n"


def _v2(command=1, family=0x11, body=b""):
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


def read_header(data):
    """What a TCP service reads of a client's header (the listeners' parser): (length, source)."""
    found = parse(data)
    return None if found is MORE else (found.length, found.source)


def test_read_v1_and_v2():
    line = b"PROXY TCP4 192.0.2.1 10.0.0.2 5555 9000\r\n"
    assert read_header(line + b"rest") == (len(line), ("192.0.2.1", 5555))
    assert read_header(line[:10]) is None
    assert read_header(b"PROXY UNKNOWN\r\n") == (15, None)
    body = bytes([198, 51, 100, 7, 10, 0, 0, 2]) + struct.pack("!HH", 4242, 9000)
    tlvs = b"\x04\x00\x03abc"  # a TLV: skipped, never read
    header = _v2(body=body + tlvs)
    assert read_header(header + b"data") == (len(header), ("198.51.100.7", 4242))
    assert read_header(header[:20]) is None
    assert read_header(_v2(command=0)) == (16, None)  # LOCAL: a health check
    six = bytes(15) + b"\x01" + bytes(16) + struct.pack("!HH", 7, 8)
    assert read_header(_v2(family=0x21, body=six)) == (16 + 36, ("::1", 7))


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", b"PROXY TCP4 ::1 ::1 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", b"PROXY " + b"x" * 120, b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    _v2(body=b"\x01\x02"), _v2(family=0x21, body=bytes(20)), _v2(family=0x51),
    V2_SIGNATURE + b"\x30\x11\x00\x00", V2_SIGNATURE + b"\x22\x11\x00\x00", b"\r\n\r\nX",
])
def test_malformed_headers_refused(data):
    with pytest.raises(InvalidHeader):
        read_header(data)
