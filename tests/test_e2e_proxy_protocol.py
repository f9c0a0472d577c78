"""End to end: ``--proxy-protocol`` (ingress-nginx's use-proxy-protocol) through the real
``twistd ingressd`` with raw sockets sending PROXY protocol v1 and v2 headers, as a cloud TCP
load balancer does.

The header's source is the client everywhere: X-Forwarded-For and X-Real-IP, the access
log, an allow list (whitelist-source-range) and a rate limit (limit-rpm) keyed on it; its
destination port is X-Forwarded-Port (443: https), as proxy_protocol.go checks. HTTPS works
behind the header, and TLS passthrough passes on only what follows it. A connection without
a valid header (none, malformed v2 TLVs, too late) is closed unanswered.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import struct
import time

import pytest

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests
from test_e2e_passthrough import TLSBackend

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source="192.168.0.1", port=1234, family="TCP4", destination="192.168.0.11"):
    return f"PROXY {family} {source} {destination} 56324 {port}\r\n".encode()


def v2(source="192.168.0.1", port=1234, command=1, tlvs=b""):
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address("192.168.0.11" if ":" not in source else "fd00::11")
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", 56324, port) + tlvs
    return SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proxy-protocol")
    manifests = folder / "manifests"
    manifests.mkdir()
    web = Backend("web")
    term = certs.make_leaf("term.test", issuer=certs.make_ca("terminated CA"))
    pass_leaf = certs.make_leaf("pass.test", issuer=certs.make_ca("passthrough CA"))
    backend = TLSBackend(pass_leaf, folder)
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS,
        certs.secret_manifest("default", "term-cert", term.cert_pem, term.key_pem()),
        *service("web", [("http", 80, web.port)]),
        *service("pass", [("https", 443, backend.port)]),
        ingress("pp", [("pp.test", [("/", "Prefix", "web", 80)])]),
        ingress("allow", [("allow.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "whitelist-source-range": "192.168.0.1/32, 2001:db8::/32"}),
        ingress("limit", [("limit.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "limit-rpm": "1", N + "limit-burst-multiplier": "1"}),
        ingress("term", [("term.test", [("/", "Prefix", "web", 80)])],
                tls=[{"hosts": ["term.test"], "secretName": "term-cert"}]),
        ingress("pass", [("pass.test", [("/", "Prefix", "pass", 443)])], annotations={N + "ssl-passthrough": "true"}),
    ])
    access_log = folder / "access.log"
    proc = Ingressd(manifests, ["--proxy-protocol", "--proxy-protocol-header-timeout", "2s",
                                "--enable-ssl-passthrough", "--access-log", str(access_log)])
    yield proc, access_log
    proc.stop()
    web.stop()
    backend.stop()


def exchange(port: int, pieces, host="pp.test", path="/h", timeout=10.0):
    """Send ``pieces`` (the header, maybe split) then a GET; (status, echoed headers or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\n"
                         "Connection: close\r\n\r\n".encode())
        except (ConnectionResetError, BrokenPipeError):  # closed already: a refused header
            return None, None
        return _answer(_read_all(sock))


def _read_all(sock) -> bytes:
    chunks = []
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            chunks.append(piece)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _answer(data: bytes):
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, dict(json.loads(body)["headers"])
    except ValueError:
        return status, None


def log_lines(access_log, wanted: str, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in access_log.read_text().splitlines() if line.strip()]
        found = [line for line in lines if wanted in json.dumps(line)]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_v1_source_is_the_client(world):
    proc, access_log = world
    status, headers = exchange(proc.http_port, [v1()], path="/v1-request")
    assert status == 200
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == "192.168.0.1"
    assert headers["x-forwarded-port"] == "1234" and headers["x-forwarded-proto"] == "http"
    assert headers["x-original-forwarded-for"] == "6.6.6.6"  # the client's own header is not believed
    [line] = log_lines(access_log, "/v1-request")
    assert line["client"] == "192.168.0.1"


def test_v2_ipv4_and_ipv6_and_tlvs(world):
    proc, _ = world
    status, headers = exchange(proc.http_port, [v2(tlvs=tlv(0x02, b"pp.test") + tlv(0xEA, b"\x01vpce-1"))])
    assert status == 200 and headers["x-forwarded-for"] == "192.168.0.1"
    status, headers = exchange(proc.http_port, [v2(source="2001:db8::7")])
    assert status == 200 and headers["x-forwarded-for"] == headers["x-real-ip"] == "2001:db8::7"


def test_destination_port_443_is_https(world):
    # proxy_protocol.go "should respect proto passed by the PROXY Protocol server port"
    proc, _ = world
    for header in (v1(port=443), v2(port=443)):
        status, headers = exchange(proc.http_port, [header])
        assert status == 200
        assert (headers["x-forwarded-port"], headers["x-forwarded-proto"], headers["x-scheme"]) == (
            "443", "https", "https")


def test_local_command_and_unknown_keep_the_peer(world):
    proc, _ = world
    for header in (v2(command=0), b"PROXY UNKNOWN\r\n"):
        status, headers = exchange(proc.http_port, [header])
        assert status == 200 and headers["x-forwarded-for"] == "127.0.0.1"


def test_a_header_split_across_packets(world):
    proc, _ = world
    header = v2(source="192.168.0.9")
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for at in range(0, len(header), 3):
            sock.sendall(header[at:at + 3])
            time.sleep(0.01)
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n")
        status, headers = _answer(_read_all(sock))
    assert status == 200 and headers["x-forwarded-for"] == "192.168.0.9"


@pytest.mark.parametrize("first", [
    pytest.param(b"", id="no-header"),
    pytest.param(v2(tlvs=b"\x02\x00\x40short"), id="v2-tlv-past-the-end"),
    pytest.param(v2(tlvs=tlv(0x02, b"evil\r\nhost")), id="v2-authority-not-ascii"),
    pytest.param(SIGNATURE + b"\x21\x11\xff\xff", id="v2-too-long"),
    pytest.param(b"PROXY TCP4 999.1.1.1 192.168.0.11 1 2\r\n", id="v1-bad-address"),
    pytest.param(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\n", id="v1-lf-only"),
])
def test_a_connection_without_a_valid_header_is_closed_unanswered(world, first):
    proc, _ = world
    assert exchange(proc.http_port, [first]) == (None, None)


def test_a_header_after_the_timeout(world):
    proc, _ = world
    with socket.create_connection(("127.0.0.1", proc.http_port), timeout=15) as sock:
        sock.sendall(b"PROXY TCP4 ")
        deadline = time.monotonic() + 15
        closed = False
        while time.monotonic() < deadline and not closed:  # closed 2 s after it connected
            try:
                closed = sock.recv(1) == b""
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                break
        assert closed
    # the server is fine afterwards
    assert exchange(proc.http_port, [v1()])[0] == 200


def test_allow_list_sees_the_real_client(world):
    proc, _ = world
    assert exchange(proc.http_port, [v1("192.168.0.1")], host="allow.test")[0] == 200
    assert exchange(proc.http_port, [v2("2001:db8::9")], host="allow.test")[0] == 200
    assert exchange(proc.http_port, [v1("192.168.0.2")], host="allow.test")[0] == 403
    assert exchange(proc.http_port, [v2(command=0)], host="allow.test")[0] == 403  # LOCAL: 127.0.0.1


def test_rate_limit_is_keyed_on_the_real_client(world):
    proc, _ = world
    # limit-rpm 1 with a burst of 1: two pass at once, the third is limited (503)
    statuses = [exchange(proc.http_port, [v1("192.168.7.1")], host="limit.test")[0] for _ in range(3)]
    assert statuses == [200, 200, 503]
    assert exchange(proc.http_port, [v1("192.168.7.2")], host="limit.test")[0] == 200


def tls_client(port: int, header: bytes, name: str, ca_pem: bytes | None = None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(header)
    return context.wrap_socket(raw, server_hostname=name)


def test_https_behind_the_header(world):
    # proxy_protocol.go "should enable PROXY Protocol for HTTPS"
    proc, _ = world
    with tls_client(proc.https_port, v1(), "term.test") as sock:
        assert sock.getpeercert(binary_form=True)  # terminated by ingressd
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: term.test\r\nConnection: close\r\n\r\n")
        status, headers = _answer(_read_all(sock))
    assert status == 200 and headers["x-forwarded-for"] == "192.168.0.1"
    assert (headers["x-forwarded-port"], headers["x-forwarded-proto"], headers["x-scheme"]) == (
        "1234", "https", "https")


def test_passthrough_behind_the_header(world):
    proc, _ = world
    with tls_client(proc.https_port, v2(port=443), "pass.test") as sock:
        cert = sock.getpeercert(binary_form=True)
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: pass.test\r\nConnection: close\r\n\r\n")
        data = _read_all(sock)
    from cryptography import x509

    subject = x509.load_der_x509_certificate(cert).subject.rfc4514_string()
    assert "pass.test" in subject  # the backend's own certificate: not terminated
    assert b'"backend": "passthrough-backend"' in data


def test_tls_without_a_header_is_closed(world):
    proc, _ = world
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        with tls_client(proc.https_port, b"", "term.test") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert _read_all(sock) == b""
            raise ConnectionResetError  # closed unanswered either way
