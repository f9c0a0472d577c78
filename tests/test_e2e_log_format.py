"""nginx log formats on the real ``twistd ingressd``: the default upstreaminfo line byte for byte,
a custom JSON format, and live changes by SIGHUP (a bad template refused, the old one kept).

The expected lines are written from nginx's semantics for the same request: the fields that
differ per run (time, durations, the request ID, the backend's port) are matched by their
exact shape, everything else byte for byte.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
import yaml

from backends import Backend
import harness
from harness import INGRESS_CLASS, Ingressd, ingress, service, write_manifests

pytestmark = pytest.mark.slow

WAIT = 30.0
TIME_LOCAL = r"\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
SECONDS = r"\d+\.\d{3}"
REQ_ID = r"[0-9a-f]{32}"


def wait_for(condition, what: str, timeout: float = WAIT):
    return harness.wait_for(condition, what, timeout)


def lines(path) -> list[str]:
    return path.read_text(errors="surrogateescape").splitlines() if path.exists() else []


def response_body(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), raw[:200]
    return body


@pytest.fixture
def web():
    backend = Backend("web")
    yield backend
    backend.stop()


def _manifests(tmp_path, web):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
                                             ingress("shop", [("shop.test", [("/", "Prefix", "web", 80)])])])
    return manifests


def test_the_default_format_is_ingress_nginxs_upstreaminfo_line(tmp_path, web):
    access = tmp_path / "access.log"
    proc = Ingressd(_manifests(tmp_path, web), ["--access-log", str(access), "--access-log-format", "nginx"])
    try:
        wait_for(lambda: proc.get("/", host="shop.test").status == 200, "the route")
        request = (b"GET /shop/item?q=1 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: curl/8.5.0 \"x\"\r\n"
                   b"Referer: http://ref.test/\r\nConnection: close\r\n\r\n")
        body = response_body(proc.raw(request))
        unknown = b"GET /nothing HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n"
        missing = response_body(proc.raw(unknown))
        found = wait_for(lambda: lines(access)[-2:] if len(lines(access)) >= 3 else None, "the lines")
        expected = (
            rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "GET /shop/item\?q=1 HTTP/1\.1" 200 {len(body)} '
            rf'"http://ref\.test/" "curl/8\.5\.0 \\x22x\\x22" {len(request)} {SECONDS} \[default-web-80\] \[\] '
            rf'127\.0\.0\.1:{web.port} {len(body)} {SECONDS} 200 {REQ_ID}')
        assert re.fullmatch(expected, found[0]), found[0]
        expected = (
            rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "GET /nothing HTTP/1\.1" 404 {len(missing)} "-" "-" '
            rf'{len(unknown)} {SECONDS} \[upstream-default-backend\] \[\] - - - - {REQ_ID}')
        assert re.fullmatch(expected, found[1]), found[1]
    finally:
        proc.stop()


def test_a_custom_json_format_changed_live_by_sighup(tmp_path, web):
    access = tmp_path / "access.log"
    config = tmp_path / "ingressd.yaml"
    first = ('{"addr":"$remote_addr","user":"$remote_user","uri":"$request_uri","status":$status,'
             '"ua":"$http_user_agent","upstream":"$upstream_addr","ns":"$namespace","ing":"$ingress_name",'
             '"svc":"$service_name","port":"$service_port","id":"$req_id"}')
    config.write_text(yaml.safe_dump({"access-log": str(access), "log-format-upstream": first,
                                      "log-format-escape-json": True}))
    proc = Ingressd(_manifests(tmp_path, web), ["--config", str(config)])
    try:
        wait_for(lambda: proc.get("/", host="shop.test").status == 200, "the route")
        proc.get("/a?b=1", host="shop.test", headers={"User-Agent": 'ua "q" \\'})
        line = wait_for(lambda: [x for x in lines(access) if "/a?b=1" in x], "the JSON line")[0]
        document = json.loads(line)
        assert document == {"addr": "127.0.0.1", "user": "", "uri": "/a?b=1", "status": 200, "ua": 'ua "q" \\',
                            "upstream": f"127.0.0.1:{web.port}", "ns": "default", "ing": "shop", "svc": "web",
                            "port": "80", "id": document["id"]}
        assert re.fullmatch(REQ_ID, document["id"])

        # Live: a new template and skipped URLs, no restart.
        config.write_text(yaml.safe_dump({"access-log": str(access), "log-format-upstream": "$status $uri",
                                          "skip-access-log-urls": "/healthz,/skip?x=1"}))
        proc.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "applied: " in proc.log() and "--log-format-upstream" in proc.log(), "the reload")
        for path in ("/skip?x=1", "/healthz", "/after"):
            assert proc.get(path, host="shop.test").status == 200
        wait_for(lambda: "200 /after" in lines(access), "the new format's line")
        assert not any("skip" in x or "healthz" in x for x in lines(access))

        # A template nginx would refuse is refused; the running format stays.
        config.write_text(yaml.safe_dump({"access-log": str(access), "log-format-upstream": "$status $bogus"}))
        proc.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "unknown log variable $bogus" in proc.log(), "the refusal")
        assert proc.get("/again", host="shop.test").status == 200
        wait_for(lambda: "200 /again" in lines(access), "the kept format's line")
        assert proc.process.poll() is None
    finally:
        proc.stop()


def test_a_bad_template_stops_the_start_with_one_line(tmp_path, web):
    import subprocess

    from harness import TWISTD

    result = subprocess.run([TWISTD, "-n", "--pidfile=", "ingressd", "--manifests", str(_manifests(tmp_path, web)),
                             "--log-format-upstream", "$remote_addr $nosuch"], capture_output=True, timeout=60,
                            cwd=str(tmp_path))
    assert result.returncode != 0
    assert b"unknown log variable $nosuch" in result.stdout + result.stderr
    assert b"Traceback" not in result.stdout + result.stderr


def test_tls_variables_over_https(tmp_path, web):
    import base64
    import http.client
    import socket
    import ssl

    import certs

    leaf = certs.make_leaf("shop.test")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        ingress("shop", [("shop.test", [("/", "Prefix", "web", 80)])],
                tls=[{"hosts": ["shop.test"], "secretName": "shop-tls"}]),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-tls", "namespace": "default"},
         "type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(leaf.cert_pem).decode(),
                                               "tls.key": base64.b64encode(leaf.key_pem()).decode()}},
    ])
    access = tmp_path / "access.log"
    proc = Ingressd(manifests, ["--access-log", str(access), "--log-format-upstream",
                                "$scheme $server_port $ssl_protocol $ssl_server_name [$ssl_cipher] $status $uri"])
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.set_alpn_protocols(["http/1.1"])

        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", proc.https_port, timeout=10)
            conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", proc.https_port), timeout=10),
                                            server_hostname="shop.test")
            try:
                conn.request("GET", path, headers={"Host": "shop.test"})
                return conn.getresponse().status
            finally:
                conn.close()

        wait_for(lambda: get("/ready") == 200, "the TLS route")
        assert get("/tls") == 200
        line = wait_for(lambda: [x for x in lines(access) if x.endswith(" /tls")], "the TLS line")[0]
        assert re.fullmatch(rf"https {proc.https_port} TLSv1\.3 shop\.test \[TLS_[A-Z0-9_]+\] 200 /tls", line), line
    finally:
        proc.stop()


def test_a_request_the_canary_answered_names_it_as_the_alternative_upstream(tmp_path, web):
    canary_backend = Backend("canary")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    prefix = "nginx.ingress.kubernetes.io/"
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        *service("web-v2", [("http", 80, canary_backend.port)]),
        ingress("shop", [("shop.test", [("/", "Prefix", "web", 80)])]),
        ingress("shop-canary", [("shop.test", [("/", "Prefix", "web-v2", 80)])],
                annotations={prefix + "canary": "true", prefix + "canary-by-header": "x-canary"}),
    ])
    access = tmp_path / "access.log"
    proc = Ingressd(manifests, ["--access-log", str(access), "--log-format-upstream",
                                "$uri [$proxy_upstream_name] [$proxy_alternative_upstream_name]"])
    try:
        wait_for(lambda: proc.get("/", host="shop.test").status == 200, "the route")
        assert proc.get("/main", host="shop.test").status == 200
        assert proc.get("/canary", host="shop.test", headers={"x-canary": "always"}).status == 200
        assert [r for r in canary_backend.requests if "/canary" in str(r)]
        wait_for(lambda: "/canary [default-web-80] [default-web-v2-80]" in lines(access), "the canary's line")
        assert "/main [default-web-80] []" in lines(access)
    finally:
        proc.stop()
        canary_backend.stop()
