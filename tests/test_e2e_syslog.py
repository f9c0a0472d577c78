"""The ingress-nginx ConfigMap's access-log destinations on the real ``twistd ingressd`` in file
mode: ``enable-syslog`` sending ingress-nginx's default upstreaminfo line to a UDP syslog
receiver on 127.0.0.1 in nginx's syslog format, then ``access-log-path`` moving the lines to
another file live (on a connection opened before), ``enable-access-log-for-default-backend``
turning the default backend's lines on, and a bad ``access-log-params`` refused with the
previous version kept."""

from __future__ import annotations

import http.client
import re
import socket

import pytest

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests
from test_e2e_configmap import configmap

pytestmark = pytest.mark.slow
CM = "ingress-nginx/ingress-nginx-controller"
TIME_LOCAL = r"\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
SECONDS = r"\d+\.\d{3}"


def objects(web, data):
    return [INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap(data),
            ingress("shop", [("shop.test", [("/", "Prefix", "web", 80)])])]


def text(path) -> str:
    return path.read_text() if path.exists() else ""


def get(conn, path, host="shop.test") -> int:
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    response.read()
    return response.status


def test_syslog_then_another_file_then_the_default_backend_live(tmp_path):
    web = Backend("web")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(20)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    access, moved = tmp_path / "access.log", tmp_path / "moved.log"
    syslog = {"enable-syslog": "true", "syslog-host": "127.0.0.1", "syslog-port": str(receiver.getsockname()[1])}
    write_manifests(manifests / "all.yaml", objects(web, syslog))
    proc = Ingressd(manifests, ["--nginx-configmap", CM, "--access-log", str(access)])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proc.http_port, timeout=10)
        assert get(conn, "/to-syslog?q=1") == 200
        data = receiver.recv(65535).decode()
        header = rf"<190>[A-Z][a-z][a-z] [ 123]\d \d\d:\d\d:\d\d {re.escape(socket.gethostname().lower())} nginx: "
        line = (rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "GET /to-syslog\?q=1 HTTP/1\.1" 200 \d+ "-" "-" \d+ {SECONDS} '
                rf'\[default-web-80\] \[\] 127\.0\.0\.1:{web.port} \d+ {SECONDS} 200 [0-9a-f]{{32}}')
        assert re.fullmatch(header + line, data), data
        assert get(conn, "/unknown-host", host="nobody.test") == 404  # the default backend: not logged

        # access-log-path: the lines go to that file now; syslog off.
        write_manifests(manifests / "all.yaml", objects(web, {"access-log-path": str(moved)}))
        wait_for(lambda: get(conn, "/poll") == 200 and "/poll" in text(moved), "lines in the new file", 30)
        assert get(conn, "/moved") == 200
        wait_for(lambda: "/moved" in text(moved), "the line in access-log-path")
        assert "/moved" not in text(access) and "/unknown-host" not in text(access) + text(moved)

        # enable-access-log-for-default-backend: the default backend's 404 is logged.
        write_manifests(manifests / "all.yaml", objects(web, {"access-log-path": str(moved),
                                                              "enable-access-log-for-default-backend": "true"}))
        wait_for(lambda: get(conn, "/nobody", host="nobody.test") == 404 and "/nobody" in text(moved),
                 "the default backend's line", 30)

        # gzip is refused: the previous version keeps writing where it did.
        write_manifests(manifests / "all.yaml", objects(web, {"access-log-path": str(access),
                                                              "access-log-params": "gzip"}))
        wait_for(lambda: "ConfigMap refused" in proc.log(), "the refusal")
        assert "access-log-params: 'gzip' is not supported" in proc.log()
        assert get(conn, "/kept") == 200
        wait_for(lambda: "/kept" in text(moved), "the line in the previous path")
        conn.close()
    finally:
        proc.stop()
        web.stop()
        receiver.close()
