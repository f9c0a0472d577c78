"""The TCP services' ConfigMap keys end to end, live, on the real ``twistd ingressd`` in file mode:
``proxy-stream-next-upstream`` (a connect refused by one endpoint goes to the next, or with
false the connection ends, 502 in its line), ``log-format-stream`` (the line of each
connection, with ``$upstream_addr`` naming every endpoint tried), a connection opened before a
change kept, and a bad value refused with the previous settings kept."""

from __future__ import annotations

import socket

import pytest

from harness import INGRESS_CLASS, Ingressd, free_port, wait_for, write_manifests
from test_e2e_l4 import WAIT, TCPEcho, configmap, exchange

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"
FORMAT = "$protocol $status [$upstream_addr] $bytes_received $server_port"


def two_endpoints(dead: int, live: int) -> list[dict]:
    """Service echo (port 7000) with two endpoints: 127.0.0.1:dead (nothing listens) and :live."""
    objects = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
                "spec": {"ports": [{"name": "p", "port": 7000, "protocol": "TCP"}]}}]
    for n, target in enumerate((dead, live)):
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"echo-{n}", "namespace": "default", "labels": {"kubernetes.io/service-name": "echo"}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": target, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
    return objects


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_next_upstream_and_the_stream_log_format_live(tmp_path):
    echo = TCPEcho()
    folder = tmp_path / "m"
    folder.mkdir()
    access = tmp_path / "access.log"
    dead, port = free_port(), free_port()

    def write(data):
        write_manifests(folder / "all.yaml", [
            INGRESS_CLASS, *two_endpoints(dead, echo.port),
            configmap("tcp-services", {str(port): "default/echo:7000"}), configmap("ingress-nginx-controller", data)])

    write({"log-format-stream": FORMAT})
    proc = Ingressd(folder, ["--tcp-services-configmap", "ingress-nginx/tcp-services", "--nginx-configmap", CM,
                             "--access-log", str(access), "--proxy-connect-timeout", "2"])
    try:
        wait_for(lambda: exchange(port, b"poll") == b"poll", "the TCP service", WAIT)
        # Each connection that tries the dead endpoint first goes on to the live one (round robin
        # counts both picks: with two endpoints here, every connection starts at the dead one).
        assert [exchange(port, b"hi%d" % n) for n in range(4)] == [b"hi0", b"hi1", b"hi2", b"hi3"]
        retried = f"TCP 200 [127.0.0.1:{dead}, 127.0.0.1:{echo.port}] 3 {port}"
        direct = f"TCP 200 [127.0.0.1:{echo.port}] 3 {port}"
        found = wait_for(lambda: [x for x in lines(access) if x.endswith(f"] 3 {port}")][-4:]
                         if len([x for x in lines(access) if x.endswith(f"] 3 {port}")]) >= 4 else None,
                         "four stream lines")
        assert set(found) <= {retried, direct} and retried in found, found

        held = socket.create_connection(("127.0.0.1", port), timeout=WAIT)  # open across the change
        held.sendall(b"before")
        assert held.recv(64) == b"before"

        write({"log-format-stream": "v2 $status [$upstream_addr]", "proxy-stream-next-upstream": "false"})
        answers = wait_for(lambda: (lambda got: got if b"" in got else None)([exchange(port, b"yo") for _ in range(2)]),
                           "a connection ended at the dead endpoint", WAIT)
        assert sorted(answers) == [b"", b"yo"]
        wait_for(lambda: f"v2 502 [127.0.0.1:{dead}]" in lines(access), "the 502 line naming one endpoint")
        held.sendall(b"after")
        assert held.recv(64) == b"after"  # the connection opened before the change goes on
        held.close()

        write({"log-format-stream": "v2 $status [$upstream_addr]", "proxy-stream-next-upstream": "false",
               "proxy-stream-next-upstream-tries": "-1"})
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "proxy-stream-next-upstream-tries" in proc.log()
        assert sorted(exchange(port, b"k") for _ in range(2)) == [b"", b"k"]  # still next-upstream off
    finally:
        proc.stop()
        echo.close()
