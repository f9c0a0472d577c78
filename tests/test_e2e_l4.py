"""TCP and UDP services end to end: the real ``twistd ingressd`` in file mode, echo servers on
loopback, ingress-nginx's ConfigMap format (``--tcp-services-configmap``,
``--udp-services-configmap``)."""

from __future__ import annotations

import errno
import json
import socket
import socketserver
import struct
import threading

import pytest

import harness
from harness import INGRESS_CLASS, Ingressd, free_port, write_manifests

pytestmark = pytest.mark.slow

WAIT = 20.0


def wait_for(condition, what: str, timeout: float = WAIT):
    return harness.wait_for(condition, what, timeout)


class _TCPEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TCPEcho:
    """Echoes every byte; ``first`` keeps each connection's first bytes (a PROXY header)."""

    def __init__(self, tag: bytes = b""):
        self.first: list[bytes] = []
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                sock.settimeout(WAIT)
                if tag:
                    sock.sendall(tag)
                seen = b""
                try:
                    while True:
                        data = sock.recv(65536)
                        if not data:
                            break
                        if len(seen) < 256:
                            seen += data
                        sock.sendall(data)
                except OSError:
                    pass
                owner.first.append(seen)

        self.server = _TCPEcho(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class UDPEcho:
    def __init__(self, tag: bytes = b""):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                sock.sendto(tag + data, self.client_address)

        self.server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def service(name: str, port: int, target: int, protocol: str = "TCP", address: str = "127.0.0.1") -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"name": "p", "port": port, "protocol": protocol}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "p", "port": target, "protocol": protocol}],
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
    ]


def configmap(name: str, data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ingress-nginx"},
            "data": data}


ARGS = ("--tcp-services-configmap", "ingress-nginx/tcp-services",
        "--udp-services-configmap", "ingress-nginx/udp-services", "--proxy-connect-timeout", "2")


def exchange(port: int, data: bytes, prefix: bytes = b"") -> bytes:
    """Send, half-close, read until closed; a reset (a refused connection) ends the read too, and so does a
    reset that came before the half-close or the end of the sending (a loaded machine lets it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        chunks = []
        try:
            sock.sendall(prefix + data)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError as error:
                if error.errno != errno.ENOTCONN:  # not connected: the reset was first
                    raise
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                chunks.append(piece)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return b"".join(chunks)


def udp_ask(port: int, data: bytes, sock: socket.socket | None = None) -> bytes:
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(1.0)
        for _ in range(int(WAIT)):  # UDP: a datagram may be lost before the port is open; ask again
            sock.sendto(data, ("127.0.0.1", port))
            try:
                return sock.recvfrom(65536)[0]
            except socket.timeout:
                continue
        raise AssertionError("no UDP reply")
    finally:
        if own:
            sock.close()


@pytest.fixture
def echoes():
    made = {"a": TCPEcho(), "b": TCPEcho(tag=b"B:"), "ua": UDPEcho(b"A:"), "ub": UDPEcho(b"B:")}
    yield made
    for echo in made.values():
        echo.close()


def test_tcp_and_udp_services(tmp_path, echoes):
    folder = tmp_path / "m"
    folder.mkdir()
    plain, encode, both, down, udp = (free_port() for _ in range(5))
    closed = free_port()  # nothing listens there: the backend is down
    write_manifests(folder / "all.yaml", [
        INGRESS_CLASS,
        *service("echo", 7000, echoes["a"].port), *service("dead", 7000, closed),
        *service("dns", 53, echoes["ua"].port, "UDP"),
        configmap("tcp-services", {str(plain): "default/echo:7000", str(encode): "default/echo:p::PROXY",
                                   str(both): "default/echo:7000:PROXY:PROXY", str(down): "default/dead:7000"}),
        configmap("udp-services", {str(udp): "default/dns:53"}),
    ])
    proc = Ingressd(folder, ARGS)
    try:
        assert exchange(plain, b"hello") == b"hello"
        # Large transfers both ways at once, with backpressure: 16 MiB echoed whole.
        payload = bytes(range(256)) * (16 * 4096)
        with socket.create_connection(("127.0.0.1", plain), timeout=WAIT) as sock:
            sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while True:
                piece = sock.recv(1 << 20)
                if not piece:
                    break
                got += piece
            sender.join(WAIT)
        assert bytes(got) == payload
        # The 4th field: a PROXY v1 header sent to the backend (which echoes it), naming the client.
        echoed = exchange(encode, b"x")
        assert echoed.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ") and echoed.endswith(f" {encode}\r\nx".encode())
        # The 3rd field: the client's header is read (v1 and v2); the address it names goes on.
        assert exchange(both, b"y", prefix=b"PROXY TCP4 203.0.113.9 10.0.0.1 4711 443\r\n") == \
            f"PROXY TCP4 203.0.113.9 127.0.0.1 4711 {both}\r\ny".encode()
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + struct.pack("!BBH", 0x21, 0x11, 12 + 5)
              + bytes([198, 51, 100, 4, 10, 0, 0, 1]) + struct.pack("!HH", 4242, 443) + b"\x04\x00\x02zz")
        assert exchange(both, b"z", prefix=v2) == f"PROXY TCP4 198.51.100.4 127.0.0.1 4242 {both}\r\nz".encode()
        # Without a valid header the connection is closed; nothing reaches the backend.
        echoes["a"].first.clear()
        assert exchange(both, b"GET / HTTP/1.1\r\n\r\n") == b""
        assert exchange(both, b"", prefix=b"\r\n\r\n\x00\r\nQUIT\n\x21\x51\x00\x00") == b""
        # A backend that is down: the connection closes, no bytes.
        assert exchange(down, b"anyone?") == b""
        # UDP: replies go back to the client that asked, two clients kept apart.
        one, two = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        try:
            assert udp_ask(udp, b"one", one) == b"A:one"
            assert udp_ask(udp, b"two", two) == b"A:two"
            assert udp_ask(udp, b"one again", one) == b"A:one again"
        finally:
            one.close()
            two.close()
        text = wait_for(lambda: (lambda t: t if "] UDP 200 " in t else None)(proc.log()), "the UDP log lines")
        assert "[203.0.113.9] [" in text  # the client's real address
        assert f"] TCP 200 {len(echoed)} 1 " in text
        assert "] TCP 502 0 0 " in text and "] TCP 400 0 " in text
        status, _, body = proc.admin("/metrics")
        metrics = body.decode()
        assert f'port="{plain}",protocol="TCP",service="default/echo:7000"' in metrics
        assert "ingressd_l4_sent_bytes_total" in metrics
    finally:
        proc.stop()


def test_live_updates(tmp_path, echoes):
    folder = tmp_path / "m"
    folder.mkdir()
    first, added, udp = free_port(), free_port(), free_port()

    def objects(tcp: dict, a_or_b: str):
        return [INGRESS_CLASS, *service("echo", 7000, echoes[a_or_b].port),
                *service("dns", 53, echoes["u" + a_or_b].port, "UDP"),
                configmap("tcp-services", tcp), configmap("udp-services", {str(udp): "default/dns:53"})]

    write_manifests(folder / "all.yaml", objects({str(first): "default/echo:7000"}, "a"))
    proc = Ingressd(folder, ARGS)
    try:
        assert exchange(first, b"1") == b"1"
        assert udp_ask(udp, b"q") == b"A:q"
        # A connection open on the port that is about to be removed.
        held = socket.create_connection(("127.0.0.1", first), timeout=WAIT)
        held.sendall(b"before")
        assert held.recv(100) == b"before"
        # The port moves: ``first`` removed, ``added`` opened; the Service's endpoint changes.
        write_manifests(folder / "all.yaml", objects({str(added): "default/echo:7000"}, "b"))

        def answered_by_b():
            try:
                return exchange(added, b"2") == b"B:2"
            except OSError:
                return False

        wait_for(answered_by_b, "the added port, served by the new endpoint")

        def first_closed():
            try:
                socket.create_connection(("127.0.0.1", first), timeout=2).close()
                return False
            except OSError:
                return True

        wait_for(first_closed, "the removed port to stop listening")
        # The connection made before goes on, to the endpoint it had.
        held.sendall(b"after")
        assert held.recv(100) == b"after"
        held.close()
        wait_for(lambda: udp_ask(udp, b"r") == b"B:r", "UDP sessions to the new endpoint")
        assert "TCP service port" in proc.log() and "removed" in proc.log()
    finally:
        proc.stop()


def test_port_in_use_is_reported_not_fatal(tmp_path, echoes):
    folder = tmp_path / "m"
    folder.mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken, fine = busy.getsockname()[1], free_port()
    try:
        write_manifests(folder / "all.yaml", [
            INGRESS_CLASS, *service("echo", 7000, echoes["a"].port),
            configmap("tcp-services", {str(taken): "default/echo:7000", str(fine): "default/echo:7000"})])
        proc = Ingressd(folder, ("--tcp-services-configmap", "ingress-nginx/tcp-services"))
        try:
            assert exchange(fine, b"ok") == b"ok"
            wait_for(lambda: f"TCP port {taken} cannot be opened" in proc.log(), "the report")
            document = json.loads(proc.admin("/routes")[2])
            listening = {port["port"]: port["listening"] for port in document["l4"]["ports"]}
            assert listening == {taken: False, fine: True}
            assert any(f"TCP port {taken} cannot be opened" in p for p in document["l4"]["problems"])
            assert b"TCP/UDP services (2)" in proc.admin("/")[2]
        finally:
            proc.stop()
    finally:
        busy.close()


def test_drain_closes_l4_connections_after_the_grace(tmp_path, echoes):
    folder = tmp_path / "m"
    folder.mkdir()
    port = free_port()
    write_manifests(folder / "all.yaml", [
        INGRESS_CLASS, *service("echo", 7000, echoes["a"].port),
        configmap("tcp-services", {str(port): "default/echo:7000"})])
    proc = Ingressd(folder, ("--tcp-services-configmap", "ingress-nginx/tcp-services", "--shutdown-grace", "1"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(b"open")
            assert sock.recv(100) == b"open"
            proc.process.terminate()
            ended = b"x"
            try:
                ended = sock.recv(100)  # closed by the drain once the grace is over
            except ConnectionResetError:
                ended = b""
            assert ended == b""
        assert proc.process.wait(WAIT) == 0
    finally:
        proc.stop()


def test_cluster_mode_watches_the_configmap(tmp_path, echoes):
    import fakeapi

    (tmp_path / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        c = api.cluster
        c.apply(fakeapi.ingress_class())
        c.apply(fakeapi.service("echo"))  # port 80, named http
        c.apply(fakeapi.endpoint_slice("echo-1", "echo", addresses=("127.0.0.1",), port=echoes["a"].port))
        first, second = free_port(), free_port()
        c.apply(configmap("tcp-services", {str(first): "default/echo:80"}))
        proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig,
                                                 "--tcp-services-configmap", "ingress-nginx/tcp-services"])
        try:
            wait_for(lambda: _answers(first, b"k8s", b"k8s"), "the watched port")
            c.apply(configmap("tcp-services", {str(first): "default/echo:80", str(second): "default/echo:http"}))
            wait_for(lambda: _answers(second, b"more", b"more"), "the port added through the API")
            # An endpoint change: the next connections go to the new endpoint.
            c.apply(fakeapi.endpoint_slice("echo-1", "echo", addresses=("127.0.0.1",), port=echoes["b"].port))
            wait_for(lambda: _answers(first, b"b", b"B:b"), "the new endpoint")
        finally:
            proc.stop()
    finally:
        api.stop()


def _answers(port: int, data: bytes, expected: bytes) -> bool:
    try:
        return exchange(port, data) == expected
    except OSError:
        return False


@pytest.mark.parametrize("args,line", [
    (("--tcp-services-configmap", "tcp-services"),
     "ingressd: --tcp-services-configmap: 'tcp-services' is not NAMESPACE/NAME"),
    (("--udp-services-configmap", "a/b/c"), "ingressd: --udp-services-configmap: 'a/b/c' is not NAMESPACE/NAME"),
    (("--proxy-stream-timeout", "soon"), "ingressd: --proxy-stream-timeout must be a number, at least 0.001"),
    (("--l4-max-connections", "0"), "ingressd: --l4-max-connections must be a number, at least 1"),
])
def test_option_mistakes_are_one_line(tmp_path, args, line):
    from test_startup import QUIET, assert_one_line, run_twistd

    folder = tmp_path / "m"
    folder.mkdir()
    result = run_twistd("--manifests", str(folder), *QUIET, *args, cwd=tmp_path)
    assert_one_line(result, 2, line)


def test_every_worker_serves_the_ports(tmp_path, echoes):
    import re

    folder = tmp_path / "m"
    folder.mkdir()
    tcp, udp = free_port(), free_port()
    write_manifests(folder / "all.yaml", [
        INGRESS_CLASS, *service("echo", 7000, echoes["a"].port), *service("dns", 53, echoes["ua"].port, "UDP"),
        configmap("tcp-services", {str(tcp): "default/echo:7000"}),
        configmap("udp-services", {str(udp): "default/dns:53"})])
    proc = Ingressd(folder, (*ARGS, "--workers", "2", "--access-log", "off"))
    try:
        # Each worker opens the ports once its first configuration is built: wait for both.
        def both_accepted():
            for _ in range(20):  # new connections (new source ports): the kernel spreads them
                if not _answers(tcp, b"w", b"w"):
                    return False
            body = proc.admin("/metrics")[2].decode()
            workers = set(re.findall(r'ingressd_l4_connections_accepted_total\{[^}]*worker="(\d)"[^}]*\} [1-9]',
                                     body))
            return workers == {"0", "1"}

        wait_for(both_accepted, "both workers to accept TCP service connections")
        for index in range(10):  # sessions stay with their worker (the kernel hashes the 4-tuple)
            assert udp_ask(udp, b"%d" % index) == b"A:%d" % index
    finally:
        proc.stop()
