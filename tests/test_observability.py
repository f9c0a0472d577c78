"""Observability end to end: /metrics, the access log, /routes and the / page of the real twistd.

Known traffic is sent to a real ``twistd ingressd`` on loopback; the metrics are parsed with
prometheus-client's own parser and compared exactly; the access log lines are read back
from the file; the page is loaded in a real headless Chromium when /usr/bin/chromium exists
(Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

import certs
from backends import Backend
from harness import INGRESS_CLASS, Ingressd, free_port, ingress, service, write_manifests
from wsbackend import WebSocketEcho

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def _tls_secret(name: str, issued) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(issued.cert_pem).decode(),
                     "tls.key": base64.b64encode(issued.key_pem()).decode()}}


def _objects(web: Backend, ws: WebSocketEcho) -> list:
    dead = free_port()
    return [
        INGRESS_CLASS,
        *service("web", [("http", 80, web.port)]),
        *service("ws", [("http", 80, ws.port)]),
        *service("down", [("http", 80, web.port)], ready=False),
        *service("refused", [("http", 80, dead)]),
        _tls_secret("tls-cert", certs.make_leaf("tls.test")),
        ingress("shop", [("shop.test", [("/", "Prefix", "web", "http"), ("/exact", "Exact", "web", "http")])],
                annotations={"example.com/note": HOSTILE}),
        ingress("errors", [("down.test", [("/", "Prefix", "down", 80)]),
                           ("refused.test", [("/", "Prefix", "refused", 80)])]),
        ingress("guarded", [("guarded.test", [("/", "Prefix", "web", "http")])],
                annotations={"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}),
        ingress("chat", [("ws.test", [("/", "Prefix", "ws", "http")])]),
        ingress("secure", [("tls.test", [("/", "Prefix", "web", "http")])],
                tls=[{"hosts": ["tls.test"], "secretName": "tls-cert"}]),
        ingress("broken", [("broken.test", [("nope", "Prefix", "web", "http")])]),
    ]


def _wait_lines(path, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{len(lines)} access log lines after {timeout}s, expected {count}: {lines}")


def _https_get(port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    """One request over TLS 1.3 with SNI ``host``; the response is read by its length."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("observability")
    manifests = root / "manifests"
    manifests.mkdir()
    web, ws = Backend("web"), WebSocketEcho()
    write_manifests(manifests / "all.yaml", _objects(web, ws))
    w = World()
    w.web, w.ws = web, ws
    w.json_log = root / "access.json.log"
    w.combined_log = root / "access.combined.log"
    w.proc = Ingressd(manifests, ["--access-log", str(w.json_log), "--proxy-read-timeout", "5"])
    w.nginx = Ingressd(manifests, ["--access-log", str(w.combined_log), "--access-log-format", "combined",
                                   "--metrics-compat", "nginx"])
    try:
        # The known traffic, once, against the first process.
        proc = w.proc
        w.statuses = [proc.get("/", host="shop.test").status for _ in range(3)]
        w.statuses.append(proc.get("/exact?x=1", host="shop.test", headers={"User-Agent": 'ua "quoted"'}).status)
        w.statuses.append(proc.get("/nothing", host="unknown.test").status)
        w.statuses.append(proc.get("/", host="down.test").status)
        w.statuses.append(proc.get("/", host="refused.test").status)
        w.statuses.append(proc.get("/", host="guarded.test").status)
        w.tls_answer = _https_get(proc.https_port, "tls.test")
        conn = websocket.create_connection(f"ws://127.0.0.1:{proc.http_port}/chat", host="ws.test", timeout=10)
        conn.send("hello")
        w.echo = conn.recv()
        conn.close()
        w.json_lines = [json.loads(line) for line in _wait_lines(w.json_log, 10)]
        yield w
    finally:
        w.proc.stop()
        w.nginx.stop()
        web.stop()
        ws.stop()


def _families(proc) -> dict:
    status, headers, body = proc.admin("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def _value(families, name: str, sample: str | None = None, **labels) -> float | None:
    family = families[name]
    sample = sample or name
    found = [s.value for s in family.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def test_known_traffic_answers(world):
    assert world.statuses == [200, 200, 200, 200, 404, 503, 502, 403]
    assert world.tls_answer[0] == 200
    assert world.echo == "hello"


def test_request_metrics_exact_counts_and_labels(world):
    f = _families(world.proc)
    shop = {"namespace": "default", "ingress": "shop", "service": "web"}
    assert _value(f, "ingressd_requests", "ingressd_requests_total", **shop, method="GET", status="200",
                  status_class="2xx") == 4
    requests = [s for s in f["ingressd_requests"].samples if s.name == "ingressd_requests_total"]
    by_route = {(s.labels["ingress"], s.labels["status"]): s.value for s in requests}
    assert by_route == {("shop", "200"): 4, ("", "404"): 1, ("errors", "503"): 1, ("errors", "502"): 1,
                        ("guarded", "403"): 1, ("secure", "200"): 1, ("chat", "101"): 1}
    assert _value(f, "ingressd_request_duration_seconds", "ingressd_request_duration_seconds_count", **shop,
                  status_class="2xx") == 4
    assert _value(f, "ingressd_upstream_response_seconds", "ingressd_upstream_response_seconds_count",
                  **shop) == 4
    # The +Inf bucket holds them all; the buckets go from 5 ms to 60 s.
    buckets = {s.labels["le"] for s in f["ingressd_request_duration_seconds"].samples if s.name.endswith("_bucket")}
    assert {"0.005", "60.0", "+Inf"} <= buckets
    assert _value(f, "ingressd_response_bytes", "ingressd_response_bytes_total", **shop) > 0
    assert _value(f, "ingressd_request_bytes", "ingressd_request_bytes_total", **shop) > 4 * len("GET / HTTP/1.1")
    chat = {"namespace": "default", "ingress": "chat", "service": "ws"}
    assert _value(f, "ingressd_response_bytes", "ingressd_response_bytes_total", **chat) >= len("hello")
    # No label carries a raw request path or a client address.
    for family in f.values():
        for s in family.samples:
            assert "/nothing" not in s.labels.values() and "127.0.0.1" not in s.labels.values(), s


def test_gateway_errors_plugins_connections_pool(world):
    f = _families(world.proc)
    errors = {(s.labels["status"], s.labels["cause"]): s.value for s in f["ingressd_gateway_errors"].samples
              if s.name == "ingressd_gateway_errors_total"}
    assert errors == {("503", "no_endpoints"): 1, ("502", "connect_failed"): 1}
    rejections = {(s.labels["plugin"], s.labels["status"]): s.value
                  for s in f["ingressd_plugin_rejections"].samples if s.name.endswith("_total")}
    assert rejections == {("allowlist", "403"): 1}
    assert _value(f, "ingressd_websocket_tunnels") == 0
    assert _value(f, "ingressd_client_connections", listener="https") in (0, 1)  # 0 once the close is seen
    assert _value(f, "ingressd_client_connections_accepted", "ingressd_client_connections_accepted_total",
                  listener="https") == 1
    assert _value(f, "ingressd_upstream_connections_idle") >= 1
    assert _value(f, "ingressd_upstream_connections_opened", "ingressd_upstream_connections_opened_total") >= 2


def test_tls_and_configuration_metrics(world):
    f = _families(world.proc)
    assert _value(f, "ingressd_tls_handshakes", "ingressd_tls_handshakes_total", version="TLSv1.3") == 1
    assert _value(f, "ingressd_tls_handshake_failures", "ingressd_tls_handshake_failures_total") == 0
    left = _value(f, "ingressd_tls_certificate_expiry_seconds", secret="default/tls-cert", host="tls.test")
    assert 29 * 86400 < left <= 30 * 86400
    assert _value(f, "ingressd_config_rebuilds", "ingressd_config_rebuilds_total") >= 1
    assert _value(f, "ingressd_config_rebuild_failures", "ingressd_config_rebuild_failures_total") == 0
    assert _value(f, "ingressd_config_last_rebuild_successful") == 1
    assert abs(_value(f, "ingressd_config_last_success_timestamp_seconds") - time.time()) < 600
    assert _value(f, "ingressd_config_routes") == 7
    assert _value(f, "ingressd_config_hosts") == 6
    assert _value(f, "ingressd_config_endpoints") == 3  # web, ws and the dead port
    assert _value(f, "ingressd_config_rejections", kind="Ingress", reason="path") == 1
    assert _value(f, "ingressd_access_log_dropped_lines", "ingressd_access_log_dropped_lines_total") == 0


def _nginx_counts(families) -> dict:
    """(ingress, path, host, status) → requests, and the shop 200s' duration count."""
    counts = {(s.labels["ingress"], s.labels["path"], s.labels["host"], s.labels["status"]): s.value
              for s in families["nginx_ingress_controller_requests"].samples}
    counts["duration"] = _value(families, "nginx_ingress_controller_request_duration_seconds",
                                "nginx_ingress_controller_request_duration_seconds_count",
                                ingress="shop", status="200") or 0
    return counts


def test_nginx_compatible_metrics(world):
    proc = world.nginx  # test_access_log_combined sends to it too: counts are compared before and after
    before = _nginx_counts(_families(proc))
    assert proc.get("/exact", host="shop.test").status == 200
    assert proc.get("/x", host="unknown.test").status == 404
    f = _families(proc)
    requests = f["nginx_ingress_controller_requests"]
    assert requests.type == "counter"
    after = _nginx_counts(f)
    added = {key: value - before.get(key, 0) for key, value in after.items() if value != before.get(key, 0)}
    assert added == {("shop", "/exact", "shop.test", "200"): 1, ("", "", "", "404"): 1, "duration": 1}
    sample = next(s for s in requests.samples if s.labels["ingress"] == "shop" and s.labels["status"] == "200")
    # ingress-nginx's Go counter has no _total suffix (the parser adds one to what it returns).
    text = proc.admin("/metrics")[2].decode()
    assert "# TYPE nginx_ingress_controller_requests counter\n" in text
    assert re.search(r"^nginx_ingress_controller_requests\{.*ingress=\"shop\".*\} \d+\.0$", text, re.M)
    assert sample.labels["controller_class"] == "ingressd" and sample.labels["method"] == "GET"
    assert sample.labels["namespace"] == "default" and sample.labels["service"] == "web"
    assert _value(f, "nginx_ingress_controller_config_last_reload_successful") == 1
    expiry = _value(f, "nginx_ingress_controller_ssl_expire_time_seconds", host="tls.test")
    assert 29 * 86400 < expiry - time.time() <= 30 * 86400
    # Our own names are still there.
    assert "ingressd_requests" in f


def test_access_log_json(world):
    lines = world.json_lines
    assert len(lines) == 10
    by_uri = {(line["host"], line["uri"]): line for line in lines}
    exact = by_uri[("shop.test", "/exact?x=1")]
    assert exact["method"] == "GET" and exact["status"] == 200 and exact["protocol"] == "HTTP/1.1"
    assert exact["client"] == "127.0.0.1" and re.fullmatch(r"[0-9a-f]{32}", exact["request_id"])
    assert (exact["namespace"], exact["ingress"], exact["service"]) == ("default", "shop", "web")
    assert exact["upstream_address"] == f"127.0.0.1:{world.web.port}" and exact["upstream_status"] == 200
    assert exact["bytes_sent"] > 0 and exact["request_bytes"] > 0
    assert 0 <= exact["upstream_duration"] <= exact["duration"] < 10
    assert exact["user_agent"] == 'ua "quoted"' and exact["tls_version"] is None and exact["sni"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", exact["time"])
    missing = by_uri[("unknown.test", "/nothing")]
    assert missing["status"] == 404 and missing["ingress"] == "" and missing["upstream_address"] is None
    refused = by_uri[("refused.test", "/")]
    # proxy-next-upstream's default: 3 tries (one endpoint: the same one, as nginx's round-robin),
    # listed as nginx's $upstream_addr and $upstream_status list them
    assert refused["status"] == 502 and refused["upstream_status"] == "502, 502, 502"
    address = refused["upstream_address"].split(", ")[0]
    assert address.startswith("127.0.0.1:") and refused["upstream_address"] == ", ".join([address] * 3)
    secure = by_uri[("tls.test", "/")]
    assert secure["status"] == 200 and secure["scheme"] == "https"
    assert secure["tls_version"] == "TLSv1.3" and secure["sni"] == "tls.test"
    chat = by_uri[("ws.test", "/chat")]
    assert chat["status"] == 101 and chat["ingress"] == "chat" and chat["bytes_sent"] >= len("hello")


def test_access_log_combined(world):
    proc = world.nginx
    assert proc.get("/exact?q=%22x%22", host="shop.test", headers={"User-Agent": 'evil "agent" \\ é'}).status == 200
    assert proc.get("/", host="refused.test").status == 502
    # Lines are written in batches (up to 0.1 s late): pick this test's two by content.
    deadline = time.monotonic() + 10
    while True:
        every = world.combined_log.read_text().splitlines() if world.combined_log.exists() else []
        lines = [line for line in every if "/exact?q=%22x%22" in line] + \
                [line for line in every if "[default-refused-80]" in line]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pattern = (r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
               r'"GET /exact\?q=%22x%22 HTTP/1\.1" 200 (\d+) "-" "evil \\x22agent\\x22 \\x5C \\xE9" (\d+) (\d+\.\d{3}) '
               r'\[default-web-http\] \[\] 127\.0\.0\.1:(\d+) - (\d+\.\d{3}) 200 ([0-9a-f]{32}) default/shop - -')
    match = re.fullmatch(pattern, lines[0])
    assert match, lines[0]
    assert int(match.group(4)) == world.web.port
    assert re.fullmatch(r'.*"GET / HTTP/1\.1" 502 \d+ "-" "[^"]*" \d+ \d+\.\d{3} \[default-refused-80\] \[\] '
                        r'127\.0\.0\.1:(\d+), 127\.0\.0\.1:\1, 127\.0\.0\.1:\1 - \d+\.\d{3} 502, 502, 502 '
                        r'[0-9a-f]{32} default/errors - -', lines[1]), lines[1]


def test_routes_json(world):
    status, headers, body = world.proc.admin("/routes")
    assert status == 200 and headers["Content-Type"] == "application/json"
    document = json.loads(body)
    routes = {(r["host"], r["path"]): r for r in document["routes"]}
    assert set(routes) == {("shop.test", "/"), ("shop.test", "/exact"), ("down.test", "/"), ("refused.test", "/"),
                           ("guarded.test", "/"), ("ws.test", "/"), ("tls.test", "/")}
    exact = routes[("shop.test", "/exact")]
    assert exact["path_type"] == "Exact" and exact["served"] is True
    assert exact["ingress"] == {"kind": "Ingress", "namespace": "default", "name": "shop"}
    assert exact["backend"]["service"] == "web" and exact["backend"]["port"] == "http"
    assert exact["backend"]["endpoints"] == [f"127.0.0.1:{world.web.port}"]
    assert exact["annotations"] == {"example.com/note": HOSTILE}
    assert routes[("down.test", "/")]["backend"]["endpoints"] == []
    assert routes[("tls.test", "/")]["tls"] is True
    [tls] = document["tls"]
    assert tls["host"] == "tls.test" and tls["secret"] == "default/tls-cert"
    assert tls["served_certificate"] == "default/tls-cert" and tls["not_after"]
    [rejected] = document["rejections"]
    assert (rejected["kind"], rejected["namespace"], rejected["name"]) == ("Ingress", "default", "broken")
    assert "must start with '/'" in rejected["reason"] and rejected["category"] == "path"
    assert all(set(w) == {"kind", "namespace", "name", "reason", "category"} for w in document["warnings"])
    assert document["ready"] is True and document["generation"] >= 1


def test_page_escapes_user_input(world):
    status, headers, body = world.proc.admin("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http" not in page.split("<body>")[0].replace("http-equiv", "")  # no external assets in the head


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_page_in_headless_chromium(world, tmp_path):
    url = f"http://127.0.0.1:{world.proc.admin_port}/"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", "--dump-dom", url],
        capture_output=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    dom = result.stdout.decode("utf-8", "replace")
    assert "ingressd" in dom, (result.returncode, result.stderr[-2000:])
    text = re.sub(r"<[^>]+>", " ", dom)  # what a person reads
    text = re.sub(r"\s+", " ", text)
    for expected in ("shop.test", "/exact", "Exact", "default/shop", "tls.test", "default/tls-cert",
                     f"127.0.0.1:{world.web.port}", "Rejected objects (1)", "Ingress default/broken",
                     "must start with '/'"):
        assert expected in text, expected
    # The hostile annotation is shown as text, never run: no script element, title unchanged.
    assert "<script" not in dom and "<img" not in dom
    assert "&lt;script&gt;document.title" in dom
    assert "<title>ingressd routes</title>" in dom
